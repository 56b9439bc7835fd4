//! Second factors with their own credentials: TOTP (enrolment in `create_authenticator`,
//! login in `authenticate`) and recovery codes (shown by `view_recovery_code`, used once
//! each to log in). Authentication-flow-api.md 8.4, 8.8, 8.10, 9.5, 9.6.
//!
//! Failures count exactly like wrong passwords: the method's rate-limit buckets (a token
//! per attempt, given back on success) and, when configured, the account lockout.

use std::time::Duration;

use serde_json::{Value, json};

use super::action::{Action, Shown};
use super::def::FlowDef;
use super::engine::{Engine, RequestContext};
use super::error::{Cause, FlowError, FlowResult};
use super::input::{max_length_cause, required_cause, string_member};
use super::limits::Bucket;
use super::state::{FlowState, RecoveryCodeSetup, TotpSetup, complete_step};
use super::steps::{Consumed, Entered, user_authenticators};
use crate::config::LockoutKind;
use crate::credentials::recovery;
use crate::credentials::token;
use crate::credentials::totp::{self, TotpSecret};
use crate::model::{Authenticator, AuthenticatorKind, AuthenticatorType, RecoveryCode};

/// Longest `recovery_code` input read: generated codes are 10 characters and imported ones
/// at most 64 after normalization; this leaves room for separators, and bounds hashing.
const MAX_RECOVERY_CODE_INPUT: usize = 128;

/// How long an accepted TOTP step stays marked as used in the state store: longer than
/// the ±1 step window in which its code is valid, so a concurrent flow cannot reuse it
/// before the first one has written `last_used_step` to the authenticator.
const USED_STEP_MEMORY: Duration = Duration::from_secs(totp::PERIOD_SECONDS * 4);

fn user_of(state: &FlowState) -> FlowResult<String> {
    state
        .user_id
        .clone()
        .ok_or_else(|| FlowError::InvalidFlowConfig("second factor before identify".into()))
}

fn add_amr(state: &mut FlowState, method: &str) {
    if !state.amr.iter().any(|m| m == method) {
        state.amr.push(method.to_string());
    }
}

/// `VerifyTOTPPerIP` / `VerifyTOTPPerUserPerIP` (flow-config.md 6, spec 17.8).
fn totp_buckets(engine: &Engine, ctx: &RequestContext, user_id: &str) -> Vec<Bucket> {
    let limits = &engine.settings.rate_limits;
    let mut buckets = Vec::new();
    if let Some(limit) = limits.totp_per_ip {
        buckets.push(Bucket::new(
            "VerifyTOTPPerIP",
            &ctx.ip,
            limit,
            Some(("authentication.totp.per_ip", "authentication.totp")),
        ));
    }
    if let Some(limit) = limits.totp_per_user_per_ip {
        buckets.push(Bucket::new(
            "VerifyTOTPPerUserPerIP",
            &format!("{user_id}:{}", ctx.ip),
            limit,
            Some(("authentication.totp.per_user_per_ip", "authentication.totp")),
        ));
    }
    buckets
}

/// `VerifyRecoveryCodePerIP` / `VerifyRecoveryCodePerUserPerIP`.
fn recovery_buckets(engine: &Engine, ctx: &RequestContext, user_id: &str) -> Vec<Bucket> {
    let limits = &engine.settings.rate_limits;
    let mut buckets = Vec::new();
    if let Some(limit) = limits.recovery_code_per_ip {
        buckets.push(Bucket::new(
            "VerifyRecoveryCodePerIP",
            &ctx.ip,
            limit,
            Some((
                "authentication.recovery_code.per_ip",
                "authentication.recovery_code",
            )),
        ));
    }
    if let Some(limit) = limits.recovery_code_per_user_per_ip {
        buckets.push(Bucket::new(
            "VerifyRecoveryCodePerUserPerIP",
            &format!("{user_id}:{}", ctx.ip),
            limit,
            Some((
                "authentication.recovery_code.per_user_per_ip",
                "authentication.recovery_code",
            )),
        ));
    }
    buckets
}

/// The associated data recovery codes awaiting confirmation are sealed with.
fn recovery_seal_context(user_id: &str) -> String {
    format!("recovery_codes:{user_id}")
}

/// Opens a sealed TOTP secret; `stale` when it was sealed with a previous key.
fn open_secret(engine: &Engine, user_id: &str, sealed: &str) -> FlowResult<(TotpSecret, bool)> {
    let opened = engine
        .sealer
        .open(&totp::seal_context(user_id), sealed)
        .map_err(|e| FlowError::Unexpected(format!("TOTP secret: {e}")))?;
    let secret = TotpSecret::from_bytes(opened.plaintext)
        .map_err(|e| FlowError::Unexpected(format!("TOTP secret: {e}")))?;
    Ok((secret, opened.stale))
}

