//! Password policy and hashing (argon2id; bcrypt verified for imports),
//! authentication-flow-api.md 9.4 and flow-config.md 5.3.

use std::fmt;
use std::sync::{Mutex, OnceLock};

use argon2::password_hash::{Output, ParamsString, PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::clock::SecureRandom;
use crate::credentials::token::constant_time_eq;

/// Longer passwords are refused before any policy check or hashing (`ValidationFailed`,
/// `maxLength`, spec 9.4): they only serve to make hashing expensive.
pub const MAX_PASSWORD_BYTES: usize = 8192;

/// `authenticator.password.policy` (flow-config.md 5.3), also the `/auth` API policy
/// (which adds `max_length`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PasswordPolicy {
    pub min_length: u32,
    /// Only the `/auth` API policy has a maximum; `None` = no maximum.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_length: Option<u32>,
    pub uppercase_required: bool,
    pub lowercase_required: bool,
    pub alphabet_required: bool,
    pub digit_required: bool,
    pub symbol_required: bool,
    pub minimum_guessable_level: u8,
    pub excluded_keywords: Vec<String>,
    pub history_size: u32,
    pub history_days: u32,
}

impl Default for PasswordPolicy {
    fn default() -> Self {
        PasswordPolicy {
            min_length: 8,
            max_length: None,
            uppercase_required: false,
            lowercase_required: false,
            alphabet_required: false,
            digit_required: false,
            symbol_required: false,
            minimum_guessable_level: 0,
            excluded_keywords: Vec::new(),
            history_size: 0,
            history_days: 0,
        }
    }
}

impl PasswordPolicy {
    pub fn history_enabled(&self) -> bool {
        self.history_size > 0 || self.history_days > 0
    }
}

// ---------------------------------------------------------------------------------------
// Policy
// ---------------------------------------------------------------------------------------

/// One broken rule of a [`PasswordPolicy`]; the causes of `PasswordPolicyViolated`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicyViolation {
    TooShort {
        min_length: u32,
        pw_length: usize,
    },
    UppercaseRequired,
    LowercaseRequired,
    AlphabetRequired,
    DigitRequired,
    SymbolRequired,
    ContainingExcludedKeywords,
    BelowGuessableLevel {
        min_level: u8,
        pw_level: u8,
    },
    Reused {
        history_size: u32,
        history_days: u32,
    },
    /// Only the `/auth` API policy has a maximum length.
    TooLong {
        max_length: u32,
        pw_length: usize,
    },
}

impl PolicyViolation {
    /// The cause `Name` on the wire.
    pub fn name(&self) -> &'static str {
        match self {
            PolicyViolation::TooShort { .. } => "PasswordTooShort",
            PolicyViolation::UppercaseRequired => "PasswordUppercaseRequired",
            PolicyViolation::LowercaseRequired => "PasswordLowercaseRequired",
            PolicyViolation::AlphabetRequired => "PasswordAlphabetRequired",
            PolicyViolation::DigitRequired => "PasswordDigitRequired",
            PolicyViolation::SymbolRequired => "PasswordSymbolRequired",
            PolicyViolation::ContainingExcludedKeywords => "PasswordContainingExcludedKeywords",
            PolicyViolation::BelowGuessableLevel { .. } => "PasswordBelowGuessableLevel",
            PolicyViolation::Reused { .. } => "PasswordReused",
            PolicyViolation::TooLong { .. } => "PasswordTooLong",
        }
    }

    /// The cause's `Info`; `None` for the character-class and keyword rules.
    pub fn info(&self) -> Option<Value> {
        match *self {
            PolicyViolation::TooShort {
                min_length,
                pw_length,
            } => Some(json!({"min_length": min_length, "pw_length": pw_length})),
            PolicyViolation::BelowGuessableLevel {
                min_level,
                pw_level,
            } => Some(json!({"min_level": min_level, "pw_level": pw_level})),
            PolicyViolation::Reused {
                history_size,
                history_days,
            } => Some(json!({"history_size": history_size, "history_days": history_days})),
            PolicyViolation::TooLong {
                max_length,
                pw_length,
            } => Some(json!({"max_length": max_length, "pw_length": pw_length})),
            _ => None,
        }
    }

    /// `{"Name": ..., "Info"?: {...}}` with the capitalized keys the real server emits.
    pub fn to_cause_json(&self) -> Value {
        let mut cause = Map::new();
        cause.insert("Name".into(), self.name().into());
        if let Some(info) = self.info() {
            cause.insert("Info".into(), info);
        }
        Value::Object(cause)
    }
}

