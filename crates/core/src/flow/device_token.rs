//! Device tokens, "skip the second factor on this device" (authentication-flow-api.md 10):
//! a successful secondary authentication with `request_device_token: true` sets cookie
//! `mfa_device_token`; a later login of the same user from that browser satisfies the
//! secondary `authenticate` step without input. Tokens live in the state store, hashed,
//! for `authentication.device_token.expire_in_days`.

use std::time::Duration;

use serde_json::{Value, json};

use super::action::CookieEffect;
use super::def::{Authentication, BranchOption, StepDef};
use super::engine::{Engine, RequestContext};
use super::error::{Cause, FlowError, FlowResult};
use super::state::FlowState;
use crate::credentials::token;

pub const COOKIE_NAME: &str = "mfa_device_token";
/// 64 Crockford characters (spec 10).
const TOKEN_LEN: usize = 64;

/// `authentication.device_token`.
#[derive(Debug, Clone)]
pub struct DeviceTokenSettings {
    pub disabled: bool,
    pub lifetime: Duration,
}

impl Default for DeviceTokenSettings {
    fn default() -> Self {
        DeviceTokenSettings {
            disabled: false,
            lifetime: Duration::from_secs(30 * 24 * 3600),
        }
    }
}

fn key(secret: &str) -> String {
    format!("devtok:{}", token::sha256_hex(secret))
}

/// The step's `device_token` branch, when device tokens are on.
fn branch_of(engine: &Engine, step: &StepDef) -> Option<usize> {
    if engine.settings.device_token.disabled {
        return None;
    }
    step.branches
        .iter()
        .position(|b| b.option == BranchOption::Authentication(Authentication::DeviceToken))
}

/// `device_token_enabled` of the step's `authentication_data`.
pub fn enabled(engine: &Engine, step: &StepDef) -> bool {
    branch_of(engine, step).is_some()
}

/// The `device_token` branch when the request carries a live token of the flow's user.
pub async fn satisfied_branch(
    engine: &Engine,
    ctx: &RequestContext,
    step: &StepDef,
    state: &FlowState,
) -> FlowResult<Option<usize>> {
    let (Some(branch), Some(secret), Some(user_id)) =
        (branch_of(engine, step), &ctx.device_token, &state.user_id)
    else {
        return Ok(None);
    };
    if secret.len() != TOKEN_LEN {
        return Ok(None);
    }
    let owner = engine.state_store.get(&key(secret)).await?;
    Ok(owner
        .is_some_and(|o| token::constant_time_eq(o.as_bytes(), user_id.as_bytes()))
        .then_some(branch))
}

/// Read `request_device_token` of an authenticate input: only `false` is accepted while the
/// step has no device tokens.
pub fn requested(engine: &Engine, step: &StepDef, input: &Value) -> FlowResult<bool> {
    match input.get("request_device_token") {
        None | Some(Value::Bool(false)) => Ok(false),
        Some(Value::Bool(true)) if enabled(engine, step) => Ok(true),
        Some(Value::Bool(true)) => Err(FlowError::validation(vec![Cause::new(
            "/request_device_token",
            "const",
            json!({"expected": false, "actual": true}),
        )])),
        Some(other) => Err(FlowError::validation(vec![Cause::new(
            "/request_device_token",
            "type",
            json!({"expected": "boolean", "actual": super::input::json_type_name(other)}),
        )])),
    }
}

/// At finish: a new token for the user, and its cookie.
pub async fn issue(engine: &Engine, user_id: &str) -> FlowResult<CookieEffect> {
    let secret = token::random_crockford(&*engine.rng, TOKEN_LEN);
    let lifetime = engine.settings.device_token.lifetime;
    engine
        .state_store
        .put(&key(&secret), user_id, lifetime)
        .await?;
    Ok(CookieEffect {
        name: COOKIE_NAME.to_string(),
        value: secret,
        max_age_seconds: Some(lifetime.as_secs()),
        same_site: "Strict",
        http_only: true,
        secure: engine.settings.secure_cookies,
    })
}
