//! Changes a signed-in user makes outside any flow (the Hanko dialect's `profile_init`,
//! hanko-flow-api.md 7.4), under the rules flows apply: policy, history, one transaction.

use serde_json::json;

use super::engine::Engine;
use super::error::{Cause, FlowError, FlowResult};
use super::steps;
use crate::credentials::password::{MAX_PASSWORD_BYTES, check_policy};
use crate::credentials::token;
use crate::model::{
    AuditEvent, Authenticator, AuthenticatorKind, AuthenticatorType, DEFAULT_ORG_ID,
    PasswordHistoryEntry,
};
use crate::store::Change;

/// Whether the user has a primary password (`password_update`) or not (`password_create`).
pub async fn has_primary_password(engine: &Engine, user_id: &str) -> FlowResult<bool> {
    Ok(primary_password(engine, user_id).await?.is_some())
}

/// Set the user's primary password: created, or replaced with its history kept. Every other
/// session of the user ends, as after a reset; `keep_session` is the one making the change.
pub async fn set_primary_password(
    engine: &Engine,
    user_id: &str,
    keep_session: &str,
    password: &str,
) -> FlowResult<()> {
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(FlowError::validation(vec![Cause::new(
            "/password",
            "maxLength",
            json!({"expected": MAX_PASSWORD_BYTES, "actual": password.len()}),
        )]));
    }
    let identities = engine.db.list_identities(user_id).await?;
    let login_ids: Vec<&str> = identities.iter().map(|i| i.normalized.as_str()).collect();
    let violations = check_policy(&engine.settings.password_policy, password, &login_ids);
    if !violations.is_empty() {
        return Err(FlowError::PasswordPolicyViolated(violations));
    }
    let existing = primary_password(engine, user_id).await?;
    let current = existing
        .iter()
        .filter_map(|a| a.password_hash().map(str::to_string))
        .collect();
    steps::refuse_reuse(engine, Some(user_id), current, password).await?;
    let hash = steps::hash_password(engine, password.to_string()).await?;
    let now = engine.clock.now();
    let store_password = match existing {
        Some(a) => Change::UpdateAuthenticatorData {
            authenticator_id: a.id,
            data: json!({"password_hash": hash}),
            updated_at: now,
        },
        None => Change::CreateAuthenticator(Authenticator {
            id: token::random_id(&*engine.rng),
            user_id: user_id.to_string(),
            kind: AuthenticatorKind::Primary,
            authenticator_type: AuthenticatorType::Password,
            data: json!({"password_hash": hash}),
            created_at: now,
            updated_at: now,
        }),
    };
    engine
        .db
        .commit(vec![
            store_password,
            Change::AddPasswordHistory(PasswordHistoryEntry {
                user_id: user_id.to_string(),
                password_hash: hash,
                created_at: now,
            }),
            Change::RevokeUserSessions {
                user_id: user_id.to_string(),
                except: Some(keep_session.to_string()),
                at: now,
            },
            Change::AuditEvent(AuditEvent {
                id: token::random_id(&*engine.rng),
                org_id: DEFAULT_ORG_ID.to_string(),
                user_id: Some(user_id.to_string()),
                event_type: "user.password_changed".into(),
                payload: json!({"via": "profile"}),
                created_at: now,
            }),
        ])
        .await?;
    Ok(())
}

async fn primary_password(engine: &Engine, user_id: &str) -> FlowResult<Option<Authenticator>> {
    Ok(engine
        .db
        .list_authenticators(user_id)
        .await?
        .into_iter()
        .find(|a| {
            a.kind == AuthenticatorKind::Primary
                && a.authenticator_type == AuthenticatorType::Password
        }))
}