/// Every rule of `policy` that `password` breaks, in the order of spec 9.4's table
/// (`TooLong`, outside the table, last). History is the caller's job: it needs storage.
/// `user_inputs` (login IDs, names) make zxcvbn rate passwords built from them as weak.
pub fn check_policy(
    policy: &PasswordPolicy,
    password: &str,
    user_inputs: &[&str],
) -> Vec<PolicyViolation> {
    let pw_length = password.chars().count();
    let mut out = Vec::new();
    if pw_length < policy.min_length as usize {
        out.push(PolicyViolation::TooShort {
            min_length: policy.min_length,
            pw_length,
        });
    }
    out.extend(class_violations(policy, password));
    if contains_excluded_keyword(&policy.excluded_keywords, password) {
        out.push(PolicyViolation::ContainingExcludedKeywords);
    }
    out.extend(guessable_violation(
        policy.minimum_guessable_level,
        password,
        user_inputs,
    ));
    if let Some(max_length) = policy.max_length.filter(|&m| pw_length > m as usize) {
        out.push(PolicyViolation::TooLong {
            max_length,
            pw_length,
        });
    }
    out
}

/// The character-class rules. Classes are ASCII only, as in Authgear: `é` is a symbol.
fn class_violations(policy: &PasswordPolicy, password: &str) -> Vec<PolicyViolation> {
    let has = |f: fn(&char) -> bool| password.chars().any(|c| f(&c));
    let is_symbol = |c: &char| !c.is_ascii_alphanumeric();
    [
        (
            policy.uppercase_required,
            has(char::is_ascii_uppercase),
            PolicyViolation::UppercaseRequired,
        ),
        (
            policy.lowercase_required,
            has(char::is_ascii_lowercase),
            PolicyViolation::LowercaseRequired,
        ),
        (
            policy.alphabet_required,
            has(char::is_ascii_alphabetic),
            PolicyViolation::AlphabetRequired,
        ),
        (
            policy.digit_required,
            has(char::is_ascii_digit),
            PolicyViolation::DigitRequired,
        ),
        (
            policy.symbol_required,
            has(is_symbol),
            PolicyViolation::SymbolRequired,
        ),
    ]
    .into_iter()
    .filter(|(required, present, _)| *required && !present)
    .map(|(_, _, violation)| violation)
    .collect()
}

fn contains_excluded_keyword(keywords: &[String], password: &str) -> bool {
    let password = password.to_lowercase();
    keywords
        .iter()
        // An empty keyword would match every password; it is a config slip, not a rule.
        .filter(|k| !k.is_empty())
        .any(|k| password.contains(&k.to_lowercase()))
}

/// Level n (1..=5) requires a zxcvbn score ≥ n − 1; the password's level is score + 1.
fn guessable_violation(
    min_level: u8,
    password: &str,
    user_inputs: &[&str],
) -> Option<PolicyViolation> {
    if min_level == 0 {
        return None; // off; also skips zxcvbn, the costly check
    }
    let score = u8::from(zxcvbn::zxcvbn(password, user_inputs).score());
    let pw_level = score + 1;
    (pw_level < min_level).then_some(PolicyViolation::BelowGuessableLevel {
        min_level,
        pw_level,
    })
}

/// The `password_policy` object of step data (spec 9.4), keys in the table's order.
pub fn policy_json(policy: &PasswordPolicy) -> Value {
    let mut m = Map::new();
    m.insert("minimum_length".into(), policy.min_length.into());
    let flags = [
        ("uppercase_required", policy.uppercase_required),
        ("lowercase_required", policy.lowercase_required),
        ("alphabet_required", policy.alphabet_required),
        ("digit_required", policy.digit_required),
        ("symbol_required", policy.symbol_required),
    ];
    for (key, _) in flags.iter().filter(|(_, on)| *on) {
        m.insert((*key).into(), true.into());
    }
    if policy.minimum_guessable_level > 0 {
        let score = policy.minimum_guessable_level - 1;
        m.insert("minimum_zxcvbn_score".into(), score.into());
    }
    m.insert("history".into(), history_json(policy));
    if !policy.excluded_keywords.is_empty() {
        m.insert("excluded_keywords".into(), json!(policy.excluded_keywords));
    }
    Value::Object(m)
}

/// `{"enabled": bool, "size"?: n, "days"?: n}`; zero size/days are omitted, like Go's
/// `omitempty` in the real server.
fn history_json(policy: &PasswordPolicy) -> Value {
    let mut h = Map::new();
    h.insert("enabled".into(), policy.history_enabled().into());
    if policy.history_size > 0 {
        h.insert("size".into(), policy.history_size.into());
    }
    if policy.history_days > 0 {
        h.insert("days".into(), policy.history_days.into());
    }
    Value::Object(h)
}

// ---------------------------------------------------------------------------------------
// Hashing
// ---------------------------------------------------------------------------------------

/// argon2id cost (`authenticator.password.hashing`); defaults are OWASP's minimum.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HashingParams {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
}

impl Default for HashingParams {
    fn default() -> Self {
        HashingParams {
            memory_kib: 19456,
            iterations: 2,
            parallelism: 1,
        }
    }
}

