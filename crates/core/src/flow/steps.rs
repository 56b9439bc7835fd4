//! Per-step behaviour: what happens on entering a step, how it consumes an input, and
//! how it renders its action.

use serde_json::{Value, json};

use super::action::{Action, AuthenticateOption, CreateOption, IdentifyOption};
use super::def::{
    Authentication, BranchOption, Channel, FlowDef, FlowKind, Identification, OtpForm, StepDef,
    StepType,
};
use super::device_token;
use super::engine::{Engine, RequestContext};
use super::error::{Cause, FlowError, FlowResult};
use super::input::{Fit, choice, max_length_cause, string_member};
use super::limits::Bucket;
use super::oob;
use super::otp::{CodeCheck, OtpSettings, Purpose};
use super::reauth;
use super::recovery;
use super::second_factor;
use super::state::{FlowState, Identified, PasswordUse, complete_step, current_step};
use crate::config::LockoutKind;
use crate::credentials::login_id::{self, LoginIdProblem, NormalizedLoginId};
use crate::credentials::password::{
    MAX_PASSWORD_BYTES, PasswordCheck, PolicyViolation, check_policy, policy_json,
};
use crate::credentials::token;
use crate::model::{
    Authenticator, AuthenticatorKind, AuthenticatorType, DEFAULT_ORG_ID, Identity, LoginIdType,
    PasswordHistoryEntry, VerifiedClaim,
};

/// What entering a step decided.
pub enum Entered {
    NeedsInput,
    /// The step is complete without input, having chosen this branch (if any).
    Done(Option<usize>),
}

/// Whether the current step took the input.
pub enum Consumed {
    Yes,
    Misfit(Vec<Cause>),
}

pub async fn on_enter(
    engine: &Engine,
    ctx: &RequestContext,
    _flow: &FlowDef,
    step: &StepDef,
    state: &mut FlowState,
) -> FlowResult<Entered> {
    match step.step_type {
        StepType::Verify => enter_verify(engine, ctx, step, state).await,
        // A reauth flow that knows its user (ID-token hint or session cookie) asks for no
        // ID token (flow-config.md 7.2).
        StepType::Identify if state.kind == FlowKind::Reauth && state.user_id.is_some() => {
            Ok(Entered::Done(reauth::known_user_branch(step)))
        }
        StepType::Identify => Ok(Entered::NeedsInput),
        StepType::Authenticate => {
            if let Some(branch) = device_token::satisfied_branch(engine, ctx, step, state).await? {
                return Ok(Entered::Done(Some(branch)));
            }
            if !authenticate_options(engine, step, state).await?.is_empty() {
                Ok(Entered::NeedsInput)
            } else if step.optional {
                Ok(Entered::Done(None))
            } else {
                Err(FlowError::NoAuthenticator)
            }
        }
        StepType::CreateAuthenticator => {
            if create_options(engine, step, state).await?.is_empty() {
                Err(FlowError::InvalidFlowConfig(
                    "create_authenticator step has no usable option".into(),
                ))
            } else {
                Ok(Entered::NeedsInput)
            }
        }
        StepType::CheckAccountStatus => check_account_status(engine, state).await,
        StepType::SelectDestination
        | StepType::VerifyAccountRecoveryCode
        | StepType::ResetPassword => Ok(Entered::NeedsInput),
        // Skipped in v1 (spec 8.18).
        StepType::TerminateOtherSessions => Ok(Entered::Done(None)),
        StepType::ChangePassword => match force_change_reason(step, state) {
            Some(_) => Ok(Entered::NeedsInput),
            None => Ok(Entered::Done(None)),
        },
        StepType::ViewRecoveryCode => second_factor::enter_view_recovery_code(engine, state),
        other => Err(FlowError::InvalidFlowConfig(format!(
            "step type {} is not implemented yet",
            other.as_str()
        ))),
    }
}

pub async fn consume(
    engine: &Engine,
    ctx: &RequestContext,
    flow: &FlowDef,
    step: &StepDef,
    state: &mut FlowState,
    input: &Value,
) -> FlowResult<Consumed> {
    match step.step_type {
        StepType::Identify => identify(engine, ctx, flow, step, state, input).await,
        StepType::Authenticate => authenticate(engine, ctx, flow, step, state, input).await,
        StepType::CreateAuthenticator => {
            create_authenticator(engine, ctx, flow, step, state, input).await
        }
        StepType::ChangePassword => change_password(engine, flow, step, state, input).await,
        StepType::Verify => verify(engine, ctx, flow, step, state, input).await,
        StepType::SelectDestination => {
            recovery::select(engine, ctx, flow, step, state, input).await
        }
        StepType::VerifyAccountRecoveryCode => {
            recovery::verify(engine, ctx, flow, state, input).await
        }
        StepType::ResetPassword => recovery::reset(engine, flow, state, input).await,
        StepType::ViewRecoveryCode => {
            second_factor::confirm_recovery_codes(engine, flow, state, input)
        }
        _ => Ok(Consumed::Misfit(Vec::new())),
    }
}

