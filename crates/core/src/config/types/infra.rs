//! authflow's own infrastructure sections: `server`, `database`, `state_store`,
//! `messaging`, `secrets` (flow-config.md 4.1–4.5).

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use serde::de::{Deserializer, Error};

use crate::config::de::with;
use crate::config::problem::quote;
use crate::config::rate_limit::MessagingRateLimits;
use crate::config::values::{self, IpNet, Secret};

// ---------------------------------------------------------------------------------------
// server
// ---------------------------------------------------------------------------------------

/// `server` (4.1). `public_origin` is always resolved after loading.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerConfig {
    /// Bind address, `host:port`.
    pub listen: String,
    /// Given, or `http://` + `listen` with an unspecified address made loopback.
    pub public_origin: String,
    /// `public_origin` was not given (`serve` warns when `listen` is not loopback).
    pub public_origin_defaulted: bool,
    pub trusted_proxies: Vec<IpNet>,
    pub allowed_origins: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawServer {
    #[serde(default = "default_listen", deserialize_with = "values::with::listen")]
    listen: String,
    #[serde(default, deserialize_with = "values::with::opt_origin")]
    public_origin: Option<String>,
    #[serde(default)]
    trusted_proxies: Vec<IpNet>,
    #[serde(default, deserialize_with = "values::with::origins")]
    allowed_origins: Vec<String>,
}

fn default_listen() -> String {
    "127.0.0.1:3000".into()
}

impl From<RawServer> for ServerConfig {
    fn from(raw: RawServer) -> Self {
        let defaulted = raw.public_origin.is_none();
        ServerConfig {
            public_origin: raw
                .public_origin
                .unwrap_or_else(|| values::origin_of_listen(&raw.listen)),
            public_origin_defaulted: defaulted,
            listen: raw.listen,
            trusted_proxies: raw.trusted_proxies,
            allowed_origins: raw.allowed_origins,
        }
    }
}

impl<'de> Deserialize<'de> for ServerConfig {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        RawServer::deserialize(d).map(Into::into)
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        RawServer {
            listen: default_listen(),
            public_origin: None,
            trusted_proxies: Vec::new(),
            allowed_origins: Vec::new(),
        }
        .into()
    }
}

impl ServerConfig {
    /// Cookies are `Secure` iff the public origin is https.
    pub fn is_https(&self) -> bool {
        self.public_origin.starts_with("https://")
    }

    /// Host of `public_origin` (default `messaging.app_name`).
    pub fn public_host(&self) -> String {
        url::Url::parse(&self.public_origin)
            .ok()
            .and_then(|u| u.host_str().map(str::to_string))
            .unwrap_or_default()
    }

    /// Whether `public_origin` was defaulted while `listen` is not a loopback address.
    pub fn should_warn_defaulted_origin(&self) -> bool {
        self.public_origin_defaulted && !values::listen_is_loopback(&self.listen)
    }
}

// ---------------------------------------------------------------------------------------
// database
// ---------------------------------------------------------------------------------------

/// `database` (4.2).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseConfig {
    /// `sqlite://PATH` (a relative PATH is resolved against the config file's
    /// directory when loading) or `postgres://…` / `postgresql://…`.
    #[serde(deserialize_with = "database_url")]
    pub url: String,
    #[serde(
        default = "default_max_connections",
        deserialize_with = "with::u32_min::<_, 1>"
    )]
    pub max_connections: u32,
}

fn default_max_connections() -> u32 {
    10
}

/// What `database.url` points at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseKind<'a> {
    Sqlite { path: &'a str },
    Postgres,
}

fn database_url<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let s = String::deserialize(d)?;
    if let Some(path) = s.strip_prefix("sqlite://") {
        if path.is_empty() || path.contains('?') {
            return Err(D::Error::custom(format!(
                "must be sqlite://PATH without a query (got {})",
                quote(&s)
            )));
        }
        return Ok(s);
    }
    if s.starts_with("postgres://") || s.starts_with("postgresql://") {
        values::parse_url(&s, &[]).map_err(D::Error::custom)?;
        return Ok(s);
    }
    Err(D::Error::custom(format!(
        "must be a sqlite:// or postgres:// URL (got {})",
        quote(&s)
    )))
}

impl DatabaseConfig {
    /// The built-in default of `serve` without `--config` (2.5).
    pub fn builtin() -> Self {
        DatabaseConfig {
            url: "sqlite://./authflow.db".into(),
            max_connections: default_max_connections(),
        }
    }

    pub fn kind(&self) -> DatabaseKind<'_> {
        match self.url.strip_prefix("sqlite://") {
            Some(path) => DatabaseKind::Sqlite { path },
            None => DatabaseKind::Postgres,
        }
    }

    /// The URL without its password, for error messages.
    pub fn redacted_url(&self) -> String {
        match url::Url::parse(&self.url) {
            Ok(mut u) if u.password().is_some() => {
                let _ = u.set_password(None);
                u.to_string()
            }
            _ => self.url.clone(),
        }
    }

    /// Makes a relative SQLite path relative to `base_dir` (2.1).
    pub(crate) fn resolve_relative(&mut self, base_dir: &Path) {
        let DatabaseKind::Sqlite { path } = self.kind() else {
            return;
        };
        if Path::new(path).is_absolute() {
            return;
        }
        let relative = path.strip_prefix("./").unwrap_or(path);
        self.url = format!("sqlite://{}", base_dir.join(relative).display());
    }
}

// ---------------------------------------------------------------------------------------
// state_store
// ---------------------------------------------------------------------------------------

/// `state_store` (4.3): Redis for short-lived state shared by replicas.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateStoreConfig {
    #[serde(deserialize_with = "redis_url")]
    pub url: String,
    #[serde(default = "default_key_prefix")]
    pub key_prefix: String,
}

