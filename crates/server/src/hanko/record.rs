//! A Hanko flow as stored in the state store: which screen it shows (mostly an engine state
//! token), the screens `back` returns to, and its current CSRF token (spec 3, 5).

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use authflow_core::clock::{OsRandom, SecureRandom};
use authflow_core::credentials::token::constant_time_eq;
use authflow_core::flow::def::Identification;
use authflow_core::store::StateStore;

use super::error::HankoError;

/// A flow expires this long after its start or last executed action (spec 5.2).
pub const FLOW_LIFETIME: Duration = Duration::from_secs(20 * 60);
/// An expired flow id is remembered (410) this long.
const REMEMBERED: Duration = Duration::from_secs(24 * 3600);
/// A request waits at most this long for the flow's lock (spec 5.3).
const LOCK_WAIT: Duration = Duration::from_secs(5);
const LOCK_TTL: Duration = Duration::from_secs(30);
const CSRF_LEN: usize = 32;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FlowPath {
    Registration,
    Login,
    Profile,
}

impl FlowPath {
    pub fn as_str(self) -> &'static str {
        match self {
            FlowPath::Registration => "registration",
            FlowPath::Login => "login",
            FlowPath::Profile => "profile",
        }
    }
}

/// What a concealed flow pretends to show (spec 6.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Pretend {
    MethodChooser,
    Password,
    Passcode,
}

/// One screen of a flow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "screen", rename_all = "snake_case")]
pub enum Screen {
    Preflight,
    /// An engine state, rendered from its action.
    Engine {
        token: String,
    },
    /// `login_password` picked in `login_method_chooser` of this engine state.
    PasswordChosen {
        token: String,
    },
    /// An unknown identifier or a taken email, never to succeed (spec 6.4).
    Concealed {
        pretend: Pretend,
        /// `verification` (registration) or `login`.
        purpose: String,
        password: bool,
        passcode: bool,
        sent_at: Option<DateTime<Utc>>,
    },
    /// `registration_init` without `register_login_identifier` (signup disabled).
    SignupDisabled,
    ProfileInit,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FlowRecord {
    pub id: String,
    pub path: FlowPath,
    pub csrf_token: String,
    pub expires_at: DateTime<Utc>,
    pub screen: Screen,
    /// Screens `back` returns to, the latest last.
    pub history: Vec<Screen>,
    /// `/profile`: the user whose session started the flow.
    pub user_id: Option<String>,
    /// `remember_me` with retention `prompt`.
    pub remember_me: bool,
    /// `passcode_resent` of the next render.
    #[serde(default)]
    pub passcode_resent: bool,
    /// The identifier given at `login_init`: recovery starts from it (spec 8.1).
    #[serde(default)]
    pub login_id: Option<GivenLoginId>,
    /// The password was just reset through this flow: the session's `amr` adds `otp`.
    #[serde(default)]
    pub recovered: bool,
    /// A TOTP code passed `login_otp` (`last_login.mfa_method`; `amr` says only `otp`).
    #[serde(default)]
    pub totp_used: bool,
}

/// An identifier as the user gave it, with how it was read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GivenLoginId {
    pub identification: Identification,
    pub value: String,
}

impl FlowRecord {
    pub fn new(path: FlowPath, now: DateTime<Utc>, lifetime: Duration) -> Self {
        FlowRecord {
            id: uuid_v4(),
            path,
            csrf_token: csrf_token(),
            expires_at: now + chrono::Duration::from_std(lifetime).unwrap_or_default(),
            screen: Screen::Preflight,
            history: Vec::new(),
            user_id: None,
            remember_me: false,
            passcode_resent: false,
            login_id: None,
            recovered: false,
            totp_used: false,
        }
    }

    /// After an executed action: a new token and a new lifetime (spec 5.1, 5.2).
    pub fn rotate(&mut self, now: DateTime<Utc>, lifetime: Duration) {
        self.csrf_token = csrf_token();
        self.expires_at = now + chrono::Duration::from_std(lifetime).unwrap_or_default();
    }

    pub fn csrf_matches(&self, given: Option<&str>) -> bool {
        given.is_some_and(|g| constant_time_eq(g.as_bytes(), self.csrf_token.as_bytes()))
    }

    /// Move to `next`, remembering the current screen for `back`.
    pub fn advance(&mut self, next: Screen) {
        let previous = std::mem::replace(&mut self.screen, next);
        self.history.push(previous);
    }

    /// Move to `next` with no way back (a credential check passed, spec 5.4).
    pub fn replace(&mut self, next: Screen) {
        self.screen = next;
        self.history.clear();
    }
}