pub async fn render(engine: &Engine, step: &StepDef, state: &FlowState) -> FlowResult<Action> {
    if let Some(choice) = state.active_otp() {
        return oob::render_choice(engine, step, state, choice).await;
    }
    if let Some(setup) = state.active_totp_setup() {
        return second_factor::render_totp_setup(engine, state, setup);
    }
    Ok(match step.step_type {
        StepType::Identify => Action::Identify {
            options: identify_options(engine, step, state.kind)
                .into_iter()
                .map(|(_, identification)| IdentifyOption { identification })
                .collect(),
        },
        StepType::Authenticate => Action::Authenticate {
            options: authenticate_options(engine, step, state)
                .await?
                .into_iter()
                .map(|o| AuthenticateOption {
                    otp: o
                        .oob
                        .as_ref()
                        .map(|t| oob::login_option_view(engine, o.authentication, &t.target)),
                    authentication: o.authentication,
                })
                .collect(),
            device_token_enabled: device_token::enabled(engine, step),
        },
        StepType::CreateAuthenticator => Action::CreateAuthenticator {
            options: create_options(engine, step, state)
                .await?
                .into_iter()
                .map(|o| CreateOption {
                    authentication: o.authentication,
                    password_policy: is_password(o.authentication)
                        .then(|| policy_json(&engine.settings.password_policy)),
                    otp: o
                        .target
                        .as_ref()
                        .map(|t| oob::create_option_view(engine, o.authentication, t)),
                })
                .collect(),
        },
        StepType::ChangePassword => Action::ChangePassword {
            password_policy: policy_json(&engine.settings.password_policy),
            force_change_reason: match force_change_reason(step, state) {
                Some("expiry") => "expiry",
                _ => "policy",
            },
        },
        StepType::Verify => verify_action(engine, step, state).await?,
        StepType::SelectDestination => recovery::render_select(step, state)?,
        StepType::VerifyAccountRecoveryCode => recovery::render_verify(engine, state).await?,
        StepType::ResetPassword => recovery::render_reset(engine, state)?,
        StepType::ViewRecoveryCode => second_factor::render_view_recovery_code(engine, state)?,
        other => {
            return Err(FlowError::InvalidFlowConfig(format!(
                "step type {} is not implemented yet",
                other.as_str()
            )));
        }
    })
}

// ---------------------------------------------------------------------------------------
// identify

fn identification_type(i: Identification) -> Option<LoginIdType> {
    match i {
        Identification::Email => Some(LoginIdType::Email),
        Identification::Phone => Some(LoginIdType::Phone),
        Identification::Username => Some(LoginIdType::Username),
        _ => None,
    }
}

/// Branches offered by an identify step: login ID types with a configured key, and in
/// reauth flows the ID token (elsewhere it is [later] and ignored, flow-config.md 7.3).
fn identify_options(
    engine: &Engine,
    step: &StepDef,
    kind: FlowKind,
) -> Vec<(usize, Identification)> {
    step.branches
        .iter()
        .enumerate()
        .filter_map(|(i, b)| match b.option {
            BranchOption::Identification(Identification::IdToken) => {
                (kind == FlowKind::Reauth).then_some((i, Identification::IdToken))
            }
            BranchOption::Identification(id) => identification_type(id)
                .filter(|t| engine.settings.key_of_type(*t).is_some())
                .map(|_| (i, id)),
            BranchOption::Authentication(_) => None,
        })
        .collect()
}

async fn identify(
    engine: &Engine,
    ctx: &RequestContext,
    flow: &FlowDef,
    step: &StepDef,
    state: &mut FlowState,
    input: &Value,
) -> FlowResult<Consumed> {
    let options = identify_options(engine, step, state.kind);
    let names: Vec<&str> = options.iter().map(|(_, i)| i.as_str()).collect();
    let chosen = match choice(input, "identification", &names) {
        Fit::Fits(v) => v,
        Fit::Misfit(causes) => return Ok(Consumed::Misfit(causes)),
    };
    let (branch, identification) = options
        .into_iter()
        .find(|(_, i)| i.as_str() == chosen)
        .expect("chosen among options");
    if identification == Identification::IdToken {
        return identify_with_id_token(engine, flow, branch, state, input).await;
    }
    let login_id = match string_member(input, "login_id") {
        Ok(v) => v,
        Err(causes) => return Ok(Consumed::Misfit(causes)),
    };
    let login_id_type = identification_type(identification).expect("login ID option");
    match state.kind {
        FlowKind::Signup | FlowKind::Promote => {
            identify_new(engine, step, state, login_id_type, login_id).await?;
        }
        FlowKind::SignupLogin => {
            return switch_signup_login(engine, ctx, step, branch, state, login_id_type, input)
                .await;
        }
        FlowKind::AccountRecovery => {
            recovery::identify(engine, step, branch, state, login_id_type, login_id).await?;
        }
        _ => identify_existing(engine, ctx, step, state, login_id_type, login_id).await?,
    }
    complete_step(flow, &mut state.cursor, Some(branch));
    Ok(Consumed::Yes)
}

/// Reauth: `{"identification": "id_token", "id_token": "<jwt>"}` names the user (17.9).
async fn identify_with_id_token(
    engine: &Engine,
    flow: &FlowDef,
    branch: usize,
    state: &mut FlowState,
    input: &Value,
) -> FlowResult<Consumed> {
    let id_token = match string_member(input, "id_token") {
        Ok(v) => v,
        Err(causes) => return Ok(Consumed::Misfit(causes)),
    };
    reauth::identify_by_id_token(engine, state, id_token).await?;
    complete_step(flow, &mut state.cursor, Some(branch));
    Ok(Consumed::Yes)
}

