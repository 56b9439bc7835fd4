//! Cross-field rules of each section (flow-config.md 4, 5), run on sections that
//! deserialized cleanly.

use std::collections::HashMap;
use std::path::Path;
use std::str::FromStr;

use super::node::Node;
use super::problem::{Report, YamlPath, quote};
use super::types::*;
use super::values::enum_text;
use crate::credentials::password::PasswordPolicy;
use crate::flow::def::Channel;

/// What the rules look at besides the typed config.
pub(crate) struct RuleInput<'a> {
    pub root: &'a Node,
    pub base_dir: &'a Path,
    /// Position in `oauth.clients` of each deserialized client.
    pub client_positions: &'a [usize],
}

fn p(dotted: &str) -> YamlPath {
    YamlPath::of(dotted)
}

pub(crate) fn messaging(m: &MessagingConfig, input: &RuleInput<'_>, r: &mut Report) {
    if let Some(smtp) = &m.smtp {
        match (smtp.username.is_some(), smtp.password.is_some()) {
            (true, false) => r.error(
                p("messaging.smtp.password"),
                "required when messaging.smtp.username is set",
            ),
            (false, true) => r.error(
                p("messaging.smtp.username"),
                "required when messaging.smtp.password is set",
            ),
            _ => {}
        }
    }
    if let Some(dir) = &m.templates_dir {
        templates(&input.base_dir.join(dir), r);
    }
}

/// Every file of `messaging.templates_dir` must be `<message>.<part>` and use only the
/// variables of its message.
fn templates(dir: &Path, r: &mut Report) {
    let path = p("messaging.templates_dir");
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            r.error(
                path,
                format!("cannot read directory {}: {e}", dir.display()),
            );
            return;
        }
    };
    let mut names: Vec<String> = entries
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    for name in names {
        let Some(has_link) = template_kind(&name) else {
            r.error(
                path.clone(),
                format!("unknown template file {}", quote(&name)),
            );
            continue;
        };
        match std::fs::read_to_string(dir.join(&name)) {
            Ok(text) => template_variables(&name, &text, has_link, &path, r),
            Err(e) => r.error(path.clone(), format!("cannot read {}: {e}", quote(&name))),
        }
    }
}

/// `Some(has_link)` for a known `<message>.<part>` file name.
fn template_kind(name: &str) -> Option<bool> {
    TEMPLATE_MESSAGES.iter().find_map(|(message, has_link)| {
        let part = name.strip_prefix(message)?.strip_prefix('.')?;
        TEMPLATE_PARTS.contains(&part).then_some(*has_link)
    })
}

fn template_variables(name: &str, text: &str, has_link: bool, path: &YamlPath, r: &mut Report) {
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else { break };
        let var = after[..end].trim();
        let known = matches!(var, "code" | "valid_minutes" | "app_name" | "masked_target")
            || (var == "link" && has_link);
        if !known {
            r.error(
                path.clone(),
                format!("unknown variable {{{{{var}}}}} in {}", quote(name)),
            );
        }
        rest = &after[end + 2..];
    }
}

/// Ranges of a password policy that serde cannot express on the shared type.
fn policy_ranges(policy: &PasswordPolicy, path: &YamlPath, r: &mut Report) {
    if policy.min_length < 1 {
        r.error(path.key("min_length"), "must be >= 1 (got 0)");
    }
    if policy.minimum_guessable_level > 5 {
        r.error(
            path.key("minimum_guessable_level"),
            format!(
                "must be between 0 and 5 (got {})",
                policy.minimum_guessable_level
            ),
        );
    }
    if let Some(max) = policy.max_length
        && max < policy.min_length
    {
        r.error(
            path.key("max_length"),
            format!("must be >= min_length ({}) (got {max})", policy.min_length),
        );
    }
}

pub(crate) fn auth_api(a: &AuthApiConfig, r: &mut Report) {
    let base = p("auth_api.password_policy");
    policy_ranges(&a.password_policy, &base, r);
    for (org, policy) in &a.org_password_policies {
        let path = p("auth_api.org_password_policies").key(org);
        policy_ranges(policy, &path, r);
        org_policy_is_tighter(policy, &a.password_policy, &path, r);
    }
}

