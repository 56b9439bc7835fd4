//! Problems found while loading `authflow.yaml`, and the YAML paths that locate them
//! (flow-config.md 2.4).

use std::fmt;

/// One step of a YAML path: a mapping key or a list position.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Seg {
    Key(String),
    Index(usize),
}

/// A location in the config tree, printed as `a.b[0].c` (keys that are not
/// `[A-Za-z0-9_]+` as `["the key"]`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct YamlPath(pub Vec<Seg>);

impl YamlPath {
    pub fn root() -> Self {
        YamlPath(Vec::new())
    }

    /// Parses the dotted form used in this crate's own code (`a.b.c`, no indices):
    /// a shorthand for fixed paths such as `authentication.secondary_authentication_mode`.
    pub fn of(dotted: &str) -> Self {
        YamlPath(
            dotted
                .split('.')
                .filter(|s| !s.is_empty())
                .map(|s| Seg::Key(s.to_string()))
                .collect(),
        )
    }

    pub fn key(&self, key: &str) -> Self {
        let mut p = self.clone();
        p.0.push(Seg::Key(key.to_string()));
        p
    }

    pub fn index(&self, index: usize) -> Self {
        let mut p = self.clone();
        p.0.push(Seg::Index(index));
        p
    }

    pub fn join(&self, other: &YamlPath) -> Self {
        let mut p = self.clone();
        p.0.extend(other.0.iter().cloned());
        p
    }

    /// `self` is `other` or lies inside it (or the reverse): used to drop follow-up
    /// errors about a value that was already reported.
    pub fn related_to(&self, other: &YamlPath) -> bool {
        let n = self.0.len().min(other.0.len());
        self.0[..n] == other.0[..n]
    }
}

fn is_plain_key(key: &str) -> bool {
    !key.is_empty() && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

impl fmt::Display for YamlPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, seg) in self.0.iter().enumerate() {
            match seg {
                Seg::Key(k) if is_plain_key(k) => {
                    if i > 0 {
                        f.write_str(".")?;
                    }
                    f.write_str(k)?;
                }
                Seg::Key(k) => write!(f, "[{}]", quote(k))?,
                Seg::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}

/// A JSON-style double-quoted string, used wherever a message names a value.
pub fn quote(s: &str) -> String {
    serde_json::Value::String(s.to_string()).to_string()
}

/// A problem (or warning) of the configuration: `path: message`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The YAML path (2.4); for YAML syntax errors and unreadable files, the
    /// `FILE:LINE:COLUMN` / `FILE` prefix instead.
    pub path: String,
    pub message: String,
}

impl Problem {
    pub fn new(path: impl ToString, message: impl Into<String>) -> Self {
        Problem {
            path: path.to_string(),
            message: message.into(),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// A problem that still knows its structured path, so problems of all phases can be
/// sorted into file order before they are printed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Located {
    pub path: YamlPath,
    pub message: String,
}

/// Collects problems and warnings of one load.
#[derive(Debug, Default)]
pub(crate) struct Report {
    pub problems: Vec<Located>,
    pub warnings: Vec<Located>,
}

impl Report {
    pub fn error(&mut self, path: YamlPath, message: impl Into<String>) {
        self.problems.push(Located {
            path,
            message: message.into(),
        });
    }

    pub fn warn(&mut self, path: YamlPath, message: impl Into<String>) {
        self.warnings.push(Located {
            path,
            message: message.into(),
        });
    }

    /// The 2.6 warning for an explicit use of a [later] key or value.
    pub fn later(&mut self, path: YamlPath, value: &str) {
        self.warn(
            path,
            format!("{} is not implemented yet; ignored", quote(value)),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_print_like_the_spec() {
        let p = YamlPath::of("authentication_flow.login_flows")
            .index(0)
            .key("steps")
            .index(1)
            .key("target_step");
        assert_eq!(
            p.to_string(),
            "authentication_flow.login_flows[0].steps[1].target_step"
        );
        let q = YamlPath::of("auth_api.org_password_policies").key("ACME Corp");
        assert_eq!(
            q.to_string(),
            "auth_api.org_password_policies[\"ACME Corp\"]"
        );
        assert_eq!(YamlPath::root().key("a b").to_string(), "[\"a b\"]");
    }

    #[test]
    fn related_paths() {
        let a = YamlPath::of("a.b");
        assert!(a.related_to(&YamlPath::of("a.b.c")));
        assert!(a.related_to(&YamlPath::of("a")));
        assert!(!a.related_to(&YamlPath::of("a.c")));
    }
}
