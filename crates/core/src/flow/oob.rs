//! OOB OTP branches of `authenticate` and `create_authenticator` (spec 8.4–8.7): which
//! targets an option offers, choosing one (and its channel), sending the code or link,
//! and checking what comes back.

use serde_json::{Value, json};

use super::action::{Action, OtpOptionView, OtpPrompt};
use super::def::{Authentication, BranchDef, Channel, FlowDef, OtpForm, StepDef};
use super::engine::{Engine, RequestContext};
use super::error::{Cause, FlowError, FlowResult, RateLimitHit};
use super::input::{required_cause, string_member};
use super::limits::Bucket;
use super::otp::{CodeCheck, LinkSpec, OtpSettings, Purpose};
use super::settings::{Limit, OtpLimits};
use super::state::{FlowState, OtpChoice, complete_step};
use super::steps::{Consumed, cooldown_bucket, is_verified, mask, user_authenticators};
use crate::config::LockoutKind;
use crate::credentials::login_id;
use crate::credentials::token;
use crate::model::{
    Authenticator, AuthenticatorKind, AuthenticatorType, LoginIdType, VerifiedClaim,
};

/// Path of the page a login link opens (spec 9.3).
pub const LOGIN_LINK_PATH: &str = "/authflow/v2/verify_login_link";
/// Path of the WebSocket that tells a flow its link was approved (spec 11).
pub const WEBSOCKET_PATH: &str = "/api/v1/authentication_flows/ws";

/// Whether an authentication is delivered by email or by phone.
pub fn oob_medium(a: Authentication) -> Option<LoginIdType> {
    match a {
        Authentication::PrimaryOobOtpEmail | Authentication::SecondaryOobOtpEmail => {
            Some(LoginIdType::Email)
        }
        Authentication::PrimaryOobOtpSms | Authentication::SecondaryOobOtpSms => {
            Some(LoginIdType::Phone)
        }
        _ => None,
    }
}

fn is_primary(a: Authentication) -> bool {
    matches!(
        a,
        Authentication::PrimaryOobOtpEmail | Authentication::PrimaryOobOtpSms
    )
}

fn authenticator_type(medium: LoginIdType) -> AuthenticatorType {
    match medium {
        LoginIdType::Phone => AuthenticatorType::OobOtpSms,
        _ => AuthenticatorType::OobOtpEmail,
    }
}

/// `info.AuthenticationType` of a failed OOB login.
fn authentication_type(medium: LoginIdType) -> &'static str {
    match medium {
        LoginIdType::Phone => "oob_otp_sms",
        _ => "oob_otp_email",
    }
}

pub fn channels(engine: &Engine, medium: LoginIdType) -> Vec<Channel> {
    match medium {
        LoginIdType::Phone => engine.settings.phone_channels.clone(),
        _ => vec![Channel::Email],
    }
}

/// Login by email may use links; everything else is a typed code (spec 9.2).
fn login_form(engine: &Engine, medium: LoginIdType) -> OtpForm {
    match medium {
        LoginIdType::Email => engine.settings.email_otp_form,
        _ => OtpForm::Code,
    }
}

fn mask_target(medium: LoginIdType, target: &str) -> String {
    mask(
        match medium {
            LoginIdType::Phone => Channel::Sms,
            _ => Channel::Email,
        },
        target,
    )
}

/// One rendered OOB option of an `authenticate` step.
#[derive(Debug, Clone)]
pub struct OobTarget {
    pub target: String,
    /// The authenticator proven (secondary), or `oob:<target>` for a primary login ID.
    pub used_id: String,
}

