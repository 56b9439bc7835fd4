//! A serde `Deserializer` over [`Node`] whose error type keeps serde's error kinds
//! apart, so the loader can print `unknown key`, `required` and enum messages of the
//! spec instead of serde's wording.

use std::fmt;

use serde::de::{self, DeserializeSeed, IntoDeserializer, Unexpected, Visitor};

use super::node::Node;
use super::problem::{Report, Seg, YamlPath, quote};

/// Why typed deserialization of a value failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeError {
    #[error("unknown key")]
    UnknownKey,
    /// A required key is absent; the path names the mapping, this its key.
    #[error("required")]
    Missing(&'static str),
    #[error("must be one of {} (got {got})", .expected.join(", "))]
    NotInEnum {
        got: String,
        expected: &'static [&'static str],
    },
    /// A wrong type, or a value outside a type's range: `must be <expected> (got <got>)`.
    #[error("must be {expected} (got {got})")]
    Invalid { expected: String, got: String },
    /// A message of a `deserialize_with` helper (durations, ranges, formats).
    #[error("{0}")]
    Message(String),
    /// The value's problem was reported before (a failed interpolation).
    #[error("already reported")]
    AlreadyReported,
}

impl de::Error for DeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        DeError::Message(msg.to_string())
    }

    fn invalid_type(unexp: Unexpected<'_>, exp: &dyn de::Expected) -> Self {
        DeError::Invalid {
            expected: expected_text(&exp.to_string()),
            got: unexpected_text(&unexp),
        }
    }

    fn invalid_value(unexp: Unexpected<'_>, exp: &dyn de::Expected) -> Self {
        Self::invalid_type(unexp, exp)
    }

    fn invalid_length(len: usize, exp: &dyn de::Expected) -> Self {
        DeError::Message(format!("must have {exp} (got {len} items)"))
    }

    fn unknown_variant(variant: &str, expected: &'static [&'static str]) -> Self {
        DeError::NotInEnum {
            got: quote(variant),
            expected,
        }
    }

    fn unknown_field(_field: &str, _expected: &'static [&'static str]) -> Self {
        DeError::UnknownKey
    }

    fn missing_field(field: &'static str) -> Self {
        DeError::Missing(field)
    }

    fn duplicate_field(_field: &'static str) -> Self {
        // Only reachable through aliases (`cookie_non_persistent` next to
        // `use_session_cookie`): YAML duplicates are rejected by the parser.
        DeError::Message("given twice (also under its other name)".into())
    }
}

/// Serde's "expected" texts, in the words of the spec.
fn expected_text(exp: &str) -> String {
    match exp {
        "u8" => "an integer between 0 and 255".into(),
        "u16" => "an integer between 0 and 65535".into(),
        "u32" | "u64" | "usize" => "a non-negative integer".into(),
        "i8" | "i16" | "i32" | "i64" | "isize" => "an integer".into(),
        "f32" | "f64" => "a number".into(),
        "a sequence" => "a list".into(),
        "a map" => "a mapping".into(),
        "a borrowed string" => "a string".into(),
        e if e.starts_with("struct ") => "a mapping".into(),
        e if e.starts_with("a sequence") || e.starts_with("tuple") => "a list".into(),
        e if e.starts_with("enum ") || e.starts_with("variant") => "a string".into(),
        e => e.to_string(),
    }
}

fn unexpected_text(u: &Unexpected<'_>) -> String {
    match u {
        Unexpected::Bool(b) => b.to_string(),
        Unexpected::Unsigned(n) => n.to_string(),
        Unexpected::Signed(n) => n.to_string(),
        Unexpected::Float(f) => f.to_string(),
        Unexpected::Str(s) => quote(s),
        Unexpected::Unit | Unexpected::Option => "null".into(),
        Unexpected::Seq => "a list".into(),
        Unexpected::Map => "a mapping".into(),
        other => other.to_string(),
    }
}

