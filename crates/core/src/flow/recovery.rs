//! Account recovery (authentication-flow-api.md 8.12–8.15, flow-config.md 7.6): identify a
//! login ID, pick a destination, prove the code sent there, set a new password.
//!
//! An unknown login ID (`on_failure: ignore`) runs the same steps with the same answers and
//! sends nothing, so the API does not tell who has an account.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::action::{Action, DestinationOption};
use super::def::{
    BranchOption, Channel, Destination, FlowDef, OnFailure, OtpForm, StepDef, StepType,
};
use super::engine::{Engine, RequestContext};
use super::error::{Cause, FlowError, FlowResult};
use super::input::{required_cause, string_member};
use super::oob;
use super::otp::{CodeCheck, LinkSpec, OtpSettings, Purpose};
use super::settings::OtpLimits;
use super::state::{FlowState, complete_step, current_step};
use super::steps::{self, Consumed};
use crate::credentials::login_id;
use crate::credentials::password::policy_json;
use crate::credentials::token;
use crate::model::{AuthenticatorKind, AuthenticatorType, DEFAULT_ORG_ID, LoginIdType};

/// The page a recovery link opens (served by the server crate).
pub const RESET_LINK_PATH: &str = "/authflow/v2/reset_password";

/// `forgot_password` settings the engine needs.
#[derive(Debug, Clone)]
pub struct RecoverySettings {
    /// `forgot_password.enabled`.
    pub enabled: bool,
    pub email: OtpSettings,
    pub sms: OtpSettings,
    /// `forgot_password.valid_periods.link`.
    pub link_valid: Duration,
    /// `forgot_password.rate_limits.{email,sms}`: `trigger_per_ip` and `validate_per_ip`.
    pub email_limits: OtpLimits,
    pub sms_limits: OtpLimits,
}

impl Default for RecoverySettings {
    fn default() -> Self {
        RecoverySettings {
            enabled: true,
            email: OtpSettings::default(),
            sms: OtpSettings::default(),
            link_valid: Duration::from_secs(20 * 60),
            email_limits: OtpLimits::default(),
            sms_limits: OtpLimits::default(),
        }
    }
}

impl RecoverySettings {
    pub fn otp(&self, channel: Channel) -> OtpSettings {
        match channel {
            Channel::Email => self.email,
            _ => self.sms,
        }
    }
}

/// What an account recovery flow has learnt so far. The flow's `user_id` is `None` when
/// no user has the login ID: the flow goes on, and nothing is ever sent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecoveryState {
    pub login_id_type: LoginIdType,
    /// The normalized login ID: where codes go.
    pub target: String,
    pub destination: Option<Destination>,
    /// The code that passed `verify_account_recovery_code`; spent at finish (spec 8.15).
    #[serde(default)]
    pub proven_code: Option<String>,
    /// Every email and phone login ID of a known user, the identified one first: what
    /// `enumerate_destinations: true` lists (spec 8.13). Empty for an unknown login ID.
    #[serde(default)]
    pub user_targets: Vec<RecoveryTarget>,
}

/// A login ID a recovery code can go to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecoveryTarget {
    pub login_id_type: LoginIdType,
    /// Normalized.
    pub value: String,
}