/// The targets an OOB branch of `authenticate` offers this user (spec 8.4 table).
pub async fn login_targets(
    engine: &Engine,
    branch: &BranchDef,
    a: Authentication,
    state: &FlowState,
) -> FlowResult<Vec<OobTarget>> {
    let Some(medium) = oob_medium(a) else {
        return Ok(Vec::new());
    };
    let targets: Vec<OobTarget> = if is_primary(a) {
        primary_targets(engine, branch, medium, state)
            .await?
            .into_iter()
            .map(|target| OobTarget {
                used_id: format!("oob:{target}"),
                target,
            })
            .collect()
    } else {
        user_authenticators(engine, state)
            .await?
            .into_iter()
            .filter(|x| {
                x.kind == AuthenticatorKind::Secondary
                    && x.authenticator_type == authenticator_type(medium)
            })
            .filter_map(|x| {
                let target = x.data.get("target")?.as_str()?.to_string();
                Some(OobTarget {
                    target,
                    used_id: x.id,
                })
            })
            .collect()
    };
    Ok(targets
        .into_iter()
        .filter(|t| !state.used_authenticator_ids.contains(&t.used_id))
        .collect())
}

/// Primary OOB: the login ID of `target_step`, else every login ID of the medium.
async fn primary_targets(
    engine: &Engine,
    branch: &BranchDef,
    medium: LoginIdType,
    state: &FlowState,
) -> FlowResult<Vec<String>> {
    if let Some(step_name) = &branch.target_step {
        let identified = state.identified_in_step(step_name);
        return Ok(identified
            .filter(|i| i.login_id_type == medium)
            .map(|i| vec![i.normalized.clone()])
            .unwrap_or_default());
    }
    let Some(user_id) = &state.user_id else {
        return Ok(Vec::new());
    };
    let mut identities = if state.is_new_user {
        Vec::new()
    } else {
        engine.db.list_identities(user_id).await?
    };
    identities.extend(state.pending.identities.iter().cloned());
    Ok(identities
        .into_iter()
        .filter(|i| i.login_id_type == medium)
        .map(|i| i.normalized)
        .collect())
}

pub fn login_option_view(engine: &Engine, a: Authentication, target: &str) -> OtpOptionView {
    let medium = oob_medium(a).unwrap_or(LoginIdType::Email);
    OtpOptionView {
        otp_form: login_form(engine, medium),
        channels: channels(engine, medium),
        masked_display_name: Some(mask_target(medium, target)),
        verification_required: None,
    }
}

/// What a `create_authenticator` OOB branch offers: with `target_step`, the login ID
/// identified there (none: the option is omitted); without, the input names a target.
pub enum CreateTarget {
    Known { target: String, must_verify: bool },
    FromInput,
}

pub async fn create_target(
    engine: &Engine,
    branch: &BranchDef,
    a: Authentication,
    state: &FlowState,
) -> FlowResult<Option<CreateTarget>> {
    let Some(medium) = oob_medium(a) else {
        return Ok(None);
    };
    let Some(step_name) = &branch.target_step else {
        return Ok(Some(CreateTarget::FromInput));
    };
    let Some(identified) = state
        .identified_in_step(step_name)
        .filter(|i| i.login_id_type == medium)
    else {
        return Ok(None);
    };
    let target = identified.normalized.clone();
    let verified = is_verified(engine, state, claim_name(medium), &target).await?;
    Ok(Some(CreateTarget::Known {
        must_verify: branch.verification_required && !verified,
        target,
    }))
}

pub fn create_option_view(engine: &Engine, a: Authentication, t: &CreateTarget) -> OtpOptionView {
    let medium = oob_medium(a).unwrap_or(LoginIdType::Email);
    let (masked, required) = match t {
        CreateTarget::Known {
            target,
            must_verify,
        } => (Some(mask_target(medium, target)), Some(*must_verify)),
        CreateTarget::FromInput => (None, None),
    };
    OtpOptionView {
        otp_form: OtpForm::Code,
        channels: channels(engine, medium),
        masked_display_name: masked,
        verification_required: required,
    }
}

fn claim_name(medium: LoginIdType) -> &'static str {
    match medium {
        LoginIdType::Phone => "phone_number",
        _ => "email",
    }
}

// ---------------------------------------------------------------------------------------
// choosing