// ---------------------------------------------------------------------------------------
// TOTP enrolment (create_authenticator, spec 8.7 / 8.8)

/// `{"authentication": "secondary_totp"}`: make the secret the next state shows.
pub(super) fn start_totp_setup(
    engine: &Engine,
    state: &mut FlowState,
    branch: usize,
) -> FlowResult<Consumed> {
    let user_id = user_of(state)?;
    let secret = TotpSecret::generate(&*engine.rng);
    let sealed_secret = engine.sealer.seal(
        &*engine.rng,
        &totp::seal_context(&user_id),
        secret.as_bytes(),
    );
    state.totp_setup = Some(TotpSetup {
        cursor: state.cursor.clone(),
        branch,
        sealed_secret,
    });
    Ok(Consumed::Yes)
}

/// `create_totp_data`: the secret and its `otpauth://` URI, the same on every re-read.
pub(super) fn render_totp_setup(
    engine: &Engine,
    state: &FlowState,
    setup: &TotpSetup,
) -> FlowResult<Action> {
    let (secret, _) = open_secret(engine, &user_of(state)?, &setup.sealed_secret)?;
    let account = state
        .identified
        .first()
        .map(|i| i.normalized.as_str())
        .unwrap_or_default();
    let uri = totp::otpauth_uri(&secret, &engine.settings.public_origin, account);
    Ok(Action::CreateTotp {
        secret: Shown::new(secret.to_base32()),
        otpauth_uri: Shown::new(uri),
    })
}

/// `{"code"}` from the user's app proves the secret arrived; the authenticator is written
/// at finish, in the format `authflow user import` uses, with the step just used.
pub(super) async fn confirm_totp_setup(
    engine: &Engine,
    ctx: &RequestContext,
    flow: &FlowDef,
    state: &mut FlowState,
    input: &Value,
) -> FlowResult<Consumed> {
    let code = match string_member(input, "code") {
        Ok(c) => c,
        Err(causes) => return Ok(Consumed::Misfit(causes)),
    };
    let setup = state
        .active_totp_setup()
        .cloned()
        .ok_or_else(|| FlowError::InvalidFlowConfig("no TOTP setup".into()))?;
    let user_id = user_of(state)?;
    let (secret, _) = open_secret(engine, &user_id, &setup.sealed_secret)?;
    let buckets = totp_buckets(engine, ctx, &user_id);
    engine.limiter.take_all(&buckets).await?;
    let now = engine.clock.now();
    let Some(step) = totp::verify(&secret, code, now, None) else {
        return Err(FlowError::InvalidCredentials {
            authentication_type: "totp",
        });
    };
    engine.limiter.give_back_all(&buckets).await?;
    state.pending.authenticators.push(Authenticator {
        id: token::random_id(&*engine.rng),
        user_id,
        kind: AuthenticatorKind::Secondary,
        authenticator_type: AuthenticatorType::Totp,
        data: json!({
            totp::DATA_SEALED_SECRET: setup.sealed_secret,
            totp::DATA_LAST_USED_STEP: step,
        }),
        created_at: now,
        updated_at: now,
    });
    add_amr(state, "otp");
    state.totp_setup = None;
    complete_step(flow, &mut state.cursor, Some(setup.branch));
    Ok(Consumed::Yes)
}

// ---------------------------------------------------------------------------------------
// TOTP login (authenticate, spec 8.4 / 9.5)

/// The user's secondary TOTP authenticators not yet used in this flow.
pub(super) fn usable_totp<'a>(
    authenticators: &'a [Authenticator],
    state: &FlowState,
) -> Vec<&'a Authenticator> {
    authenticators
        .iter()
        .filter(|a| {
            a.kind == AuthenticatorKind::Secondary
                && a.authenticator_type == AuthenticatorType::Totp
                && !state.used_authenticator_ids.contains(&a.id)
        })
        .collect()
}

/// A TOTP authenticator the code matches, the step it matched, and its data to store
/// (the step recorded, the secret sealed again when it was sealed with an old key).
struct TotpMatch {
    authenticator_id: String,
    step: u64,
    data: Value,
}

fn match_totp(
    engine: &Engine,
    user_id: &str,
    candidates: &[&Authenticator],
    code: &str,
) -> FlowResult<Option<TotpMatch>> {
    let now = engine.clock.now();
    for a in candidates {
        let Some(sealed) = a.data.get(totp::DATA_SEALED_SECRET).and_then(Value::as_str) else {
            continue;
        };
        let last_used = a
            .data
            .get(totp::DATA_LAST_USED_STEP)
            .and_then(Value::as_u64);
        let (secret, stale) = open_secret(engine, user_id, sealed)?;
        let Some(step) = totp::verify(&secret, code, now, last_used) else {
            continue;
        };
        let mut data = a.data.clone();
        data[totp::DATA_LAST_USED_STEP] = json!(step);
        if stale {
            data[totp::DATA_SEALED_SECRET] = json!(engine.sealer.seal(
                &*engine.rng,
                &totp::seal_context(user_id),
                secret.as_bytes()
            ));
        }
        return Ok(Some(TotpMatch {
            authenticator_id: a.id.clone(),
            step,
            data,
        }));
    }
    Ok(None)
}

