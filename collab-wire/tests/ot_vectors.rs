//! Shared test vectors for the text-operation algebra, checked against the Rust
//! implementation here and against the JavaScript one (`js/collab-ot.mjs`) by
//! `javascript_client_passes_the_same_vectors`, which runs node.
//!
//! The vectors live in `tests/vectors/ot.json`: the hand-written cases below
//! plus random ones. To change them, edit [`hand_cases`] or the generator and
//! run
//!
//! ```sh
//! COLLAB_REGENERATE_VECTORS=1 cargo test -p collab-wire --test ot_vectors
//! ```
//!
//! The generator checks every hand-written expectation, and the convergence of
//! every random case, before it writes anything.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Once;

use collab_wire::ot::{OtError, TextOperation};
use serde_json::{json, Value};

const SECTIONS: [&str; 7] = [
    "apply",
    "transform",
    "compose",
    "transform_index",
    "from_json_valid",
    "from_json_invalid",
    "transform_by_author",
];

/// An author on the wire of the vectors: a participant id, or null for a
/// change with no author.
fn author_of(v: &Value) -> Option<collab_wire::ids::ParticipantId> {
    v.as_u64()
        .map(|id| collab_wire::ids::ParticipantId(u32::try_from(id).expect("a small id")))
}

fn manifest_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn vectors_path() -> PathBuf {
    manifest_dir().join("tests/vectors/ot.json")
}

/// Reads the vectors, regenerating them first (once per test run) when
/// `COLLAB_REGENERATE_VECTORS=1`.
fn vectors() -> Value {
    static REGENERATE: Once = Once::new();
    REGENERATE.call_once(|| {
        if std::env::var("COLLAB_REGENERATE_VECTORS").as_deref() == Ok("1") {
            regenerate();
        }
    });
    let text = std::fs::read_to_string(vectors_path()).expect("tests/vectors/ot.json is missing");
    serde_json::from_str(&text).expect("tests/vectors/ot.json is not valid JSON")
}

#[test]
fn rust_implementation_passes_the_vectors() {
    let v = vectors();
    let mut checked = 0;
    for section in SECTIONS {
        for case in cases(&v, section) {
            if let Err(why) = check(section, case) {
                panic!(
                    "{section} case {:?} failed: {why}\ncase: {case}",
                    case["name"]
                );
            }
            checked += 1;
        }
    }
    assert!(checked >= 250, "only {checked} cases");
}

#[test]
fn vectors_file_has_the_hand_written_cases() {
    let v = vectors();
    let hand = hand_cases();
    for section in SECTIONS {
        let in_file: Vec<&Value> = cases(&v, section)
            .iter()
            .filter(|c| c["source"] == "hand")
            .collect();
        let expected: Vec<&Value> = hand[section].as_array().unwrap().iter().collect();
        assert!(
            in_file == expected,
            "the {section} cases in tests/vectors/ot.json differ from hand_cases(): \
             run COLLAB_REGENERATE_VECTORS=1 cargo test -p collab-wire --test ot_vectors"
        );
    }
}

