//! `reauth` flows (flow-config.md 7.2, authentication-flow-api.md 3.1, 17.9): a known user
//! proves it is still them. The user comes from the ID-token hint of the tied authorization
//! request, else from the request's IdP session cookie; when neither names one, a flow that
//! starts with `identify` asks for an ID token. The flow then asks only for `authenticate`
//! steps.

use super::def::{BranchOption, FlowDef, Identification, StepDef, StepType};
use super::engine::{Engine, RequestContext};
use super::error::{FlowError, FlowResult};
use super::state::FlowState;
use crate::credentials::token;

/// Checks ID tokens for the engine, which holds no signing keys: the server implements it
/// with the keys that sign its ID tokens.
pub trait IdTokenVerifier: Send + Sync {
    /// The `sub` of an ID token that authflow signed. Expiry is ignored: a reauth proves
    /// the user again precisely when their last ID token is old.
    fn subject(&self, id_token: &str) -> Result<String, InvalidIdToken>;
}

/// The token is not an ID token signed by authflow (or is malformed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("invalid ID token")]
pub struct InvalidIdToken;

/// Name the user of a new reauth flow: the ID-token hint first, else the session cookie.
/// Without either, a flow starting with `identify` waits for an `id_token` input.
pub async fn identify_at_create(
    engine: &Engine,
    ctx: &RequestContext,
    flow: &FlowDef,
    state: &mut FlowState,
) -> FlowResult<()> {
    if let Some(hint) = id_token_hint(engine, state).await? {
        // A hint that fails is an error, not a reason to fall back to the cookie: the app
        // asked to re-prove that user, and Authgear answers the same way.
        return identify_by_id_token(engine, state, &hint).await;
    }
    match identify_from_session(engine, ctx, state).await {
        Err(FlowError::NoUserId) if starts_with_identify(flow) => Ok(()),
        other => other,
    }
}

/// Name the flow's user from the IdP session of the request; refuse a flow without one
/// (`AuthenticationFlowNoUserID`) and a disabled user (`DisabledUser`).
pub async fn identify_from_session(
    engine: &Engine,
    ctx: &RequestContext,
    state: &mut FlowState,
) -> FlowResult<()> {
    let Some(secret) = &ctx.session_secret else {
        return Err(FlowError::NoUserId);
    };
    let session = engine
        .db
        .find_session_by_token_hash(&token::sha256_hex(secret))
        .await?
        .filter(|s| s.is_live(engine.clock.now(), engine.settings.session.idle_timeout))
        .ok_or(FlowError::NoUserId)?;
    state.user_id = Some(usable_user(engine, &session.user_id).await?);
    Ok(())
}

/// Name the flow's user from an ID token (the hint or an `id_token` input): its signature
/// must be ours (`ValidationFailed`), and its `sub` the user the flow knows, if any.
pub async fn identify_by_id_token(
    engine: &Engine,
    state: &mut FlowState,
    id_token: &str,
) -> FlowResult<()> {
    let sub = engine
        .id_tokens
        .subject(id_token)
        .map_err(|_| invalid_id_token())?;
    if state.user_id.as_ref().is_some_and(|known| *known != sub) {
        return Err(FlowError::DifferentUserId);
    }
    state.user_id = Some(usable_user(engine, &sub).await?);
    Ok(())
}

/// The branch a reauth `identify` step completes with when the user is already known, so
/// that the nested steps of its `id_token` branch still run.
pub fn known_user_branch(step: &StepDef) -> Option<usize> {
    step.branches.iter().position(|b| {
        matches!(
            b.option,
            BranchOption::Identification(Identification::IdToken)
        )
    })
}

fn invalid_id_token() -> FlowError {
    FlowError::ValidationFailed {
        message: "invalid ID token",
        causes: Vec::new(),
    }
}

async fn id_token_hint(engine: &Engine, state: &FlowState) -> FlowResult<Option<String>> {
    Ok(engine
        .oauth_session(state)
        .await?
        .and_then(|s| s.id_token_hint)
        .filter(|hint| !hint.is_empty()))
}

fn starts_with_identify(flow: &FlowDef) -> bool {
    flow.steps
        .first()
        .is_some_and(|s| s.step_type == StepType::Identify)
}

/// The id of an existing user who may sign in: a deleted one names nobody
/// (`AuthenticationFlowNoUserID`), a disabled one is refused (`DisabledUser`).
async fn usable_user(engine: &Engine, user_id: &str) -> FlowResult<String> {
    match engine.db.get_user(user_id).await? {
        Some(user) if user.disabled => Err(FlowError::DisabledUser {
            reason: user.disabled_reason,
        }),
        Some(user) => Ok(user.id),
        None => Err(FlowError::NoUserId),
    }
}