/// `channel` of an OOB input: required and listed when several channels are offered.
fn chosen_channel(input: &Value, channels: &[Channel]) -> Result<Option<Channel>, Vec<Cause>> {
    let Some(value) = input.get("channel") else {
        // Spec 8.4: `channel` is required when the option lists more than one.
        if channels.len() == 1 {
            return Ok(Some(channels[0]));
        }
        let cause = required_cause(input, &["authentication", "index", "channel"])
            .unwrap_or_else(|| Cause::new("/channel", "required", json!({})));
        return Err(vec![cause]);
    };
    let names: Vec<&str> = channels.iter().map(|c| channel_name(*c)).collect();
    match value
        .as_str()
        .and_then(|s| channels.iter().find(|c| channel_name(**c) == s))
    {
        Some(c) => Ok(Some(*c)),
        None => Err(vec![Cause::new(
            "/channel",
            "enum",
            json!({"actual": value, "expected": names}),
        )]),
    }
}

pub fn channel_name(c: Channel) -> &'static str {
    match c {
        Channel::Email => "email",
        Channel::Sms => "sms",
        Channel::Whatsapp => "whatsapp",
    }
}

/// Start an OOB login with the option at `index`: remember the choice and, once its
/// channel is known, send the code.
#[allow(clippy::too_many_arguments)]
pub async fn choose_login(
    engine: &Engine,
    ctx: &RequestContext,
    state: &mut FlowState,
    branch: usize,
    a: Authentication,
    target: OobTarget,
    input: &Value,
) -> FlowResult<Consumed> {
    let medium = oob_medium(a).unwrap_or(LoginIdType::Email);
    let channels = channels(engine, medium);
    let channel = match chosen_channel(input, &channels) {
        Ok(c) => c,
        Err(causes) => return Ok(Consumed::Misfit(causes)),
    };
    state.otp = Some(OtpChoice {
        cursor: state.cursor.clone(),
        branch,
        authentication: a,
        purpose: Purpose::Authentication,
        target: target.target,
        channels,
        channel,
        form: if ctx.codes_only {
            OtpForm::Code
        } else {
            login_form(engine, medium)
        },
        used_id: target.used_id,
        creates: None,
    });
    send_if_ready(engine, ctx, state, false).await?;
    Ok(Consumed::Yes)
}

/// Choose a `create_authenticator` OOB branch: create at once when no code is needed.
#[allow(clippy::too_many_arguments)]
pub async fn choose_create(
    engine: &Engine,
    ctx: &RequestContext,
    flow: &FlowDef,
    state: &mut FlowState,
    branch: usize,
    a: Authentication,
    target: CreateTarget,
    input: &Value,
) -> FlowResult<Consumed> {
    let medium = oob_medium(a).unwrap_or(LoginIdType::Email);
    let (target, must_verify) = match target {
        CreateTarget::Known {
            target,
            must_verify,
        } => (target, must_verify),
        CreateTarget::FromInput => {
            let raw = match string_member(input, "target") {
                Ok(v) => v,
                Err(causes) => return Ok(Consumed::Misfit(causes)),
            };
            let target = normalize_target(engine, medium, raw)?;
            let verified = is_verified(engine, state, claim_name(medium), &target).await?;
            (target, !verified)
        }
    };
    let kind = if is_primary(a) {
        AuthenticatorKind::Primary
    } else {
        AuthenticatorKind::Secondary
    };
    if !must_verify {
        add_authenticator(engine, state, kind, medium, &target)?;
        complete_step(flow, &mut state.cursor, Some(branch));
        return Ok(Consumed::Yes);
    }
    let channels = channels(engine, medium);
    let channel = match chosen_channel(input, &channels) {
        Ok(c) => c,
        Err(causes) => return Ok(Consumed::Misfit(causes)),
    };
    state.otp = Some(OtpChoice {
        cursor: state.cursor.clone(),
        branch,
        authentication: a,
        purpose: Purpose::Verification,
        target,
        channels,
        channel,
        form: OtpForm::Code,
        used_id: String::new(),
        creates: Some(kind),
    });
    send_if_ready(engine, ctx, state, false).await?;
    Ok(Consumed::Yes)
}

