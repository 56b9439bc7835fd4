//! Login ID normalization and signup checks (authentication-flow-api.md 9.1, 17.2).
//!
//! The rules are plain structs, filled from `identity.login_id` (flow-config.md 5.1) by the
//! settings resolver, so this module does not depend on the config types.

use phonenumber::metadata::{DATABASE, Descriptors};
use phonenumber::{Mode, PhoneNumber};
use unicode_normalization::UnicodeNormalization;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailRules {
    /// Keep the local part's case (the domain is always lowercased).
    pub case_sensitive: bool,
    pub block_plus_sign: bool,
    /// Local-part dots do not count for uniqueness (`j.doe@` and `jdoe@` collide).
    pub ignore_dot_sign: bool,
    pub max_length: usize,
}

impl Default for EmailRules {
    fn default() -> Self {
        EmailRules {
            case_sensitive: false,
            block_plus_sign: false,
            ignore_dot_sign: false,
            max_length: 320,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhoneRules {
    /// ISO 3166 alpha-2 codes (`ui.phone_input.allowlist`); empty = every country.
    pub allowlist: Vec<String>,
    /// Accept numbers that are merely possible (right length), not valid
    /// (`validation_method: isPossibleNumber`).
    pub possible_only: bool,
    pub max_length: usize,
}

impl Default for PhoneRules {
    fn default() -> Self {
        PhoneRules {
            allowlist: Vec::new(),
            possible_only: false,
            max_length: 40,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsernameRules {
    pub block_reserved_usernames: bool,
    /// Only `[a-zA-Z0-9_.-]`.
    pub ascii_only: bool,
    pub case_sensitive: bool,
    pub max_length: usize,
}

impl Default for UsernameRules {
    fn default() -> Self {
        UsernameRules {
            block_reserved_usernames: true,
            ascii_only: true,
            case_sensitive: false,
            max_length: 40,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoginIdRules {
    Email(EmailRules),
    Phone(PhoneRules),
    Username(UsernameRules),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NormalizedLoginId {
    /// As typed, trimmed: for display.
    pub original: String,
    /// For claims, messages and lookups.
    pub normalized: String,
    /// Decides uniqueness within a login ID key.
    pub unique_key: String,
}

/// Why a login ID is refused at signup; maps to a `ValidationFailed` cause (spec 4.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginIdProblem {
    /// `format` cause: `"email"`, `"phone"` or `"username"`.
    Format(&'static str),
    /// `blocked` cause: `"BlockPlusSign"` or `"UsernameReserved"`.
    Blocked(&'static str),
    /// Length in characters.
    MaxLength { expected: usize, actual: usize },
}

/// Normalizes and checks a login ID for a new identity.
pub fn normalize_for_signup(
    rules: &LoginIdRules,
    input: &str,
) -> Result<NormalizedLoginId, LoginIdProblem> {
    check_max_length(rules, input.trim())?;
    match rules {
        LoginIdRules::Email(r) => check_email(r, input)?,
        LoginIdRules::Phone(r) => check_phone(r, input)?,
        LoginIdRules::Username(r) => check_username(r, input)?,
    }
    Ok(normalize_for_lookup(rules, input))
}

/// Normalizes without any check: lookups match by value, and a malformed value simply
/// finds nobody (spec 17.2).
pub fn normalize_for_lookup(rules: &LoginIdRules, input: &str) -> NormalizedLoginId {
    match rules {
        LoginIdRules::Email(r) => normalize_email(r, input),
        LoginIdRules::Phone(_) => normalize_phone(input),
        LoginIdRules::Username(r) => normalize_username(r, input),
    }
}

fn check_max_length(rules: &LoginIdRules, trimmed: &str) -> Result<(), LoginIdProblem> {
    let expected = match rules {
        LoginIdRules::Email(r) => r.max_length,
        LoginIdRules::Phone(r) => r.max_length,
        LoginIdRules::Username(r) => r.max_length,
    };
    let actual = trimmed.chars().count();
    if actual > expected {
        return Err(LoginIdProblem::MaxLength { expected, actual });
    }
    Ok(())
}

fn nfkc(s: &str) -> String {
    s.nfkc().collect()
}

// ---------------------------------------------------------------------------------------
// Email
// ---------------------------------------------------------------------------------------

fn normalize_email(rules: &EmailRules, input: &str) -> NormalizedLoginId {
    let original = input.trim();
    let value = nfkc(original);
    // Without an `@` (a lookup of "jdoe" against the email key) the whole value is treated
    // as a local part; it will match nobody anyway.
    let (local, domain) = value.rsplit_once('@').unwrap_or((&value, ""));
    let local = if rules.case_sensitive {
        local.to_string()
    } else {
        local.to_lowercase()
    };
    let domain = domain.to_lowercase();
    let at = if value.contains('@') { "@" } else { "" };
    let key_local = if rules.ignore_dot_sign {
        local.replace('.', "")
    } else {
        local.clone()
    };
    NormalizedLoginId {
        original: original.to_string(),
        normalized: format!("{local}{at}{domain}"),
        unique_key: format!("{key_local}{at}{}", domain_key(&domain)),
    }
}

/// `bücher.de` and `xn--bcher-kva.de` are one domain: uniqueness uses the ASCII form.
fn domain_key(domain: &str) -> String {
    match url::Host::parse(domain) {
        Ok(url::Host::Domain(ascii)) if !domain.is_empty() => ascii,
        _ => domain.to_string(),
    }
}

fn check_email(rules: &EmailRules, input: &str) -> Result<(), LoginIdProblem> {
    let value = nfkc(input.trim());
    if !is_addr_spec(&value) {
        return Err(LoginIdProblem::Format("email"));
    }
    let (local, _) = value.rsplit_once('@').unwrap_or_default();
    if rules.block_plus_sign && local.contains('+') {
        return Err(LoginIdProblem::Blocked("BlockPlusSign"));
    }
    Ok(())
}

/// RFC 5322 addr-spec (with RFC 6532 UTF-8) restricted to what mail systems deliver to:
/// exactly one `@`; local part a dot-atom or a quoted string of at most 64 bytes; domain a
/// host name (IDN allowed) of LDH labels. No comments, folding whitespace or IP literals.
pub fn is_addr_spec(s: &str) -> bool {
    let mut parts = s.split('@');
    let (Some(local), Some(domain), None) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    is_local_part(local) && is_domain(domain)
}

fn is_local_part(local: &str) -> bool {
    if local.is_empty() || local.len() > 64 {
        return false;
    }
    if local.starts_with('"') {
        is_quoted_string(local)
    } else {
        is_dot_atom(local)
    }
}

/// `atext` of RFC 5322 3.2.3, plus any non-ASCII character that is not a control or space.
fn is_atext(c: char) -> bool {
    if c.is_ascii() {
        c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~".contains(c)
    } else {
        !c.is_control() && !c.is_whitespace()
    }
}

/// Atoms separated by single dots: no leading, trailing or doubled dot.
fn is_dot_atom(s: &str) -> bool {
    s.split('.')
        .all(|atom| !atom.is_empty() && atom.chars().all(is_atext))
}

/// `"…"` where `"` and `\` appear only escaped, and no control character but tab.
fn is_quoted_string(s: &str) -> bool {
    let Some(inner) = s.strip_prefix('"').and_then(|rest| rest.strip_suffix('"')) else {
        return false;
    };
    let is_text = |c: char| c == ' ' || c == '\t' || !c.is_control();
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(escaped) if is_text(escaped) => {}
                _ => return false,
            },
            '"' => return false,
            c if !is_text(c) => return false,
            _ => {}
        }
    }
    true
}

/// A host name: Unicode labels are converted with IDNA (via `url`) and the ASCII form must
/// be LDH labels of 1..=63 characters, 253 at most in all. IP addresses are refused.
fn is_domain(domain: &str) -> bool {
    let plausible = !domain.is_empty()
        && domain
            .chars()
            .all(|c| c == '.' || c == '-' || c.is_alphanumeric());
    if !plausible {
        return false;
    }
    match url::Host::parse(domain) {
        Ok(url::Host::Domain(ascii)) => ascii.len() <= 253 && ascii.split('.').all(is_ldh_label),
        _ => false,
    }
}

fn is_ldh_label(label: &str) -> bool {
    (1..=63).contains(&label.len())
        && !label.starts_with('-')
        && !label.ends_with('-')
        && label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

// ---------------------------------------------------------------------------------------
// Phone
// ---------------------------------------------------------------------------------------

/// The E.164 string. Signup only admits E.164 input, which formats to itself; lookups of
/// other shapes keep the trimmed input, so both paths always agree.
fn normalize_phone(input: &str) -> NormalizedLoginId {
    let original = input.trim();
    let normalized = parse_e164(original)
        .map(|n| n.format().mode(Mode::E164).to_string())
        .unwrap_or_else(|| original.to_string());
    NormalizedLoginId {
        original: original.to_string(),
        normalized: normalized.clone(),
        unique_key: normalized,
    }
}

/// `^\+[1-9][0-9]{1,14}$`.
pub fn is_e164_syntax(s: &str) -> bool {
    let Some(digits) = s.strip_prefix('+') else {
        return false;
    };
    (2..=15).contains(&digits.len())
        && digits.bytes().all(|b| b.is_ascii_digit())
        && !digits.starts_with('0')
}

/// Parses `s` if it is E.164 syntax; the parser alone would accept spaces, letters, etc.
fn parse_e164(s: &str) -> Option<PhoneNumber> {
    if !is_e164_syntax(s) {
        return None;
    }
    phonenumber::parse(None, s).ok()
}

fn check_phone(rules: &PhoneRules, input: &str) -> Result<(), LoginIdProblem> {
    let bad = LoginIdProblem::Format("phone");
    let number = parse_e164(input.trim()).ok_or(bad)?;
    let acceptable = if rules.possible_only {
        is_possible(&number)
    } else {
        number.is_valid()
    };
    if !acceptable || !country_allowed(&rules.allowlist, &number) {
        return Err(bad);
    }
    Ok(())
}

fn country_allowed(allowlist: &[String], number: &PhoneNumber) -> bool {
    if allowlist.is_empty() {
        return true;
    }
    // Numbers of no country (+800 freephone, …) cannot be in a country allowlist.
    number.country().id().is_some_and(|id| {
        allowlist
            .iter()
            .any(|allowed| allowed.eq_ignore_ascii_case(id.as_ref()))
    })
}

/// libphonenumber's `isPossibleNumber`: the national significant number has a length that
/// numbers of the calling code's main region can have. (The `phonenumber` crate does not
/// expose this check for parsed numbers.)
fn is_possible(number: &PhoneNumber) -> bool {
    let len = number.national().to_string().len() as u16;
    let Some(regions) = DATABASE.by_code(&number.code().value()) else {
        return false;
    };
    let main = regions
        .iter()
        .find(|m| m.is_main_country_for_code())
        .or_else(|| regions.first());
    main.is_some_and(|meta| possible_lengths(meta.descriptors()).contains(&len))
}

/// Lengths of the region's numbers, local-only ones included (as libphonenumber does).
/// The crate's metadata leaves the general descriptor's lengths empty, so they are the
/// union over the number types, which is how libphonenumber builds them.
fn possible_lengths(d: &Descriptors) -> Vec<u16> {
    let types = [
        d.fixed_line(),
        d.mobile(),
        d.toll_free(),
        d.premium_rate(),
        d.shared_cost(),
        d.personal_number(),
        d.voip(),
        d.pager(),
        d.uan(),
        d.voicemail(),
    ];
    std::iter::once(d.general())
        .chain(types.into_iter().flatten())
        .flat_map(|desc| {
            let local = desc.possible_local_length().iter();
            desc.possible_length().iter().chain(local).copied()
        })
        .collect()
}

// ---------------------------------------------------------------------------------------
// Username
// ---------------------------------------------------------------------------------------

fn normalize_username(rules: &UsernameRules, input: &str) -> NormalizedLoginId {
    let original = input.trim();
    let value = nfkc(original);
    let normalized = if rules.case_sensitive {
        value
    } else {
        value.to_lowercase()
    };
    NormalizedLoginId {
        original: original.to_string(),
        normalized: normalized.clone(),
        unique_key: normalized,
    }
}

fn check_username(rules: &UsernameRules, input: &str) -> Result<(), LoginIdProblem> {
    let original = input.trim();
    // ascii_only applies to the value as typed: full-width `ａｄｍｉｎ` would pass after NFKC,
    // but is not what the operator asked to allow.
    let allowed = if rules.ascii_only {
        is_ascii_username(original)
    } else {
        !original.is_empty()
            && !original
                .chars()
                .any(|c| c.is_whitespace() || c.is_control())
    };
    if !allowed {
        return Err(LoginIdProblem::Format("username"));
    }
    if rules.block_reserved_usernames && is_reserved_username(&nfkc(original)) {
        return Err(LoginIdProblem::Blocked("UsernameReserved"));
    }
    Ok(())
}

/// `[a-zA-Z0-9_.-]+`.
fn is_ascii_username(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// Names that could pass for the operator or a system address. Compared case-insensitively
/// so that `Admin` is blocked under `case_sensitive` too.
pub const RESERVED_USERNAMES: &[&str] = &[
    "about",
    "abuse",
    "account",
    "accounts",
    "admin",
    "administrator",
    "anonymous",
    "api",
    "auth",
    "authflow",
    "billing",
    "blog",
    "config",
    "console",
    "contact",
    "dashboard",
    "dev",
    "developer",
    "email",
    "ftp",
    "guest",
    "help",
    "helpdesk",
    "hostmaster",
    "info",
    "legal",
    "login",
    "logout",
    "mail",
    "marketing",
    "mod",
    "moderator",
    "news",
    "no-reply",
    "noreply",
    "null",
    "oauth",
    "official",
    "owner",
    "postmaster",
    "privacy",
    "profile",
    "register",
    "root",
    "sales",
    "security",
    "settings",
    "signin",
    "signup",
    "sso",
    "staff",
    "status",
    "support",
    "sys",
    "sysadmin",
    "system",
    "team",
    "terms",
    "test",
    "undefined",
    "user",
    "users",
    "webmaster",
    "www",
];

pub fn is_reserved_username(normalized: &str) -> bool {
    let lower = normalized.to_lowercase();
    RESERVED_USERNAMES.contains(&lower.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn email(rules: EmailRules) -> LoginIdRules {
        LoginIdRules::Email(rules)
    }

    fn default_email() -> LoginIdRules {
        email(EmailRules::default())
    }

    fn phone(rules: PhoneRules) -> LoginIdRules {
        LoginIdRules::Phone(rules)
    }

    fn username(rules: UsernameRules) -> LoginIdRules {
        LoginIdRules::Username(rules)
    }

    // ---- email ----

    #[test]
    fn email_trims_lowercases_and_nfkc() {
        let n = normalize_for_signup(&default_email(), "  John.Doe@Example.COM ").unwrap();
        assert_eq!(n.original, "John.Doe@Example.COM");
        assert_eq!(n.normalized, "john.doe@example.com");
        assert_eq!(n.unique_key, "john.doe@example.com");

        // Full-width letters fold to ASCII under NFKC.
        let n = normalize_for_signup(&default_email(), "ｊｏｈｎ@ｅｘａｍｐｌｅ.com").unwrap();
        assert_eq!(n.normalized, "john@example.com");
    }

    #[test]
    fn email_case_sensitive_keeps_local_part() {
        let rules = email(EmailRules {
            case_sensitive: true,
            ..EmailRules::default()
        });
        let n = normalize_for_signup(&rules, "John.Doe@Example.COM").unwrap();
        assert_eq!(n.normalized, "John.Doe@example.com");
    }

    #[test]
    fn email_ignore_dot_sign_only_for_uniqueness() {
        let rules = email(EmailRules {
            ignore_dot_sign: true,
            ..EmailRules::default()
        });
        let n = normalize_for_signup(&rules, "J.O.Doe@mail.example.com").unwrap();
        assert_eq!(n.normalized, "j.o.doe@mail.example.com");
        assert_eq!(n.unique_key, "jodoe@mail.example.com");
        let plain = normalize_for_lookup(&rules, "jodoe@mail.example.com");
        assert_eq!(plain.unique_key, n.unique_key);
    }

    #[test]
    fn email_idn_domain_unique_key_is_ascii() {
        let n = normalize_for_signup(&default_email(), "user@Bücher.de").unwrap();
        assert_eq!(n.normalized, "user@bücher.de");
        assert_eq!(n.unique_key, "user@xn--bcher-kva.de");
        let ascii = normalize_for_lookup(&default_email(), "user@xn--bcher-kva.de");
        assert_eq!(ascii.unique_key, n.unique_key);
    }

    #[test]
    fn email_block_plus_sign() {
        let rules = email(EmailRules {
            block_plus_sign: true,
            ..EmailRules::default()
        });
        assert_eq!(
            normalize_for_signup(&rules, "user+tag@example.com"),
            Err(LoginIdProblem::Blocked("BlockPlusSign"))
        );
        assert!(normalize_for_signup(&rules, "user@example.com").is_ok());
        assert!(normalize_for_signup(&default_email(), "user+tag@example.com").is_ok());
    }

    #[test]
    fn email_max_length_in_characters() {
        let rules = email(EmailRules {
            max_length: 16,
            ..EmailRules::default()
        });
        assert!(normalize_for_signup(&rules, "äääää@example.de").is_ok()); // 16 chars, 21 bytes
        assert_eq!(
            normalize_for_signup(&rules, "ääääää@example.de"),
            Err(LoginIdProblem::MaxLength {
                expected: 16,
                actual: 17
            })
        );
    }

    #[test]
    fn addr_spec_accepts() {
        for ok in [
            "user@example.com",
            "a@b.co",
            "first.last@sub.example.co.uk",
            "user+tag@example.com",
            "o'brien@example.ie",
            "!#$%&'*+-/=?^_`{|}~@example.com",
            "\"john doe\"@example.com",
            "\"a\\\"b\"@example.com",
            "用户@例子.广告",
            "user@localhost",
            "user@xn--bcher-kva.de",
            "user@my-host.example",
            "user@123.example",
        ] {
            assert!(is_addr_spec(ok), "{ok}");
        }
    }

    #[test]
    fn addr_spec_rejects() {
        let long_local = format!("{}@example.com", "a".repeat(65));
        let long_label = format!("user@{}.com", "a".repeat(64));
        for bad in [
            "",
            "user",
            "@example.com",
            "user@",
            "user@@example.com",
            "a@b@example.com",
            "\"a@b\"@example.com",
            ".user@example.com",
            "user.@example.com",
            "us..er@example.com",
            "us er@example.com",
            "user@exa mple.com",
            "user@-example.com",
            "user@example-.com",
            "user@example..com",
            "user@.example.com",
            "user@example.com.",
            "user@exa_mple.com",
            "user@[127.0.0.1]",
            "user@127.0.0.1",
            "user@example.123",
            "\"unclosed@example.com",
            "\"a\"b\"@example.com",
            "user\u{0}@example.com",
            "John <john@example.com>",
            "user@exa%6dple.com",
            long_local.as_str(),
            long_label.as_str(),
        ] {
            assert!(!is_addr_spec(bad), "{bad:?}");
        }
        assert_eq!(
            normalize_for_signup(&default_email(), "not-an-email"),
            Err(LoginIdProblem::Format("email"))
        );
    }

    #[test]
    fn email_lookup_never_fails() {
        let n = normalize_for_lookup(&default_email(), " JDoe ");
        assert_eq!(n.normalized, "jdoe");
        assert_eq!(n.unique_key, "jdoe");
        let n = normalize_for_lookup(&default_email(), "");
        assert_eq!(n.normalized, "");
    }

    // ---- phone ----

    #[test]
    fn phone_valid_e164() {
        let n = normalize_for_signup(&phone(PhoneRules::default()), " +85251001234 ").unwrap();
        assert_eq!(n.original, "+85251001234");
        assert_eq!(n.normalized, "+85251001234");
        assert_eq!(n.unique_key, "+85251001234");
        // Italian fixed line: the leading 0 of the national number is kept.
        let n = normalize_for_signup(&phone(PhoneRules::default()), "+390612345678").unwrap();
        assert_eq!(n.normalized, "+390612345678");
        assert!(normalize_for_signup(&phone(PhoneRules::default()), "+14155552671").is_ok());
    }

    #[test]
    fn phone_rejects_non_e164_shapes() {
        let rules = phone(PhoneRules::default());
        for bad in [
            "85251001234",
            "+852 5100 1234",
            "+852-51001234",
            "+0123456789",
            "+1",
            "+1234567890123456",
            "tel:+85251001234",
            "+85251001234x1",
            "",
        ] {
            assert_eq!(
                normalize_for_signup(&rules, bad),
                Err(LoginIdProblem::Format("phone")),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn phone_valid_versus_possible() {
        // +852 1…: right length (8 digits) for Hong Kong but no such number range.
        let invalid = "+85212345678";
        let strict = phone(PhoneRules::default());
        assert_eq!(
            normalize_for_signup(&strict, invalid),
            Err(LoginIdProblem::Format("phone"))
        );
        let lenient = phone(PhoneRules {
            possible_only: true,
            ..PhoneRules::default()
        });
        assert!(normalize_for_signup(&lenient, invalid).is_ok());
        // Too short even to be possible.
        assert_eq!(
            normalize_for_signup(&lenient, "+852123"),
            Err(LoginIdProblem::Format("phone"))
        );
    }

    #[test]
    fn phone_allowlist() {
        let rules = phone(PhoneRules {
            allowlist: vec!["HK".into(), "us".into()],
            ..PhoneRules::default()
        });
        assert!(normalize_for_signup(&rules, "+85251001234").is_ok());
        assert!(normalize_for_signup(&rules, "+14155552671").is_ok());
        // Canada shares +1 but is not listed.
        assert_eq!(
            normalize_for_signup(&rules, "+16135550123"),
            Err(LoginIdProblem::Format("phone"))
        );
        assert_eq!(
            normalize_for_signup(&rules, "+447400123456"),
            Err(LoginIdProblem::Format("phone"))
        );
    }

    #[test]
    fn phone_max_length() {
        let rules = phone(PhoneRules {
            max_length: 10,
            ..PhoneRules::default()
        });
        assert_eq!(
            normalize_for_signup(&rules, "+85251001234"),
            Err(LoginIdProblem::MaxLength {
                expected: 10,
                actual: 12
            })
        );
    }

    #[test]
    fn phone_lookup_keeps_other_shapes() {
        let rules = phone(PhoneRules::default());
        assert_eq!(normalize_for_lookup(&rules, " jdoe ").unique_key, "jdoe");
        assert_eq!(
            normalize_for_lookup(&rules, "+85251001234").unique_key,
            "+85251001234"
        );
    }

    // ---- username ----

    #[test]
    fn username_normalization() {
        let rules = username(UsernameRules::default());
        let n = normalize_for_signup(&rules, " JDoe_1.x-y ").unwrap();
        assert_eq!(n.original, "JDoe_1.x-y");
        assert_eq!(n.normalized, "jdoe_1.x-y");
        assert_eq!(n.unique_key, "jdoe_1.x-y");

        let sensitive = username(UsernameRules {
            case_sensitive: true,
            ..UsernameRules::default()
        });
        assert_eq!(
            normalize_for_signup(&sensitive, "JDoe").unwrap().normalized,
            "JDoe"
        );
    }

    #[test]
    fn username_ascii_only() {
        let rules = username(UsernameRules::default());
        for bad in ["j doe", "jdoe@x", "jöe", "ｊｄｏｅ", ""] {
            assert_eq!(
                normalize_for_signup(&rules, bad),
                Err(LoginIdProblem::Format("username")),
                "{bad:?}"
            );
        }
        let unicode = username(UsernameRules {
            ascii_only: false,
            ..UsernameRules::default()
        });
        let n = normalize_for_signup(&unicode, "ＪöE").unwrap();
        assert_eq!(n.normalized, "jöe");
        assert_eq!(
            normalize_for_signup(&unicode, "j doe"),
            Err(LoginIdProblem::Format("username"))
        );
        assert_eq!(
            normalize_for_signup(&unicode, "j\u{7}doe"),
            Err(LoginIdProblem::Format("username"))
        );
    }

    #[test]
    fn username_reserved() {
        let rules = username(UsernameRules::default());
        for name in ["admin", "Admin", "ROOT", "support", "www"] {
            assert_eq!(
                normalize_for_signup(&rules, name),
                Err(LoginIdProblem::Blocked("UsernameReserved")),
                "{name}"
            );
        }
        assert!(normalize_for_signup(&rules, "admin2").is_ok());
        // After NFKC: full-width "ａｄｍｉｎ" is "admin".
        let unicode = username(UsernameRules {
            ascii_only: false,
            case_sensitive: true,
            ..UsernameRules::default()
        });
        assert_eq!(
            normalize_for_signup(&unicode, "ＡＤＭＩＮ"),
            Err(LoginIdProblem::Blocked("UsernameReserved"))
        );
        let open = username(UsernameRules {
            block_reserved_usernames: false,
            ..UsernameRules::default()
        });
        assert!(normalize_for_signup(&open, "admin").is_ok());
        assert!(RESERVED_USERNAMES.len() >= 50);
    }

    #[test]
    fn username_max_length() {
        let rules = username(UsernameRules::default());
        assert!(normalize_for_signup(&rules, &"a".repeat(40)).is_ok());
        assert_eq!(
            normalize_for_signup(&rules, &"a".repeat(41)),
            Err(LoginIdProblem::MaxLength {
                expected: 40,
                actual: 41
            })
        );
    }

    #[test]
    fn lookup_skips_format_checks() {
        let rules = username(UsernameRules::default());
        let n = normalize_for_lookup(&rules, "Some One@x");
        assert_eq!(n.unique_key, "some one@x");
        let n = normalize_for_lookup(&rules, "admin");
        assert_eq!(n.unique_key, "admin");
    }
}