fn flow_key(id: &str) -> String {
    format!("hanko:flow:{id}")
}

fn lock_key(id: &str) -> String {
    format!("hanko:lock:{id}")
}

pub async fn save(store: &dyn StateStore, record: &FlowRecord) -> Result<(), HankoError> {
    let json = serde_json::to_string(record)
        .map_err(|e| HankoError::Technical(format!("flow encoding: {e}")))?;
    store
        .put(&flow_key(&record.id), &json, REMEMBERED)
        .await
        .map_err(|e| HankoError::Technical(format!("flow store: {e}")))
}

pub async fn delete(store: &dyn StateStore, id: &str) -> Result<(), HankoError> {
    store
        .delete(&flow_key(id))
        .await
        .map_err(|e| HankoError::Technical(format!("flow store: {e}")))
}

/// The flow `id` of `path`: unknown or of another kind 403, expired 410 (check 4).
pub async fn load(
    store: &dyn StateStore,
    id: &str,
    path: FlowPath,
    now: DateTime<Utc>,
) -> Result<FlowRecord, HankoError> {
    let json = store
        .get(&flow_key(id))
        .await
        .map_err(|e| HankoError::Technical(format!("flow store: {e}")))?
        .ok_or(HankoError::NotPermitted)?;
    let record: FlowRecord = serde_json::from_str(&json)
        .map_err(|e| HankoError::Technical(format!("flow decoding: {e}")))?;
    if record.path != path {
        return Err(HankoError::NotPermitted);
    }
    if now >= record.expires_at {
        return Err(HankoError::FlowExpired);
    }
    Ok(record)
}

/// Serialise requests of one flow across replicas (spec 5.3).
pub async fn lock(store: &dyn StateStore, id: &str) -> Result<(), HankoError> {
    let deadline = tokio::time::Instant::now() + LOCK_WAIT;
    loop {
        let taken = store
            .put_if_absent(&lock_key(id), "1", LOCK_TTL)
            .await
            .map_err(|e| HankoError::Technical(format!("flow lock: {e}")))?;
        if taken {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(HankoError::Technical("flow lock wait timed out".into()));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub async fn unlock(store: &dyn StateStore, id: &str) {
    if let Err(e) = store.delete(&lock_key(id)).await {
        tracing::warn!(error = %e, "releasing a hanko flow lock failed");
    }
}

/// 32 ASCII letters and digits from the OS CSPRNG (rejection sampling, no bias).
pub fn csrf_token() -> String {
    const ALPHABET: &[u8; 62] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut out = String::with_capacity(CSRF_LEN);
    let mut buf = [0u8; 64];
    while out.len() < CSRF_LEN {
        OsRandom.fill(&mut buf);
        for b in buf {
            if out.len() == CSRF_LEN {
                break;
            }
            if b < 248 {
                out.push(ALPHABET[(b % 62) as usize] as char);
            }
        }
    }
    out
}

/// A random UUID v4, lowercase.
pub fn uuid_v4() -> String {
    let mut b = [0u8; 16];
    OsRandom.fill(&mut b);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

pub fn is_uuid(s: &str) -> bool {
    s.len() == 36
        && s.bytes().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => c == b'-',
            _ => c.is_ascii_digit() || (b'a'..=b'f').contains(&c),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_and_ids_have_their_shapes() {
        let t = csrf_token();
        assert_eq!(t.len(), 32);
        assert!(t.bytes().all(|b| b.is_ascii_alphanumeric()));
        assert_ne!(t, csrf_token());
        let id = uuid_v4();
        assert!(is_uuid(&id), "{id}");
        assert_eq!(&id[14..15], "4");
        assert!(!is_uuid("7C1D8C7E-3B0E-4A8E-9F1E-2F6A5D9C4B21"));
    }

    #[test]
    fn back_history_follows_advance_and_replace() {
        let mut r = FlowRecord::new(FlowPath::Login, Utc::now(), FLOW_LIFETIME);
        r.replace(Screen::Engine { token: "a".into() });
        r.advance(Screen::Engine { token: "b".into() });
        assert_eq!(r.history, vec![Screen::Engine { token: "a".into() }]);
        r.replace(Screen::Engine { token: "c".into() });
        assert!(r.history.is_empty());
        assert!(r.csrf_matches(Some(&r.csrf_token.clone())));
        assert!(!r.csrf_matches(Some("nope")));
        assert!(!r.csrf_matches(None));
    }
}