/// A `target` input: a valid email address or E.164 number (400 at `/target` otherwise).
fn normalize_target(engine: &Engine, medium: LoginIdType, raw: &str) -> FlowResult<String> {
    let rules = engine
        .settings
        .key_of_type(medium)
        .map(|k| k.rules.clone())
        .unwrap_or_else(|| default_rules(medium));
    login_id::normalize_for_signup(&rules, raw)
        .map(|n| n.normalized)
        .map_err(|_| FlowError::ValidationFailed {
            message: "invalid target",
            causes: vec![Cause::new(
                "/target",
                "format",
                json!({"format": match medium { LoginIdType::Phone => "phone", _ => "email" }}),
            )],
        })
}

fn default_rules(medium: LoginIdType) -> login_id::LoginIdRules {
    use login_id::{EmailRules, LoginIdRules, PhoneRules};
    match medium {
        LoginIdType::Phone => LoginIdRules::Phone(PhoneRules {
            allowlist: Vec::new(),
            possible_only: false,
            max_length: 40,
        }),
        _ => LoginIdRules::Email(EmailRules {
            case_sensitive: false,
            block_plus_sign: false,
            ignore_dot_sign: false,
            max_length: 320,
        }),
    }
}

fn add_authenticator(
    engine: &Engine,
    state: &mut FlowState,
    kind: AuthenticatorKind,
    medium: LoginIdType,
    target: &str,
) -> FlowResult<()> {
    let user_id = state.user_id.clone().ok_or_else(|| {
        FlowError::InvalidFlowConfig("create_authenticator before identify".into())
    })?;
    let now = engine.clock.now();
    state.pending.authenticators.push(Authenticator {
        id: token::random_id(&*engine.rng),
        user_id,
        kind,
        authenticator_type: authenticator_type(medium),
        data: json!({"target": target}),
        created_at: now,
        updated_at: now,
    });
    Ok(())
}

// ---------------------------------------------------------------------------------------
// sending

pub fn settings_of(engine: &Engine, purpose: Purpose, channel: Channel) -> OtpSettings {
    let s = &engine.settings;
    match (purpose, channel) {
        (Purpose::Authentication, Channel::Email) => s.authentication_email,
        (Purpose::Authentication, _) => s.authentication_sms,
        (Purpose::AccountRecovery, c) => s.account_recovery.otp(c),
        (_, Channel::Email) => s.verification_email,
        (_, _) => s.verification_sms,
    }
}

/// Static bucket names and config paths of one purpose and channel group.
struct OtpBucketNames {
    group: &'static str,
    trigger_per_ip: (&'static str, &'static str),
    trigger_per_user: (&'static str, &'static str),
    validate_per_ip: (&'static str, &'static str),
    validate_per_user_per_ip: (&'static str, &'static str),
}

macro_rules! otp_bucket_names {
    ($p:literal, $c:literal, $g:literal) => {
        OtpBucketNames {
            group: $g,
            trigger_per_ip: (
                concat!($p, "Trigger", $c, "PerIP"),
                concat!($g, ".trigger_per_ip"),
            ),
            trigger_per_user: (
                concat!($p, "Trigger", $c, "PerUser"),
                concat!($g, ".trigger_per_user"),
            ),
            validate_per_ip: (
                concat!($p, "Validate", $c, "PerIP"),
                concat!($g, ".validate_per_ip"),
            ),
            validate_per_user_per_ip: (
                concat!($p, "Validate", $c, "PerUserPerIP"),
                concat!($g, ".validate_per_user_per_ip"),
            ),
        }
    };
}

/// The limits of a purpose and channel; WhatsApp counts under `sms` (flow-config.md 6).
fn purpose_limits(
    engine: &Engine,
    purpose: Purpose,
    channel: Channel,
) -> (OtpLimits, OtpBucketNames) {
    let r = &engine.settings.rate_limits;
    let email = channel == Channel::Email;
    match (purpose, email) {
        (Purpose::Authentication, true) => (
            r.oob_email,
            otp_bucket_names!("OOBOTP", "Email", "authentication.oob_otp.email"),
        ),
        (Purpose::Authentication, false) => (
            r.oob_sms,
            otp_bucket_names!("OOBOTP", "SMS", "authentication.oob_otp.sms"),
        ),
        (Purpose::AccountRecovery, true) => (
            engine.settings.account_recovery.email_limits,
            otp_bucket_names!("ForgotPassword", "Email", "forgot_password.email"),
        ),
        (Purpose::AccountRecovery, false) => (
            engine.settings.account_recovery.sms_limits,
            otp_bucket_names!("ForgotPassword", "SMS", "forgot_password.sms"),
        ),
        (_, true) => (
            r.verification_email,
            otp_bucket_names!("Verification", "Email", "verification.email"),
        ),
        (_, false) => (
            r.verification_sms,
            otp_bucket_names!("Verification", "SMS", "verification.sms"),
        ),
    }
}