/// Signup: normalize and check the new login ID, refuse one that is taken.
async fn identify_new(
    engine: &Engine,
    step: &StepDef,
    state: &mut FlowState,
    login_id_type: LoginIdType,
    login_id: &str,
) -> FlowResult<()> {
    let key = engine
        .settings
        .key_of_type(login_id_type)
        .ok_or_else(|| FlowError::InvalidFlowConfig("no login ID key".into()))?;
    let normalized =
        login_id::normalize_for_signup(&key.rules, login_id).map_err(invalid_login_id)?;
    let taken_here = state
        .pending
        .identities
        .iter()
        .any(|i| i.login_id_key == key.key && i.unique_key == normalized.unique_key);
    let taken = engine
        .db
        .find_identity(DEFAULT_ORG_ID, &key.key, &normalized.unique_key)
        .await?;
    if taken_here || taken.is_some() {
        return Err(FlowError::DuplicatedIdentity {
            login_id_type_incoming: login_id_type.as_str(),
            login_id_type_existing: login_id_type.as_str(),
        });
    }
    let user_id = match &state.user_id {
        Some(id) => id.clone(),
        None => {
            let id = token::random_id(&*engine.rng);
            state.user_id = Some(id.clone());
            state.is_new_user = true;
            id
        }
    };
    state.pending.identities.push(Identity {
        id: token::random_id(&*engine.rng),
        user_id,
        org_id: DEFAULT_ORG_ID.to_string(),
        login_id_key: key.key.clone(),
        login_id_type,
        original: normalized.original.clone(),
        normalized: normalized.normalized.clone(),
        unique_key: normalized.unique_key.clone(),
        created_at: engine.clock.now(),
    });
    record_identified(state, step, login_id_type, &key.key, normalized);
    Ok(())
}

pub(super) fn record_identified(
    state: &mut FlowState,
    step: &StepDef,
    login_id_type: LoginIdType,
    key: &str,
    value: NormalizedLoginId,
) {
    state.identified.push(Identified {
        step_name: step.name.clone(),
        login_id_type,
        login_id_key: key.to_string(),
        original: value.original,
        normalized: value.normalized,
        unique_key: value.unique_key,
    });
}

pub(super) fn invalid_login_id(problem: LoginIdProblem) -> FlowError {
    let cause = match problem {
        LoginIdProblem::Format(format) => {
            Cause::new("/login_id", "format", json!({"format": format}))
        }
        LoginIdProblem::Blocked(reason) => {
            Cause::new("/login_id", "blocked", json!({"reason": reason}))
        }
        LoginIdProblem::MaxLength { expected, actual } => {
            max_length_cause("login_id", expected, actual)
        }
    };
    FlowError::ValidationFailed {
        message: "invalid login ID",
        causes: vec![cause],
    }
}

/// Find the identity of a login ID by value, against every configured key (17.2).
async fn lookup_login_id(
    engine: &Engine,
    login_id: &str,
) -> FlowResult<Option<(Identity, NormalizedLoginId)>> {
    for key in &engine.settings.login_id_keys {
        let normalized = login_id::normalize_for_lookup(&key.rules, login_id);
        if let Some(identity) = engine
            .db
            .find_identity(DEFAULT_ORG_ID, &key.key, &normalized.unique_key)
            .await?
        {
            return Ok(Some((identity, normalized)));
        }
    }
    Ok(None)
}

fn enumeration_bucket(engine: &Engine, ctx: &RequestContext) -> Option<Bucket> {
    engine
        .settings
        .rate_limits
        .account_enumeration_per_ip
        .map(|limit| {
            Bucket::new(
                "AccountEnumerationPerIP",
                &ctx.ip,
                limit,
                Some((
                    "authentication.account_enumeration.per_ip",
                    "authentication.account_enumeration",
                )),
            )
        })
}

/// Login: the login ID must belong to a user. Unknown IDs count toward the per-IP
/// account-enumeration limit; once it is exhausted they answer `RateLimited`.
async fn identify_existing(
    engine: &Engine,
    ctx: &RequestContext,
    step: &StepDef,
    state: &mut FlowState,
    login_id_type: LoginIdType,
    login_id: &str,
) -> FlowResult<()> {
    let Some((identity, normalized)) = lookup_login_id(engine, login_id).await? else {
        // Only misses count: concurrent logins of real users never exhaust the bucket.
        if let Some(b) = enumeration_bucket(engine, ctx) {
            engine.limiter.take(&b).await?;
        }
        return Err(FlowError::UserNotFound {
            login_id_type: login_id_type.as_str(),
            existing_identities: Vec::new(),
        });
    };
    state.user_id = Some(identity.user_id.clone());
    record_identified(
        state,
        step,
        identity.login_id_type,
        &identity.login_id_key,
        normalized,
    );
    Ok(())
}

/// `signup_login`: continue in the branch's login flow when the login ID is known, else
/// in its signup flow; the same input is fed again to the new flow (spec 6.5).
async fn switch_signup_login(
    engine: &Engine,
    ctx: &RequestContext,
    step: &StepDef,
    branch: usize,
    state: &mut FlowState,
    login_id_type: LoginIdType,
    input: &Value,
) -> FlowResult<Consumed> {
    let login_id = input
        .get("login_id")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let branch_def = &step.branches[branch];
    let exists = lookup_login_id(engine, login_id).await?.is_some();
    let target = if exists {
        let name = branch_def.login_flow.as_deref().unwrap_or("default");
        engine.resolve_flow(FlowKind::Login, name)?
    } else {
        let Some(name) = branch_def.signup_flow.as_deref() else {
            return Err(FlowError::UserNotFound {
                login_id_type: login_id_type.as_str(),
                existing_identities: Vec::new(),
            });
        };
        engine.resolve_flow(FlowKind::Signup, name)?
    };
    state.switch_to(target);
    engine.run_automatic_steps(ctx, state).await?;
    let step = current_step(target, &state.cursor).ok_or_else(invalid_switch)?;
    if step.step_type != StepType::Identify {
        return Err(invalid_switch());
    }
    match Box::pin(identify(engine, ctx, target, step, state, input)).await? {
        Consumed::Yes => Ok(Consumed::Yes),
        Consumed::Misfit(_) => Err(invalid_switch()),
    }
}

fn invalid_switch() -> FlowError {
    FlowError::InvalidFlowConfig(
        "signup_login target flow does not start with a matching identify step".into(),
    )
}

// ---------------------------------------------------------------------------------------
// authenticate