/// Runs `node --test` over `js/test/*.test.mjs`: the JavaScript module against
/// the same vectors, and the client state machine against a model server.
#[test]
fn javascript_client_passes_the_same_vectors() {
    vectors(); // Regenerated first, if asked to.
    let node = std::env::var_os("NODE").unwrap_or_else(|| "node".into());
    let version = match Command::new(&node).arg("--version").output() {
        Ok(out) => String::from_utf8_lossy(&out.stdout).trim().to_owned(),
        Err(e) => panic!(
            "could not run `{}` ({e}): Node.js >= 18 is required to test the JavaScript client \
             (collab-wire/js). Install Node.js (CI does), or point the NODE environment variable at it.",
            node.to_string_lossy()
        ),
    };
    let major: u32 = version
        .trim_start_matches('v')
        .split('.')
        .next()
        .and_then(|m| m.parse().ok())
        .unwrap_or(0);
    assert!(
        major >= 18,
        "Node.js >= 18 is required to test the JavaScript client, found {version:?}"
    );

    // Test files are listed explicitly: how `node --test <directory>` behaves
    // differs between node versions.
    let dir = manifest_dir().join("js/test");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".test.mjs"))
        .collect();
    files.sort();
    assert!(
        !files.is_empty(),
        "no *.test.mjs files in {}",
        dir.display()
    );

    let out = Command::new(&node)
        .arg("--test")
        .args(&files)
        .current_dir(manifest_dir())
        .output()
        .expect("node --test did not start");
    assert!(
        out.status.success(),
        "node --test {} failed ({}):\n--- stdout ---\n{}\n--- stderr ---\n{}",
        dir.display(),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

// ---- checking ----

fn cases<'a>(v: &'a Value, section: &str) -> &'a [Value] {
    v[section]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_else(|| panic!("no {section:?} section"))
}

fn parse_op(v: &Value) -> TextOperation {
    serde_json::from_value(v.clone()).unwrap_or_else(|e| panic!("bad op {v}: {e}"))
}

fn to_json(op: &TextOperation) -> Value {
    serde_json::to_value(op).unwrap()
}

fn str_of(v: &Value) -> &str {
    v.as_str().unwrap_or_else(|| panic!("not a string: {v}"))
}

/// `Ok` or `{error, at}` as a case spells it.
fn outcome<T: Into<Value>>(r: Result<T, OtError>) -> Value {
    match r {
        Ok(v) => json!({ "ok": v.into() }),
        Err(OtError::OutOfRange { .. }) => json!({ "error": "out_of_range" }),
        Err(OtError::SplitsSurrogatePair { at }) => {
            json!({ "error": "splits_surrogate_pair", "at": at })
        }
        Err(e) => json!({ "error": e.to_string() }),
    }
}

fn expected_outcome(case: &Value, ok_field: &str) -> Value {
    match case.get("error") {
        Some(kind) if kind == "splits_surrogate_pair" => json!({ "error": kind, "at": case["at"] }),
        Some(kind) => json!({ "error": kind }),
        None => json!({ "ok": case[ok_field] }),
    }
}

fn check(section: &str, c: &Value) -> Result<(), String> {
    let same = |what: &str, got: &Value, want: &Value| {
        if got == want {
            Ok(())
        } else {
            Err(format!("{what}: got {got}, expected {want}"))
        }
    };
    match section {
        "apply" => {
            let got = outcome(parse_op(&c["op"]).apply(str_of(&c["text"])));
            same("apply", &got, &expected_outcome(c, "expected"))
        }
        "transform" | "transform_by_author" => {
            let text = str_of(&c["text"]);
            let (a, b) = (parse_op(&c["a"]), parse_op(&c["b"]));
            // Plain transform, or by author where the case names authors.
            let (a2, b2) = if section == "transform" {
                TextOperation::transform(&a, &b)
            } else {
                TextOperation::transform_by_author(
                    &a,
                    author_of(&c["a_author"]),
                    &b,
                    author_of(&c["b_author"]),
                )
            };
            same("a2", &to_json(&a2), &c["a2"])?;
            same("b2", &to_json(&b2), &c["b2"])?;
            let left = outcome(a.apply(text).and_then(|t| b2.apply(&t)));
            let right = outcome(b.apply(text).and_then(|t| a2.apply(&t)));
            same("b2(a(text))", &left, &json!({ "ok": c["result"] }))?;
            same("a2(b(text))", &right, &json!({ "ok": c["result"] }))
        }
        "compose" => {
            let text = str_of(&c["text"]);
            let (a, b) = (parse_op(&c["a"]), parse_op(&c["b"]));
            let composed = TextOperation::compose(&a, &b);
            same(
                "compose",
                &outcome(composed.clone().map(|o| to_json(&o))),
                &expected_outcome(c, "expected"),
            )?;
            if let Ok(op) = composed {
                same(
                    "compose(a, b)(text)",
                    &outcome(op.apply(text)),
                    &json!({ "ok": c["result"] }),
                )?;
                let stepwise = outcome(a.apply(text).and_then(|t| b.apply(&t)));
                same("b(a(text))", &stepwise, &json!({ "ok": c["result"] }))?;
            }
            Ok(())
        }
        "transform_index" => {
            let op = parse_op(&c["op"]);
            let index = c["index"].as_u64().unwrap() as u32;
            let got = op.transform_index(index, c["stick_after"].as_bool().unwrap());
            same("transform_index", &json!(got), &c["expected"])
        }
        "from_json_valid" => match serde_json::from_str::<TextOperation>(str_of(&c["json"])) {
            Ok(op) => same("normalized", &to_json(&op), &c["expected"]),
            Err(e) => Err(format!("rejected: {e}")),
        },
        "from_json_invalid" => match serde_json::from_str::<TextOperation>(str_of(&c["json"])) {
            Ok(op) => Err(format!("accepted as {}", to_json(&op))),
            Err(_) => Ok(()),
        },
        _ => Err(format!("unknown section {section}")),
    }
}

