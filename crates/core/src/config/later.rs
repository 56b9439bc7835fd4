//! Warnings for explicit uses of [later] keys and values outside `authentication_flow`
//! (flow-config.md 2.6): `warning: <path>: "<value>" is not implemented yet; ignored`.
//! Defaults never warn, so only what the file says is looked at.

use super::node::Node;
use super::problem::{Report, Seg, YamlPath};

/// When a [later] key counts as used.
#[derive(Clone, Copy)]
enum Use {
    /// A boolean set to `true`.
    True,
    /// One of these scalar values.
    Value(&'static [&'static str]),
    /// Any value (warned with the key's name unless it is a scalar).
    Present,
    /// A non-empty list (warned with the key's name).
    NonEmpty,
}

/// Paths use `*` for every item of a list.
const LATER: &[(&str, Use)] = &[
    ("identity.login_id.keys.*.create_disabled", Use::True),
    ("identity.login_id.keys.*.update_disabled", Use::True),
    ("identity.login_id.keys.*.delete_disabled", Use::True),
    ("identity.login_id.keys.*.modify_disabled", Use::True),
    (
        "identity.login_id.types.email.domain_blocklist_enabled",
        Use::True,
    ),
    (
        "identity.login_id.types.email.domain_allowlist_enabled",
        Use::True,
    ),
    (
        "identity.login_id.types.email.block_free_email_provider_domains",
        Use::True,
    ),
    (
        "identity.login_id.types.email.block_disposable_email_domains",
        Use::True,
    ),
    (
        "identity.login_id.types.email.domain_blocklist",
        Use::NonEmpty,
    ),
    (
        "identity.login_id.types.email.domain_allowlist",
        Use::NonEmpty,
    ),
    (
        "identity.login_id.types.username.exclude_keywords_enabled",
        Use::True,
    ),
    (
        "identity.login_id.types.username.excluded_keywords",
        Use::NonEmpty,
    ),
    ("identity.oauth.providers.*.type", Use::Present),
    ("identity.on_conflict.promotion", Use::Present),
    (
        "authentication.identities.*",
        Use::Value(&["oauth", "passkey", "ldap"]),
    ),
    (
        "authentication.primary_authenticators.*",
        Use::Value(&["passkey"]),
    ),
    (
        "authentication.secondary_authentication_grace_period.enabled",
        Use::True,
    ),
    ("authentication.recovery_code.list_enabled", Use::True),
    ("authentication.rate_limits.passkey", Use::Present),
    ("oauth.clients.*.response_types.*", Use::Value(&["none"])),
    (
        "oauth.clients.*.x_max_concurrent_session",
        Use::Value(&["1"]),
    ),
    (
        "oauth.clients.*.x_authentication_flow_allowlist",
        Use::Present,
    ),
    ("ui.authentication_flow.groups", Use::NonEmpty),
    ("bot_protection.enabled", Use::True),
    ("bot_protection.provider", Use::Present),
    ("bot_protection.requirements", Use::Present),
    ("test_mode.email", Use::Present),
    ("test_mode.sms", Use::Present),
    ("test_mode.whatsapp", Use::Present),
];

pub(crate) fn later_warnings(root: &Node, r: &mut Report) {
    for (pattern, usage) in LATER {
        for (path, node) in expand(root, pattern) {
            if let Some(value) = used(node, *usage, &path) {
                r.later(path, &value);
            }
        }
    }
}

/// The text to warn with, if `node` is a use.
fn used(node: &Node, usage: Use, path: &YamlPath) -> Option<String> {
    let key_name = || match path.0.last() {
        Some(Seg::Key(k)) => k.clone(),
        _ => String::new(),
    };
    match usage {
        Use::True => (*node == Node::Bool(true)).then(|| "true".to_string()),
        Use::Value(values) => node.scalar_text().filter(|v| values.contains(&v.as_str())),
        Use::Present => Some(node.scalar_text().unwrap_or_else(key_name)),
        Use::NonEmpty => matches!(node, Node::Seq(items) if !items.is_empty()).then(key_name),
    }
}

/// Every node matching a `*` pattern, with its path, in file order.
fn expand<'n>(root: &'n Node, pattern: &str) -> Vec<(YamlPath, &'n Node)> {
    let mut current = vec![(YamlPath::root(), root)];
    for seg in pattern.split('.') {
        let mut next = Vec::new();
        for (path, node) in current {
            match (seg, node) {
                ("*", Node::Seq(items)) => {
                    next.extend(items.iter().enumerate().map(|(i, n)| (path.index(i), n)));
                }
                (key, _) => {
                    if let Some(child) = node.get(key) {
                        next.push((path.key(key), child));
                    }
                }
            }
        }
        current = next;
    }
    current
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::node::parse_yaml;

    fn warnings(yaml: &str) -> Vec<String> {
        let root = parse_yaml(yaml, "t").unwrap();
        let mut r = Report::default();
        later_warnings(&root, &mut r);
        r.warnings
            .iter()
            .map(|w| format!("{}: {}", w.path, w.message))
            .collect()
    }

    #[test]
    fn explicit_later_values_warn() {
        assert_eq!(
            warnings("authentication:\n  identities: [oauth, login_id]\n"),
            ["authentication.identities[0]: \"oauth\" is not implemented yet; ignored"]
        );
        assert_eq!(
            warnings("bot_protection: {enabled: true}\n"),
            ["bot_protection.enabled: \"true\" is not implemented yet; ignored"]
        );
    }

    #[test]
    fn defaults_and_false_do_not_warn() {
        assert!(warnings("authentication:\n  identities: [login_id]\n").is_empty());
        assert!(warnings("bot_protection: {enabled: false}\n").is_empty());
        assert!(warnings("database: {url: 'sqlite://a.db'}\n").is_empty());
    }
}