/// An option of an authenticate step, with the branch it selects.
pub struct AuthOption {
    pub authentication: Authentication,
    pub branch: usize,
    pub authenticator_id: Option<String>,
    /// OOB options: where the code goes.
    pub oob: Option<oob::OobTarget>,
}

pub(super) async fn user_authenticators(
    engine: &Engine,
    state: &FlowState,
) -> FlowResult<Vec<Authenticator>> {
    let Some(user_id) = &state.user_id else {
        return Ok(Vec::new());
    };
    let mut list = if state.is_new_user {
        Vec::new()
    } else {
        super::reads::authenticators(&*engine.db, user_id).await?
    };
    list.extend(state.pending.authenticators.iter().cloned());
    Ok(list)
}

fn find_authenticator<'a>(
    list: &'a [Authenticator],
    kind: AuthenticatorKind,
    t: AuthenticatorType,
    state: &FlowState,
) -> Option<&'a Authenticator> {
    list.iter().find(|a| {
        a.kind == kind && a.authenticator_type == t && !state.used_authenticator_ids.contains(&a.id)
    })
}

/// Options of an authenticate step for this user (spec 8.4). Authentications whose
/// feature is not built yet are never offered.
pub async fn authenticate_options(
    engine: &Engine,
    step: &StepDef,
    state: &FlowState,
) -> FlowResult<Vec<AuthOption>> {
    let authenticators = user_authenticators(engine, state).await?;
    let mut options = Vec::new();
    for (i, branch) in step.branches.iter().enumerate() {
        let BranchOption::Authentication(a) = branch.option else {
            continue;
        };
        if oob::oob_medium(a).is_some() {
            for target in oob::login_targets(engine, branch, a, state).await? {
                options.push(AuthOption {
                    authentication: a,
                    branch: i,
                    authenticator_id: None,
                    oob: Some(target),
                });
            }
            continue;
        }
        let offered = match a {
            Authentication::PrimaryPassword => (!state.used_primary_password).then(|| {
                find_authenticator(
                    &authenticators,
                    AuthenticatorKind::Primary,
                    AuthenticatorType::Password,
                    state,
                )
                .map(|x| x.id.clone())
            }),
            Authentication::SecondaryPassword => find_authenticator(
                &authenticators,
                AuthenticatorKind::Secondary,
                AuthenticatorType::Password,
                state,
            )
            .map(|x| Some(x.id.clone())),
            // One option for all of the user's TOTP apps: the code picks the authenticator.
            Authentication::SecondaryTotp => {
                (!second_factor::usable_totp(&authenticators, state).is_empty()).then_some(None)
            }
            // Kept only with a companion and unused codes: decided below.
            Authentication::RecoveryCode => Some(None),
            _ => None,
        };
        if let Some(authenticator_id) = offered {
            options.push(AuthOption {
                authentication: a,
                branch: i,
                authenticator_id,
                oob: None,
            });
        }
    }
    retain_recovery_code(engine, state, &mut options).await?;
    Ok(options)
}

/// A recovery code stands in for another second factor and is never the only way in
/// (17.3). The codes are looked up only when that other factor is offered, so logins of
/// users without a second factor cost no query.
async fn retain_recovery_code(
    engine: &Engine,
    state: &FlowState,
    options: &mut Vec<AuthOption>,
) -> FlowResult<()> {
    let is_recovery = |o: &AuthOption| o.authentication == Authentication::RecoveryCode;
    if !options.iter().any(is_recovery) {
        return Ok(());
    }
    let companion = options.iter().any(|o| !is_recovery(o));
    if !companion || !second_factor::has_unused_recovery_code(engine, state).await? {
        options.retain(|o| !is_recovery(o));
    }
    Ok(())
}

fn password_buckets(engine: &Engine, ctx: &RequestContext, user_id: &str) -> Vec<Bucket> {
    let limits = &engine.settings.rate_limits;
    let mut buckets = Vec::new();
    if let Some(limit) = limits.password_per_ip {
        buckets.push(Bucket::new(
            "VerifyPasswordPerIP",
            &ctx.ip,
            limit,
            Some(("authentication.password.per_ip", "authentication.password")),
        ));
    }
    if let Some(limit) = limits.password_per_user_per_ip {
        buckets.push(Bucket::new(
            "VerifyPasswordPerUserPerIP",
            &format!("{user_id}:{}", ctx.ip),
            limit,
            Some((
                "authentication.password.per_user_per_ip",
                "authentication.password",
            )),
        ));
    }
    buckets
}

pub(super) fn password_member(input: &Value, key: &str) -> Result<String, Vec<Cause>> {
    let value = string_member(input, key)?;
    if value.len() > MAX_PASSWORD_BYTES {
        return Err(vec![max_length_cause(key, MAX_PASSWORD_BYTES, value.len())]);
    }
    Ok(value.to_string())
}