// ---- the hand-written cases ----

/// Each section's hand-written cases, with expectations worked out by hand.
fn hand_cases() -> Value {
    let mut v = json!({
        "apply": [
            { "name": "insert at 0", "text": "abc", "op": ["x"], "expected": "xabc" },
            { "name": "insert at the end", "text": "abc", "op": [3, "x"], "expected": "abcx" },
            { "name": "insert into an empty text", "text": "", "op": ["hello"], "expected": "hello" },
            { "name": "replace in the middle", "text": "hello world", "op": [6, "there", -5], "expected": "hello there" },
            { "name": "delete everything", "text": "abc", "op": [-3], "expected": "" },
            { "name": "no-op", "text": "abc", "op": [], "expected": "abc" },
            { "name": "no-op on an empty text", "text": "", "op": [], "expected": "" },
            { "name": "emoji counts as two units", "text": "a😀b", "op": [3, "!"], "expected": "a😀!b" },
            { "name": "delete an emoji", "text": "a😀b", "op": [1, -2], "expected": "ab" },
            { "name": "insert before an emoji", "text": "😀", "op": ["x"], "expected": "x😀" },
            { "name": "insert after an emoji", "text": "😀", "op": [2, "x"], "expected": "😀x" },
            { "name": "insert an emoji with a modifier", "text": "ab", "op": [1, "👍🏽"], "expected": "a👍🏽b" },
            { "name": "astral symbol", "text": "𝄞!", "op": [-2], "expected": "!" },
            { "name": "CRLF counts as two units", "text": "a\r\nb", "op": [3, "x"], "expected": "a\r\nxb" },
            { "name": "delete a CRLF", "text": "a\r\nb", "op": [1, -2], "expected": "ab" },
            { "name": "between CR and LF is allowed", "text": "a\r\nb", "op": [2, "x"], "expected": "a\rx\nb" },
            { "name": "precomposed é is one unit", "text": "é!", "op": [1, -1], "expected": "é" },
            { "name": "combining accent is its own unit", "text": "e\u{301}", "op": [1, "x"], "expected": "ex\u{301}" },
            { "name": "delete the base of a combining pair", "text": "e\u{301}x", "op": [-1], "expected": "\u{301}x" },
            { "name": "retain out of range", "text": "abc", "op": [4, "x"], "error": "out_of_range" },
            { "name": "delete out of range", "text": "abc", "op": [1, -3], "error": "out_of_range" },
            { "name": "insert past the end of an empty text", "text": "", "op": [1, "x"], "error": "out_of_range" },
            { "name": "out of range is reported before a split pair", "text": "😀", "op": [1, -5], "error": "out_of_range" },
            { "name": "insert inside a surrogate pair", "text": "😀", "op": [1, "x"], "error": "splits_surrogate_pair", "at": 1 },
            { "name": "delete starting inside a pair", "text": "😀a", "op": [1, -2], "error": "splits_surrogate_pair", "at": 1 },
            { "name": "delete ending inside a pair", "text": "a😀", "op": [1, -1], "error": "splits_surrogate_pair", "at": 2 },
            { "name": "delete of half a pair at the start", "text": "😀", "op": [-1], "error": "splits_surrogate_pair", "at": 1 },
        ],
        "transform": [
            { "name": "tie: both insert at the same place, a first", "text": "xy",
              "a": [1, "A"], "b": [1, "B"], "a2": [1, "A"], "b2": [2, "B"], "result": "xABy" },
            { "name": "tie at 0", "text": "",
              "a": ["A"], "b": ["B"], "a2": ["A"], "b2": [1, "B"], "result": "AB" },
            { "name": "tie at the end", "text": "ab",
              "a": [2, "A"], "b": [2, "B"], "a2": [2, "A"], "b2": [3, "B"], "result": "abAB" },
            { "name": "the same delete", "text": "abc",
              "a": [1, -1], "b": [1, -1], "a2": [], "b2": [], "result": "ac" },
            { "name": "overlapping deletes", "text": "abcdef",
              "a": [1, -3], "b": [2, -3], "a2": [1, -1], "b2": [1, -1], "result": "af" },
            { "name": "a delete containing the other", "text": "abcdef",
              "a": [-6], "b": [2, -2], "a2": [-4], "b2": [], "result": "" },
            { "name": "insert inside a deleted range", "text": "abcdef",
              "a": [1, -4], "b": [3, "X"], "a2": [1, -2, 1, -2], "b2": [1, "X"], "result": "aXf" },
            { "name": "insert at the start of a delete", "text": "abc",
              "a": [1, -2], "b": [1, "X"], "a2": [2, -2], "b2": [1, "X"], "result": "aX" },
            { "name": "insert at the end of a delete", "text": "abc",
              "a": [-2], "b": [2, "X"], "a2": [-2], "b2": ["X"], "result": "Xc" },
            { "name": "insert where the other deletes, insert in a", "text": "abc",
              "a": [1, "X"], "b": [1, -1], "a2": [1, "X"], "b2": [2, -1], "result": "aXc" },
            { "name": "tie with a replace", "text": "abc",
              "a": [1, "X", -1], "b": [1, "Y"], "a2": [1, "X", 1, -1], "b2": [2, "Y"], "result": "aXYc" },
            { "name": "both clear the text, one inserts", "text": "abc",
              "a": ["X", -3], "b": [-3], "a2": ["X"], "b2": [], "result": "X" },
            { "name": "a is a no-op", "text": "abc",
              "a": [], "b": [1, "X"], "a2": [], "b2": [1, "X"], "result": "aXbc" },
            { "name": "a ends before b", "text": "abcdef",
              "a": ["X"], "b": [5, -1], "a2": ["X"], "b2": [6, -1], "result": "Xabcde" },
            { "name": "delete an emoji, insert after it", "text": "a😀b",
              "a": [1, -2], "b": [3, "!"], "a2": [1, -2], "b2": [1, "!"], "result": "a!b" },
            { "name": "replace a CRLF, insert after it", "text": "a\r\nb",
              "a": [1, "\n", -2], "b": [3, "x"], "a2": [1, "\n", -2], "b2": [2, "x"], "result": "a\nxb" },
            { "name": "combining accents", "text": "e\u{301}",
              "a": [1, "\u{302}"], "b": [2, "x"], "a2": [1, "\u{302}"], "b2": [3, "x"], "result": "e\u{302}\u{301}x" },
        ],
        "compose": [
            { "name": "insert, then delete part of it", "text": "",
              "a": ["abc"], "b": [1, -1], "expected": ["ac"], "result": "ac" },
            { "name": "delete, then insert at the same place", "text": "abc",
              "a": [-3], "b": ["x"], "expected": ["x", -3], "result": "x" },
            { "name": "b reaches past a", "text": "abcdef",
              "a": [2, "x"], "b": [5, -1], "expected": [2, "x", 2, -1], "result": "abxcdf" },
            { "name": "a is a no-op", "text": "abc",
              "a": [], "b": [1, "y"], "expected": [1, "y"], "result": "aybc" },
            { "name": "b is a no-op", "text": "abc",
              "a": [1, "y"], "b": [], "expected": [1, "y"], "result": "aybc" },
            { "name": "b deletes all a inserted", "text": "q",
              "a": ["ab"], "b": [-2], "expected": [], "result": "q" },
            { "name": "delete across an insert", "text": "abcd",
              "a": [2, "XY"], "b": [1, -4], "expected": [1, -2], "result": "ad" },
            { "name": "insert into an insert", "text": "",
              "a": ["ac"], "b": [1, "b"], "expected": ["abc"], "result": "abc" },
            { "name": "deletes merge", "text": "abcdef",
              "a": [1, -2], "b": [1, -2], "expected": [1, -4], "result": "af" },
            { "name": "insert an emoji, then delete it", "text": "ab",
              "a": [1, "😀"], "b": [1, -2], "expected": [], "result": "ab" },
            { "name": "insert inside an inserted emoji", "text": "ab",
              "a": [1, "😀"], "b": [2, "x"], "error": "splits_surrogate_pair", "at": 2 },
            { "name": "delete half an inserted emoji", "text": "ab",
              "a": [1, "😀"], "b": [1, -1], "error": "splits_surrogate_pair", "at": 2 },
            { "name": "CRLF", "text": "x",
              "a": ["\r\n"], "b": [1, "y"], "expected": ["\ry\n"], "result": "\ry\nx" },
        ],
        "transform_index": [
            { "name": "before everything", "op": [2, "xy", -2, 3, -1], "index": 0, "stick_after": true, "expected": 0 },
            { "name": "before an insert, staying before", "op": [2, "xy", -2, 3, -1], "index": 2, "stick_after": false, "expected": 2 },
            { "name": "at an insert, sticking after", "op": [2, "xy", -2, 3, -1], "index": 2, "stick_after": true, "expected": 4 },
            { "name": "inside a delete", "op": [2, "xy", -2, 3, -1], "index": 3, "stick_after": false, "expected": 4 },
            { "name": "at the end of a delete", "op": [2, "xy", -2, 3, -1], "index": 4, "stick_after": true, "expected": 4 },
            { "name": "after a delete", "op": [2, "xy", -2, 3, -1], "index": 5, "stick_after": true, "expected": 5 },
            { "name": "past the operation", "op": [2, "xy", -2, 3, -1], "index": 20, "stick_after": true, "expected": 19 },
            { "name": "insert at 0, staying before", "op": ["abc"], "index": 0, "stick_after": false, "expected": 0 },
            { "name": "insert at 0, sticking after", "op": ["abc"], "index": 0, "stick_after": true, "expected": 3 },
            { "name": "no-op", "op": [], "index": 5, "stick_after": true, "expected": 5 },
            { "name": "delete from 0", "op": [-3], "index": 2, "stick_after": true, "expected": 0 },
            { "name": "after an inserted emoji", "op": [1, "😀"], "index": 1, "stick_after": true, "expected": 3 },
            { "name": "insert at the end of a delete", "op": ["x", -2], "index": 2, "stick_after": false, "expected": 1 },
        ],
        "from_json_valid": [
            { "name": "empty", "json": "[]", "expected": [] },
            { "name": "adjacent inserts merge", "json": "[\"a\", \"b\"]", "expected": ["ab"] },
            { "name": "adjacent retains merge", "json": "[3, 2, \"x\"]", "expected": [5, "x"] },
            { "name": "insert goes before delete", "json": "[-3, \"a\"]", "expected": ["a", -3] },
            { "name": "interleaved inserts and deletes", "json": "[\"a\", -1, \"b\", -2, \"c\"]", "expected": ["abc", -3] },
            { "name": "trailing retain dropped", "json": "[\"x\", 5]", "expected": ["x"] },
            { "name": "only a retain", "json": "[5]", "expected": [] },
            { "name": "largest components", "json": "[4294967295, -4294967295]", "expected": [4294967295_u32, -4294967295_i64] },
            { "name": "runs past u32 stay split", "json": "[4294967295, 1, \"x\"]", "expected": [4294967295_u32, 1, "x"] },
            { "name": "deletes past u32 fill the first", "json": "[-1, -4294967295]", "expected": [-4294967295_i64, -1] },
            { "name": "escaped surrogate pair", "json": "[\"\\ud83d\\ude00\"]", "expected": ["😀"] },
            { "name": "white space", "json": " [ 1 , \"x\" ] ", "expected": [1, "x"] },
        ],
        "from_json_invalid": [
            { "name": "zero", "json": "[0]" },
            { "name": "zero in the middle", "json": "[5, 0, \"a\"]" },
            { "name": "negative zero", "json": "[-0]" },
            { "name": "fraction", "json": "[1.5]" },
            { "name": "negative fraction", "json": "[-2.5]" },
            { "name": "huge number", "json": "[1e400]" },
            { "name": "empty string", "json": "[\"\"]" },
            { "name": "retain beyond u32", "json": "[4294967296]" },
            { "name": "delete beyond u32", "json": "[-4294967296]" },
            { "name": "retain beyond u64", "json": "[18446744073709551616]" },
            { "name": "boolean", "json": "[true]" },
            { "name": "null component", "json": "[null]" },
            { "name": "nested array", "json": "[[1]]" },
            { "name": "object component", "json": "[{}]" },
            { "name": "object", "json": "{}" },
            { "name": "string", "json": "\"abc\"" },
            { "name": "number", "json": "5" },
            { "name": "null", "json": "null" },
            { "name": "lone high surrogate", "json": "[\"\\ud83d\"]" },
            { "name": "lone low surrogate", "json": "[\"a\\ude00\"]" },
            { "name": "too many components", "json": format!("[{}]", vec!["-1"; 10_001].join(",")) },
        ],
    });
    v["transform_by_author"] = json!([
        { "name": "tie: the lower participant id first, seen first", "text": "90s",
          "a": [3, ","], "a_author": 1, "b": [3, " "], "b_author": 2,
          "a2": [3, ","], "b2": [4, " "], "result": "90s, " },
        { "name": "tie: the lower participant id first, seen second", "text": "90s",
          "a": [3, " "], "a_author": 2, "b": [3, ","], "b_author": 1,
          "a2": [4, " "], "b2": [3, ","], "result": "90s, " },
        { "name": "tie: no author (a replica, the server) before any participant", "text": "ab",
          "a": [1, "P"], "a_author": 4, "b": [1, "R"], "b_author": null,
          "a2": [2, "P"], "b2": [1, "R"], "result": "aRPb" },
        { "name": "tie: the same author keeps the order given", "text": "",
          "a": ["x"], "a_author": 2, "b": ["y"], "b_author": 2,
          "a2": ["x"], "b2": [1, "y"], "result": "xy" },
        { "name": "no tie: positions decide, not authors", "text": "abc",
          "a": [2, "Z"], "a_author": 9, "b": [1, "Y"], "b_author": 1,
          "a2": [3, "Z"], "b2": [1, "Y"], "result": "aYbZc" },
    ]);
    for section in SECTIONS {
        for case in v[section].as_array_mut().unwrap() {
            case["source"] = json!("hand");
        }
    }
    v
}