/// The YAML path of a `serde_path_to_error` path.
pub fn yaml_path(path: &serde_path_to_error::Path) -> YamlPath {
    use serde_path_to_error::Segment;
    YamlPath(
        path.iter()
            .filter_map(|seg| match seg {
                Segment::Seq { index } => Some(Seg::Index(*index)),
                Segment::Map { key } => Some(Seg::Key(key.clone())),
                Segment::Enum { .. } | Segment::Unknown => None,
            })
            .collect(),
    )
}

/// Deserializes `T` from a node, tracking the path of the first error.
pub fn from_node<'a, T: de::Deserialize<'a>>(
    node: &'a Node,
) -> Result<T, serde_path_to_error::Error<DeError>> {
    serde_path_to_error::deserialize(NodeDe(node))
}

/// Most retries of [`deserialize_at`]: each one drops a reported value.
const MAX_ROUNDS: usize = 64;

/// Deserializes `node` (found at `base`) and reports every problem it can: after each
/// error the offending entry is dropped and deserialization retried, so problems of
/// different keys are all reported; follow-ups about a dropped value are not.
/// `None` when anything was wrong.
pub(crate) fn deserialize_at<T: de::DeserializeOwned>(
    node: &Node,
    base: &YamlPath,
    report: &mut Report,
) -> Option<T> {
    let mut node = node.clone();
    let mut dropped: Vec<YamlPath> = Vec::new();
    for _ in 0..MAX_ROUNDS {
        let err = match from_node::<T>(&node) {
            Ok(value) if dropped.is_empty() => return Some(value),
            Ok(_) => return None,
            Err(err) => err,
        };
        let mut path = yaml_path(err.path());
        let inner = err.into_inner();
        if let DeError::Missing(field) = inner {
            path = path.key(field);
        }
        let follow_up = dropped.iter().any(|p| p.related_to(&path));
        if !follow_up && inner != DeError::AlreadyReported {
            report.error(base.join(&path), inner.to_string());
        }
        if !drop_entry(&mut node, &path) {
            return None;
        }
        dropped.push(path);
    }
    None
}

/// Removes the entry at `path`, or the nearest enclosing mapping entry (list items are
/// never removed: later positions would shift).
fn drop_entry(node: &mut Node, path: &YamlPath) -> bool {
    let mut p = path.clone();
    while !p.0.is_empty() {
        if matches!(p.0.last(), Some(Seg::Key(_))) && node.remove(&p) {
            return true;
        }
        p.0.pop();
    }
    false
}

#[derive(Clone, Copy)]
pub struct NodeDe<'a>(pub &'a Node);

impl<'a> NodeDe<'a> {
    fn unexpected(&self) -> Unexpected<'a> {
        match self.0 {
            Node::Null => Unexpected::Unit,
            Node::Bool(b) => Unexpected::Bool(*b),
            Node::Int(i) => match u64::try_from(*i) {
                Ok(u) => Unexpected::Unsigned(u),
                Err(_) => Unexpected::Signed(i64::try_from(*i).unwrap_or(i64::MIN)),
            },
            Node::Float(f) => Unexpected::Float(*f),
            Node::Str(s) | Node::Ref(s) => Unexpected::Str(s),
            Node::Seq(_) => Unexpected::Seq,
            Node::Map(_) => Unexpected::Map,
            Node::Poisoned => Unexpected::Other("an invalid value"),
        }
    }

    fn fail<V: Visitor<'a>>(&self, visitor: &V) -> DeError {
        match self.0 {
            Node::Poisoned => DeError::AlreadyReported,
            _ => de::Error::invalid_type(self.unexpected(), visitor),
        }
    }

    fn visit_int<V: Visitor<'a>>(i: i128, visitor: V) -> Result<V::Value, DeError> {
        if let Ok(v) = i64::try_from(i) {
            visitor.visit_i64(v)
        } else if let Ok(v) = u64::try_from(i) {
            visitor.visit_u64(v)
        } else {
            visitor.visit_i128(i)
        }
    }

    /// Integers: a number, or a string that was exactly one `${NAME}` reference.
    fn integer<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.0 {
            Node::Int(i) => Self::visit_int(*i, visitor),
            Node::Ref(s) => match s.trim().parse::<i128>() {
                Ok(i) => Self::visit_int(i, visitor),
                Err(_) => Err(self.fail(&visitor)),
            },
            _ => Err(self.fail(&visitor)),
        }
    }

    fn float<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.0 {
            Node::Int(i) => Self::visit_int(*i, visitor),
            Node::Float(f) => visitor.visit_f64(*f),
            Node::Ref(s) => match s.trim().parse::<f64>() {
                Ok(f) if f.is_finite() => visitor.visit_f64(f),
                _ => Err(self.fail(&visitor)),
            },
            _ => Err(self.fail(&visitor)),
        }
    }
}

