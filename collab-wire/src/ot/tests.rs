use super::*;
use proptest::prelude::*;

fn op(json: &str) -> TextOperation {
    serde_json::from_str(json).unwrap_or_else(|e| panic!("{json}: {e}"))
}

fn json(op: &TextOperation) -> String {
    serde_json::to_string(op).unwrap()
}

fn units(s: &str) -> Vec<u16> {
    s.encode_utf16().collect()
}

#[test]
fn wire_format_reads_and_writes_components() {
    let o = op(r#"[5, "abc", -3]"#);
    assert_eq!(
        o.components(),
        [
            Component::Retain(5),
            Component::Insert("abc".into()),
            Component::Delete(3)
        ]
    );
    assert_eq!(json(&o), r#"[5,"abc",-3]"#);
    assert!(op("[]").is_noop());
    assert_eq!(json(&TextOperation::new()), "[]");
}

#[test]
fn reading_normalizes() {
    assert_eq!(json(&op(r#"["a", "b"]"#)), r#"["ab"]"#);
    assert_eq!(json(&op(r#"[3, 2, "x"]"#)), r#"[5,"x"]"#);
    assert_eq!(json(&op(r#"[-3, "a"]"#)), r#"["a",-3]"#);
    assert_eq!(json(&op(r#"["a", -1, "b", -2, "c"]"#)), r#"["abc",-3]"#);
    assert_eq!(json(&op(r#"["x", 5]"#)), r#"["x"]"#);
    assert_eq!(json(&op("[5]")), "[]");
    assert_eq!(
        json(&op("[4294967295, -4294967295]")),
        "[4294967295,-4294967295]"
    );
}

#[test]
fn reading_rejects_malformed_operations() {
    for bad in [
        "[0]",
        "[5, 0, \"a\"]",
        "[-0]",
        "[1.5]",
        "[-2.5]",
        "[1e3]",
        "[\"\"]",
        "[4294967296]",
        "[-4294967296]",
        "[18446744073709551616]",
        "[true]",
        "[null]",
        "[[1]]",
        "[{}]",
        "{}",
        "\"abc\"",
        "5",
        "null",
        "[\"\\ud83d\"]",
    ] {
        assert!(
            serde_json::from_str::<TextOperation>(bad).is_err(),
            "{bad} was accepted"
        );
    }
    let err = serde_json::from_str::<TextOperation>("[1, 0]").unwrap_err();
    assert!(err.to_string().contains("malformed operation"), "{err}");
}

#[test]
fn reading_limits_the_number_of_components() {
    let ok = format!("[{}]", vec!["\"a\""; MAX_WIRE_COMPONENTS].join(","));
    assert_eq!(
        op(&ok).components(),
        [Component::Insert("a".repeat(MAX_WIRE_COMPONENTS))]
    );
    let too_many = format!("[{}]", vec!["\"a\""; MAX_WIRE_COMPONENTS + 1].join(","));
    let err = serde_json::from_str::<TextOperation>(&too_many).unwrap_err();
    assert!(
        err.to_string().contains("more than 10000 components"),
        "{err}"
    );
}

#[test]
fn builders_keep_normal_form() {
    let mut o = TextOperation::new();
    o.retain(0).insert("").delete(0);
    assert!(o.is_noop());
    o.retain(2)
        .retain(3)
        .delete(1)
        .insert("x")
        .delete(2)
        .insert("y")
        .retain(4);
    assert_eq!(json(&o), r#"[5,"xy",-3]"#);
    // A pending retain takes effect once something follows it.
    o.insert("z");
    assert_eq!(json(&o), r#"[5,"xy",-3,4,"z"]"#);
    // Equality ignores a retain nothing follows.
    let mut r = TextOperation::new();
    r.retain(3);
    assert_eq!(r, TextOperation::new());
    assert_eq!(r.base_len(), 0);
}

#[test]
fn runs_longer_than_u32_are_split() {
    let mut o = TextOperation::new();
    o.retain(u32::MAX)
        .retain(7)
        .delete(u32::MAX)
        .delete(u32::MAX)
        .delete(1)
        .insert("x");
    assert_eq!(
        o.components(),
        [
            Component::Retain(u32::MAX),
            Component::Retain(7),
            Component::Insert("x".into()),
            Component::Delete(u32::MAX),
            Component::Delete(u32::MAX),
            Component::Delete(1),
        ]
    );
    assert_eq!(o.base_len(), u32::MAX);
    assert_eq!(o, op(&json(&o)));
    assert!(matches!(
        o.apply("abc"),
        Err(OtError::OutOfRange {
            needed: u32::MAX,
            len: 3
        })
    ));
}

#[test]
fn lengths() {
    let o = op(r#"[2, "😀é", -3, 1, -1]"#);
    assert_eq!(o.base_len(), 7);
    assert_eq!(o.len_delta(), 3 - 4);
    assert_eq!(o.check_len(7), Ok(()));
    assert_eq!(
        o.check_len(6),
        Err(OtError::OutOfRange { needed: 7, len: 6 })
    );
    assert_eq!(o.touched_positions(), [2, 5, 6, 7]);
    assert_eq!(op(r#"["a", -1]"#).touched_positions(), [0, 1]);
}

#[test]
fn apply_counts_utf16_units() {
    assert_eq!(op(r#"[2, "x"]"#).apply("😀a").unwrap(), "😀xa");
    assert_eq!(op(r#"[-2]"#).apply("😀a").unwrap(), "a");
    assert_eq!(op(r#"[1, -2]"#).apply("é😀").unwrap(), "é");
    assert_eq!(op(r#"[1, "\r\n"]"#).apply("ab").unwrap(), "a\r\nb");
    assert_eq!(op("[]").apply("").unwrap(), "");
    assert_eq!(op(r#"["x"]"#).apply("").unwrap(), "x");
}

#[test]
fn apply_errors() {
    let split = |at| Err(OtError::SplitsSurrogatePair { at });
    assert_eq!(op(r#"[1, "x"]"#).apply("😀"), split(1));
    assert_eq!(op(r#"[1, -1]"#).apply("😀"), split(1));
    assert_eq!(op(r#"[-1]"#).apply("😀"), split(1));
    assert_eq!(op(r#"[2, -2]"#).apply("a😀😀"), split(2));
    assert_eq!(op(r#"[-3]"#).apply("a😀"), Ok(String::new()));
    assert_eq!(
        op(r#"[4, "x"]"#).apply("abc"),
        Err(OtError::OutOfRange { needed: 4, len: 3 })
    );
    // Out of range is reported first.
    assert_eq!(op(r#"[1, "x", 9]"#).apply("😀"), split(1)); // The trailing retain is dropped.
    assert_eq!(
        op(r#"[1, -9]"#).apply("😀"),
        Err(OtError::OutOfRange { needed: 10, len: 2 })
    );
}

#[test]
fn transform_breaks_ties_for_a() {
    let a = op(r#"[1, "A"]"#);
    let b = op(r#"[1, "B"]"#);
    let (a2, b2) = TextOperation::transform(&a, &b);
    assert_eq!(json(&a2), r#"[1,"A"]"#);
    assert_eq!(json(&b2), r#"[2,"B"]"#);
    assert_eq!(b2.apply(&a.apply("xy").unwrap()).unwrap(), "xABy");
    assert_eq!(a2.apply(&b.apply("xy").unwrap()).unwrap(), "xABy");
}

#[test]
fn transform_overlapping_deletes() {
    let a = op("[1, -3]"); // abcdef -> aef
    let b = op("[2, -3]"); // abcdef -> abf
    let (a2, b2) = TextOperation::transform(&a, &b);
    assert_eq!(json(&a2), "[1,-1]");
    assert_eq!(json(&b2), "[1,-1]");
    assert_eq!(b2.apply("aef").unwrap(), "af");
    assert_eq!(a2.apply("abf").unwrap(), "af");
}

#[test]
fn transform_insert_inside_a_delete() {
    let a = op("[1, -4]"); // abcdef -> af
    let b = op(r#"[3, "X"]"#); // abcXdef
    let (a2, b2) = TextOperation::transform(&a, &b);
    assert_eq!(json(&a2), r#"[1,-2,1,-2]"#);
    assert_eq!(json(&b2), r#"[1,"X"]"#);
    assert_eq!(a2.apply("abcXdef").unwrap(), "aXf");
}

#[test]
fn transform_with_an_ended_operation_retains_the_rest() {
    let a = op(r#"["x"]"#);
    let b = op("[10, -2]");
    let (a2, b2) = TextOperation::transform(&a, &b);
    assert_eq!(json(&a2), r#"["x"]"#);
    assert_eq!(json(&b2), "[11,-2]");
    let (n2, b3) = TextOperation::transform(&TextOperation::new(), &b);
    assert!(n2.is_noop());
    assert_eq!(b3, b);
}

#[test]
fn compose_examples() {
    let c = |a, b| TextOperation::compose(&op(a), &op(b)).map(|o| json(&o));
    assert_eq!(c(r#"["abc"]"#, r#"[1, -1]"#), Ok(r#"["ac"]"#.into()));
    assert_eq!(c(r#"[-3]"#, r#"["x"]"#), Ok(r#"["x",-3]"#.into()));
    assert_eq!(c(r#"[2, "x"]"#, r#"[5, -1]"#), Ok(r#"[2,"x",2,-1]"#.into()));
    assert_eq!(c("[]", r#"[1, "y"]"#), Ok(r#"[1,"y"]"#.into()));
    assert_eq!(c(r#"[1, "y"]"#, "[]"), Ok(r#"[1,"y"]"#.into()));
    assert_eq!(c(r#"["ab"]"#, "[-2]"), Ok("[]".into()));
    assert_eq!(
        c(r#"[3, "😀"]"#, r#"[4, "x"]"#),
        Err(OtError::SplitsSurrogatePair { at: 4 })
    );
    assert_eq!(
        c(r#"[3, "😀"]"#, r#"[3, -1]"#),
        Err(OtError::SplitsSurrogatePair { at: 4 })
    );
}

#[test]
fn transform_index_examples() {
    let o = op(r#"[2, "xy", -2, 3, -1]"#); // ab|cd|efg|h -> abxyefg
    let t = |i, after| o.transform_index(i, after);
    assert_eq!(t(0, true), 0);
    assert_eq!(t(1, false), 1);
    assert_eq!(t(2, false), 2);
    assert_eq!(t(2, true), 4);
    assert_eq!(t(3, true), 4);
    assert_eq!(t(3, false), 4);
    assert_eq!(t(4, false), 4);
    assert_eq!(t(5, true), 5);
    assert_eq!(t(7, true), 7);
    assert_eq!(t(8, true), 7);
    assert_eq!(t(20, true), 19);
    assert_eq!(
        TextOperation::new().transform_index(u32::MAX, true),
        u32::MAX
    );
    assert_eq!(op(r#"["abc"]"#).transform_index(u32::MAX, true), u32::MAX);
}

#[test]
fn errors_display() {
    assert_eq!(
        OtError::SplitsSurrogatePair { at: 3 }.to_string(),
        "position 3 falls inside a UTF-16 surrogate pair"
    );
    assert!(OtError::OutOfRange { needed: 4, len: 3 }
        .to_string()
        .contains("at least 4"));
}

// ---- properties ----

/// Text pieces: ASCII, CRLF, a precomposed and a combining accent, CJK,
/// emoji (surrogate pairs), an emoji with a skin-tone modifier.
const PIECES: &[&str] = &[
    "a", "b", "c", " ", "\n", "\r\n", "é", "e\u{301}", "中", "😀", "👍🏽", "𝄞",
];

fn text() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(PIECES), 0..16).prop_map(|v| v.concat())
}

#[derive(Debug, Clone)]
enum Action {
    Retain(usize),
    Delete(usize),
    Insert(usize, usize),
}

fn actions() -> impl Strategy<Value = Vec<Action>> {
    prop::collection::vec(
        prop_oneof![
            (1..4usize).prop_map(Action::Retain),
            (1..4usize).prop_map(Action::Delete),
            (0..PIECES.len(), 1..3usize).prop_map(|(p, n)| Action::Insert(p, n)),
        ],
        0..8,
    )
}

/// An operation on `text` that only touches char boundaries (never splits
/// a surrogate pair), counting in chars.
fn build(text: &str, actions: &[Action]) -> TextOperation {
    let mut chars = text.chars();
    let mut o = TextOperation::new();
    for a in actions {
        match a {
            Action::Retain(n) => {
                o.retain(chars.by_ref().take(*n).map(|c| c.len_utf16() as u32).sum());
            }
            Action::Delete(n) => {
                o.delete(chars.by_ref().take(*n).map(|c| c.len_utf16() as u32).sum());
            }
            Action::Insert(p, n) => {
                o.insert(&PIECES[*p].repeat(*n));
            }
        }
    }
    o
}

/// What the actions do, step by step, without the builders.
fn naive(text: &str, actions: &[Action]) -> String {
    let chars: Vec<char> = text.chars().collect();
    let (mut out, mut at) = (String::new(), 0usize);
    for a in actions {
        match a {
            Action::Retain(n) => {
                let end = (at + n).min(chars.len());
                out.extend(&chars[at..end]);
                at = end;
            }
            Action::Delete(n) => at = (at + n).min(chars.len()),
            Action::Insert(p, n) => out.push_str(&PIECES[*p].repeat(*n)),
        }
    }
    out.extend(&chars[at..]);
    out
}

fn is_normal(o: &TextOperation) -> bool {
    let c = o.components();
    let zero = c.iter().any(|c| match c {
        Component::Retain(n) | Component::Delete(n) => *n == 0,
        Component::Insert(s) => s.is_empty(),
    });
    let same_kind = c
        .windows(2)
        .any(|w| std::mem::discriminant(&w[0]) == std::mem::discriminant(&w[1]));
    let delete_then_insert = c
        .windows(2)
        .any(|w| matches!((&w[0], &w[1]), (Component::Delete(_), Component::Insert(_))));
    let trailing_retain = matches!(c.last(), Some(Component::Retain(_)));
    !(zero || same_kind || delete_then_insert || trailing_retain)
}

/// An arbitrary operation, valid or not on any given text.
fn any_op() -> impl Strategy<Value = TextOperation> {
    prop::collection::vec((0..3u8, 0..12u32, prop::sample::select(PIECES)), 0..10).prop_map(|v| {
        let mut o = TextOperation::new();
        for (kind, n, s) in v {
            match kind {
                0 => o.retain(n),
                1 => o.delete(n),
                _ => o.insert(s),
            };
        }
        o
    })
}

proptest! {
    #[test]
    fn builders_match_a_naive_model(t in text(), acts in actions()) {
        let o = build(&t, &acts);
        prop_assert!(is_normal(&o), "{:?}", o);
        prop_assert_eq!(o.apply(&t).unwrap(), naive(&t, &acts));
    }

    #[test]
    fn transform_converges(t in text(), aa in actions(), ba in actions()) {
        let a = build(&t, &aa);
        let b = build(&t, &ba);
        let (a2, b2) = TextOperation::transform(&a, &b);
        prop_assert!(is_normal(&a2) && is_normal(&b2));
        let left = b2.apply(&a.apply(&t).unwrap());
        let right = a2.apply(&b.apply(&t).unwrap());
        prop_assert!(left.is_ok(), "{:?}", left);
        prop_assert_eq!(left, right);
    }

    #[test]
    fn compose_is_a_then_b(t in text(), aa in actions(), ba in actions()) {
        let a = build(&t, &aa);
        let t1 = a.apply(&t).unwrap();
        let b = build(&t1, &ba);
        let c = TextOperation::compose(&a, &b).unwrap();
        prop_assert!(is_normal(&c));
        prop_assert_eq!(c.apply(&t).unwrap(), b.apply(&t1).unwrap());
    }

    #[test]
    fn transform_index_follows_the_text(t in text(), acts in actions(), pick in any::<prop::sample::Index>()) {
        let o = build(&t, &acts);
        let old = units(&t);
        let new = units(&o.apply(&t).unwrap());
        // Char boundaries and which units the operation deletes.
        let mut bounds = vec![0usize];
        for c in t.chars() {
            bounds.push(bounds.last().unwrap() + c.len_utf16());
        }
        let mut deleted = vec![false; old.len()];
        let mut pos = 0usize;
        for c in o.components() {
            match c {
                Component::Retain(n) => pos += *n as usize,
                Component::Insert(_) => {}
                Component::Delete(n) => {
                    deleted[pos..pos + *n as usize].iter_mut().for_each(|d| *d = true);
                    pos += *n as usize;
                }
            }
        }
        let k = pick.index(bounds.len());
        let i = bounds[k];
        // The char after the position stays after it (sticking after inserts)...
        if k + 1 < bounds.len() && !deleted[i] {
            let j = o.transform_index(i as u32, true) as usize;
            prop_assert_eq!(&new[j..j + bounds[k + 1] - i], &old[i..bounds[k + 1]]);
        }
        // ...and the char before it stays before it (sticking before them).
        if k > 0 && !deleted[bounds[k - 1]] {
            let j = o.transform_index(i as u32, false) as usize;
            let w = i - bounds[k - 1];
            prop_assert_eq!(&new[j - w..j], &old[bounds[k - 1]..i]);
        }
        let j = o.transform_index(i as u32, true) as usize;
        prop_assert!(j <= new.len());
    }

    #[test]
    fn serde_round_trip(o in any_op()) {
        prop_assert!(is_normal(&o));
        let s = json(&o);
        let back: TextOperation = serde_json::from_str(&s).unwrap();
        prop_assert_eq!(back.components(), o.components());
        let value = serde_json::to_value(&o).unwrap();
        prop_assert_eq!(serde_json::from_value::<TextOperation>(value).unwrap(), o);
    }

    #[test]
    fn apply_never_panics(t in text(), o in any_op()) {
        let len = units(&t).len() as u32;
        match o.apply(&t) {
            Ok(out) => prop_assert_eq!(units(&out).len() as i64, i64::from(len) + o.len_delta()),
            Err(OtError::OutOfRange { needed, len: l }) => {
                prop_assert_eq!(l, len);
                prop_assert!(needed > len && needed == o.base_len());
            }
            Err(OtError::SplitsSurrogatePair { at }) => {
                prop_assert!(o.touched_positions().contains(&at));
                prop_assert_eq!(o.check_len(len), Ok(()));
            }
            Err(e) => prop_assert!(false, "{}", e),
        }
    }

    #[test]
    fn transform_and_compose_never_panic(a in any_op(), b in any_op(), i in 0..40u32, after in any::<bool>()) {
        let (a2, b2) = TextOperation::transform(&a, &b);
        prop_assert!(is_normal(&a2) && is_normal(&b2));
        if let Ok(c) = TextOperation::compose(&a, &b) {
            prop_assert!(is_normal(&c));
        }
        let _ = a.transform_index(i, after);
    }

    #[test]
    fn touched_positions_of_valid_ops_are_boundaries(t in text(), acts in actions()) {
        let o = build(&t, &acts);
        let u = units(&t);
        for p in o.touched_positions() {
            let p = p as usize;
            prop_assert!(p <= u.len());
            prop_assert!(p == 0 || p == u.len() || !(0xDC00..0xE000).contains(&u[p]));
        }
    }
}
