//! Reading the members of an `input` object, producing `ValidationFailed` causes.

use serde_json::{Value, json};

use super::error::Cause;

/// Result of matching an input against the current action's input shape.
pub enum Fit<T> {
    Fits(T),
    Misfit(Vec<Cause>),
}

pub fn json_type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// A `required` cause listing what the shape expects and what is missing.
pub fn required_cause(input: &Value, expected: &[&str]) -> Option<Cause> {
    let present: Vec<&str> = input
        .as_object()
        .map(|o| o.keys().map(String::as_str).collect())
        .unwrap_or_default();
    let missing: Vec<&str> = expected
        .iter()
        .copied()
        .filter(|k| !present.contains(k))
        .collect();
    if missing.is_empty() {
        return None;
    }
    let actual = if present.is_empty() {
        Value::Null
    } else {
        json!(present)
    };
    Some(Cause::new(
        "",
        "required",
        json!({"expected": expected, "actual": actual, "missing": missing}),
    ))
}

/// The string member `key`, or the causes explaining why the input does not fit.
pub fn string_member<'a>(input: &'a Value, key: &str) -> Result<&'a str, Vec<Cause>> {
    match input.get(key) {
        None => Err(vec![
            required_cause(input, &[key]).expect("member is missing"),
        ]),
        Some(Value::String(s)) => Ok(s),
        Some(other) => Err(vec![type_cause(key, "string", other)]),
    }
}

pub fn type_cause(key: &str, expected: &str, actual: &Value) -> Cause {
    Cause::new(
        format!("/{key}"),
        "type",
        json!({"expected": [expected], "actual": json_type_name(actual)}),
    )
}

pub fn enum_cause(key: &str, expected: &[&str], actual: &str) -> Cause {
    Cause::new(
        format!("/{key}"),
        "enum",
        json!({"expected": expected, "actual": actual}),
    )
}

pub fn max_length_cause(key: &str, expected: usize, actual: usize) -> Cause {
    Cause::new(
        format!("/{key}"),
        "maxLength",
        json!({"expected": expected, "actual": actual}),
    )
}

/// Picks one value of a string member that must be one of `allowed`.
pub fn choice<'a>(input: &'a Value, key: &str, allowed: &[&str]) -> Fit<&'a str> {
    match string_member(input, key) {
        Err(causes) => Fit::Misfit(causes),
        Ok(v) if allowed.contains(&v) => Fit::Fits(v),
        Ok(v) => Fit::Misfit(vec![enum_cause(key, allowed, v)]),
    }
}