/// An organization may only tighten `auth_api.password_policy` (4.7).
fn org_policy_is_tighter(
    org: &PasswordPolicy,
    base: &PasswordPolicy,
    path: &YamlPath,
    r: &mut Report,
) {
    let looser = "auth_api.password_policy";
    if org.min_length < base.min_length {
        r.error(
            path.key("min_length"),
            format!(
                "must be >= {} ({looser}.min_length) (got {})",
                base.min_length, org.min_length
            ),
        );
    }
    if let Some(base_max) = base.max_length {
        match org.max_length {
            Some(m) if m > base_max => r.error(
                path.key("max_length"),
                format!("must be <= {base_max} ({looser}.max_length) (got {m})"),
            ),
            None => r.error(
                path.key("max_length"),
                format!("required: {looser}.max_length is {base_max}"),
            ),
            _ => {}
        }
    }
    let classes = [
        (
            "uppercase_required",
            base.uppercase_required,
            org.uppercase_required,
        ),
        (
            "lowercase_required",
            base.lowercase_required,
            org.lowercase_required,
        ),
        (
            "alphabet_required",
            base.alphabet_required,
            org.alphabet_required,
        ),
        ("digit_required", base.digit_required, org.digit_required),
        ("symbol_required", base.symbol_required, org.symbol_required),
    ];
    for (key, in_base, in_org) in classes {
        if in_base && !in_org {
            r.error(
                path.key(key),
                format!("must be true: {looser}.{key} is true"),
            );
        }
    }
    let numbers = [
        (
            "minimum_guessable_level",
            u32::from(base.minimum_guessable_level),
            u32::from(org.minimum_guessable_level),
        ),
        ("history_size", base.history_size, org.history_size),
        ("history_days", base.history_days, org.history_days),
    ];
    for (key, in_base, in_org) in numbers {
        if in_org < in_base {
            r.error(
                path.key(key),
                format!("must be >= {in_base} ({looser}.{key}) (got {in_org})"),
            );
        }
    }
}

pub(crate) fn hanko_api(h: &HankoApiConfig, server: Option<&ServerConfig>, r: &mut Report) {
    if let Err(message) = check_path_prefix(&h.path_prefix) {
        r.error(p("hanko_api.path_prefix"), message);
    }
    if h.session.cookie.same_site == SameSite::None
        && let Some(server) = server
        && !server.is_https()
    {
        r.error(
            p("hanko_api.session.cookie.same_site"),
            format!(
                "\"none\" requires an https server.public_origin (got {})",
                quote(&server.public_origin)
            ),
        );
    }
}

fn check_path_prefix(prefix: &str) -> Result<(), String> {
    let got = quote(prefix);
    if !prefix.starts_with('/') || prefix == "/" || prefix.ends_with('/') {
        return Err(format!("must start with / and not end with / (got {got})"));
    }
    for reserved in RESERVED_PATH_PREFIXES {
        let under = prefix
            .strip_prefix(reserved)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'));
        if under {
            return Err(format!("must not be {reserved} or under it (got {got})"));
        }
    }
    Ok(())
}

pub(crate) fn identity(i: &IdentityConfig, r: &mut Report) {
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for (n, key) in i.login_id.keys.iter().enumerate() {
        if let Some(first) = seen.get(key.key.as_str()) {
            let first_path = p("identity.login_id.keys").index(*first).key("key");
            r.error(
                p("identity.login_id.keys").index(n).key("key"),
                format!("duplicate key {} (first at {first_path})", quote(&key.key)),
            );
        } else {
            seen.insert(&key.key, n);
        }
    }
    let email = &i.login_id.types.email;
    if email.domain_allowlist_enabled {
        let exclusive = [
            ("domain_blocklist_enabled", email.domain_blocklist_enabled),
            (
                "block_free_email_provider_domains",
                email.block_free_email_provider_domains,
            ),
            (
                "block_disposable_email_domains",
                email.block_disposable_email_domains,
            ),
        ];
        for (key, on) in exclusive {
            if on {
                r.error(
                    p("identity.login_id.types.email").key(key),
                    "must be false when domain_allowlist_enabled is true",
                );
            }
        }
    }
    let mut aliases: HashMap<&str, usize> = HashMap::new();
    for (n, provider) in i.oauth.providers.iter().enumerate() {
        if let Some(first) = aliases.get(provider.alias.as_str()) {
            r.error(
                p("identity.oauth.providers").index(n).key("alias"),
                format!(
                    "duplicate alias {} (first at identity.oauth.providers[{first}].alias)",
                    quote(&provider.alias)
                ),
            );
        } else {
            aliases.insert(&provider.alias, n);
        }
    }
}