async fn authenticate(
    engine: &Engine,
    ctx: &RequestContext,
    flow: &FlowDef,
    step: &StepDef,
    state: &mut FlowState,
    input: &Value,
) -> FlowResult<Consumed> {
    if state.active_otp().is_some() {
        return oob::consume_choice(engine, ctx, flow, state, input).await;
    }
    let options = authenticate_options(engine, step, state).await?;
    let names: Vec<&str> = options.iter().map(|o| o.authentication.as_str()).collect();
    let chosen = match choice(input, "authentication", &names) {
        Fit::Fits(v) => v,
        Fit::Misfit(causes) => return Ok(Consumed::Misfit(causes)),
    };
    // Kept only if this input's authentication succeeds: a refused input leaves no state.
    if device_token::requested(engine, step, input)? {
        state.device_token_requested = true;
    }
    let is_oob = options
        .iter()
        .any(|o| o.authentication.as_str() == chosen && o.oob.is_some());
    if is_oob {
        let index = match oob::index_member(input) {
            Ok(i) => i,
            Err(causes) => return Ok(Consumed::Misfit(causes)),
        };
        let Some(option) = options
            .into_iter()
            .nth(index)
            .filter(|o| o.authentication.as_str() == chosen)
        else {
            return Ok(Consumed::Misfit(vec![Cause::new(
                "/index",
                "const",
                json!({"actual": index}),
            )]));
        };
        let target = option.oob.expect("an OOB option has a target");
        return oob::choose_login(
            engine,
            ctx,
            state,
            option.branch,
            option.authentication,
            target,
            input,
        )
        .await;
    }
    let option = options
        .into_iter()
        .find(|o| o.authentication.as_str() == chosen)
        .expect("chosen among options");
    match option.authentication {
        Authentication::SecondaryTotp => {
            return second_factor::login_with_totp(engine, ctx, flow, state, option.branch, input)
                .await;
        }
        Authentication::RecoveryCode => {
            return second_factor::login_with_recovery_code(
                engine,
                ctx,
                flow,
                state,
                option.branch,
                input,
            )
            .await;
        }
        _ => {}
    }
    let password = match password_member(input, "password") {
        Ok(p) => p,
        Err(causes) => return Ok(Consumed::Misfit(causes)),
    };
    verify_password(engine, ctx, step, state, &option, password).await?;
    complete_step(flow, &mut state.cursor, Some(option.branch));
    Ok(Consumed::Yes)
}

async fn verify_password(
    engine: &Engine,
    ctx: &RequestContext,
    step: &StepDef,
    state: &mut FlowState,
    option: &AuthOption,
    password: String,
) -> FlowResult<()> {
    let user_id = state.user_id.clone().unwrap_or_default();
    engine
        .lockout
        .ensure_unlocked(LockoutKind::Password, &user_id, &ctx.ip)
        .await?;
    let buckets = password_buckets(engine, ctx, &user_id);
    engine.limiter.take_all(&buckets).await?;
    let authenticators = user_authenticators(engine, state).await?;
    let stored = option
        .authenticator_id
        .as_ref()
        .and_then(|id| authenticators.iter().find(|a| &a.id == id))
        .cloned();
    let hasher = engine.hasher.clone();
    let hash = stored
        .as_ref()
        .and_then(|a| a.password_hash().map(str::to_string));
    let pw = password.clone();
    let check = engine
        .run_hashing(move || match hash {
            Some(h) => hasher.verify(&pw, &h),
            None => {
                hasher.dummy_verify(&pw);
                PasswordCheck::Mismatch
            }
        })
        .await?;
    let (PasswordCheck::Match { needs_rehash }, Some(authenticator)) = (check, stored) else {
        engine
            .lockout
            .record_failure(LockoutKind::Password, &user_id, &ctx.ip)
            .await?;
        return Err(FlowError::InvalidCredentials {
            authentication_type: "password",
        });
    };
    engine.limiter.give_back_all(&buckets).await?;
    if needs_rehash {
        let new_hash = hash_password(engine, password.clone()).await?;
        state
            .pending
            .authenticator_updates
            .push((authenticator.id.clone(), json!({"password_hash": new_hash})));
    }
    record_password_use(engine, step, state, &authenticator, &password);
    Ok(())
}

fn record_password_use(
    engine: &Engine,
    step: &StepDef,
    state: &mut FlowState,
    authenticator: &Authenticator,
    password: &str,
) {
    let settings = &engine.settings;
    let breaks_policy = settings.force_change_on_policy_violation
        && !check_policy(&settings.password_policy, password, &[]).is_empty();
    let expired = settings.password_expiry.is_some_and(|max_age| {
        let age = engine.clock.now() - authenticator.updated_at;
        age.to_std().unwrap_or_default() > max_age
    });
    let reason = if breaks_policy {
        Some("policy")
    } else if expired {
        Some("expiry")
    } else {
        None
    };
    state.used_authenticator_ids.push(authenticator.id.clone());
    if authenticator.kind == AuthenticatorKind::Primary {
        state.used_primary_password = true;
    }
    if !state.amr.iter().any(|m| m == "pwd") {
        state.amr.push("pwd".into());
    }
    state.password_uses.push(PasswordUse {
        step_name: step.name.clone(),
        authenticator_id: authenticator.id.clone(),
        force_change_reason: reason.map(str::to_string),
    });
}

pub(super) async fn hash_password(engine: &Engine, password: String) -> FlowResult<String> {
    let hasher = engine.hasher.clone();
    let rng = engine.rng.clone();
    engine
        .run_hashing(move || hasher.hash(&password, &*rng))
        .await
}

async fn check_account_status(engine: &Engine, state: &FlowState) -> FlowResult<Entered> {
    if state.is_new_user {
        return Ok(Entered::Done(None));
    }
    let Some(user_id) = &state.user_id else {
        return Ok(Entered::Done(None));
    };
    match super::reads::user(&*engine.db, user_id).await? {
        Some(user) if user.disabled => Err(FlowError::DisabledUser {
            reason: user.disabled_reason,
        }),
        _ => Ok(Entered::Done(None)),
    }
}

// ---------------------------------------------------------------------------------------
// create_authenticator, change_password

/// An option of a create_authenticator step, with the branch it selects.
pub struct CreateOpt {
    pub authentication: Authentication,
    pub branch: usize,
    /// OOB options: the target, known from `target_step` or named by the input.
    pub target: Option<oob::CreateTarget>,
}

