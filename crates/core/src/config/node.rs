//! The generic YAML tree the loader works on before typed deserialization: parsed with
//! serde-saphyr (YAML 1.2, duplicate keys rejected), then interpolated and checked.

use std::fmt;

use serde::Deserialize;
use serde::de::{self, MapAccess, SeqAccess, Visitor};
use serde_saphyr::{DuplicateKeyPolicy, MergeKeyPolicy, MessageFormatter};

use super::problem::{Problem, Seg, YamlPath};

/// One YAML node. Mappings keep file order (their keys are unique: duplicates are a
/// parse error).
#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    Null,
    Bool(bool),
    Int(i128),
    Float(f64),
    Str(String),
    /// A string that was exactly one `${NAME}` reference: where a number or boolean is
    /// expected it is parsed as one (flow-config.md 2.2).
    Ref(String),
    Seq(Vec<Node>),
    Map(Vec<(String, Node)>),
    /// A value whose interpolation failed; its problem is already reported, so typed
    /// deserialization of it fails silently.
    Poisoned,
}

impl Node {
    pub fn as_map(&self) -> Option<&[(String, Node)]> {
        match self {
            Node::Map(m) => Some(m),
            _ => None,
        }
    }

    pub fn get(&self, key: &str) -> Option<&Node> {
        self.as_map()?
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v)
    }

    /// The node at `path`, if every step of it exists.
    pub fn at(&self, path: &YamlPath) -> Option<&Node> {
        path.0.iter().try_fold(self, |node, seg| match (seg, node) {
            (Seg::Key(k), _) => node.get(k),
            (Seg::Index(i), Node::Seq(items)) => items.get(*i),
            _ => None,
        })
    }

    /// Removes the mapping entry at `path` (its last step must be a key). List items are
    /// never removed, as that would shift the positions of later problems.
    pub fn remove(&mut self, path: &YamlPath) -> bool {
        let Some((Seg::Key(last), parent)) = path.0.split_last() else {
            return false;
        };
        let mut node = self;
        for seg in parent {
            node = match (seg, node) {
                (Seg::Key(k), Node::Map(m)) => match m.iter_mut().find(|(key, _)| key == k) {
                    Some((_, v)) => v,
                    None => return false,
                },
                (Seg::Index(i), Node::Seq(items)) => match items.get_mut(*i) {
                    Some(v) => v,
                    None => return false,
                },
                _ => return false,
            };
        }
        match node {
            Node::Map(m) => {
                let before = m.len();
                m.retain(|(k, _)| k != last);
                m.len() != before
            }
            _ => false,
        }
    }

    /// Short text naming the value in messages (`"optional"`, `5`, `a list`).
    pub fn describe(&self) -> String {
        match self {
            Node::Null => "null".into(),
            Node::Bool(b) => b.to_string(),
            Node::Int(i) => i.to_string(),
            Node::Float(f) => f.to_string(),
            Node::Str(s) | Node::Ref(s) => super::problem::quote(s),
            Node::Seq(_) => "a list".into(),
            Node::Map(_) => "a mapping".into(),
            Node::Poisoned => "an invalid value".into(),
        }
    }

    /// Text of a scalar for [later] warnings (`true`, `oauth`).
    pub fn scalar_text(&self) -> Option<String> {
        match self {
            Node::Bool(b) => Some(b.to_string()),
            Node::Int(i) => Some(i.to_string()),
            Node::Float(f) => Some(f.to_string()),
            Node::Str(s) | Node::Ref(s) => Some(s.clone()),
            _ => None,
        }
    }

    /// `null` (or an empty value) means the key is absent (2.1); null list items stay,
    /// as they are type errors.
    pub fn strip_null_entries(&mut self) {
        match self {
            Node::Map(m) => {
                m.retain(|(_, v)| *v != Node::Null);
                m.iter_mut().for_each(|(_, v)| v.strip_null_entries());
            }
            Node::Seq(items) => items.iter_mut().for_each(Node::strip_null_entries),
            _ => {}
        }
    }

    /// The position of `path` in the document as a sortable key: each step's index in its
    /// parent. A step that does not exist (a missing key) sorts at the end of its parent.
    pub fn position(&self, path: &YamlPath) -> Vec<usize> {
        let mut out = Vec::with_capacity(path.0.len());
        let mut node = Some(self);
        for seg in &path.0 {
            let (idx, next) = match (seg, node) {
                (Seg::Key(k), Some(Node::Map(m))) => match m.iter().position(|(key, _)| key == k) {
                    Some(i) => (i, Some(&m[i].1)),
                    None => (usize::MAX, None),
                },
                (Seg::Index(i), Some(Node::Seq(items))) => (*i, items.get(*i)),
                (Seg::Index(i), _) => (*i, None),
                _ => (usize::MAX, None),
            };
            out.push(idx);
            node = next;
        }
        out
    }
}