fn bucket(
    names: (&'static str, &'static str),
    group: &'static str,
    scope: &str,
    limit: Option<Limit>,
) -> Option<Bucket> {
    limit.map(|l| Bucket::new(names.0, scope, l, Some((names.1, group))))
}

/// Buckets a send takes from: the purpose's trigger limits and the messaging limits.
pub fn send_buckets(
    engine: &Engine,
    ctx: &RequestContext,
    purpose: Purpose,
    channel: Channel,
    target: &str,
    user_id: Option<&str>,
) -> Vec<Bucket> {
    let (limits, names) = purpose_limits(engine, purpose, channel);
    let m = engine.settings.rate_limits.messaging;
    let messaging = match channel {
        Channel::Email => [
            (
                m.email_per_ip,
                ("MessagingEmailPerIP", "messaging.email.per_ip"),
                ctx.ip.as_str(),
            ),
            (
                m.email_per_target,
                ("MessagingEmailPerTarget", "messaging.email.per_target"),
                target,
            ),
            (
                m.email,
                ("MessagingEmail", "messaging.email.per_project"),
                "all",
            ),
        ],
        _ => [
            (
                m.sms_per_ip,
                ("MessagingSMSPerIP", "messaging.sms.per_ip"),
                ctx.ip.as_str(),
            ),
            (
                m.sms_per_target,
                ("MessagingSMSPerTarget", "messaging.sms.per_target"),
                target,
            ),
            (m.sms, ("MessagingSMS", "messaging.sms.per_project"), "all"),
        ],
    };
    let group = if channel == Channel::Email {
        "messaging.email"
    } else {
        "messaging.sms"
    };
    let mut buckets: Vec<Bucket> = [
        bucket(
            names.trigger_per_ip,
            names.group,
            &ctx.ip,
            limits.trigger_per_ip,
        ),
        user_id.and_then(|u| {
            bucket(
                names.trigger_per_user,
                names.group,
                u,
                limits.trigger_per_user,
            )
        }),
    ]
    .into_iter()
    .flatten()
    .collect();
    buckets.extend(
        messaging
            .into_iter()
            .filter_map(|(limit, n, scope)| bucket(n, group, scope, limit)),
    );
    buckets
}

/// What [`send_limited`] delivers.
#[derive(Clone, Copy)]
pub enum Delivery<'a> {
    /// A code, or with a [`LinkSpec`] a link.
    Message(Option<&'a LinkSpec>),
    /// Nothing, with the same limits and cooldowns (account recovery of an unknown user).
    Pretend,
}