async fn create_options(
    engine: &Engine,
    step: &StepDef,
    state: &FlowState,
) -> FlowResult<Vec<CreateOpt>> {
    let mut options = Vec::new();
    let owned = user_authenticators(engine, state).await?;
    for (i, b) in step.branches.iter().enumerate() {
        let BranchOption::Authentication(a) = b.option else {
            continue;
        };
        if at_maximum(engine, a, &owned) {
            continue;
        }
        match a {
            Authentication::PrimaryPassword
            | Authentication::SecondaryPassword
            | Authentication::SecondaryTotp => options.push(CreateOpt {
                authentication: a,
                branch: i,
                target: None,
            }),
            _ if oob::oob_medium(a).is_some() => {
                if let Some(target) = oob::create_target(engine, b, a, state).await? {
                    options.push(CreateOpt {
                        authentication: a,
                        branch: i,
                        target: Some(target),
                    });
                }
            }
            _ => {}
        }
    }
    Ok(options)
}

/// The user already has `authenticator.<type>.maximum` authenticators of `a`'s type.
fn at_maximum(engine: &Engine, a: Authentication, owned: &[Authenticator]) -> bool {
    let s = &engine.settings;
    let (t, maximum) = match a {
        Authentication::SecondaryTotp => (AuthenticatorType::Totp, s.maximum_totp),
        Authentication::PrimaryOobOtpEmail | Authentication::SecondaryOobOtpEmail => {
            (AuthenticatorType::OobOtpEmail, s.maximum_oob_email)
        }
        Authentication::PrimaryOobOtpSms | Authentication::SecondaryOobOtpSms => {
            (AuthenticatorType::OobOtpSms, s.maximum_oob_sms)
        }
        _ => return false,
    };
    let count = owned.iter().filter(|o| o.authenticator_type == t).count();
    count >= maximum as usize
}

/// Login IDs of this flow, which zxcvbn treats as easy to guess in a password.
fn user_inputs(state: &FlowState) -> Vec<&str> {
    state
        .identified
        .iter()
        .map(|i| i.normalized.as_str())
        .collect()
}

pub(super) fn enforce_policy(engine: &Engine, state: &FlowState, password: &str) -> FlowResult<()> {
    let violations = check_policy(
        &engine.settings.password_policy,
        password,
        &user_inputs(state),
    );
    if violations.is_empty() {
        Ok(())
    } else {
        Err(FlowError::PasswordPolicyViolated(violations))
    }
}

async fn create_authenticator(
    engine: &Engine,
    ctx: &RequestContext,
    flow: &FlowDef,
    step: &StepDef,
    state: &mut FlowState,
    input: &Value,
) -> FlowResult<Consumed> {
    if state.active_otp().is_some() {
        return oob::consume_choice(engine, ctx, flow, state, input).await;
    }
    if state.active_totp_setup().is_some() {
        return second_factor::confirm_totp_setup(engine, ctx, flow, state, input).await;
    }
    let options = create_options(engine, step, state).await?;
    let names: Vec<&str> = options.iter().map(|o| o.authentication.as_str()).collect();
    let chosen = match choice(input, "authentication", &names) {
        Fit::Fits(v) => v,
        Fit::Misfit(causes) => return Ok(Consumed::Misfit(causes)),
    };
    let option = options
        .into_iter()
        .find(|o| o.authentication.as_str() == chosen)
        .expect("chosen among options");
    let (branch, authentication) = (option.branch, option.authentication);
    if authentication == Authentication::SecondaryTotp {
        return second_factor::start_totp_setup(engine, state, branch);
    }
    if let Some(target) = option.target {
        return oob::choose_create(
            engine,
            ctx,
            flow,
            state,
            branch,
            authentication,
            target,
            input,
        )
        .await;
    }
    let password = match password_member(input, "new_password") {
        Ok(p) => p,
        Err(causes) => return Ok(Consumed::Misfit(causes)),
    };
    enforce_policy(engine, state, &password)?;
    let hash = hash_password(engine, password).await?;
    let user_id = state.user_id.clone().ok_or_else(|| {
        FlowError::InvalidFlowConfig("create_authenticator before identify".into())
    })?;
    let kind = if authentication == Authentication::PrimaryPassword {
        AuthenticatorKind::Primary
    } else {
        AuthenticatorKind::Secondary
    };
    stage_new_password(engine, state, &user_id, kind, hash);
    // The session of a signup is authenticated by the password just set.
    if !state.amr.iter().any(|m| m == "pwd") {
        state.amr.push("pwd".into());
    }
    complete_step(flow, &mut state.cursor, Some(branch));
    Ok(Consumed::Yes)
}

fn is_password(a: Authentication) -> bool {
    matches!(
        a,
        Authentication::PrimaryPassword | Authentication::SecondaryPassword
    )
}

fn force_change_reason<'a>(step: &StepDef, state: &'a FlowState) -> Option<&'a str> {
    let target = step.target_step.as_deref()?;
    state
        .password_uses
        .iter()
        .rev()
        .find(|u| u.step_name.as_deref() == Some(target))
        .and_then(|u| u.force_change_reason.as_deref())
}

async fn change_password(
    engine: &Engine,
    flow: &FlowDef,
    step: &StepDef,
    state: &mut FlowState,
    input: &Value,
) -> FlowResult<Consumed> {
    let password = match password_member(input, "new_password") {
        Ok(p) => p,
        Err(causes) => return Ok(Consumed::Misfit(causes)),
    };
    let target = step.target_step.clone().unwrap_or_default();
    let Some(used) = state
        .password_uses
        .iter()
        .rev()
        .find(|u| u.step_name.as_deref() == Some(target.as_str()))
        .cloned()
    else {
        return Ok(Consumed::Misfit(Vec::new()));
    };
    enforce_policy(engine, state, &password)?;
    refuse_reused_password(engine, state, &used.authenticator_id, &password).await?;
    let hash = hash_password(engine, password).await?;
    let now = engine.clock.now();
    state.pending.authenticator_updates.push((
        used.authenticator_id.clone(),
        json!({"password_hash": hash}),
    ));
    state.pending.password_history.push(PasswordHistoryEntry {
        user_id: state.user_id.clone().unwrap_or_default(),
        password_hash: hash,
        created_at: now,
    });
    if let Some(u) = state
        .password_uses
        .iter_mut()
        .rev()
        .find(|u| u.step_name.as_deref() == Some(target.as_str()))
    {
        u.force_change_reason = None;
    }
    complete_step(flow, &mut state.cursor, None);
    Ok(Consumed::Yes)
}