impl HashingParams {
    /// Whether argon2 accepts these (e.g. memory ≥ 8 KiB × parallelism), for `authflow check`.
    pub fn validate(&self) -> Result<(), InvalidHashingParams> {
        self.argon2_params().map(|_| ())
    }

    fn argon2_params(&self) -> Result<Params, InvalidHashingParams> {
        Params::new(self.memory_kib, self.iterations, self.parallelism, None)
            .map_err(|e| InvalidHashingParams(e.to_string()))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid argon2id parameters: {0}")]
pub struct InvalidHashingParams(String);

/// Outcome of [`PasswordHasher::verify`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PasswordCheck {
    /// `needs_rehash`: the stored hash is bcrypt or argon2id with other parameters; the
    /// caller replaces it with [`PasswordHasher::hash`] when the login finishes.
    Match {
        needs_rehash: bool,
    },
    Mismatch,
}

impl PasswordCheck {
    pub fn is_match(self) -> bool {
        matches!(self, PasswordCheck::Match { .. })
    }
}

/// Kinds of stored hash we can verify (the import format's `password.type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashKind {
    Argon2id,
    Bcrypt,
}

/// bcrypt costs above this are refused: each attempt at cost 31 would burn a core for days,
/// so one crafted import could stall logins. Real deployments use 10..=14.
pub const MAX_BCRYPT_COST: u32 = 18;
/// Imported argon2id hashes may ask for at most this much memory per verification (1 GiB)
/// unless the configured parameters ask for more.
pub const MAX_VERIFY_MEMORY_KIB: u32 = 1 << 20;
/// Likewise for iterations and lanes.
pub const MAX_VERIFY_ITERATIONS: u32 = 64;
pub const MAX_VERIFY_PARALLELISM: u32 = 64;

/// The kind of `stored` if it is a well-formed hash that [`PasswordHasher::verify`] would
/// check (cost limits included), for the importer to refuse bad records up front.
pub fn hash_kind(stored: &str) -> Option<HashKind> {
    if parse_bcrypt(stored).is_some() {
        return Some(HashKind::Bcrypt);
    }
    let limits = HashingParams {
        memory_kib: MAX_VERIFY_MEMORY_KIB,
        iterations: MAX_VERIFY_ITERATIONS,
        parallelism: MAX_VERIFY_PARALLELISM,
    };
    parse_argon2id(stored, &limits).map(|_| HashKind::Argon2id)
}

/// Hashes new passwords with argon2id and verifies argon2id and bcrypt hashes.
#[derive(Debug, Clone)]
pub struct PasswordHasher {
    params: HashingParams,
    /// Hash that [`Self::dummy_verify`] checks against; made on first use.
    dummy: OnceLock<String>,
}

impl PasswordHasher {
    /// # Panics
    /// If argon2 refuses `params`; configuration checking calls [`HashingParams::validate`]
    /// first, so this only fires on a programming error. See [`Self::try_new`].
    pub fn new(params: HashingParams) -> Self {
        Self::try_new(params).unwrap_or_else(|e| panic!("{e}"))
    }

    pub fn try_new(params: HashingParams) -> Result<Self, InvalidHashingParams> {
        params.validate()?;
        Ok(PasswordHasher {
            params,
            dummy: OnceLock::new(),
        })
    }

    pub fn params(&self) -> &HashingParams {
        &self.params
    }

    /// An argon2id PHC string (`$argon2id$v=19$m=…,t=…,p=…$salt$hash`) with a 16-byte salt.
    /// Callers refuse passwords over [`MAX_PASSWORD_BYTES`] before hashing.
    pub fn hash(&self, password: &str, rng: &dyn SecureRandom) -> String {
        let mut salt = [0u8; 16];
        rng.fill(&mut salt);
        self.hash_with_salt(password, &salt)
    }

    fn hash_with_salt(&self, password: &str, salt: &[u8; 16]) -> String {
        let params = self
            .params
            .argon2_params()
            .expect("parameters were validated in try_new");
        let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
        let mut output = [0u8; Params::DEFAULT_OUTPUT_LEN];
        with_argon2_memory(params.block_count(), |memory| {
            argon2.hash_password_into_with_memory(password.as_bytes(), salt, &mut output, memory)
        })
        .expect("validated parameters, a valid salt and a bounded password cannot fail");
        let salt = SaltString::encode_b64(salt).expect("16 bytes is a valid salt length");
        PasswordHash {
            algorithm: Algorithm::Argon2id.ident(),
            version: Some(Version::V0x13.into()),
            params: ParamsString::try_from(&params).expect("validated parameters encode"),
            salt: Some(salt.as_salt()),
            hash: Some(Output::new(&output).expect("32 bytes is a valid output length")),
        }
        .to_string()
    }