/// `identify` in an `account_recovery` flow.
pub async fn identify(
    engine: &Engine,
    step: &StepDef,
    branch: usize,
    state: &mut FlowState,
    login_id_type: LoginIdType,
    login_id: &str,
) -> FlowResult<()> {
    if !matches!(login_id_type, LoginIdType::Email | LoginIdType::Phone) {
        return Err(FlowError::validation(vec![Cause::new(
            "/identification",
            "enum",
            json!({"expected": ["email", "phone"]}),
        )]));
    }
    let key = engine
        .settings
        .key_of_type(login_id_type)
        .ok_or_else(|| FlowError::InvalidFlowConfig("no login ID key".into()))?;
    // Validate the format as a signup would; look up as a login does.
    login_id::normalize_for_signup(&key.rules, login_id).map_err(steps::invalid_login_id)?;
    let normalized = login_id::normalize_for_lookup(&key.rules, login_id);
    let identity = engine
        .db
        .find_identity(DEFAULT_ORG_ID, &key.key, &normalized.unique_key)
        .await?;
    if identity.is_none() && step.branches[branch].on_failure == OnFailure::Error {
        return Err(FlowError::UserNotFound {
            login_id_type: login_id_type.as_str(),
            existing_identities: Vec::new(),
        });
    }
    let user_targets = match &identity {
        Some(i) => user_targets(engine, &i.user_id, &normalized.normalized).await?,
        None => Vec::new(),
    };
    state.user_id = identity.map(|i| i.user_id);
    state.recovery = Some(RecoveryState {
        login_id_type,
        target: normalized.normalized.clone(),
        destination: None,
        proven_code: None,
        user_targets,
    });
    steps::record_identified(state, step, login_id_type, &key.key, normalized);
    Ok(())
}

/// The user's email and phone login IDs, `identified` first.
async fn user_targets(
    engine: &Engine,
    user_id: &str,
    identified: &str,
) -> FlowResult<Vec<RecoveryTarget>> {
    let mut targets: Vec<RecoveryTarget> = engine
        .db
        .list_identities(user_id)
        .await?
        .into_iter()
        .filter(|i| matches!(i.login_id_type, LoginIdType::Email | LoginIdType::Phone))
        .map(|i| RecoveryTarget {
            login_id_type: i.login_id_type,
            value: i.normalized,
        })
        .collect();
    targets.sort_by_key(|t| t.value != identified);
    Ok(targets)
}

fn recovery_of(state: &FlowState) -> FlowResult<&RecoveryState> {
    state
        .recovery
        .as_ref()
        .ok_or_else(|| FlowError::InvalidFlowConfig("account recovery step before identify".into()))
}

/// Canonical order of all pairs (flow-config.md 5.7) when a step lists none.
const ALL_DESTINATIONS: [(Channel, OtpForm); 5] = [
    (Channel::Email, OtpForm::Link),
    (Channel::Email, OtpForm::Code),
    (Channel::Sms, OtpForm::Code),
    (Channel::Whatsapp, OtpForm::Code),
    (Channel::Sms, OtpForm::Link),
];

fn fits(channel: Channel, t: LoginIdType) -> bool {
    match channel {
        Channel::Email => t == LoginIdType::Email,
        Channel::Sms | Channel::Whatsapp => t == LoginIdType::Phone,
    }
}

/// The step's destinations, each applied to the identified login ID where the channel fits
/// it, or with `enumerate_destinations` to each of the user's login IDs (spec 8.13).
fn destinations(step: &StepDef, recovery: &RecoveryState) -> Vec<(Destination, RecoveryTarget)> {
    let listed: Vec<Destination> = if step.allowed_channels.is_empty() {
        ALL_DESTINATIONS
            .iter()
            .map(|&(channel, otp_form)| Destination { channel, otp_form })
            .collect()
    } else {
        step.allowed_channels.clone()
    };
    let identified = RecoveryTarget {
        login_id_type: recovery.login_id_type,
        value: recovery.target.clone(),
    };
    let targets = if step.enumerate_destinations && !recovery.user_targets.is_empty() {
        recovery.user_targets.clone()
    } else {
        vec![identified]
    };
    targets
        .into_iter()
        .flat_map(|t| {
            listed
                .iter()
                .filter(|d| fits(d.channel, t.login_id_type))
                .map(|d| (*d, t.clone()))
                .collect::<Vec<_>>()
        })
        .collect()
}

pub fn render_select(step: &StepDef, state: &FlowState) -> FlowResult<Action> {
    let recovery = recovery_of(state)?;
    Ok(Action::SelectDestination {
        options: destinations(step, recovery)
            .into_iter()
            .map(|(d, t)| DestinationOption {
                masked_display_name: steps::mask(channel_of_type(t.login_id_type), &t.value),
                channel: d.channel,
                otp_form: d.otp_form,
            })
            .collect(),
    })
}