// ---- the generator ----

/// A small deterministic PRNG (splitmix64), so regenerating is reproducible.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n`.
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
}

/// ASCII, CRLF, precomposed and combining accents, CJK, emoji (surrogate
/// pairs), an emoji with a modifier, an astral symbol.
const PIECES: &[&str] = &[
    "a", "b", "c", "d", " ", "\n", "\r\n", "é", "e\u{301}", "中", "😀", "👍🏽", "𝄞",
];

fn random_text(rng: &mut Rng) -> String {
    (0..rng.below(12)).map(|_| rng.pick(PIECES)).collect()
}

/// A random operation on `text` touching only char boundaries; rarely a no-op.
fn random_op(rng: &mut Rng, text: &str) -> TextOperation {
    let widths: Vec<u32> = text.chars().map(|c| c.len_utf16() as u32).collect();
    for _ in 0..10 {
        let mut at = 0;
        let mut op = TextOperation::new();
        for _ in 0..1 + rng.below(5) {
            let end = (at + 1 + rng.below(3)).min(widths.len());
            let units: u32 = widths[at..end].iter().sum();
            match rng.below(10) {
                0..=3 => {
                    op.retain(units);
                    at = end;
                }
                4..=6 => {
                    op.delete(units);
                    at = end;
                }
                _ => {
                    op.insert(
                        &(0..1 + rng.below(2))
                            .map(|_| rng.pick(PIECES))
                            .collect::<String>(),
                    );
                }
            }
        }
        if !op.is_noop() {
            return op;
        }
    }
    TextOperation::new()
}