/// Marks `step` of the authenticator as used; `false` when another flow already did.
async fn claim_totp_step(engine: &Engine, authenticator_id: &str, step: u64) -> FlowResult<bool> {
    Ok(engine
        .state_store
        .put_if_absent(
            &format!("totpstep:{authenticator_id}:{step}"),
            "used",
            USED_STEP_MEMORY,
        )
        .await?)
}

/// `{"authentication": "secondary_totp", "code"}`.
pub(super) async fn login_with_totp(
    engine: &Engine,
    ctx: &RequestContext,
    flow: &FlowDef,
    state: &mut FlowState,
    branch: usize,
    input: &Value,
) -> FlowResult<Consumed> {
    let code = match string_member(input, "code") {
        Ok(c) => c,
        Err(causes) => return Ok(Consumed::Misfit(causes)),
    };
    let user_id = user_of(state)?;
    engine
        .lockout
        .ensure_unlocked(LockoutKind::Totp, &user_id, &ctx.ip)
        .await?;
    let buckets = totp_buckets(engine, ctx, &user_id);
    engine.limiter.take_all(&buckets).await?;
    let authenticators = user_authenticators(engine, state).await?;
    let candidates = usable_totp(&authenticators, state);
    let matched = match match_totp(engine, &user_id, &candidates, code)? {
        Some(m) if claim_totp_step(engine, &m.authenticator_id, m.step).await? => Some(m),
        _ => None,
    };
    let Some(matched) = matched else {
        engine
            .lockout
            .record_failure(LockoutKind::Totp, &user_id, &ctx.ip)
            .await?;
        return Err(FlowError::InvalidCredentials {
            authentication_type: "totp",
        });
    };
    engine.limiter.give_back_all(&buckets).await?;
    state
        .pending
        .authenticator_updates
        .push((matched.authenticator_id.clone(), matched.data));
    state.used_authenticator_ids.push(matched.authenticator_id);
    add_amr(state, "otp");
    complete_step(flow, &mut state.cursor, Some(branch));
    Ok(Consumed::Yes)
}

// ---------------------------------------------------------------------------------------
// recovery codes (spec 8.10, 9.6)

/// The user's stored codes that are neither consumed nor used earlier in this flow.
async fn unused_recovery_codes(
    engine: &Engine,
    state: &FlowState,
) -> FlowResult<Vec<RecoveryCode>> {
    let Some(user_id) = &state.user_id else {
        return Ok(Vec::new());
    };
    if state.is_new_user {
        return Ok(Vec::new());
    }
    let consumed = &state.pending.consumed_recovery_codes;
    Ok(engine
        .db
        .list_recovery_codes(user_id)
        .await?
        .into_iter()
        .filter(|c| c.consumed_at.is_none() && !consumed.contains(&c.id))
        .collect())
}

pub(super) async fn has_unused_recovery_code(
    engine: &Engine,
    state: &FlowState,
) -> FlowResult<bool> {
    Ok(!unused_recovery_codes(engine, state).await?.is_empty())
}

/// Marks a code as taken by this flow until it commits (the database refuses a second
/// consumption too, but only at finish).
async fn claim_recovery_code(engine: &Engine, id: &str) -> FlowResult<bool> {
    Ok(engine
        .state_store
        .put_if_absent(
            &format!("recoverycode:{id}"),
            "used",
            engine.settings.state_ttl,
        )
        .await?)
}

/// `{"authentication": "recovery_code", "recovery_code"}`.
pub(super) async fn login_with_recovery_code(
    engine: &Engine,
    ctx: &RequestContext,
    flow: &FlowDef,
    state: &mut FlowState,
    branch: usize,
    input: &Value,
) -> FlowResult<Consumed> {
    let code = match string_member(input, "recovery_code") {
        Ok(c) if c.len() > MAX_RECOVERY_CODE_INPUT => {
            return Err(FlowError::validation(vec![max_length_cause(
                "recovery_code",
                MAX_RECOVERY_CODE_INPUT,
                c.len(),
            )]));
        }
        Ok(c) => c,
        Err(causes) => return Ok(Consumed::Misfit(causes)),
    };
    let user_id = user_of(state)?;
    engine
        .lockout
        .ensure_unlocked(LockoutKind::RecoveryCode, &user_id, &ctx.ip)
        .await?;
    let buckets = recovery_buckets(engine, ctx, &user_id);
    engine.limiter.take_all(&buckets).await?;
    let codes = unused_recovery_codes(engine, state).await?;
    let found = recovery::find_unused(&codes, code).map(|c| c.id.clone());
    let claimed = match found {
        Some(id) if claim_recovery_code(engine, &id).await? => Some(id),
        _ => None,
    };
    let Some(id) = claimed else {
        engine
            .lockout
            .record_failure(LockoutKind::RecoveryCode, &user_id, &ctx.ip)
            .await?;
        return Err(FlowError::InvalidCredentials {
            authentication_type: "recovery_code",
        });
    };
    engine.limiter.give_back_all(&buckets).await?;
    state.pending.consumed_recovery_codes.push(id);
    complete_step(flow, &mut state.cursor, Some(branch));
    Ok(Consumed::Yes)
}