fn channel_of_type(t: LoginIdType) -> Channel {
    if t == LoginIdType::Phone {
        Channel::Sms
    } else {
        Channel::Email
    }
}

/// `select_destination`: `{"index": n}` sends the code (or link).
pub async fn select(
    engine: &Engine,
    ctx: &RequestContext,
    flow: &FlowDef,
    step: &StepDef,
    state: &mut FlowState,
    input: &Value,
) -> FlowResult<Consumed> {
    let Some(index) = input.get("index") else {
        let cause = required_cause(input, &["index"])
            .unwrap_or_else(|| Cause::new("/index", "required", json!({})));
        return Ok(Consumed::Misfit(vec![cause]));
    };
    if input.as_object().is_some_and(|o| o.len() != 1) {
        return Ok(Consumed::Misfit(Vec::new()));
    }
    let options = destinations(step, recovery_of(state)?);
    let Some((mut destination, target)) = index
        .as_u64()
        .and_then(|i| options.get(usize::try_from(i).ok()?))
        .cloned()
    else {
        return Err(FlowError::validation(vec![Cause::new(
            "/index",
            "maximum",
            json!({"actual": index, "maximum": options.len().saturating_sub(1)}),
        )]));
    };
    if ctx.codes_only {
        destination.otp_form = OtpForm::Code;
    }
    if let Some(r) = state.recovery.as_mut() {
        r.login_id_type = target.login_id_type;
        r.target = target.value;
        r.destination = Some(destination);
    }
    send(engine, ctx, state, false).await?;
    complete_step(flow, &mut state.cursor, None);
    Ok(Consumed::Yes)
}

/// Send the recovery message to the chosen destination; for an unknown login ID, pretend
/// to: the same limits and cooldowns apply, nothing goes out.
async fn send(
    engine: &Engine,
    ctx: &RequestContext,
    state: &mut FlowState,
    explicit_resend: bool,
) -> FlowResult<()> {
    let recovery = recovery_of(state)?.clone();
    let destination = recovery
        .destination
        .ok_or_else(|| FlowError::InvalidFlowConfig("no destination chosen".into()))?;
    let link = (destination.otp_form == OtpForm::Link).then(|| LinkSpec {
        page_url: format!("{}{RESET_LINK_PATH}", engine.settings.public_origin),
        ws_channel: String::new(),
    });
    let delivery = match state.user_id {
        Some(_) => oob::Delivery::Message(link.as_ref()),
        None => oob::Delivery::Pretend,
    };
    oob::send_limited(
        engine,
        ctx,
        Purpose::AccountRecovery,
        destination.channel,
        &recovery.target,
        state,
        delivery,
        explicit_resend,
    )
    .await?;
    Ok(())
}

pub async fn render_verify(engine: &Engine, state: &FlowState) -> FlowResult<Action> {
    let recovery = recovery_of(state)?;
    let destination = recovery
        .destination
        .ok_or_else(|| FlowError::InvalidFlowConfig("no destination chosen".into()))?;
    let settings = engine.settings.account_recovery.otp(destination.channel);
    // Known or not, the cooldown and failure counters of the target answer alike.
    let status = engine
        .otp
        .status(Purpose::AccountRecovery, &recovery.target, settings)
        .await?;
    Ok(Action::VerifyAccountRecoveryCode {
        masked_display_name: steps::mask(destination.channel, &recovery.target),
        channel: destination.channel,
        otp_form: destination.otp_form,
        code_length: if destination.otp_form == OtpForm::Link {
            token::LINK_CODE_LEN as u32
        } else {
            6
        },
        can_resend_at: status.can_resend_at,
        failed_attempt_rate_limit_exceeded: status.failed_attempt_rate_limit_exceeded,
    })
}