/// Send a code (or link) through the rate limits, unless a cooldown holds it back
/// (then nothing is sent and nothing is counted). Returns whether one was sent.
#[allow(clippy::too_many_arguments)]
pub async fn send_limited(
    engine: &Engine,
    ctx: &RequestContext,
    purpose: Purpose,
    channel: Channel,
    target: &str,
    state: &FlowState,
    delivery: Delivery<'_>,
    explicit_resend: bool,
) -> FlowResult<bool> {
    let mut settings = settings_of(engine, purpose, channel);
    if matches!(delivery, Delivery::Message(Some(_))) {
        // Links live longer than codes (spec 9.2: 20 minutes by default).
        settings.code_valid = match purpose {
            Purpose::AccountRecovery => engine.settings.account_recovery.link_valid,
            _ => engine.settings.login_link_valid,
        };
    }
    if explicit_resend {
        engine
            .otp
            .lift_cooldown_after_failure(purpose, target, &state.flow_id)
            .await?;
    }
    if engine
        .otp
        .in_cooldown(purpose, target, &state.flow_id)
        .await?
    {
        if explicit_resend {
            return Err(FlowError::RateLimited(RateLimitHit {
                bucket_name: cooldown_name(purpose, channel),
                limit: None,
            }));
        }
        return Ok(false);
    }
    let buckets = send_buckets(
        engine,
        ctx,
        purpose,
        channel,
        target,
        state.user_id.as_deref(),
    );
    engine.limiter.take_all(&buckets).await?;
    match delivery {
        Delivery::Message(link) => {
            engine
                .otp
                .send(purpose, channel, target, &state.flow_id, settings, link)
                .await
        }
        Delivery::Pretend => {
            engine
                .otp
                .pretend_send(purpose, target, &state.flow_id, settings)
                .await
        }
    }
}

fn cooldown_name(purpose: Purpose, channel: Channel) -> String {
    let c = match channel {
        Channel::Email => "Email",
        Channel::Sms => "SMS",
        Channel::Whatsapp => "Whatsapp",
    };
    match purpose {
        Purpose::Verification => cooldown_bucket(channel).to_string(),
        Purpose::Authentication => format!("OOBOTPCooldown{c}"),
        Purpose::AccountRecovery => format!("ForgotPasswordCooldown{c}"),
    }
}

fn link_spec(engine: &Engine, state: &mut FlowState) -> LinkSpec {
    let ws_channel = state
        .ws_channel
        .get_or_insert_with(|| token::ws_channel(&*engine.rng))
        .clone();
    LinkSpec {
        page_url: format!("{}{LOGIN_LINK_PATH}", engine.settings.public_origin),
        ws_channel,
    }
}

/// Send for the active choice once its channel is known.
async fn send_if_ready(
    engine: &Engine,
    ctx: &RequestContext,
    state: &mut FlowState,
    explicit_resend: bool,
) -> FlowResult<()> {
    let Some(choice) = state.otp.clone() else {
        return Ok(());
    };
    let Some(channel) = choice.channel else {
        return Ok(());
    };
    let link = (choice.form == OtpForm::Link).then(|| link_spec(engine, state));
    send_limited(
        engine,
        ctx,
        choice.purpose,
        channel,
        &choice.target,
        state,
        Delivery::Message(link.as_ref()),
        explicit_resend,
    )
    .await?;
    Ok(())
}

// ---------------------------------------------------------------------------------------
// the chosen branch: channel, code, link check, resend

/// The input of a step whose OOB branch was chosen.
pub async fn consume_choice(
    engine: &Engine,
    ctx: &RequestContext,
    flow: &FlowDef,
    state: &mut FlowState,
    input: &Value,
) -> FlowResult<Consumed> {
    let Some(choice) = state.active_otp().cloned() else {
        return Ok(Consumed::Misfit(Vec::new()));
    };
    if choice.channel.is_none() {
        if input.get("channel").is_none() {
            return Ok(Consumed::Misfit(vec![
                required_cause(input, &["channel"]).expect("channel is missing"),
            ]));
        }
        let channel = match chosen_channel(input, &choice.channels) {
            Ok(c) => c,
            Err(causes) => return Ok(Consumed::Misfit(causes)),
        };
        if let Some(c) = state.otp.as_mut() {
            c.channel = channel;
        }
        send_if_ready(engine, ctx, state, false).await?;
        return Ok(Consumed::Yes);
    }
    let answer_key = match choice.form {
        OtpForm::Code => "code",
        OtpForm::Link => "check",
    };
    match (input.get(answer_key), input.get("resend")) {
        (Some(_), Some(_)) => Ok(Consumed::Misfit(vec![Cause::new(
            "",
            "oneOf",
            json!({"expected": [answer_key, "resend"]}),
        )])),
        (None, Some(Value::Bool(true))) => {
            send_if_ready(engine, ctx, state, true).await?;
            Ok(Consumed::Yes)
        }
        (None, Some(other)) => Ok(Consumed::Misfit(vec![Cause::new(
            "/resend",
            "const",
            json!({"expected": true, "actual": other}),
        )])),
        (None, None) => Ok(Consumed::Misfit(vec![
            required_cause(input, &[answer_key]).expect("answer is missing"),
        ])),
        (Some(answer), None) => {
            let check = match choice.form {
                OtpForm::Code => {
                    let code = match string_member(input, "code") {
                        Ok(c) => c,
                        Err(causes) => return Ok(Consumed::Misfit(causes)),
                    };
                    check_code(engine, ctx, state, &choice, code).await?
                }
                OtpForm::Link => {
                    if answer != &Value::Bool(true) {
                        return Ok(Consumed::Misfit(vec![Cause::new(
                            "/check",
                            "const",
                            json!({"expected": true, "actual": answer}),
                        )]));
                    }
                    engine
                        .otp
                        .check_link(choice.purpose, &choice.target)
                        .await?
                }
            };
            conclude(engine, ctx, flow, state, &choice, check).await
        }
    }
}