/// Entering `view_recovery_code` generates the codes once for this position.
pub(super) fn enter_view_recovery_code(
    engine: &Engine,
    state: &mut FlowState,
) -> FlowResult<Entered> {
    if state.active_recovery_setup().is_none() {
        let user_id = user_of(state)?;
        let codes = recovery::generate(&*engine.rng, engine.settings.recovery_code_count);
        let sealed_codes = engine.sealer.seal(
            &*engine.rng,
            &recovery_seal_context(&user_id),
            codes.join(",").as_bytes(),
        );
        state.recovery_setup = Some(RecoveryCodeSetup {
            cursor: state.cursor.clone(),
            sealed_codes,
        });
    }
    Ok(Entered::NeedsInput)
}

fn shown_codes(engine: &Engine, state: &FlowState) -> FlowResult<Vec<String>> {
    let setup = state
        .active_recovery_setup()
        .ok_or_else(|| FlowError::InvalidFlowConfig("recovery codes not generated".into()))?;
    let opened = engine
        .sealer
        .open(
            &recovery_seal_context(&user_of(state)?),
            &setup.sealed_codes,
        )
        .map_err(|e| FlowError::Unexpected(format!("recovery codes: {e}")))?;
    let text = String::from_utf8(opened.plaintext)
        .map_err(|_| FlowError::Unexpected("recovery codes: not UTF-8".into()))?;
    Ok(text.split(',').map(str::to_string).collect())
}

/// `view_recovery_code_data`: the codes without separators (spec 8.10).
pub(super) fn render_view_recovery_code(engine: &Engine, state: &FlowState) -> FlowResult<Action> {
    Ok(Action::ViewRecoveryCode {
        recovery_codes: shown_codes(engine, state)?
            .into_iter()
            .map(Shown::new)
            .collect(),
    })
}

/// `{"confirm_recovery_code": true}`: the codes are stored (hashed) at finish.
pub(super) fn confirm_recovery_codes(
    engine: &Engine,
    flow: &FlowDef,
    state: &mut FlowState,
    input: &Value,
) -> FlowResult<Consumed> {
    match input.get("confirm_recovery_code") {
        Some(Value::Bool(true)) => {}
        None => {
            return Ok(Consumed::Misfit(vec![
                required_cause(input, &["confirm_recovery_code"]).expect("member is missing"),
            ]));
        }
        Some(other) => {
            return Ok(Consumed::Misfit(vec![Cause::new(
                "/confirm_recovery_code",
                "const",
                json!({"expected": true, "actual": other}),
            )]));
        }
    }
    let codes = shown_codes(engine, state)?;
    let user_id = user_of(state)?;
    // A later view step replaces the codes of an earlier one: only the last set was shown.
    state.pending.recovery_codes =
        recovery::records(&*engine.rng, &user_id, &codes, engine.clock.now());
    state.recovery_setup = None;
    complete_step(flow, &mut state.cursor, None);
    Ok(Consumed::Yes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_showing_secrets_do_not_debug_print_them() {
        let action = Action::CreateTotp {
            secret: Shown::new("JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP".into()),
            otpauth_uri: Shown::new("otpauth://totp/?secret=JBSWY3DPEHPK3PXP".into()),
        };
        let printed = format!("{action:?}");
        assert!(!printed.contains("JBSWY3DP"), "{printed}");
        let codes = Action::ViewRecoveryCode {
            recovery_codes: vec![Shown::new("94X5NST2VM".into())],
        };
        let printed = format!("{codes:?}");
        assert!(!printed.contains("94X5NST2VM"), "{printed}");
        assert!(printed.contains("***"), "{printed}");
    }

    #[test]
    fn sealed_codes_are_bound_to_their_user() {
        assert_ne!(recovery_seal_context("U1"), recovery_seal_context("U2"));
        assert_ne!(recovery_seal_context("U1"), totp::seal_context("U1"));
    }
}
