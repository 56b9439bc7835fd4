//! `${NAME}` interpolation of string values (flow-config.md 2.2). Done on the parsed
//! tree, so a variable can never inject YAML structure.

use super::node::Node;
use super::problem::{Report, YamlPath};

/// The environment lookup; `load_file` passes the process environment.
pub type EnvLookup<'a> = &'a dyn Fn(&str) -> Option<String>;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InterpolationError {
    #[error("environment variable {0} is not set")]
    NotSet(String),
    #[error(
        "malformed reference {0:?} (use ${{NAME}}, ${{NAME:-fallback}}, or $${{ for a literal ${{)"
    )]
    Malformed(String),
}

/// The result of interpolating one string.
#[derive(Debug, PartialEq, Eq)]
pub struct Interpolated {
    pub value: String,
    /// The string was exactly one reference: it may stand for a number or boolean.
    pub whole_reference: bool,
}

fn is_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Resolves one `NAME` or `NAME:-fallback` reference body.
fn resolve(body: &str, env: EnvLookup<'_>) -> Result<String, InterpolationError> {
    if let Some((name, fallback)) = body.split_once(":-") {
        if !is_name(name) {
            return Err(InterpolationError::Malformed(format!("${{{body}}}")));
        }
        return Ok(env(name)
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| fallback.to_string()));
    }
    if !is_name(body) {
        return Err(InterpolationError::Malformed(format!("${{{body}}}")));
    }
    env(body).ok_or_else(|| InterpolationError::NotSet(body.to_string()))
}

/// Interpolates every reference of `text`.
pub fn interpolate(text: &str, env: EnvLookup<'_>) -> Result<Interpolated, InterpolationError> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    let mut references = 0;
    let mut literal_text = false;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        literal_text |= pos > 0;
        let tail = &rest[pos..];
        if let Some(after) = tail.strip_prefix("$${") {
            out.push_str("${");
            literal_text = true;
            rest = after;
        } else if let Some(after) = tail.strip_prefix("${") {
            let end = after
                .find('}')
                .ok_or_else(|| InterpolationError::Malformed(tail.to_string()))?;
            out.push_str(&resolve(&after[..end], env)?);
            references += 1;
            rest = &after[end + 1..];
        } else {
            out.push('$');
            literal_text = true;
            rest = &tail[1..];
        }
    }
    literal_text |= !rest.is_empty();
    out.push_str(rest);
    Ok(Interpolated {
        value: out,
        whole_reference: references == 1 && !literal_text,
    })
}

/// Interpolates every string value of the sections named in `sections`, except
/// `authentication_flow` (and never keys): unknown sections are only reported as
/// unknown. A failed value becomes [`Node::Poisoned`] so that its section reports
/// nothing more about it.
pub(crate) fn interpolate_tree(
    root: &mut Node,
    sections: &[&str],
    env: EnvLookup<'_>,
    report: &mut Report,
) {
    let Node::Map(entries) = root else { return };
    for (key, value) in entries.iter_mut() {
        if key != "authentication_flow" && sections.contains(&key.as_str()) {
            interpolate_node(value, &YamlPath::root().key(key), env, report);
        }
    }
}

fn interpolate_node(node: &mut Node, path: &YamlPath, env: EnvLookup<'_>, report: &mut Report) {
    match node {
        Node::Str(s) if s.contains('$') => match interpolate(s, env) {
            Ok(i) if i.whole_reference => *node = Node::Ref(i.value),
            Ok(i) => *node = Node::Str(i.value),
            Err(e) => {
                report.error(path.clone(), e.to_string());
                *node = Node::Poisoned;
            }
        },
        Node::Seq(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                interpolate_node(item, &path.index(i), env, report);
            }
        }
        Node::Map(entries) => {
            for (k, v) in entries.iter_mut() {
                interpolate_node(v, &path.key(k), env, report);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "DB_PASSWORD" => Some("s3cret".into()),
            "EMPTY" => Some(String::new()),
            "PORT" => Some("2525".into()),
            _ => None,
        }
    }

    fn run(text: &str) -> Result<Interpolated, InterpolationError> {
        interpolate(text, &env)
    }

    #[test]
    fn references_anywhere_in_a_string() {
        let i = run("postgres://app:${DB_PASSWORD}@db/authflow").unwrap();
        assert_eq!(i.value, "postgres://app:s3cret@db/authflow");
        assert!(!i.whole_reference);
    }

    #[test]
    fn single_reference_is_marked() {
        let i = run("${PORT}").unwrap();
        assert_eq!(i.value, "2525");
        assert!(i.whole_reference);
    }

    #[test]
    fn unset_variable_is_an_error_but_empty_is_allowed() {
        assert_eq!(
            run("${NOPE}").unwrap_err().to_string(),
            "environment variable NOPE is not set"
        );
        assert_eq!(run("x${EMPTY}y").unwrap().value, "xy");
    }

    #[test]
    fn fallback_applies_when_unset_or_empty() {
        assert_eq!(
            run("${NOPE:-sqlite://./a.db}").unwrap().value,
            "sqlite://./a.db"
        );
        assert_eq!(run("${EMPTY:-fb}").unwrap().value, "fb");
        assert_eq!(run("${PORT:-25}").unwrap().value, "2525");
        assert_eq!(run("${NOPE:-}").unwrap().value, "");
    }

    #[test]
    fn double_dollar_is_a_literal() {
        let i = run("$${NOPE}").unwrap();
        assert_eq!(i.value, "${NOPE}");
        assert!(!i.whole_reference);
        assert_eq!(run("cost $5").unwrap().value, "cost $5");
    }

    #[test]
    fn malformed_references() {
        assert!(matches!(
            run("${1A}"),
            Err(InterpolationError::Malformed(_))
        ));
        assert!(matches!(
            run("${OPEN"),
            Err(InterpolationError::Malformed(_))
        ));
    }
}