struct NodeVisitor;

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = Node;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML value")
    }

    fn visit_unit<E>(self) -> Result<Node, E> {
        Ok(Node::Null)
    }
    fn visit_none<E>(self) -> Result<Node, E> {
        Ok(Node::Null)
    }
    fn visit_some<D: de::Deserializer<'de>>(self, d: D) -> Result<Node, D::Error> {
        Node::deserialize(d)
    }
    fn visit_bool<E>(self, v: bool) -> Result<Node, E> {
        Ok(Node::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Node, E> {
        Ok(Node::Int(v.into()))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Node, E> {
        Ok(Node::Int(v.into()))
    }
    fn visit_i128<E>(self, v: i128) -> Result<Node, E> {
        Ok(Node::Int(v))
    }
    fn visit_u128<E: de::Error>(self, v: u128) -> Result<Node, E> {
        i128::try_from(v)
            .map(Node::Int)
            .map_err(|_| E::custom("integer too large"))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Node, E> {
        Ok(Node::Float(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Node, E> {
        Ok(Node::Str(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> Result<Node, E> {
        Ok(Node::Str(v))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Node>()? {
            items.push(item);
        }
        Ok(Node::Seq(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
        let mut entries = Vec::new();
        while let Some(key) = map.next_key::<Key>()? {
            entries.push((key.0, map.next_value::<Node>()?));
        }
        Ok(Node::Map(entries))
    }
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(NodeVisitor)
    }
}

/// A mapping key: scalars of any type become their text (`1: x` has key `"1"`).
struct Key(String);

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Node::deserialize(d)? {
            Node::Null => Ok(Key("null".into())),
            node => node
                .scalar_text()
                .map(Key)
                .ok_or_else(|| de::Error::custom("a mapping key must be a scalar")),
        }
    }
}

/// A YAML syntax error: `FILE:LINE:COLUMN: message` (2.4).
pub fn syntax_problem(source_name: &str, err: &serde_saphyr::Error) -> Problem {
    let err_only = err.without_snippet();
    // The library's wording for duplicates names its own options; ours names the key.
    let message = match err_only {
        serde_saphyr::Error::DuplicateMappingKey { key: Some(k), .. } => {
            format!("duplicate key {}", super::problem::quote(k))
        }
        serde_saphyr::Error::DuplicateMappingKey { key: None, .. } => "duplicate key".into(),
        other => serde_saphyr::DefaultMessageFormatter
            .format_message(other)
            .into_owned(),
    };
    let prefix = match err.location() {
        Some(loc) => format!("{source_name}:{}:{}", loc.line(), loc.column()),
        None => source_name.to_string(),
    };
    Problem::new(prefix, message)
}

/// Parses one YAML 1.2 document into a tree; an empty document is an empty mapping.
pub fn parse_yaml(text: &str, source_name: &str) -> Result<Node, Problem> {
    let options = serde_saphyr::options! {
        duplicate_keys: DuplicateKeyPolicy::Error,
        // `<<` is not a merge key here: it must surface as an unknown key (2.1).
        merge_keys: MergeKeyPolicy::AsOrdinary,
        // YAML 1.2: `yes`/`no`/`on`/`off` are strings, `1_000` is a string.
        strict_booleans: true,
        underscored_numbers_as_strings: true,
        with_snippet: false,
    };
    let node: Node = if text.trim().is_empty() {
        Node::Null
    } else {
        serde_saphyr::from_str_with_options(text, options)
            .map_err(|e| syntax_problem(source_name, &e))?
    };
    match node {
        Node::Null => Ok(Node::Map(Vec::new())),
        Node::Map(_) => Ok(node),
        other => Err(Problem::new(
            format!("{source_name}:1:1"),
            format!("the top level must be a mapping (got {})", other.describe()),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Node, Problem> {
        parse_yaml(text, "authflow.yaml")
    }

    #[test]
    fn scalars_follow_yaml_1_2() {
        let n =
            parse("a: yes\nb: true\nc: 10\nd: 1.5\ne: 300s\nf: 0.0.0.0:3000\ng: ~\nh:\n").unwrap();
        assert_eq!(n.get("a"), Some(&Node::Str("yes".into())));
        assert_eq!(n.get("b"), Some(&Node::Bool(true)));
        assert_eq!(n.get("c"), Some(&Node::Int(10)));
        assert_eq!(n.get("d"), Some(&Node::Float(1.5)));
        assert_eq!(n.get("e"), Some(&Node::Str("300s".into())));
        assert_eq!(n.get("f"), Some(&Node::Str("0.0.0.0:3000".into())));
        assert_eq!(n.get("g"), Some(&Node::Null));
        assert_eq!(n.get("h"), Some(&Node::Null));
    }

    #[test]
    fn empty_file_is_an_empty_mapping() {
        assert_eq!(parse("").unwrap(), Node::Map(vec![]));
        assert_eq!(parse("# only a comment\n").unwrap(), Node::Map(vec![]));
    }

    #[test]
    fn duplicate_keys_are_errors_with_line_and_column() {
        let p = parse("server:\n  listen: a\n  listen: b\n").unwrap_err();
        assert!(p.path.starts_with("authflow.yaml:3:"), "{p}");
        assert!(p.message.contains("listen"), "{p}");
    }

    #[test]
    fn syntax_errors_have_line_and_column() {
        let p = parse("server:\n  listen: [a\n").unwrap_err();
        assert!(p.path.starts_with("authflow.yaml:"), "{p}");
        let parts: Vec<&str> = p.path.split(':').collect();
        assert_eq!(parts.len(), 3, "{p}");
        assert!(
            parts[1].parse::<u32>().is_ok() && parts[2].parse::<u32>().is_ok(),
            "{p}"
        );
    }

    #[test]
    fn merge_keys_stay_ordinary_keys() {
        let n = parse("base: &b {x: 1}\nother:\n  <<: *b\n").unwrap();
        assert!(n.get("other").unwrap().get("<<").is_some());
    }

    #[test]
    fn aliases_are_expanded() {
        let n = parse("a: &x [1, 2]\nb: *x\n").unwrap();
        assert_eq!(n.get("a"), n.get("b"));
    }

    #[test]
    fn nulls_are_stripped_from_mappings_only() {
        let mut n = parse("a: null\nb: [null, 1]\nc: {d: ~}\n").unwrap();
        n.strip_null_entries();
        assert!(n.get("a").is_none());
        assert_eq!(n.get("b"), Some(&Node::Seq(vec![Node::Null, Node::Int(1)])));
        assert_eq!(n.get("c"), Some(&Node::Map(vec![])));
    }
}