    /// Checks `password` against a stored argon2id PHC string or bcrypt hash. Anything
    /// unparsable, another algorithm, or a cost beyond the limits is a `Mismatch`.
    pub fn verify(&self, password: &str, stored: &str) -> PasswordCheck {
        if password.len() > MAX_PASSWORD_BYTES {
            return PasswordCheck::Mismatch;
        }
        if stored.starts_with("$2") {
            return verify_bcrypt(password, stored);
        }
        match parse_argon2id(stored, &self.verify_limits()) {
            Some(hash) => self.verify_argon2id(password, &hash),
            None => PasswordCheck::Mismatch,
        }
    }

    /// What `argon2`'s `verify_password` does (parameters, version, salt and output length from
    /// the PHC string), but computed in pooled memory; the output comparison is constant time.
    fn verify_argon2id(&self, password: &str, hash: &PasswordHash<'_>) -> PasswordCheck {
        let (Some(salt), Some(expected)) = (&hash.salt, &hash.hash) else {
            return PasswordCheck::Mismatch;
        };
        let Ok(params) = Params::try_from(hash) else {
            return PasswordCheck::Mismatch;
        };
        let version = match hash.version.map(Version::try_from).transpose() {
            Ok(version) => version.unwrap_or_default(),
            Err(_) => return PasswordCheck::Mismatch,
        };
        let mut salt_buffer = [0u8; 64];
        let Ok(salt) = salt.decode_b64(&mut salt_buffer) else {
            return PasswordCheck::Mismatch;
        };
        let argon2 = Argon2::new(Algorithm::Argon2id, version, params.clone());
        let mut output = vec![0u8; expected.len()];
        let computed = with_argon2_memory(params.block_count(), |memory| {
            argon2.hash_password_into_with_memory(password.as_bytes(), salt, &mut output, memory)
        });
        if computed.is_ok() && constant_time_eq(&output, expected.as_bytes()) {
            PasswordCheck::Match {
                needs_rehash: !self.is_current(hash),
            }
        } else {
            PasswordCheck::Mismatch
        }
    }

    /// Whether `hash` was made with the configured parameters and current version.
    fn is_current(&self, hash: &PasswordHash<'_>) -> bool {
        let Ok(p) = Params::try_from(hash) else {
            return false;
        };
        hash.version == Some(Version::V0x13.into())
            && p.m_cost() == self.params.memory_kib
            && p.t_cost() == self.params.iterations
            && p.p_cost() == self.params.parallelism
    }

    /// Our own parameters always pass, even when configured above the defaults' limits.
    fn verify_limits(&self) -> HashingParams {
        HashingParams {
            memory_kib: self.params.memory_kib.max(MAX_VERIFY_MEMORY_KIB),
            iterations: self.params.iterations.max(MAX_VERIFY_ITERATIONS),
            parallelism: self.params.parallelism.max(MAX_VERIFY_PARALLELISM),
        }
    }

    /// Spends the time of a real verification, for logins of unknown users, so response
    /// time does not reveal whether a login ID exists.
    pub fn dummy_verify(&self, password: &str) {
        let dummy = self
            .dummy
            .get_or_init(|| self.hash_with_salt("authflow dummy password", &[0x5a; 16]));
        std::hint::black_box(self.verify(password, dummy));
    }
}

/// argon2 working memory kept between computations. Allocating it per call (19 MiB with the
/// default parameters) costs page faults and zeroing of fresh pages on every login; argon2
/// writes every block before reading it, so a reused buffer needs no clearing. At most one
/// buffer per core is kept (hashing runs at most once per core), and none larger than
/// [`POOLED_MEMORY_MAX_BLOCKS`] (imported hashes may ask for far more than the configured cost).
static ARGON2_MEMORY: Mutex<Vec<Vec<Block>>> = Mutex::new(Vec::new());
/// 256 MiB: buffers above this are freed after use rather than pooled.
const POOLED_MEMORY_MAX_BLOCKS: usize = 256 * 1024;

fn with_argon2_memory<R>(blocks: usize, compute: impl FnOnce(&mut [Block]) -> R) -> R {
    let pooled = ARGON2_MEMORY
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .pop();
    let mut memory = pooled.unwrap_or_default();
    if memory.len() < blocks {
        memory.resize(blocks, Block::default());
    }
    let result = compute(&mut memory[..blocks]);
    if memory.len() <= POOLED_MEMORY_MAX_BLOCKS {
        let mut pool = ARGON2_MEMORY
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if pool.len() < max_pooled_buffers() {
            pool.push(memory);
        }
    }
    result
}

fn max_pooled_buffers() -> usize {
    static CORES: OnceLock<usize> = OnceLock::new();
    *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// A well-formed argon2id PHC string whose costs are within `limits`.
fn parse_argon2id<'a>(stored: &'a str, limits: &HashingParams) -> Option<PasswordHash<'a>> {
    let hash = PasswordHash::new(stored).ok()?;
    if hash.algorithm != Algorithm::Argon2id.ident() || hash.salt.is_none() || hash.hash.is_none() {
        return None;
    }
    let p = Params::try_from(&hash).ok()?;
    let within = p.m_cost() <= limits.memory_kib
        && p.t_cost() <= limits.iterations
        && p.p_cost() <= limits.parallelism;
    within.then_some(hash)
}

