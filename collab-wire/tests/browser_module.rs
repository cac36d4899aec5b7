//! The browser module (`js/collab-ot.mjs`) restates a few of this crate's
//! facts in JavaScript. They are checked here, so the two cannot drift apart
//! silently.

use collab_wire::codes::ErrorCode;
use collab_wire::ot::MAX_WIRE_COMPONENTS;
use collab_wire::BROWSER_OT_MODULE;

/// The value of `const NAME = value;` in the module.
fn js_const(name: &str) -> String {
    let start = format!("const {name} = ");
    let line = BROWSER_OT_MODULE
        .lines()
        .find(|l| l.starts_with(&start))
        .unwrap_or_else(|| panic!("collab-ot.mjs has no const {name}"));
    line[start.len()..]
        .split(';')
        .next()
        .expect("a value")
        .trim()
        .to_owned()
}

#[test]
fn limits_match() {
    assert_eq!(
        js_const("MAX_WIRE_COMPONENTS"),
        MAX_WIRE_COMPONENTS.to_string()
    );
    let units = js_const("MAX_UNITS");
    let units = u64::from_str_radix(units.trim_start_matches("0x"), 16).expect("hex");
    assert_eq!(units, u64::from(u32::MAX), "a component counts up to u32");
}

#[test]
fn every_error_code_the_module_acts_on_exists() {
    let mut seen = 0;
    for part in BROWSER_OT_MODULE.split("code === \"").skip(1) {
        let code = part.split('"').next().expect("a closing quote");
        let parsed: Result<ErrorCode, _> = serde_json::from_value(serde_json::json!(code));
        assert!(
            parsed.is_ok(),
            "collab-ot.mjs acts on {code:?}, which is no error code"
        );
        seen += 1;
    }
    assert!(seen >= 4, "found only {seen} error codes in collab-ot.mjs");
}