/// The current password is always refused; with history on, so are recent ones.
/// A new password authenticator of `kind` and its history entry, written at finish.
pub(super) fn stage_new_password(
    engine: &Engine,
    state: &mut FlowState,
    user_id: &str,
    kind: AuthenticatorKind,
    hash: String,
) {
    let now = engine.clock.now();
    state.pending.authenticators.push(Authenticator {
        id: token::random_id(&*engine.rng),
        user_id: user_id.to_string(),
        kind,
        authenticator_type: AuthenticatorType::Password,
        data: json!({"password_hash": hash}),
        created_at: now,
        updated_at: now,
    });
    stage_password_history(engine, state, user_id, hash);
}

pub(super) fn stage_password_history(
    engine: &Engine,
    state: &mut FlowState,
    user_id: &str,
    hash: String,
) {
    state.pending.password_history.push(PasswordHistoryEntry {
        user_id: user_id.to_string(),
        password_hash: hash,
        created_at: engine.clock.now(),
    });
}

pub(super) async fn refuse_reused_password(
    engine: &Engine,
    state: &FlowState,
    authenticator_id: &str,
    password: &str,
) -> FlowResult<()> {
    let current: Vec<String> = user_authenticators(engine, state)
        .await?
        .iter()
        .filter(|a| a.id == authenticator_id)
        .filter_map(|a| a.password_hash().map(str::to_string))
        .collect();
    refuse_reuse(engine, state.user_id.as_deref(), current, password).await
}