impl<'a> de::Deserializer<'a> for NodeDe<'a> {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.0 {
            Node::Null => visitor.visit_unit(),
            Node::Bool(b) => visitor.visit_bool(*b),
            Node::Int(i) => Self::visit_int(*i, visitor),
            Node::Float(f) => visitor.visit_f64(*f),
            Node::Str(s) | Node::Ref(s) => visitor.visit_borrowed_str(s),
            Node::Seq(items) => visitor.visit_seq(SeqDe(items.iter())),
            Node::Map(entries) => visitor.visit_map(MapDe {
                iter: entries.iter(),
                value: None,
            }),
            Node::Poisoned => Err(DeError::AlreadyReported),
        }
    }

    fn deserialize_bool<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.0 {
            Node::Bool(b) => visitor.visit_bool(*b),
            Node::Ref(s) if s.trim() == "true" => visitor.visit_bool(true),
            Node::Ref(s) if s.trim() == "false" => visitor.visit_bool(false),
            _ => Err(self.fail(&visitor)),
        }
    }

    fn deserialize_i8<V: Visitor<'a>>(self, v: V) -> Result<V::Value, DeError> {
        self.integer(v)
    }
    fn deserialize_i16<V: Visitor<'a>>(self, v: V) -> Result<V::Value, DeError> {
        self.integer(v)
    }
    fn deserialize_i32<V: Visitor<'a>>(self, v: V) -> Result<V::Value, DeError> {
        self.integer(v)
    }
    fn deserialize_i64<V: Visitor<'a>>(self, v: V) -> Result<V::Value, DeError> {
        self.integer(v)
    }
    fn deserialize_i128<V: Visitor<'a>>(self, v: V) -> Result<V::Value, DeError> {
        self.integer(v)
    }
    fn deserialize_u8<V: Visitor<'a>>(self, v: V) -> Result<V::Value, DeError> {
        self.integer(v)
    }
    fn deserialize_u16<V: Visitor<'a>>(self, v: V) -> Result<V::Value, DeError> {
        self.integer(v)
    }
    fn deserialize_u32<V: Visitor<'a>>(self, v: V) -> Result<V::Value, DeError> {
        self.integer(v)
    }
    fn deserialize_u64<V: Visitor<'a>>(self, v: V) -> Result<V::Value, DeError> {
        self.integer(v)
    }
    fn deserialize_u128<V: Visitor<'a>>(self, v: V) -> Result<V::Value, DeError> {
        self.integer(v)
    }
    fn deserialize_f32<V: Visitor<'a>>(self, v: V) -> Result<V::Value, DeError> {
        self.float(v)
    }
    fn deserialize_f64<V: Visitor<'a>>(self, v: V) -> Result<V::Value, DeError> {
        self.float(v)
    }

    fn deserialize_char<V: Visitor<'a>>(self, v: V) -> Result<V::Value, DeError> {
        self.deserialize_str(v)
    }

    fn deserialize_str<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.0 {
            Node::Str(s) | Node::Ref(s) => visitor.visit_borrowed_str(s),
            _ => Err(self.fail(&visitor)),
        }
    }
    fn deserialize_string<V: Visitor<'a>>(self, v: V) -> Result<V::Value, DeError> {
        self.deserialize_str(v)
    }
    fn deserialize_identifier<V: Visitor<'a>>(self, v: V) -> Result<V::Value, DeError> {
        self.deserialize_str(v)
    }

    fn deserialize_bytes<V: Visitor<'a>>(self, v: V) -> Result<V::Value, DeError> {
        Err(self.fail(&v))
    }
    fn deserialize_byte_buf<V: Visitor<'a>>(self, v: V) -> Result<V::Value, DeError> {
        Err(self.fail(&v))
    }

    fn deserialize_option<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.0 {
            Node::Null => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_unit<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.0 {
            Node::Null => visitor.visit_unit(),
            _ => Err(self.fail(&visitor)),
        }
    }
    fn deserialize_unit_struct<V: Visitor<'a>>(
        self,
        _name: &'static str,
        v: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_unit(v)
    }

    fn deserialize_newtype_struct<V: Visitor<'a>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.0 {
            Node::Seq(items) => visitor.visit_seq(SeqDe(items.iter())),
            _ => Err(self.fail(&visitor)),
        }
    }
    fn deserialize_tuple<V: Visitor<'a>>(self, _len: usize, v: V) -> Result<V::Value, DeError> {
        self.deserialize_seq(v)
    }
    fn deserialize_tuple_struct<V: Visitor<'a>>(
        self,
        _name: &'static str,
        _len: usize,
        v: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_seq(v)
    }

    fn deserialize_map<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.0 {
            Node::Map(entries) => visitor.visit_map(MapDe {
                iter: entries.iter(),
                value: None,
            }),
            _ => Err(self.fail(&visitor)),
        }
    }
    fn deserialize_struct<V: Visitor<'a>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_map(v)
    }

    /// Only unit variants written as strings: every enum of the config is one.
    fn deserialize_enum<V: Visitor<'a>>(
        self,
        _name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        match self.0 {
            Node::Str(s) | Node::Ref(s) => visitor.visit_enum(s.as_str().into_deserializer()),
            Node::Poisoned => Err(DeError::AlreadyReported),
            other => Err(DeError::NotInEnum {
                got: other.describe(),
                expected: variants,
            }),
        }
    }

    fn deserialize_ignored_any<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_unit()
    }
}

