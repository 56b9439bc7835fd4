//! Connection errors and URL redaction: what an operator sees when the server cannot
//! reach its storage. One line, the URL without its password, the cause.

use std::time::Duration;

/// How long one connection attempt may take before startup gives up.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Why [`crate::connect`] failed. `url` fields are already redacted.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error(
        "unsupported database URL {url}: expected sqlite://, sqlite::memory:, postgres:// or postgresql://"
    )]
    UnsupportedUrl { url: String },
    #[error("invalid {what} URL {url}: {reason}")]
    InvalidUrl {
        what: &'static str,
        url: String,
        reason: String,
    },
    #[error("cannot connect to database {url}: {reason}")]
    Database { url: String, reason: String },
    #[error("cannot migrate database {url}: {reason}")]
    Migrate { url: String, reason: String },
    #[error("cannot connect to state store {url}: {reason}")]
    StateStore { url: String, reason: String },
    /// Another `authflow serve` process uses this SQLite file: its flow state lives in that
    /// process, so a second one would not see it.
    #[error(
        "database {database} is in use by another authflow serve process (lock {lock} is held): \
         with SQLite the flow state lives in the server process, so only one server may use a \
         database file; replicas need PostgreSQL + Redis"
    )]
    Locked { database: String, lock: String },
    #[error("cannot lock {path}: {reason}")]
    Lock { path: String, reason: String },
}

impl ConnectError {
    pub(crate) fn database(url: &str, reason: impl std::fmt::Display) -> Self {
        ConnectError::Database {
            url: redact_url(url),
            reason: one_line(reason),
        }
    }

    pub(crate) fn migrate(url: &str, reason: impl std::fmt::Display) -> Self {
        ConnectError::Migrate {
            url: redact_url(url),
            reason: one_line(reason),
        }
    }

    pub(crate) fn state_store(url: &str, reason: impl std::fmt::Display) -> Self {
        ConnectError::StateStore {
            url: redact_url(url),
            reason: one_line(reason),
        }
    }

    pub(crate) fn invalid(what: &'static str, url: &str, reason: impl std::fmt::Display) -> Self {
        ConnectError::InvalidUrl {
            what,
            url: redact_url(url),
            reason: one_line(reason),
        }
    }

    pub(crate) fn timed_out(url: &str) -> Self {
        Self::database(
            url,
            format_args!("timed out after {}s", CONNECT_TIMEOUT.as_secs()),
        )
    }
}

/// The cause of a sqlx failure in the words an operator needs: for I/O the OS error
/// ("Connection refused (os error 111)") rather than sqlx's wrapper text.
pub(crate) fn sqlx_reason(e: &sqlx::Error) -> String {
    match e {
        sqlx::Error::Io(io) => io.to_string(),
        sqlx::Error::Database(db) => db.message().to_string(),
        sqlx::Error::PoolTimedOut => "timed out waiting for a connection".to_string(),
        other => other.to_string(),
    }
}

/// Error texts may span lines (migration checksums, server notices); a log line must not.
fn one_line(reason: impl std::fmt::Display) -> String {
    reason
        .to_string()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// `url` with any password replaced by `***`: the userinfo password
/// (`postgres://app:secret@db/x`) and `password=` query parameters. Anything else is
/// kept verbatim so the operator recognises the URL they configured.
pub fn redact_url(url: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let mut out = redact_userinfo(base);
    if let Some(query) = query {
        out.push('?');
        out.push_str(&redact_query(query));
    }
    out
}

fn redact_userinfo(base: &str) -> String {
    let Some(scheme_end) = base.find("://").map(|i| i + 3) else {
        return base.to_string();
    };
    let authority_len = base[scheme_end..]
        .find(['/', '#'])
        .unwrap_or(base.len() - scheme_end);
    let authority = &base[scheme_end..scheme_end + authority_len];
    // The last '@' ends the userinfo: a password may itself contain '@'.
    let Some(at) = authority.rfind('@') else {
        return base.to_string();
    };
    let Some(colon) = authority[..at].find(':') else {
        return base.to_string();
    };
    format!(
        "{}:***{}",
        &base[..scheme_end + colon],
        &base[scheme_end + at..]
    )
}

fn redact_query(query: &str) -> String {
    query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((name, _)) if is_secret_param(name) => format!("{name}=***"),
            _ => pair.to_string(),
        })
        .collect::<Vec<_>>()
        .join("&")
}

fn is_secret_param(name: &str) -> bool {
    matches!(
        name.to_ascii_lowercase().as_str(),
        "password" | "pass" | "passwd" | "pwd" | "sslpassword"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_userinfo_password() {
        assert_eq!(
            redact_url("postgres://app:s3cr@t@db:5432/x"),
            "postgres://app:***@db:5432/x"
        );
        assert_eq!(
            redact_url("redis://:pw@cache:6379/0"),
            "redis://:***@cache:6379/0"
        );
    }

    #[test]
    fn keeps_urls_without_password() {
        for url in [
            "postgres://app@db/x",
            "sqlite://./authflow.db",
            "sqlite::memory:",
            "redis://127.0.0.1:6379",
            "postgres://db/x?sslmode=require",
        ] {
            assert_eq!(redact_url(url), url);
        }
    }

    #[test]
    fn redacts_password_query_parameter() {
        assert_eq!(
            redact_url("postgres://db/x?user=app&password=secret&sslmode=require"),
            "postgres://db/x?user=app&password=***&sslmode=require"
        );
    }

    #[test]
    fn error_is_one_line_without_password() {
        let e = ConnectError::database("postgres://app:secret@db:5432/x", "connection\nrefused");
        assert_eq!(
            e.to_string(),
            "cannot connect to database postgres://app:***@db:5432/x: connection refused"
        );
    }
}