pub(crate) fn authentication(a: &AuthenticationConfig, r: &mut Report) {
    let id_passkey = a.identities.contains(&IdentityType::Passkey);
    let primary_passkey = a
        .primary_authenticators
        .contains(&PrimaryAuthenticatorType::Passkey);
    if id_passkey != primary_passkey {
        let (path, missing) = if id_passkey {
            (
                "authentication.identities",
                "authentication.primary_authenticators",
            )
        } else {
            (
                "authentication.primary_authenticators",
                "authentication.identities",
            )
        };
        r.error(p(path), format!("\"passkey\" must also be in {missing}"));
    }
    if id_passkey && !a.identities.contains(&IdentityType::LoginId) {
        r.error(
            p("authentication.identities"),
            "\"passkey\" requires \"login_id\" in authentication.identities",
        );
    }
    if a.secondary_authentication_mode != SecondaryAuthenticationMode::Disabled
        && a.secondary_authenticators.is_empty()
    {
        r.error(
            p("authentication.secondary_authentication_mode"),
            format!(
                "{} needs at least one authentication.secondary_authenticators item",
                quote(&enum_text(&a.secondary_authentication_mode))
            ),
        );
    }
    lockout(&a.lockout, r);
}

fn lockout(l: &LockoutConfig, r: &mut Report) {
    let base = p("authentication.lockout");
    if l.backoff_factor < 1.0 {
        r.error(
            base.key("backoff_factor"),
            format!("must be >= 1 (got {})", l.backoff_factor),
        );
    }
    if !l.is_enabled() {
        return;
    }
    let required = [
        ("history_duration", l.history_duration.is_some()),
        ("minimum_duration", l.minimum_duration.is_some()),
        ("maximum_duration", l.maximum_duration.is_some()),
        ("lockout_type", l.lockout_type.is_some()),
    ];
    for (key, present) in required {
        if !present {
            r.error(base.key(key), "required when max_attempts >= 1");
        }
    }
    if let (Some(min), Some(max)) = (l.minimum_duration, l.maximum_duration)
        && max < min
    {
        r.error(
            base.key("maximum_duration"),
            format!(
                "must be >= minimum_duration ({})",
                super::duration::format_duration(min)
            ),
        );
    }
}

pub(crate) fn authenticator(a: &AuthenticatorConfig, root: &Node, r: &mut Report) {
    let base = p("authenticator.password.policy");
    // The shared policy type has `max_length` for `/auth`; this section has none.
    if root.at(&base.key("max_length")).is_some() {
        r.error(base.key("max_length"), "unknown key");
    }
    policy_ranges(&a.password.policy, &base, r);
    let fc = &a.password.expiry.force_change;
    if fc.enabled && fc.duration_since_last_update.is_none() {
        r.error(
            p("authenticator.password.expiry.force_change.duration_since_last_update"),
            "required when enabled",
        );
    }
    if let Err(e) = a.password.hashing.validate() {
        r.error(p("authenticator.password.hashing"), e.to_string());
    }
}

pub(crate) fn oauth(o: &OAuthConfig, positions: &[usize], r: &mut Report) {
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for (&n, client) in positions.iter().zip(&o.clients) {
        let path = p("oauth.clients").index(n);
        if let Some(first) = seen.get(client.client_id.as_str()) {
            r.error(
                path.key("client_id"),
                format!(
                    "duplicate client_id {} (first at oauth.clients[{first}].client_id)",
                    quote(&client.client_id)
                ),
            );
        } else {
            seen.insert(&client.client_id, n);
        }
        oauth_client(client, &path, r);
    }
}

