//! `reauth` flows (flow-config.md 7.2, authentication-flow-api.md 3.1): a user who already has
//! an IdP session proves it is still them. The user comes from the request's session cookie;
//! the flow then asks only for `authenticate` steps.

use super::engine::{Engine, RequestContext};
use super::error::{FlowError, FlowResult};
use super::state::FlowState;
use crate::credentials::token;

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
    match engine.db.get_user(&session.user_id).await? {
        Some(user) if user.disabled => Err(FlowError::DisabledUser {
            reason: user.disabled_reason,
        }),
        Some(user) => {
            state.user_id = Some(user.id);
            Ok(())
        }
        None => Err(FlowError::NoUserId),
    }
}