/// A random insert or delete at any unit position of `text` (or just past
/// it): valid, out of range or splitting a pair.
fn random_raw_op(rng: &mut Rng, text: &str) -> TextOperation {
    let len = text.encode_utf16().count();
    let mut op = TextOperation::new();
    op.retain(rng.below(len + 2) as u32);
    if rng.below(2) == 0 {
        op.insert(rng.pick(PIECES));
    } else {
        op.delete(1 + rng.below(3) as u32);
    }
    op
}

fn regenerate() {
    let mut v = hand_cases();
    // Every hand-written expectation must hold before anything is written.
    for section in SECTIONS {
        for case in cases(&v, section) {
            if let Err(why) = check(section, case) {
                panic!(
                    "hand-written {section} case {:?} is wrong: {why}",
                    case["name"]
                );
            }
        }
    }

    let mut rng = Rng(0x00C0_11AB_2024);
    let mut push = |section: &str, case: Value| {
        let list = v[section].as_array_mut().unwrap();
        let mut case = case;
        case["name"] = json!(format!("random {}", list.len()));
        case["source"] = json!("random");
        list.push(case);
    };

    for i in 0..40 {
        let text = random_text(&mut rng);
        // Every other one at any positions, which may be out of range or split a pair.
        let op = if i % 2 == 1 {
            random_raw_op(&mut rng, &text)
        } else {
            random_op(&mut rng, &text)
        };
        let mut case = json!({ "text": text, "op": to_json(&op) });
        match op.apply(&text) {
            Ok(out) => case["expected"] = json!(out),
            Err(OtError::OutOfRange { .. }) => case["error"] = json!("out_of_range"),
            Err(OtError::SplitsSurrogatePair { at }) => {
                case["error"] = json!("splits_surrogate_pair");
                case["at"] = json!(at);
            }
            Err(e) => panic!("{e}"),
        }
        push("apply", case);
    }

    for _ in 0..80 {
        let text = random_text(&mut rng);
        let a = random_op(&mut rng, &text);
        let b = random_op(&mut rng, &text);
        let (a2, b2) = TextOperation::transform(&a, &b);
        let left = b2
            .apply(&a.apply(&text).unwrap())
            .expect("b2 does not apply after a");
        let right = a2
            .apply(&b.apply(&text).unwrap())
            .expect("a2 does not apply after b");
        assert_eq!(
            left, right,
            "transform does not converge on {text:?}, {a:?}, {b:?}"
        );
        push(
            "transform",
            json!({ "text": text, "a": to_json(&a), "b": to_json(&b), "a2": to_json(&a2), "b2": to_json(&b2), "result": left }),
        );
    }

    for _ in 0..40 {
        let text = random_text(&mut rng);
        let a = random_op(&mut rng, &text);
        let middle = a.apply(&text).unwrap();
        let b = random_op(&mut rng, &middle);
        let composed = TextOperation::compose(&a, &b).expect("compose failed");
        let result = b.apply(&middle).unwrap();
        assert_eq!(
            composed.apply(&text).unwrap(),
            result,
            "compose is not a then b on {text:?}, {a:?}, {b:?}"
        );
        push(
            "compose",
            json!({ "text": text, "a": to_json(&a), "b": to_json(&b), "expected": to_json(&composed), "result": result }),
        );
    }

    for _ in 0..40 {
        let text = random_text(&mut rng);
        let op = random_op(&mut rng, &text);
        let len = text.encode_utf16().count();
        let index = rng.below(len + 3) as u32;
        let stick_after = rng.below(2) == 1;
        let expected = op.transform_index(index, stick_after);
        push(
            "transform_index",
            json!({ "op": to_json(&op), "index": index, "stick_after": stick_after, "expected": expected }),
        );
    }

    // Generated last, so the sections above come out as before.
    for _ in 0..60 {
        let text = random_text(&mut rng);
        let a = random_op(&mut rng, &text);
        let b = random_op(&mut rng, &text);
        let author = |rng: &mut Rng| match rng.below(4) {
            0 => None,
            n => Some(collab_wire::ids::ParticipantId(n as u32)),
        };
        let (a_author, b_author) = (author(&mut rng), author(&mut rng));
        let (a2, b2) = TextOperation::transform_by_author(&a, a_author, &b, b_author);
        let left = b2
            .apply(&a.apply(&text).unwrap())
            .expect("b2 applies after a");
        let right = a2
            .apply(&b.apply(&text).unwrap())
            .expect("a2 applies after b");
        assert_eq!(left, right, "transform_by_author does not converge");
        push(
            "transform_by_author",
            json!({ "text": text, "a": to_json(&a), "a_author": a_author.map(|p| p.0),
                    "b": to_json(&b), "b_author": b_author.map(|p| p.0),
                    "a2": to_json(&a2), "b2": to_json(&b2), "result": left }),
        );
    }

    for section in SECTIONS {
        for case in cases(&v, section) {
            check(section, case)
                .unwrap_or_else(|why| panic!("generated {section} case is inconsistent: {why}"));
        }
    }
    write_vectors(&v);
}