/// `verify_account_recovery_code`: `{"account_recovery_code"}` or `{"resend": true}`.
pub async fn verify(
    engine: &Engine,
    ctx: &RequestContext,
    flow: &FlowDef,
    state: &mut FlowState,
    input: &Value,
) -> FlowResult<Consumed> {
    if input.get("resend") == Some(&Value::Bool(true)) {
        send(engine, ctx, state, true).await?;
        return Ok(Consumed::Yes);
    }
    let code = match string_member(input, "account_recovery_code") {
        Ok(c) => c.trim().to_ascii_uppercase(),
        Err(causes) => return Ok(Consumed::Misfit(causes)),
    };
    check(engine, ctx, state, &code).await?;
    prove(state, code);
    complete_step(flow, &mut state.cursor, None);
    Ok(Consumed::Yes)
}

fn prove(state: &mut FlowState, code: String) {
    if let Some(r) = state.recovery.as_mut() {
        r.proven_code = Some(code);
    }
}

/// At finish: spend the proven code; a code spent meanwhile (another flow reset with it)
/// fails the reset.
pub async fn consume_at_finish(engine: &Engine, state: &FlowState) -> FlowResult<()> {
    let recovery = recovery_of(state)?;
    let code = recovery
        .proven_code
        .as_deref()
        .ok_or_else(|| reset_failed("InvalidCode"))?;
    if !engine
        .otp
        .consume_code(Purpose::AccountRecovery, &recovery.target, code)
        .await?
    {
        return Err(reset_failed("UsedCode"));
    }
    let ttl = engine.settings.account_recovery.link_valid;
    engine.state_store.put(&used_key(code), "1", ttl).await?;
    Ok(())
}

fn used_key(code: &str) -> String {
    format!("otpused:account_recovery:{}", token::sha256_hex(code))
}

/// Check a recovery code for the flow's target (kept until the reset finishes).
async fn check(
    engine: &Engine,
    ctx: &RequestContext,
    state: &FlowState,
    code: &str,
) -> FlowResult<()> {
    let recovery = recovery_of(state)?;
    let channel = recovery
        .destination
        .as_ref()
        .map_or(Channel::Email, |d| d.channel);
    let settings = engine.settings.account_recovery.otp(channel);
    if code.is_empty() || code.len() > 64 {
        return Err(reset_failed("InvalidCode"));
    }
    let outcome = match &state.user_id {
        Some(_) => {
            engine
                .otp
                .check_code_kept(Purpose::AccountRecovery, &recovery.target, code, settings)
                .await?
        }
        None => {
            // What a real code would answer: wrong, then revoked at the limit.
            let revoked = engine
                .otp
                .count_phantom_failure(Purpose::AccountRecovery, &recovery.target, settings)
                .await?;
            if revoked {
                CodeCheck::Revoked
            } else {
                CodeCheck::Wrong
            }
        }
    };
    match outcome {
        CodeCheck::Valid => Ok(()),
        CodeCheck::Revoked => Err(reset_failed("InvalidCode")),
        CodeCheck::Wrong | CodeCheck::NotFound => {
            // Wrong recovery codes count per IP (default 60 per minute).
            let buckets =
                oob::validate_buckets(engine, ctx, Purpose::AccountRecovery, channel, None);
            engine.limiter.take_all(&buckets).await?;
            if engine.state_store.get(&used_key(code)).await?.is_some() {
                Err(reset_failed("UsedCode"))
            } else {
                Err(reset_failed("InvalidCode"))
            }
        }
    }
}

fn reset_failed(kind: &'static str) -> FlowError {
    FlowError::PasswordResetFailed { cause_kind: kind }
}

pub fn render_reset(engine: &Engine, state: &FlowState) -> FlowResult<Action> {
    let recovery = recovery_of(state)?;
    let channel = recovery
        .destination
        .as_ref()
        .map_or(channel_of_type(recovery.login_id_type), |d| d.channel);
    Ok(Action::ResetPassword {
        password_policy: policy_json(&engine.settings.password_policy),
        masked_target: steps::mask(channel, &recovery.target),
    })
}