/// The cost of a `$2a$`/`$2b$`/`$2y$` hash: `$2b$NN$` + 22 salt + 31 hash characters.
fn parse_bcrypt(stored: &str) -> Option<u32> {
    let rest = ["$2a$", "$2b$", "$2y$"]
        .iter()
        .find_map(|prefix| stored.strip_prefix(prefix))?;
    let (cost, body) = rest.split_once('$')?;
    let cost: u32 = cost.parse().ok().filter(|_| cost.len() == 2)?;
    let body_ok = body.len() == 53
        && body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'/');
    ((4..=MAX_BCRYPT_COST).contains(&cost) && body_ok).then_some(cost)
}

/// bcrypt only comes from imports: a match always asks for an argon2id rehash.
fn verify_bcrypt(password: &str, stored: &str) -> PasswordCheck {
    if parse_bcrypt(stored).is_none() {
        return PasswordCheck::Mismatch;
    }
    // `verify` (not `non_truncating_verify`) because the exporting system truncated at
    // 72 bytes when it made the hash; the comparison inside is constant time.
    match bcrypt::verify(password, stored) {
        Ok(true) => PasswordCheck::Match { needs_rehash: true },
        _ => PasswordCheck::Mismatch,
    }
}

// ---------------------------------------------------------------------------------------
// Secret
// ---------------------------------------------------------------------------------------

/// A password or code inside a struct: `Debug` prints `***` so it never reaches logs, and
/// equality is constant time. (De)serializes as the plain string.
#[derive(Clone, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn into_inner(self) -> String {
        self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl PartialEq for Secret {
    fn eq(&self, other: &Self) -> bool {
        constant_time_eq(self.0.as_bytes(), other.0.as_bytes())
    }
}