/// Buckets a wrong code takes from; per user and IP only when the user is known.
pub fn validate_buckets(
    engine: &Engine,
    ctx: &RequestContext,
    purpose: Purpose,
    channel: Channel,
    user_id: Option<&str>,
) -> Vec<Bucket> {
    let (limits, names) = purpose_limits(engine, purpose, channel);
    [
        bucket(
            names.validate_per_ip,
            names.group,
            &ctx.ip,
            limits.validate_per_ip,
        ),
        user_id.and_then(|u| {
            bucket(
                names.validate_per_user_per_ip,
                names.group,
                &format!("{u}:{}", ctx.ip),
                limits.validate_per_user_per_ip,
            )
        }),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// Check a typed code under the lockout and the validate limits (failures only).
async fn check_code(
    engine: &Engine,
    ctx: &RequestContext,
    state: &FlowState,
    choice: &OtpChoice,
    code: &str,
) -> FlowResult<CodeCheck> {
    let user_id = state.user_id.clone().unwrap_or_default();
    let login = choice.purpose == Purpose::Authentication;
    if login {
        engine
            .lockout
            .ensure_unlocked(LockoutKind::OobOtp, &user_id, &ctx.ip)
            .await?;
    }
    let channel = choice.channel.unwrap_or(Channel::Email);
    let buckets = validate_buckets(engine, ctx, choice.purpose, channel, Some(&user_id));
    engine.limiter.take_all(&buckets).await?;
    let settings = settings_of(
        engine,
        choice.purpose,
        choice.channel.unwrap_or(Channel::Email),
    );
    let check = engine
        .otp
        .check_code(choice.purpose, &choice.target, code, settings)
        .await?;
    if check == CodeCheck::Valid {
        engine.limiter.give_back_all(&buckets).await?;
    } else if login && check == CodeCheck::Wrong {
        engine
            .lockout
            .record_failure(LockoutKind::OobOtp, &user_id, &ctx.ip)
            .await?;
    }
    Ok(check)
}

async fn conclude(
    engine: &Engine,
    _ctx: &RequestContext,
    flow: &FlowDef,
    state: &mut FlowState,
    choice: &OtpChoice,
    check: CodeCheck,
) -> FlowResult<Consumed> {
    let medium = oob_medium(choice.authentication).unwrap_or(LoginIdType::Email);
    let login = choice.purpose == Purpose::Authentication;
    match check {
        CodeCheck::Valid => {}
        CodeCheck::Revoked => {
            return Err(FlowError::RateLimited(RateLimitHit {
                bucket_name: "TrackFailedOTPAttemptBucket".into(),
                limit: None,
            }));
        }
        CodeCheck::Wrong | CodeCheck::NotFound if login => {
            return Err(FlowError::InvalidCredentials {
                authentication_type: authentication_type(medium),
            });
        }
        CodeCheck::Wrong => {
            return Err(FlowError::InvalidVerificationCode {
                cause_kind: "InvalidVerificationCode",
            });
        }
        CodeCheck::NotFound => {
            return Err(FlowError::InvalidVerificationCode {
                cause_kind: "CodeNotFound",
            });
        }
    }
    // Receiving the code proves the address or number is the user's.
    let claim = claim_name(medium);
    if !is_verified(engine, state, claim, &choice.target).await? {
        state.pending.verified_claims.push(VerifiedClaim {
            user_id: state.user_id.clone().unwrap_or_default(),
            name: claim.to_string(),
            value: choice.target.clone(),
            created_at: engine.clock.now(),
        });
    }
    match choice.creates {
        Some(kind) => add_authenticator(engine, state, kind, medium, &choice.target)?,
        None => {
            state.used_authenticator_ids.push(choice.used_id.clone());
            add_amr(state, "otp");
            if medium == LoginIdType::Phone {
                add_amr(state, "sms");
            }
        }
    }
    state.otp = None;
    complete_step(flow, &mut state.cursor, Some(choice.branch));
    Ok(Consumed::Yes)
}

fn add_amr(state: &mut FlowState, method: &str) {
    if !state.amr.iter().any(|m| m == method) {
        state.amr.push(method.to_string());
    }
}

// ---------------------------------------------------------------------------------------
// rendering

fn websocket_url(engine: &Engine, ws_channel: &str) -> String {
    let origin = &engine.settings.public_origin;
    let ws_origin = if let Some(rest) = origin.strip_prefix("https://") {
        format!("wss://{rest}")
    } else {
        format!("ws://{}", origin.trim_start_matches("http://"))
    };
    format!("{ws_origin}{WEBSOCKET_PATH}?channel={ws_channel}")
}

/// The action of a step whose OOB branch was chosen.
pub async fn render_choice(
    engine: &Engine,
    step: &StepDef,
    state: &FlowState,
    choice: &OtpChoice,
) -> FlowResult<Action> {
    let medium = oob_medium(choice.authentication).unwrap_or(LoginIdType::Email);
    let masked = mask_target(medium, &choice.target);
    let Some(channel) = choice.channel else {
        return Ok(Action::SelectChannel {
            step: step.step_type,
            authentication: Some(choice.authentication),
            channels: choice.channels.clone(),
            masked_claim_value: masked,
        });
    };
    let prompt = prompt(
        engine,
        state,
        choice.purpose,
        channel,
        &choice.target,
        choice.form,
    )
    .await?;
    Ok(Action::OtpEntry {
        step: step.step_type,
        authentication: choice.authentication,
        prompt,
    })
}

/// `verify_oob_otp_data` of the code (or link) last sent to `target`.
pub async fn prompt(
    engine: &Engine,
    state: &FlowState,
    purpose: Purpose,
    channel: Channel,
    target: &str,
    form: OtpForm,
) -> FlowResult<OtpPrompt> {
    let status = engine
        .otp
        .status(purpose, target, settings_of(engine, purpose, channel))
        .await?;
    let link = form == OtpForm::Link;
    Ok(OtpPrompt {
        channel,
        otp_form: form,
        masked_claim_value: mask(channel, target),
        code_length: if link { 32 } else { 6 },
        can_resend_at: status.can_resend_at,
        can_check: link && status.approved,
        failed_attempt_rate_limit_exceeded: status.failed_attempt_rate_limit_exceeded,
        delivery_status: status.delivery,
        websocket_url: if link {
            state
                .ws_channel
                .as_deref()
                .map(|c| websocket_url(engine, c))
        } else {
            None
        },
    })
}

/// The authenticate step's `index` member for an OOB option (required, spec 8.4).
pub fn index_member(input: &Value) -> Result<usize, Vec<Cause>> {
    match input.get("index") {
        Some(Value::Number(n)) if n.as_u64().is_some() => Ok(n.as_u64().unwrap_or(0) as usize),
        Some(other) => Err(vec![Cause::new(
            "/index",
            "type",
            json!({"actual": [json_type(other)], "expected": ["integer"]}),
        )]),
        None => Err(vec![
            required_cause(input, &["index"]).expect("index is missing"),
        ]),
    }
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}