struct SeqDe<'a>(std::slice::Iter<'a, Node>);

impl<'a> de::SeqAccess<'a> for SeqDe<'a> {
    type Error = DeError;

    fn next_element_seed<T: DeserializeSeed<'a>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, DeError> {
        self.0
            .next()
            .map(|n| seed.deserialize(NodeDe(n)))
            .transpose()
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.0.len())
    }
}

struct MapDe<'a> {
    iter: std::slice::Iter<'a, (String, Node)>,
    value: Option<&'a Node>,
}

impl<'a> de::MapAccess<'a> for MapDe<'a> {
    type Error = DeError;

    fn next_key_seed<K: DeserializeSeed<'a>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, DeError> {
        match self.iter.next() {
            Some((k, v)) => {
                self.value = Some(v);
                seed.deserialize(KeyDe(k)).map(Some)
            }
            None => Ok(None),
        }
    }

    fn next_value_seed<V: DeserializeSeed<'a>>(&mut self, seed: V) -> Result<V::Value, DeError> {
        let node = self.value.take().unwrap_or(&Node::Null);
        seed.deserialize(NodeDe(node))
    }
}

/// Mapping keys are strings (the loader turns scalar keys into their text).
struct KeyDe<'a>(&'a str);

impl<'de> de::Deserializer<'de> for KeyDe<'de> {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_borrowed_str(self.0)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct seq tuple
        tuple_struct map struct enum identifier ignored_any
    }
}

// ---------------------------------------------------------------------------------------
// `deserialize_with` helpers: formats and ranges, checked where the value is so that
// the error carries the value's own path.
// ---------------------------------------------------------------------------------------

pub mod with {
    use std::time::Duration;

    use serde::de::{Deserialize, Deserializer, Error};

    use crate::config::duration::parse_duration;
    use crate::config::problem::quote;