impl Eq for Secret {}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Secret(value)
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Secret(value.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::OsRandom;
    use argon2::password_hash::PasswordHasher as _;

    fn policy() -> PasswordPolicy {
        PasswordPolicy::default()
    }

    /// Cheap parameters so tests stay fast; the code paths are the same.
    fn fast() -> HashingParams {
        HashingParams {
            memory_kib: 64,
            iterations: 1,
            parallelism: 1,
        }
    }

    fn names(v: &[PolicyViolation]) -> Vec<&'static str> {
        v.iter().map(PolicyViolation::name).collect()
    }

    // ---- violations on the wire ----

    #[test]
    fn cause_json_matches_spec_table() {
        let cases = [
            (
                PolicyViolation::TooShort {
                    min_length: 8,
                    pw_length: 3,
                },
                r#"{"Name":"PasswordTooShort","Info":{"min_length":8,"pw_length":3}}"#,
            ),
            (
                PolicyViolation::UppercaseRequired,
                r#"{"Name":"PasswordUppercaseRequired"}"#,
            ),
            (
                PolicyViolation::LowercaseRequired,
                r#"{"Name":"PasswordLowercaseRequired"}"#,
            ),
            (
                PolicyViolation::AlphabetRequired,
                r#"{"Name":"PasswordAlphabetRequired"}"#,
            ),
            (
                PolicyViolation::DigitRequired,
                r#"{"Name":"PasswordDigitRequired"}"#,
            ),
            (
                PolicyViolation::SymbolRequired,
                r#"{"Name":"PasswordSymbolRequired"}"#,
            ),
            (
                PolicyViolation::ContainingExcludedKeywords,
                r#"{"Name":"PasswordContainingExcludedKeywords"}"#,
            ),
            (
                PolicyViolation::BelowGuessableLevel {
                    min_level: 3,
                    pw_level: 1,
                },
                r#"{"Name":"PasswordBelowGuessableLevel","Info":{"min_level":3,"pw_level":1}}"#,
            ),
            (
                PolicyViolation::Reused {
                    history_size: 3,
                    history_days: 90,
                },
                r#"{"Name":"PasswordReused","Info":{"history_size":3,"history_days":90}}"#,
            ),
            (
                PolicyViolation::TooLong {
                    max_length: 64,
                    pw_length: 65,
                },
                r#"{"Name":"PasswordTooLong","Info":{"max_length":64,"pw_length":65}}"#,
            ),
        ];
        for (violation, expected) in cases {
            assert_eq!(violation.to_cause_json().to_string(), expected);
        }
    }

    // ---- check_policy ----

    #[test]
    fn default_policy_only_checks_length() {
        assert!(check_policy(&policy(), "abcdefgh", &[]).is_empty());
        assert_eq!(
            check_policy(&policy(), "abc", &[]),
            vec![PolicyViolation::TooShort {
                min_length: 8,
                pw_length: 3
            }]
        );
    }

    #[test]
    fn length_counts_code_points() {
        // 8 code points, 16 bytes
        assert!(check_policy(&policy(), "éééééééé", &[]).is_empty());
        assert_eq!(
            check_policy(&policy(), "ééééééé", &[]),
            vec![PolicyViolation::TooShort {
                min_length: 8,
                pw_length: 7
            }]
        );
    }

    #[test]
    fn classes_in_table_order() {
        let p = PasswordPolicy {
            min_length: 1,
            uppercase_required: true,
            lowercase_required: true,
            alphabet_required: true,
            digit_required: true,
            symbol_required: true,
            ..policy()
        };
        assert_eq!(
            names(&check_policy(&p, "ÄÖÜ", &[])),
            [
                "PasswordUppercaseRequired",
                "PasswordLowercaseRequired",
                "PasswordAlphabetRequired",
                "PasswordDigitRequired",
            ],
            "non-ASCII letters are symbols, not letters"
        );
        assert_eq!(
            names(&check_policy(&p, "abc", &[])),
            [
                "PasswordUppercaseRequired",
                "PasswordDigitRequired",
                "PasswordSymbolRequired"
            ]
        );
        assert!(
            check_policy(&p, "aB3 ", &[]).is_empty(),
            "space is a symbol"
        );
        assert_eq!(
            names(&check_policy(&p, "ABC1!", &[])),
            ["PasswordLowercaseRequired"]
        );
    }

    #[test]
    fn excluded_keywords_case_insensitive_substrings() {
        let p = PasswordPolicy {
            excluded_keywords: vec!["Acme".into(), String::new()],
            ..policy()
        };
        assert_eq!(
            check_policy(&p, "myACMEpassword", &[]),
            vec![PolicyViolation::ContainingExcludedKeywords]
        );
        assert!(check_policy(&p, "my-ac-me-password", &[]).is_empty());
    }

    #[test]
    fn guessable_levels() {
        let at = |level| PasswordPolicy {
            min_length: 1,
            minimum_guessable_level: level,
            ..policy()
        };
        // "password" scores 0: level 1.
        assert!(check_policy(&at(1), "password", &[]).is_empty());
        assert_eq!(
            check_policy(&at(2), "password", &[]),
            vec![PolicyViolation::BelowGuessableLevel {
                min_level: 2,
                pw_level: 1
            }]
        );
        let strong = "Tr0ub4dour&3-correct-horse-battery-staple";
        assert!(check_policy(&at(5), strong, &[]).is_empty());
        // A password made of the user's own inputs is weak.
        let mine = "jdoe@example.com";
        let v = check_policy(&at(5), mine, &[mine]);
        assert!(
            matches!(v[..], [PolicyViolation::BelowGuessableLevel { min_level: 5, pw_level }] if pw_level < 5),
            "{v:?}"
        );
    }

    #[test]
    fn all_rules_in_order() {
        let p = PasswordPolicy {
            min_length: 10,
            max_length: Some(4),
            digit_required: true,
            minimum_guessable_level: 3,
            excluded_keywords: vec!["pass".into()],
            ..policy()
        };
        assert_eq!(
            names(&check_policy(&p, "password", &[])),
            [
                "PasswordTooShort",
                "PasswordDigitRequired",
                "PasswordContainingExcludedKeywords",
                "PasswordBelowGuessableLevel",
                "PasswordTooLong",
            ]
        );
    }

    #[test]
    fn max_length_only_when_set() {
        let long = "a".repeat(200);
        assert!(check_policy(&policy(), &long, &[]).is_empty());
        let p = PasswordPolicy {
            max_length: Some(199),
            ..policy()
        };
        assert_eq!(
            check_policy(&p, &long, &[]),
            vec![PolicyViolation::TooLong {
                max_length: 199,
                pw_length: 200
            }]
        );
    }

    // ---- policy_json ----

    #[test]
    fn policy_json_default() {
        assert_eq!(
            policy_json(&policy()).to_string(),
            r#"{"minimum_length":8,"history":{"enabled":false}}"#
        );
    }

    #[test]
    fn policy_json_full_in_table_order() {
        let p = PasswordPolicy {
            min_length: 12,
            max_length: Some(64),
            uppercase_required: true,
            lowercase_required: true,
            alphabet_required: true,
            digit_required: true,
            symbol_required: true,
            minimum_guessable_level: 3,
            excluded_keywords: vec!["acme".into()],
            history_size: 3,
            history_days: 90,
        };
        assert_eq!(
            policy_json(&p).to_string(),
            concat!(
                r#"{"minimum_length":12,"uppercase_required":true,"lowercase_required":true,"#,
                r#""alphabet_required":true,"digit_required":true,"symbol_required":true,"#,
                r#""minimum_zxcvbn_score":2,"history":{"enabled":true,"size":3,"days":90},"#,
                r#""excluded_keywords":["acme"]}"#
            )
        );
    }

    #[test]
    fn policy_json_partial() {
        let p = PasswordPolicy {
            digit_required: true,
            minimum_guessable_level: 1,
            history_days: 30,
            ..policy()
        };
        assert_eq!(
            policy_json(&p).to_string(),
            r#"{"minimum_length":8,"digit_required":true,"minimum_zxcvbn_score":0,"history":{"enabled":true,"days":30}}"#
        );
    }

    // ---- hashing ----

    #[test]
    fn default_params() {
        assert_eq!(
            HashingParams::default(),
            HashingParams {
                memory_kib: 19456,
                iterations: 2,
                parallelism: 1
            }
        );
        assert!(HashingParams::default().validate().is_ok());
    }

    #[test]
    fn invalid_params_are_refused() {
        let bad = HashingParams {
            memory_kib: 4,
            iterations: 1,
            parallelism: 1,
        };
        assert!(bad.validate().is_err());
        assert!(PasswordHasher::try_new(bad).is_err());
        let zero_iterations = HashingParams {
            iterations: 0,
            ..fast()
        };
        assert!(PasswordHasher::try_new(zero_iterations).is_err());
    }

    #[test]
    fn hash_is_argon2id_phc_and_verifies() {
        let h = PasswordHasher::new(fast());
        let phc = h.hash("correct horse", &OsRandom);
        assert!(phc.starts_with("$argon2id$v=19$m=64,t=1,p=1$"), "{phc}");
        // 16-byte salt = 22 unpadded base64 characters.
        assert_eq!(phc.split('$').nth(4).unwrap().len(), 22);
        assert_eq!(hash_kind(&phc), Some(HashKind::Argon2id));
        assert_eq!(
            h.verify("correct horse", &phc),
            PasswordCheck::Match {
                needs_rehash: false
            }
        );
        assert_eq!(h.verify("correct horsf", &phc), PasswordCheck::Mismatch);
        assert_ne!(phc, h.hash("correct horse", &OsRandom), "salted");
    }

    #[test]
    fn pooled_hashing_matches_the_argon2_crate() {
        use argon2::password_hash::PasswordVerifier as _;
        let h = PasswordHasher::new(fast());
        let salt = [7u8; 16];
        let ours = h.hash_with_salt("correct horse", &salt);
        let params = fast().argon2_params().unwrap();
        let reference = Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
            .hash_password(b"correct horse", &SaltString::encode_b64(&salt).unwrap())
            .unwrap()
            .to_string();
        assert_eq!(ours, reference);
        // Buffers are reused across calls of other sizes; results stay the reference ones.
        let bigger = PasswordHasher::new(HashingParams {
            memory_kib: 256,
            ..fast()
        });
        let other = bigger.hash_with_salt("x", &salt);
        assert_eq!(h.hash_with_salt("correct horse", &salt), reference);
        let parsed = PasswordHash::new(&other).unwrap();
        assert!(Argon2::default().verify_password(b"x", &parsed).is_ok());
        assert!(h.verify("x", &other).is_match());
        assert_eq!(h.verify("y", &other), PasswordCheck::Mismatch);
    }

    #[test]
    fn default_params_roundtrip() {
        let h = PasswordHasher::new(HashingParams::default());
        let phc = h.hash("pw", &OsRandom);
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert!(h.verify("pw", &phc).is_match());
    }

    #[test]
    fn other_argon2_params_need_rehash() {
        let old = PasswordHasher::new(fast());
        let phc = old.hash("pw", &OsRandom);
        let new = PasswordHasher::new(HashingParams {
            memory_kib: 128,
            ..fast()
        });
        assert_eq!(
            new.verify("pw", &phc),
            PasswordCheck::Match { needs_rehash: true }
        );
        assert_eq!(new.verify("nope", &phc), PasswordCheck::Mismatch);
    }

    #[test]
    fn bcrypt_imports_verify_and_need_rehash() {
        let h = PasswordHasher::new(fast());
        let b = bcrypt::hash("hunter22", 4).unwrap();
        assert!(b.starts_with("$2b$04$"), "{b}");
        assert_eq!(hash_kind(&b), Some(HashKind::Bcrypt));
        assert_eq!(
            h.verify("hunter22", &b),
            PasswordCheck::Match { needs_rehash: true }
        );
        assert_eq!(h.verify("hunter23", &b), PasswordCheck::Mismatch);
        // $2a$ and $2y$ differ only in the prefix for valid UTF-8 passwords.
        for prefix in ["$2a$", "$2y$"] {
            let variant = format!("{prefix}{}", &b[4..]);
            assert!(h.verify("hunter22", &variant).is_match(), "{variant}");
        }
        assert_eq!(
            h.verify("hunter22", &format!("$2x${}", &b[4..])),
            PasswordCheck::Mismatch
        );
    }

    #[test]
    fn known_bcrypt_vector() {
        // From the OpenBSD test suite via the bcrypt crate: "U*U" with cost 5.
        let h = PasswordHasher::new(fast());
        let known = "$2a$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW";
        assert!(h.verify("U*U", known).is_match());
        assert!(!h.verify("U*V", known).is_match());
    }

    #[test]
    fn bcrypt_cost_limit() {
        let b = bcrypt::hash("pw", 4).unwrap();
        let too_costly = format!("$2b$31${}", &b[7..]);
        assert_eq!(hash_kind(&too_costly), None);
        let h = PasswordHasher::new(fast());
        assert_eq!(h.verify("pw", &too_costly), PasswordCheck::Mismatch);
    }

    #[test]
    fn malformed_or_unknown_hashes_mismatch() {
        let h = PasswordHasher::new(fast());
        let phc = h.hash("pw", &OsRandom);
        let argon2i = Argon2::new(
            Algorithm::Argon2i,
            Version::V0x13,
            Params::new(64, 1, 1, None).unwrap(),
        )
        .hash_password(b"pw", &SaltString::encode_b64(&[1; 16]).unwrap())
        .unwrap()
        .to_string();
        let huge_memory = phc.replace("m=64,", "m=4294967295,");
        // 43 base64 characters of output minus 6 leaves 37: a length no base64 text can
        // have, whatever the random salt (minus 5 sometimes still decodes).
        let truncated = &phc[..phc.len() - 6];
        for stored in [
            "",
            "pw",
            "$argon2id$",
            "$argon2id$v=19$m=64,t=1,p=1$",
            truncated,
            huge_memory.as_str(),
            argon2i.as_str(),
            "$2b$04$tooshort",
            "$2b$4$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW",
            "$2b$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOe!",
            "$5$rounds=5000$salt$hash",
            "{SSHA}abcdef",
        ] {
            assert_eq!(
                h.verify("pw", stored),
                PasswordCheck::Mismatch,
                "{stored:?}"
            );
            assert_eq!(hash_kind(stored), None, "{stored:?}");
        }
    }

    #[test]
    fn over_long_password_mismatches() {
        let h = PasswordHasher::new(fast());
        let long = "a".repeat(MAX_PASSWORD_BYTES + 1);
        let phc = h.hash(&long, &OsRandom);
        assert_eq!(h.verify(&long, &phc), PasswordCheck::Mismatch);
        let max = "a".repeat(MAX_PASSWORD_BYTES);
        let phc = h.hash(&max, &OsRandom);
        assert!(h.verify(&max, &phc).is_match());
    }

    #[test]
    fn configured_params_above_import_limits_still_verify() {
        let h = PasswordHasher::new(HashingParams {
            iterations: MAX_VERIFY_ITERATIONS + 1,
            ..fast()
        });
        let phc = h.hash("pw", &OsRandom);
        assert!(h.verify("pw", &phc).is_match());
    }

    #[test]
    fn dummy_verify_runs_repeatedly() {
        let h = PasswordHasher::new(fast());
        h.dummy_verify("whatever");
        h.dummy_verify("");
        h.dummy_verify(&"x".repeat(MAX_PASSWORD_BYTES + 1));
        let dummy = h.dummy.get().expect("dummy hash made on first use");
        assert!(h.verify("authflow dummy password", dummy).is_match());
    }

    #[test]
    fn dummy_verify_costs_a_real_verification() {
        let h = PasswordHasher::new(HashingParams::default());
        let phc = h.hash("pw", &OsRandom);
        h.dummy_verify("warm-up");
        let time = |f: &dyn Fn()| {
            let start = std::time::Instant::now();
            for _ in 0..3 {
                f();
            }
            start.elapsed()
        };
        let real = time(&|| {
            h.verify("wrong", &phc);
        });
        let dummy = time(&|| h.dummy_verify("wrong"));
        // Loose bounds: the machine is shared. A skipped hash would be ~1000× faster.
        assert!(
            dummy * 3 > real && real * 3 > dummy,
            "{real:?} vs {dummy:?}"
        );
    }

    // ---- Secret ----

    #[test]
    fn secret_hides_debug_and_is_transparent() {
        let s = Secret::from("hunter2");
        assert_eq!(format!("{s:?}"), "***");
        assert_eq!(format!("{:?}", Some(&s)), "Some(***)");
        assert_eq!(s.expose(), "hunter2");
        assert_eq!(serde_json::to_string(&s).unwrap(), r#""hunter2""#);
        let back: Secret = serde_json::from_str(r#""hunter2""#).unwrap();
        assert_eq!(back, s);
        assert_ne!(back, Secret::new("hunter3"));
        assert_eq!(back.into_inner(), "hunter2");
    }
}