/// Writes the vectors with one case per line (readable diffs), atomically.
/// Keys within a case come out in alphabetical order.
fn write_vectors(v: &Value) {
    let mut out = String::from("{\n");
    out.push_str(
        "  \"about\": \"Test vectors for collab's text operations (collab-wire/src/ot.rs, collab-wire/js/collab-ot.mjs). \
         Positions count UTF-16 code units. Operations: positive integer = retain, string = insert, negative integer = delete. \
         Generated by collab-core/tests/ot_vectors.rs (COLLAB_REGENERATE_VECTORS=1); edit the hand-written cases there.\",\n",
    );
    for (i, section) in SECTIONS.iter().enumerate() {
        out.push_str(&format!("  \"{section}\": [\n"));
        let list = cases(v, section);
        for (j, case) in list.iter().enumerate() {
            let line = serde_json::to_string(case).unwrap();
            out.push_str(&format!(
                "    {line}{}\n",
                if j + 1 < list.len() { "," } else { "" }
            ));
        }
        out.push_str(&format!(
            "  ]{}\n",
            if i + 1 < SECTIONS.len() { "," } else { "" }
        ));
    }
    out.push_str("}\n");
    let path = vectors_path();
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, out).unwrap();
    std::fs::rename(&tmp, &path).unwrap();
}