fn default_key_prefix() -> String {
    "authflow:".into()
}

fn redis_url<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let s = String::deserialize(d)?;
    values::parse_url(&s, &["redis", "rediss"]).map_err(D::Error::custom)?;
    Ok(s)
}

// ---------------------------------------------------------------------------------------
// messaging
// ---------------------------------------------------------------------------------------

/// `messaging` (4.4).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MessagingConfig {
    /// Absent: email goes to the development outbox.
    pub smtp: Option<SmtpConfig>,
    pub sms: SmsConfig,
    pub dev_outbox: DevOutboxConfig,
    /// Resolved against the config file's directory when loading.
    pub templates_dir: Option<PathBuf>,
    /// Defaults to the host of `server.public_origin` (filled when loading).
    #[serde(deserialize_with = "with::non_empty_string")]
    pub app_name: String,
    pub rate_limits: MessagingRateLimits,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SmtpMode {
    /// TLS from the first byte.
    Tls,
    /// STARTTLS required.
    #[default]
    Starttls,
    /// No TLS.
    Plain,
}

impl SmtpMode {
    pub fn default_port(self) -> u16 {
        match self {
            SmtpMode::Tls => 465,
            SmtpMode::Starttls => 587,
            SmtpMode::Plain => 25,
        }
    }
}

/// `messaging.smtp`.
#[derive(Debug, Clone, PartialEq)]
pub struct SmtpConfig {
    pub host: String,
    /// Given, or the default of `mode`.
    pub port: u16,
    pub mode: SmtpMode,
    /// Both or neither (checked): SMTP AUTH.
    pub username: Option<String>,
    pub password: Option<Secret>,
    /// `addr@example.com` or `Name <addr@example.com>`.
    pub sender: String,
    pub timeout: Duration,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSmtp {
    #[serde(deserialize_with = "with::non_empty_string")]
    host: String,
    #[serde(default)]
    port: Option<u16>,
    #[serde(default)]
    mode: SmtpMode,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<Secret>,
    #[serde(deserialize_with = "sender")]
    sender: String,
    #[serde(default = "ten_seconds", deserialize_with = "with::duration")]
    timeout: Duration,
}

impl<'de> Deserialize<'de> for SmtpConfig {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = RawSmtp::deserialize(d)?;
        Ok(SmtpConfig {
            port: raw.port.unwrap_or(raw.mode.default_port()),
            host: raw.host,
            mode: raw.mode,
            username: raw.username,
            password: raw.password,
            sender: raw.sender,
            timeout: raw.timeout,
        })
    }
}

fn ten_seconds() -> Duration {
    Duration::from_secs(10)
}

fn is_address(s: &str) -> bool {
    match s.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && !domain.is_empty()
                && !domain.contains('@')
                && !s.contains(char::is_whitespace)
                && !s.contains(['<', '>'])
        }
        None => false,
    }
}

fn sender<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let s = String::deserialize(d)?;
    let address = match s.trim_end().strip_suffix('>') {
        Some(head) => head.rsplit_once('<').map(|(_, addr)| addr),
        None => Some(s.as_str()),
    };
    if address.is_some_and(is_address) {
        Ok(s)
    } else {
        Err(D::Error::custom(format!(
            "must be addr@example.com or Name <addr@example.com> (got {})",
            quote(&s)
        )))
    }
}

/// `messaging.sms`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SmsConfig {
    /// Absent: SMS and WhatsApp go to the outbox.
    pub webhook: Option<SmsWebhookConfig>,
}

/// `messaging.sms.webhook`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmsWebhookConfig {
    #[serde(deserialize_with = "values::with::http_url")]
    pub url: String,
    /// Key of the `X-Authflow-Signature` HMAC-SHA256.
    #[serde(default)]
    pub secret: Option<Secret>,
    #[serde(default = "ten_seconds", deserialize_with = "with::duration")]
    pub timeout: Duration,
}

/// `messaging.dev_outbox`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DevOutboxConfig {
    pub enabled: bool,
    #[serde(deserialize_with = "with::u32_min::<_, 1>")]
    pub max_messages: u32,
}

impl Default for DevOutboxConfig {
    fn default() -> Self {
        DevOutboxConfig {
            enabled: true,
            max_messages: 100,
        }
    }
}

/// Messages that `messaging.templates_dir` may override, and whether they carry a link.
pub const TEMPLATE_MESSAGES: [(&str, bool); 7] = [
    ("verification", false),
    ("authentication_code", false),
    ("login_link", true),
    ("account_recovery_code", false),
    ("account_recovery_link", true),
    ("login_attempted", false),
    ("registration_attempted", false),
];

pub const TEMPLATE_PARTS: [&str; 4] = ["email_subject.txt", "email.txt", "email.html", "sms.txt"];

// ---------------------------------------------------------------------------------------
// secrets
// ---------------------------------------------------------------------------------------

/// `secrets` (4.5).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SecretsConfig {
    /// 32 bytes as base64 or hex (checked); see [`values::decode_encryption_key`].
    #[serde(deserialize_with = "values::with::opt_encryption_key")]
    pub encryption_key: Option<Secret>,
    #[serde(deserialize_with = "values::with::encryption_keys")]
    pub previous_encryption_keys: Vec<Secret>,
}

impl SecretsConfig {
    pub fn encryption_key_bytes(&self) -> Option<[u8; 32]> {
        self.encryption_key
            .as_ref()
            .and_then(|k| values::decode_encryption_key(k.expose()).ok())
    }

    pub fn previous_key_bytes(&self) -> Vec<[u8; 32]> {
        self.previous_encryption_keys
            .iter()
            .filter_map(|k| values::decode_encryption_key(k.expose()).ok())
            .collect()
    }
}