fn oauth_client(c: &OAuthClientConfig, path: &YamlPath, r: &mut Report) {
    if let Some(t) = c.x_application_type {
        let t_text = quote(&enum_text(&t));
        if t.requires_secret() && c.client_secret.is_none() {
            r.error(
                path.key("client_secret"),
                format!("required for x_application_type {t_text}"),
            );
        }
        if t.forbids_secret() && c.client_secret.is_some() {
            r.error(
                path.key("client_secret"),
                format!("not allowed for x_application_type {t_text}"),
            );
        }
    }
    if !c.is_m2m() && c.redirect_uris.is_empty() {
        r.error(path.key("redirect_uris"), "must have at least one item");
    }
    if !c.is_confidential()
        && let Some(i) = c
            .grant_types
            .iter()
            .position(|g| *g == GrantType::ClientCredentials)
    {
        r.error(
            path.key("grant_types").index(i),
            "\"client_credentials\" needs a client_secret (public client)",
        );
    }
    if c.refresh_token_lifetime_seconds < c.access_token_lifetime_seconds {
        r.error(
            path.key("refresh_token_lifetime_seconds"),
            "must be >= access_token_lifetime_seconds",
        );
    }
}

pub(crate) fn ui(u: &UiConfig, r: &mut Report) {
    let fp = p("ui.forgot_password");
    for (i, d) in u.forgot_password.email.iter().enumerate() {
        if d.channel != Channel::Email {
            r.error(
                fp.key("email").index(i).key("channel"),
                format!("must be \"email\" (got {})", quote(channel_name(d.channel))),
            );
        }
    }
    for (i, d) in u.forgot_password.phone.iter().enumerate() {
        if d.channel == Channel::Email {
            r.error(
                fp.key("phone").index(i).key("channel"),
                "must be \"sms\" or \"whatsapp\" (got \"email\")",
            );
        }
    }
    let phone = p("ui.phone_input");
    for (i, code) in u.phone_input.allowlist.iter().enumerate() {
        if !is_country_code(code) {
            r.error(
                phone.key("allowlist").index(i),
                format!("must be an ISO 3166-1 alpha-2 code (got {})", quote(code)),
            );
        }
    }
    for (i, code) in u.phone_input.pinned_list.iter().enumerate() {
        let path = phone.key("pinned_list").index(i);
        if !is_country_code(code) {
            r.error(
                path,
                format!("must be an ISO 3166-1 alpha-2 code (got {})", quote(code)),
            );
        } else if !u.phone_input.allows_country(code) {
            r.error(
                path,
                format!("{} is not in ui.phone_input.allowlist", quote(code)),
            );
        }
    }
    let mut names: HashMap<&str, usize> = HashMap::new();
    for (i, g) in u.authentication_flow.groups.iter().enumerate() {
        if let Some(first) = names.get(g.name.as_str()) {
            r.error(
                p("ui.authentication_flow.groups").index(i).key("name"),
                format!(
                    "duplicate group name {} (first at ui.authentication_flow.groups[{first}].name)",
                    quote(&g.name)
                ),
            );
        } else {
            names.insert(&g.name, i);
        }
    }
}

fn is_country_code(code: &str) -> bool {
    code.len() == 2
        && code.bytes().all(|b| b.is_ascii_uppercase())
        && phonenumber::country::Id::from_str(code).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_prefix_rules() {
        assert!(check_path_prefix("/hanko").is_ok());
        assert!(check_path_prefix("/authx").is_ok());
        for bad in [
            "hanko",
            "/",
            "/hanko/",
            "/api",
            "/api/hanko",
            "/auth",
            "/.well-known/x",
        ] {
            assert!(check_path_prefix(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn template_names() {
        assert_eq!(template_kind("login_link.email.html"), Some(true));
        assert_eq!(template_kind("verification.sms.txt"), Some(false));
        assert_eq!(template_kind("verification.push.txt"), None);
        assert_eq!(template_kind("welcome.email.txt"), None);
    }

    #[test]
    fn country_codes() {
        assert!(is_country_code("US"));
        assert!(!is_country_code("us"));
        assert!(!is_country_code("XX"));
    }
}