    pub fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let s = String::deserialize(d)?;
        parse_duration(&s).map_err(|e| D::Error::custom(format!("{e} (got {})", quote(&s))))
    }

    pub fn opt_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        duration(d).map(Some)
    }

    fn check_min<E: Error>(v: u64, min: u64) -> Result<u64, E> {
        if v < min {
            Err(E::custom(format!("must be >= {min} (got {v})")))
        } else {
            Ok(v)
        }
    }

    /// An integer >= `MIN`.
    pub fn u32_min<'de, D: Deserializer<'de>, const MIN: u64>(d: D) -> Result<u32, D::Error> {
        let v = u32::deserialize(d)?;
        check_min(v.into(), MIN).map(|_| v)
    }

    pub fn u64_min<'de, D: Deserializer<'de>, const MIN: u64>(d: D) -> Result<u64, D::Error> {
        let v = u64::deserialize(d)?;
        check_min(v, MIN)
    }

    /// An integer in `MIN..=MAX`.
    pub fn u32_range<'de, D: Deserializer<'de>, const MIN: u64, const MAX: u64>(
        d: D,
    ) -> Result<u32, D::Error> {
        let v = u32::deserialize(d)?;
        if u64::from(v) < MIN || u64::from(v) > MAX {
            return Err(D::Error::custom(format!(
                "must be between {MIN} and {MAX} (got {v})"
            )));
        }
        Ok(v)
    }

    /// A list without repeated values.
    pub fn unique<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
    where
        D: Deserializer<'de>,
        T: Deserialize<'de> + PartialEq + serde::Serialize,
    {
        let items = Vec::<T>::deserialize(d)?;
        for (i, item) in items.iter().enumerate() {
            if items[..i].contains(item) {
                let text = serde_json::to_value(item)
                    .map(|v| v.to_string())
                    .unwrap_or_default();
                return Err(D::Error::custom(format!("{text} is listed more than once")));
            }
        }
        Ok(items)
    }

    /// A list with at least one item.
    pub fn non_empty<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
    where
        D: Deserializer<'de>,
        T: Deserialize<'de>,
    {
        let items = Vec::<T>::deserialize(d)?;
        if items.is_empty() {
            return Err(D::Error::custom("must have at least one item"));
        }
        Ok(items)
    }

    /// A string that must not be empty.
    pub fn non_empty_string<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
        let s = String::deserialize(d)?;
        if s.is_empty() {
            return Err(D::Error::custom("must not be empty"));
        }
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::node::parse_yaml;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Inner {
        n: u32,
        #[serde(default)]
        #[allow(dead_code)] // only its errors are looked at
        mode: Option<Mode>,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(rename_all = "snake_case")]
    enum Mode {
        Disabled,
        IfExists,
        Required,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Outer {
        items: Vec<Inner>,
    }

    fn err(yaml: &str) -> String {
        let node = parse_yaml(yaml, "t").unwrap();
        let e = from_node::<Outer>(&node).unwrap_err();
        format!("{}: {}", yaml_path(e.path()), e.inner())
    }

    #[test]
    fn errors_name_their_path() {
        assert_eq!(err("items: [{n: 1, x: 2}]"), "items[0].x: unknown key");
        assert_eq!(err("items: [{n: 1}, {}]"), "items[1]: required");
        assert_eq!(
            err("items: [{n: abc}]"),
            "items[0].n: must be a non-negative integer (got \"abc\")"
        );
        assert_eq!(
            err("items: [{n: -1}]"),
            "items[0].n: must be a non-negative integer (got -1)"
        );
        assert_eq!(
            err("items: [{n: 1, mode: optional}]"),
            "items[0].mode: must be one of disabled, if_exists, required (got \"optional\")"
        );
        assert_eq!(err("items: 5"), "items: must be a list (got 5)");
        assert_eq!(
            err("items: [null]"),
            "items[0]: must be a mapping (got null)"
        );
    }

    #[test]
    fn single_references_parse_as_numbers() {
        let node = Node::Map(vec![(
            "items".into(),
            Node::Seq(vec![Node::Map(vec![("n".into(), Node::Ref("42".into()))])]),
        )]);
        let v: Outer = from_node(&node).unwrap();
        assert_eq!(v.items[0].n, 42);
        let node = Node::Map(vec![(
            "items".into(),
            Node::Seq(vec![Node::Map(vec![("n".into(), Node::Str("42".into()))])]),
        )]);
        assert!(from_node::<Outer>(&node).is_err());
    }
}
