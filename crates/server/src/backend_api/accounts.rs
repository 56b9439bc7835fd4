//! Users of an organization as `/auth` sees them: found by email, with their primary
//! password; password hashing, policy and history on the same rules as the flow APIs.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use authflow_core::clock::OsRandom;
use authflow_core::credentials::login_id::{
    EmailRules, LoginIdRules, NormalizedLoginId, is_addr_spec, normalize_for_lookup,
    normalize_for_signup,
};
use authflow_core::credentials::password::{
    MAX_PASSWORD_BYTES, PasswordCheck, PasswordHasher, PasswordPolicy, PolicyViolation,
    check_policy,
};
use authflow_core::model::{
    Authenticator, AuthenticatorKind, AuthenticatorType, Identity, LoginIdType, User,
};
use authflow_core::store::Database;

use super::error::AuthApiError;
use crate::AppState;

/// A user with the email identity `/auth` found them by.
#[derive(Debug, Clone)]
pub struct Account {
    pub user: User,
    pub identity: Identity,
    pub password: Option<Authenticator>,
}

impl Account {
    pub fn password_hash(&self) -> Option<&str> {
        self.password
            .as_ref()
            .and_then(Authenticator::password_hash)
    }
}

/// The email login ID key of `identity.login_id.keys` (its name and rules), else `email`
/// with the default rules.
pub fn email_key(app: &AppState) -> (String, LoginIdRules) {
    match app.engine.settings().key_of_type(LoginIdType::Email) {
        Some(key) => (key.key.clone(), key.rules.clone()),
        None => ("email".into(), LoginIdRules::Email(EmailRules::default())),
    }
}

/// An email for a new user: every signup rule of the email key applies.
pub fn email_for_signup(
    app: &AppState,
    param: &'static str,
    input: &str,
) -> Result<NormalizedLoginId, AuthApiError> {
    normalize_for_signup(&email_key(app).1, input)
        .map_err(|_| AuthApiError::invalid(param, "is not a valid email address"))
}

/// An email to look a user up by: syntax only (imported users may predate today's rules).
pub fn email_for_lookup(
    app: &AppState,
    param: &'static str,
    input: &str,
) -> Result<NormalizedLoginId, AuthApiError> {
    let email = normalize_for_lookup(&email_key(app).1, input);
    if is_addr_spec(&email.normalized) {
        Ok(email)
    } else {
        Err(AuthApiError::invalid(param, "is not a valid email address"))
    }
}

/// The user of `email` in `org_id`, with their primary password authenticator.
pub async fn find_account(
    app: &AppState,
    org_id: &str,
    email: &NormalizedLoginId,
) -> Result<Option<Account>, AuthApiError> {
    let db: &dyn Database = app.db.as_ref();
    let key = email_key(app).0;
    let Some(identity) = db.find_identity(org_id, &key, &email.unique_key).await? else {
        return Ok(None);
    };
    let Some(user) = db.get_user(&identity.user_id).await? else {
        return Ok(None);
    };
    let password = db
        .list_authenticators(&user.id)
        .await?
        .into_iter()
        .find(|a| {
            a.kind == AuthenticatorKind::Primary
                && a.authenticator_type == AuthenticatorType::Password
        });
    Ok(Some(Account {
        user,
        identity,
        password,
    }))
}

/// Every rule of `policy` that `password` breaks, as `password_policy_violated`.
pub fn check_new_password(
    policy: &PasswordPolicy,
    param: &'static str,
    password: &str,
    user_inputs: &[&str],
) -> Result<(), AuthApiError> {
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(AuthApiError::invalid(param, "is too long"));
    }
    let violations = check_policy(policy, password, user_inputs);
    if violations.is_empty() {
        Ok(())
    } else {
        Err(AuthApiError::PasswordPolicyViolated { param, violations })
    }
}

/// The current password is always refused; with history on, so are recent ones (as the
/// flow APIs' change-password step does).
pub async fn refuse_reused_password(
    app: &AppState,
    policy: &PasswordPolicy,
    account: &Account,
    password: &str,
    now: DateTime<Utc>,
) -> Result<(), AuthApiError> {
    let mut hashes: Vec<String> = account
        .password_hash()
        .map(str::to_string)
        .into_iter()
        .collect();
    if policy.history_enabled() {
        hashes.extend(recent_password_hashes(app, policy, &account.user.id, now).await?);
    }
    let hasher = app.auth_api.hasher.clone();
    let password = password.to_string();
    let reused = blocking(move || {
        hashes
            .iter()
            .any(|h| hasher.verify(&password, h).is_match())
    })
    .await?;
    if reused {
        return Err(AuthApiError::PasswordPolicyViolated {
            param: "newPassword",
            violations: vec![PolicyViolation::Reused {
                history_size: policy.history_size,
                history_days: policy.history_days,
            }],
        });
    }
    Ok(())
}

async fn recent_password_hashes(
    app: &AppState,
    policy: &PasswordPolicy,
    user_id: &str,
    now: DateTime<Utc>,
) -> Result<Vec<String>, AuthApiError> {
    let days = chrono::Duration::days(i64::from(policy.history_days));
    let limit = if policy.history_days > 0 {
        1000
    } else {
        policy.history_size.max(1)
    };
    let history = app.db.list_password_history(user_id, limit).await?;
    Ok(history
        .into_iter()
        .enumerate()
        .filter(|(i, h)| {
            (*i as u32) < policy.history_size
                || (policy.history_days > 0 && now - h.created_at <= days)
        })
        .map(|(_, h)| h.password_hash)
        .collect())
}

/// An argon2id hash of `password`, computed off the async runtime.
pub async fn hash_password(app: &AppState, password: &str) -> Result<String, AuthApiError> {
    let hasher = app.auth_api.hasher.clone();
    let password = password.to_string();
    blocking(move || hasher.hash(&password, &OsRandom)).await
}

/// Check `password` against `stored`; without a stored hash, spend the same time on a
/// dummy hash and answer `Mismatch`, so timing does not tell whether the user exists.
pub async fn verify_password(
    hasher: &Arc<PasswordHasher>,
    stored: Option<&str>,
    password: &str,
) -> Result<PasswordCheck, AuthApiError> {
    let hasher = hasher.clone();
    let stored = stored.map(str::to_string);
    let password = password.to_string();
    blocking(move || match stored {
        Some(hash) => hasher.verify(&password, &hash),
        None => {
            hasher.dummy_verify(&password);
            PasswordCheck::Mismatch
        }
    })
    .await
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, AuthApiError> {
    authflow_core::credentials::hash_pool::run(work)
        .await
        .map_err(|e| AuthApiError::Internal(format!("password task: {e}")))
}