/// `password` may not be one of `current` nor, with history on, one of the user's recent
/// passwords (`PasswordPolicyViolated` `PasswordReused`).
pub(super) async fn refuse_reuse(
    engine: &Engine,
    user_id: Option<&str>,
    mut hashes: Vec<String>,
    password: &str,
) -> FlowResult<()> {
    let policy = &engine.settings.password_policy;
    if policy.history_enabled()
        && let Some(user_id) = user_id
    {
        let now = engine.clock.now();
        let days = chrono::Duration::days(i64::from(policy.history_days));
        let size = policy.history_size.max(1);
        let limit = if policy.history_days > 0 { 1000 } else { size };
        let history = engine.db.list_password_history(user_id, limit).await?;
        hashes.extend(history.into_iter().enumerate().filter_map(|(i, h)| {
            let in_size = (i as u32) < policy.history_size;
            let in_days = policy.history_days > 0 && now - h.created_at <= days;
            (in_size || in_days).then_some(h.password_hash)
        }));
    }
    let hasher = engine.hasher.clone();
    let pw = password.to_string();
    let reused = engine
        .run_hashing(move || {
            hashes
                .iter()
                .any(|h| matches!(hasher.verify(&pw, h), PasswordCheck::Match { .. }))
        })
        .await?;
    if reused {
        return Err(FlowError::PasswordPolicyViolated(vec![
            PolicyViolation::Reused {
                history_size: policy.history_size,
                history_days: policy.history_days,
            },
        ]));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// verify (claim verification by code, spec 8.9)

/// The claim a verify step verifies: `(claim name, value, channel)`, or `None` when its
/// target has no email or phone (a username), so the step is skipped. The channel is
/// `None` while a phone with several channels waits for the user's choice (spec 8.6).
fn verify_target(
    engine: &Engine,
    step: &StepDef,
    state: &FlowState,
) -> FlowResult<Option<(&'static str, String, Option<Channel>)>> {
    let name = step.target_step.as_deref().unwrap_or_default();
    let identified = state
        .identified_in_step(name)
        .ok_or_else(|| FlowError::InvalidTargetStep(name.to_string()))?;
    let value = identified.normalized.clone();
    Ok(match identified.login_id_type {
        LoginIdType::Email => Some(("email", value, Some(Channel::Email))),
        LoginIdType::Phone => Some(("phone_number", value, verify_phone_channel(engine, state))),
        LoginIdType::Username => None,
    })
}

fn verify_phone_channel(engine: &Engine, state: &FlowState) -> Option<Channel> {
    let channels = &engine.settings.phone_channels;
    if let [only] = channels.as_slice() {
        return Some(*only);
    }
    state
        .verify_channel
        .as_ref()
        .filter(|(cursor, _)| *cursor == state.cursor)
        .map(|(_, c)| *c)
}

fn no_claim() -> FlowError {
    FlowError::InvalidTargetStep("verify target has no claim".into())
}

pub(super) async fn is_verified(
    engine: &Engine,
    state: &FlowState,
    claim: &str,
    value: &str,
) -> FlowResult<bool> {
    if state
        .pending
        .verified_claims
        .iter()
        .any(|c| c.name == claim && c.value == value)
    {
        return Ok(true);
    }
    match (&state.user_id, state.is_new_user) {
        (Some(user_id), false) => Ok(engine
            .db
            .list_verified_claims(user_id)
            .await?
            .iter()
            .any(|c| c.name == claim && c.value == value)),
        _ => Ok(false),
    }
}

fn otp_settings(engine: &Engine, channel: Channel) -> OtpSettings {
    match channel {
        Channel::Email => engine.settings.verification_email,
        Channel::Sms | Channel::Whatsapp => engine.settings.verification_sms,
    }
}

pub(super) fn cooldown_bucket(channel: Channel) -> &'static str {
    match channel {
        Channel::Email => "VerificationCooldownEmail",
        Channel::Sms => "VerificationCooldownSMS",
        Channel::Whatsapp => "VerificationCooldownWhatsapp",
    }
}

async fn enter_verify(
    engine: &Engine,
    ctx: &RequestContext,
    step: &StepDef,
    state: &mut FlowState,
) -> FlowResult<Entered> {
    let Some((claim, value, channel)) = verify_target(engine, step, state)? else {
        return Ok(Entered::Done(None));
    };
    if is_verified(engine, state, claim, &value).await? {
        return Ok(Entered::Done(None));
    }
    let Some(channel) = channel else {
        return Ok(Entered::NeedsInput);
    };
    // Entering sends a code once; re-evaluating the same state sends nothing.
    if state.code_sent_at.as_ref() != Some(&state.cursor) {
        oob::send_limited(
            engine,
            ctx,
            Purpose::Verification,
            channel,
            &value,
            state,
            oob::Delivery::Message(None),
            false,
        )
        .await?;
        state.code_sent_at = Some(state.cursor.clone());
    }
    Ok(Entered::NeedsInput)
}

pub(super) fn mask(channel: Channel, value: &str) -> String {
    match channel {
        Channel::Email => crate::credentials::mask::mask_email(value),
        Channel::Sms | Channel::Whatsapp => crate::credentials::mask::mask_phone(value),
    }
}

async fn verify_action(engine: &Engine, step: &StepDef, state: &FlowState) -> FlowResult<Action> {
    let (_, value, channel) = verify_target(engine, step, state)?.ok_or_else(no_claim)?;
    let Some(channel) = channel else {
        return Ok(Action::SelectChannel {
            step: StepType::Verify,
            authentication: None,
            channels: engine.settings.phone_channels.clone(),
            masked_claim_value: mask(Channel::Sms, &value),
        });
    };
    let prompt = oob::prompt(
        engine,
        state,
        Purpose::Verification,
        channel,
        &value,
        OtpForm::Code,
    )
    .await?;
    Ok(Action::Verify(prompt))
}

/// `{"channel"}` of a verify step waiting for a channel: remember it and send.
async fn choose_verify_channel(
    engine: &Engine,
    ctx: &RequestContext,
    state: &mut FlowState,
    value: &str,
    input: &Value,
) -> FlowResult<Consumed> {
    let channels = &engine.settings.phone_channels;
    let names: Vec<&str> = channels.iter().map(|c| oob::channel_name(*c)).collect();
    let chosen = match choice(input, "channel", &names) {
        Fit::Fits(v) => v,
        Fit::Misfit(causes) => return Ok(Consumed::Misfit(causes)),
    };
    let channel = *channels
        .iter()
        .find(|c| oob::channel_name(**c) == chosen)
        .expect("chosen among channels");
    state.verify_channel = Some((state.cursor.clone(), channel));
    oob::send_limited(
        engine,
        ctx,
        Purpose::Verification,
        channel,
        value,
        state,
        oob::Delivery::Message(None),
        false,
    )
    .await?;
    state.code_sent_at = Some(state.cursor.clone());
    Ok(Consumed::Yes)
}

async fn verify(
    engine: &Engine,
    ctx: &RequestContext,
    flow: &FlowDef,
    step: &StepDef,
    state: &mut FlowState,
    input: &Value,
) -> FlowResult<Consumed> {
    let (claim, value, channel) = verify_target(engine, step, state)?.ok_or_else(no_claim)?;
    let Some(channel) = channel else {
        return choose_verify_channel(engine, ctx, state, &value, input).await;
    };
    let settings = otp_settings(engine, channel);
    let code = input.get("code");
    let resend = input.get("resend");
    match (code, resend) {
        (Some(_), Some(_)) => Ok(Consumed::Misfit(vec![Cause::new(
            "",
            "oneOf",
            json!({"expected": ["code", "resend"]}),
        )])),
        (None, Some(Value::Bool(true))) => {
            oob::send_limited(
                engine,
                ctx,
                Purpose::Verification,
                channel,
                &value,
                state,
                oob::Delivery::Message(None),
                true,
            )
            .await?;
            state.code_sent_at = Some(state.cursor.clone());
            Ok(Consumed::Yes)
        }
        (None, Some(other)) => Ok(Consumed::Misfit(vec![Cause::new(
            "/resend",
            "const",
            json!({"expected": true, "actual": other}),
        )])),
        (None, None) => Ok(Consumed::Misfit(vec![
            super::input::required_cause(input, &["code"]).expect("code is missing"),
        ])),
        (Some(_), None) => {
            let code = match string_member(input, "code") {
                Ok(c) => c,
                Err(causes) => return Ok(Consumed::Misfit(causes)),
            };
            match engine
                .otp
                .check_code(Purpose::Verification, &value, code, settings)
                .await?
            {
                CodeCheck::Valid => {}
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
                CodeCheck::Revoked => {
                    return Err(FlowError::RateLimited(super::error::RateLimitHit {
                        bucket_name: "TrackFailedOTPAttemptBucket".into(),
                        limit: None,
                    }));
                }
            }
            state.pending.verified_claims.push(VerifiedClaim {
                user_id: state.user_id.clone().unwrap_or_default(),
                name: claim.to_string(),
                value,
                created_at: engine.clock.now(),
            });
            if !state.amr.iter().any(|m| m == "otp") {
                state.amr.push("otp".into());
            }
            complete_step(flow, &mut state.cursor, None);
            Ok(Consumed::Yes)
        }
    }
}