/// `reset_password`: `{"new_password"}` replaces (or creates) the primary password at finish.
pub async fn reset(
    engine: &Engine,
    flow: &FlowDef,
    state: &mut FlowState,
    input: &Value,
) -> FlowResult<Consumed> {
    let password = match steps::password_member(input, "new_password") {
        Ok(p) => p,
        Err(causes) => return Ok(Consumed::Misfit(causes)),
    };
    recovery_of(state)?;
    let user_id = state
        .user_id
        .clone()
        .ok_or_else(|| reset_failed("InvalidCode"))?;
    steps::enforce_policy(engine, state, &password)?;
    let current = steps::user_authenticators(engine, state)
        .await?
        .into_iter()
        .find(|a| {
            a.kind == AuthenticatorKind::Primary
                && a.authenticator_type == AuthenticatorType::Password
        });
    if let Some(a) = &current {
        steps::refuse_reused_password(engine, state, &a.id, &password).await?;
    }
    let hash = steps::hash_password(engine, password).await?;
    match current {
        Some(a) => {
            state
                .pending
                .authenticator_updates
                .push((a.id, json!({"password_hash": hash.clone()})));
            steps::stage_password_history(engine, state, &user_id, hash);
        }
        None => {
            steps::stage_new_password(engine, state, &user_id, AuthenticatorKind::Primary, hash)
        }
    }
    complete_step(flow, &mut state.cursor, None);
    Ok(Consumed::Yes)
}

/// The token-less way in (spec 8.14): a link's code, sent without a state token, makes a
/// new flow of `flow` positioned at its `reset_password` step. `None` when the code does
/// not name a live recovery link.
pub async fn flow_from_link(
    engine: &Engine,
    ctx: &RequestContext,
    flow: &FlowDef,
    state: &mut FlowState,
    code: &str,
) -> FlowResult<()> {
    let code = code.trim().to_ascii_uppercase();
    let Some(target) = engine
        .otp
        .link_target(Purpose::AccountRecovery, &code)
        .await?
    else {
        return Err(
            if engine.state_store.get(&used_key(&code)).await?.is_some() {
                reset_failed("UsedCode")
            } else {
                reset_failed("InvalidCode")
            },
        );
    };
    // Walk the new flow to its verify step: identify the target, choose its link.
    let (login_id_type, channel) = if target.contains('@') {
        (LoginIdType::Email, Channel::Email)
    } else {
        (LoginIdType::Phone, Channel::Sms)
    };
    let identification = login_id_type.as_str();
    let step = current_step(flow, &state.cursor)
        .filter(|s| s.step_type == StepType::Identify)
        .ok_or_else(|| reset_failed("InvalidCode"))?;
    let branch = step
        .branches
        .iter()
        .position(
            |b| matches!(b.option, BranchOption::Identification(i) if i.as_str() == identification),
        )
        .ok_or_else(|| reset_failed("InvalidCode"))?;
    identify(engine, step, branch, state, login_id_type, &target).await?;
    complete_step(flow, &mut state.cursor, Some(branch));
    engine.run_automatic_steps(ctx, state).await?;
    if let Some(step) = current_step(flow, &state.cursor)
        && step.step_type == StepType::SelectDestination
    {
        if let Some(r) = state.recovery.as_mut() {
            r.destination = Some(Destination {
                channel,
                otp_form: OtpForm::Link,
            });
        }
        complete_step(flow, &mut state.cursor, None);
    }
    match current_step(flow, &state.cursor) {
        Some(s) if s.step_type == StepType::VerifyAccountRecoveryCode => {}
        _ => return Err(reset_failed("InvalidCode")),
    }
    check(engine, ctx, state, &code).await?;
    prove(state, code);
    complete_step(flow, &mut state.cursor, None);
    engine.run_automatic_steps(ctx, state).await?;
    Ok(())
}

/// Input of a token-less request: `{"account_recovery_code": "..."}` only.
pub fn link_code_of(input: &Value) -> Option<&str> {
    let object = input.as_object()?;
    (object.len() == 1)
        .then(|| object.get("account_recovery_code")?.as_str())
        .flatten()
}
