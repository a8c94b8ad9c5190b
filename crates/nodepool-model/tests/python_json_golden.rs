//! The Python-compatible JSON printer against `json.dumps` output of awkward
//! strings and floats (tests/golden/python_json_cases.json).

#![allow(clippy::unwrap_used)] // tests may unwrap: a panic is a test failure

use nodepool_model::python_json::to_python_json;
use serde_json::Value;

const CASES: &[u8] = include_bytes!("golden/python_json_cases.json");

#[test]
fn reprinting_python_output_gives_the_same_bytes() {
    let value: Value = serde_json::from_slice(CASES).unwrap();
    assert_eq!(
        std::str::from_utf8(&to_python_json(&value)).unwrap(),
        std::str::from_utf8(CASES).unwrap()
    );
}

#[test]
fn floats_of_every_magnitude_print_like_python_repr() {
    const FLOATS: &[u8] = include_bytes!("golden/python_float_cases.json");
    let values: Vec<f64> = serde_json::from_slice(FLOATS).unwrap();
    assert!(values.len() > 3000);
    assert_eq!(
        std::str::from_utf8(&to_python_json(&values)).unwrap(),
        std::str::from_utf8(FLOATS).unwrap()
    );
}
