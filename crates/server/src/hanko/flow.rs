//! `POST /registration`, `/login`, `/profile`: start a flow, or run `?action=<name>@<id>`
//! in the order of checks of hanko-flow-api.md section 3.

use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use serde_json::{Map, Value, json};

use authflow_core::credentials::password::MAX_PASSWORD_BYTES;
use authflow_core::flow::def::{Authentication, FlowKind, Identification};
use authflow_core::flow::limits::Bucket;
use authflow_core::flow::profile;
use authflow_core::flow::{
    Action, CreateRequest, FlowError, InputError as EngineError, RequestContext, StateView,
};

use super::HankoSettings;
use super::error::{HankoError, InputCode, InputError, Mapped, Target, from_flow};
use super::record::{self, FlowPath, FlowRecord, GivenLoginId, Pretend, Screen};
use super::session::{self, LiveSession};
use super::view::{self, Ctx, Exec, InputType, Offer, Page};
use crate::AppState;
use crate::extract::{BODY_LIMIT, is_json_content_type};

/// Oversized bodies up to this are read before the 413 (as the other dialects do).
const DRAIN_LIMIT: usize = 4 * 1024 * 1024;
/// Answers the dialect gives by itself in a row, at most (a config loop otherwise).
const MAX_AUTOMATIC: usize = 5;

pub async fn registration(
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    handle(app, FlowPath::Registration, peer, uri, headers, body).await
}

pub async fn login(
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    handle(app, FlowPath::Login, peer, uri, headers, body).await
}

pub async fn profile(
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    handle(app, FlowPath::Profile, peer, uri, headers, body).await
}

/// One request's context.
struct Call<'a> {
    app: &'a AppState,
    settings: &'a HankoSettings,
    ctx: RequestContext,
    path: FlowPath,
    headers: &'a HeaderMap,
}

/// A request's action body (spec 2.2).
struct ActionBody {
    input_data: Map<String, Value>,
    csrf_token: Option<String>,
}

async fn handle(
    app: AppState,
    path: FlowPath,
    peer: SocketAddr,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let Some(settings) = app.hanko.clone() else {
        return session::plain_error(StatusCode::NOT_FOUND, "Not Found");
    };
    let call = Call {
        app: &app,
        settings: &settings,
        ctx: RequestContext {
            codes_only: true,
            ..app.request_context(peer, &headers)
        },
        path,
        headers: &headers,
    };
    if let Err(e) = per_ip_limit(&call).await {
        return fatal(e);
    }
    let body = match read_body(&headers, body).await {
        Ok(b) => b,
        Err(e) => return fatal(e),
    };
    match action_param(&uri) {
        None => start(&call).await.unwrap_or_else(fatal),
        Some(param) => run(&call, &param, body).await.unwrap_or_else(fatal),
    }
}

/// Check 1: the dialect's own per-IP bucket, with the flow API's values.
async fn per_ip_limit(call: &Call<'_>) -> Result<(), HankoError> {
    let Some(limit) = call.app.engine.settings().rate_limits.api_per_ip else {
        return Ok(());
    };
    let bucket = Bucket::new("HankoAPIPerIP", &call.ctx.ip, limit, None);
    match call.settings.limiter.take(&bucket).await {
        Ok(()) => Ok(()),
        Err(FlowError::RateLimited(_)) => Err(HankoError::RateLimited {
            retry_after: limit
                .period
                .as_secs()
                .div_ceil(u64::from(limit.burst.max(1)))
                .max(1),
            cause: None,
            in_state: false,
        }),
        Err(e) => Err(HankoError::Technical(e.to_string())),
    }
}

/// Check 2 (spec 2.2).
async fn read_body(headers: &HeaderMap, body: Body) -> Result<ActionBody, HankoError> {
    let malformed = |status, cause| HankoError::MalformedRequest { status, cause };
    let too_large = || malformed(StatusCode::PAYLOAD_TOO_LARGE, "body_too_large");
    let bytes = match Limited::new(body, DRAIN_LIMIT).collect().await {
        Ok(c) => c.to_bytes(),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => return Err(too_large()),
        Err(_) => return Err(malformed(StatusCode::BAD_REQUEST, "invalid_json")),
    };
    if bytes.len() > BODY_LIMIT {
        return Err(too_large());
    }
    let empty = ActionBody {
        input_data: Map::new(),
        csrf_token: None,
    };
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(empty);
    }
    if !is_json_content_type(headers.get(header::CONTENT_TYPE)) {
        return Err(malformed(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ));
    }
    let invalid = || malformed(StatusCode::BAD_REQUEST, "invalid_json");
    let Ok(Value::Object(mut object)) = serde_json::from_slice::<Value>(&bytes) else {
        return Err(invalid());
    };
    let input_data = match object.remove("input_data") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(o)) => o,
        Some(_) => return Err(invalid()),
    };
    let csrf_token = match object.remove("csrf_token") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s),
        Some(_) => return Err(invalid()),
    };
    Ok(ActionBody {
        input_data,
        csrf_token,
    })
}

/// The `action` query parameter, `@` literal or percent-encoded.
fn action_param(uri: &Uri) -> Option<String> {
    url::form_urlencoded::parse(uri.query()?.as_bytes())
        .find(|(k, _)| k == "action")
        .map(|(_, v)| v.into_owned())
}

fn respond(status: StatusCode, body: Value, mut headers: HeaderMap) -> Response {
    if status == StatusCode::TOO_MANY_REQUESTS
        && let Some(after) = body["payload"]["retry_after"]
            .as_u64()
            .or(body["payload"]["resend_after"].as_u64())
        && !headers.contains_key(header::RETRY_AFTER)
    {
        headers.insert(header::RETRY_AFTER, HeaderValue::from(after.max(1)));
    }
    (status, headers, axum::Json(body)).into_response()
}

/// The `error` state.
fn fatal(e: HankoError) -> Response {
    match &e {
        HankoError::Technical(detail) | HankoError::FlowDiscontinuity(detail) => {
            tracing::error!(code = e.code(), error = %detail, "hanko flow failed");
        }
        _ => {}
    }
    let mut headers = HeaderMap::new();
    if let Some(after) = e.retry_after() {
        headers.insert(header::RETRY_AFTER, HeaderValue::from(after));
    }
    respond(e.status(), view::error_envelope(&e), headers)
}

/// A flow response in a state; `error` is a 4xx that keeps it.
fn state_response(page: &Page, record: &FlowRecord, error: Option<&HankoError>) -> Response {
    let status = error.map_or(StatusCode::OK, HankoError::status);
    let mut body = view::envelope(page, record, status.as_u16(), error);
    let mut headers = HeaderMap::new();
    if let Some(after) = error.and_then(HankoError::retry_after) {
        headers.insert(header::RETRY_AFTER, HeaderValue::from(after));
        if page.name != "passcode_confirmation" {
            body["payload"]["retry_after"] = json!(after);
        }
    }
    respond(status, body, headers)
}

// ---------------------------------------------------------------------------------------
// start

async fn start(call: &Call<'_>) -> Result<Response, HankoError> {
    let now = Utc::now();
    let mut record = FlowRecord::new(call.path, now, call.settings.flow_lifetime);
    if call.path == FlowPath::Profile {
        let live = session::current(call.app, call.settings, call.headers)
            .await?
            .ok_or(HankoError::Unauthorized)?;
        record.user_id = Some(live.session.user_id.clone());
    }
    record::save(call.app.state_store.as_ref(), &record).await?;
    Ok(state_response(&view::preflight(), &record, None))
}

// ---------------------------------------------------------------------------------------
// actions

async fn run(call: &Call<'_>, param: &str, body: ActionBody) -> Result<Response, HankoError> {
    // Check 3.
    let (name, id) = param.rsplit_once('@').ok_or(HankoError::NotPermitted)?;
    let id = id.to_ascii_lowercase();
    if name.is_empty() || !record::is_uuid(&id) {
        return Err(HankoError::NotPermitted);
    }
    let store = call.app.state_store.as_ref();
    record::lock(store, &id).await?;
    let outcome = run_locked(call, name, &id, body).await;
    record::unlock(store, &id).await;
    outcome
}

/// What rendering the current screen found: its page and, for engine screens, the view.
struct Current {
    page: Page,
    view: Option<StateView>,
    live: Option<LiveSession>,
}

async fn run_locked(
    call: &Call<'_>,
    name: &str,
    id: &str,
    body: ActionBody,
) -> Result<Response, HankoError> {
    let now = Utc::now();
    let store = call.app.state_store.as_ref();
    // Check 4.
    let mut record = record::load(store, id, call.path, now).await?;
    // Check 5.
    let live = if call.path == FlowPath::Profile {
        let live = session::current(call.app, call.settings, call.headers)
            .await?
            .ok_or(HankoError::Unauthorized)?;
        if record.user_id.as_deref() != Some(live.session.user_id.as_str()) {
            return Err(HankoError::NotPermitted);
        }
        Some(live)
    } else {
        None
    };
    // Check 6.
    if !record.csrf_matches(body.csrf_token.as_deref()) {
        return Err(HankoError::NotPermitted);
    }
    // Check 7.
    let current = render_current(call, &record, live).await?;
    let offer = current
        .page
        .offer(name)
        .cloned()
        .ok_or(HankoError::NotPermitted)?;
    // From here on the action executes: the token rotates (spec 5.1).
    let resent_before = record.passcode_resent;
    record.passcode_resent = false;
    record.rotate(now, call.settings.flow_lifetime);
    // Check 8.
    let (values, errors) = validate_inputs(&offer, &body.input_data);
    if !errors.is_empty() {
        record.passcode_resent = resent_before;
        let mut page = current.page;
        for (input, e) in errors {
            page.mark(offer.name, input, e);
        }
        record::save(store, &record).await?;
        return Ok(state_response(
            &page,
            &record,
            Some(&HankoError::FormDataInvalid),
        ));
    }
    // Check 9.
    execute(call, record, current, &offer, values).await
}

async fn render_current(
    call: &Call<'_>,
    record: &FlowRecord,
    live: Option<LiveSession>,
) -> Result<Current, HankoError> {
    let ctx = Ctx {
        settings: call.settings,
        record,
        now: Utc::now(),
    };
    let (page, view) = match &record.screen {
        Screen::Preflight => (view::preflight(), None),
        Screen::SignupDisabled => (view::signup_disabled(&ctx), None),
        Screen::Concealed { .. } => (view::concealed_page(&ctx, &record.screen), None),
        Screen::ProfileInit => {
            let live = live.as_ref().ok_or(HankoError::Unauthorized)?;
            (profile_page(call, live).await?, None)
        }
        Screen::Engine { token } | Screen::PasswordChosen { token } => {
            let chosen = matches!(record.screen, Screen::PasswordChosen { .. });
            let view = read_engine(call, token).await?;
            (view::engine_page(&ctx, &view, chosen)?, Some(view))
        }
    };
    Ok(Current { page, view, live })
}

async fn read_engine(call: &Call<'_>, token: &str) -> Result<StateView, HankoError> {
    call.app.engine.read(token).await.map_err(|e| match e {
        FlowError::FlowNotFound => HankoError::FlowExpired,
        other => HankoError::Technical(other.to_string()),
    })
}

async fn profile_page(call: &Call<'_>, live: &LiveSession) -> Result<Page, HankoError> {
    let user_id = &live.session.user_id;
    let user = session::user_object(call.app, user_id).await?;
    let sessions = session::sessions_of(call.app, user_id, &live.session.id).await?;
    let others = sessions.iter().any(|s| s["current"] == json!(false));
    let password = if call.settings.password_primary {
        let has = profile::has_primary_password(&call.app.engine, user_id)
            .await
            .map_err(|e| HankoError::Technical(e.to_string()))?;
        Some(if has {
            view::PasswordOffer::Update
        } else {
            view::PasswordOffer::Create
        })
    } else {
        None
    };
    Ok(view::profile_page(
        call.settings,
        user,
        json!(sessions),
        others,
        password,
    ))
}

/// `password_create` / `password_update` in `profile_init` (spec 7.4).
async fn set_password(
    call: &Call<'_>,
    record: FlowRecord,
    current: Current,
    offer: &Offer,
    values: &Map<String, Value>,
) -> Result<Response, HankoError> {
    let Current { mut page, live, .. } = current;
    let live = live.ok_or(HankoError::Unauthorized)?;
    let changed = profile::set_primary_password(
        &call.app.engine,
        &live.session.user_id,
        &live.session.id,
        text(values, "password"),
    )
    .await;
    let Err(error) = changed else {
        return rerender(call, record, Some(live)).await;
    };
    let target = Target {
        input: Some("password"),
        ..no_input_target()
    };
    match from_flow(&error, target, Utc::now().timestamp()) {
        Mapped::InState(e, input_error) => {
            if let Some((input, ie)) = input_error {
                page.mark(offer.name, &input, ie);
            }
            record::save(call.app.state_store.as_ref(), &record).await?;
            Ok(state_response(&page, &record, Some(&e)))
        }
        Mapped::Fatal(e) => Err(e),
        Mapped::Conceal => Err(HankoError::NotPermitted),
    }
}

/// Check 8 (spec 6.3): every input of the action; values cleaned (trimmed, defaulted).
fn validate_inputs<'o>(
    offer: &'o Offer,
    data: &Map<String, Value>,
) -> (Map<String, Value>, Vec<(&'o str, InputError)>) {
    let mut values = Map::new();
    let mut errors = Vec::new();
    for spec in &offer.inputs {
        let raw = data.get(spec.name).filter(|v| !v.is_null());
        if spec.ty == InputType::Boolean {
            match raw {
                None => {
                    values.insert(spec.name.into(), json!(false));
                }
                Some(Value::Bool(b)) => {
                    values.insert(spec.name.into(), json!(b));
                }
                Some(_) => errors.push((spec.name, InputError::new(InputCode::ValueInvalid))),
            }
            continue;
        }
        let text = match raw {
            None => None,
            Some(Value::String(s)) => Some(if spec.trim { s.trim() } else { s.as_str() }),
            Some(_) => {
                errors.push((spec.name, InputError::new(InputCode::ValueInvalid)));
                continue;
            }
        };
        let Some(text) = text.filter(|t| !t.is_empty()) else {
            if spec.required {
                errors.push((spec.name, InputError::new(InputCode::ValueMissing)));
            }
            continue;
        };
        let len = text.chars().count() as u32;
        let too_long = spec.max_length.is_some_and(|m| len > m)
            || (spec.ty == InputType::Password && text.len() > MAX_PASSWORD_BYTES);
        if spec.min_length.is_some_and(|m| len < m) {
            let e = if spec.ty == InputType::Password {
                InputError::with_cause(InputCode::ValueTooShort, "PasswordTooShort")
            } else {
                InputError::new(InputCode::ValueTooShort)
            };
            errors.push((spec.name, e));
        } else if too_long {
            errors.push((spec.name, InputError::new(InputCode::ValueTooLong)));
        } else {
            values.insert(spec.name.into(), json!(text));
        }
    }
    // Several optional identifiers: exactly one is given (spec 8.1).
    if let Exec::Identify { guess: false, .. } = offer.exec
        && offer.inputs.len() > 1
        && errors.is_empty()
    {
        let filled: Vec<&str> = offer
            .inputs
            .iter()
            .map(|i| i.name)
            .filter(|n| values.contains_key(*n))
            .collect();
        match filled.as_slice() {
            [] => {
                for i in &offer.inputs {
                    errors.push((i.name, InputError::new(InputCode::ValueMissing)));
                }
            }
            [_] => {}
            [_, extra @ ..] => {
                for n in extra {
                    errors.push((n, InputError::new(InputCode::ValueInvalid)));
                }
            }
        }
    }
    (values, errors)
}

fn text<'v>(values: &'v Map<String, Value>, name: &str) -> &'v str {
    values.get(name).and_then(Value::as_str).unwrap_or_default()
}

/// How the next screen relates to the current one (spec 5.4).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Move {
    /// `back` may return here.
    Forward,
    /// A credential check passed: no way back.
    Past,
    /// The same state, renewed (a resend).
    Stay,
}

/// What an engine call needs: its input, how the screen moves, where errors land.
struct EngineCall {
    input: Value,
    movement: Move,
    input_name: Option<&'static str>,
    username: bool,
}

impl EngineCall {
    /// A call whose errors land on `input_name` (if any), which is not a username.
    fn new(input: Value, movement: Move, input_name: Option<&'static str>) -> Self {
        EngineCall {
            input,
            movement,
            input_name,
            username: false,
        }
    }
}

async fn execute(
    call: &Call<'_>,
    mut record: FlowRecord,
    current: Current,
    offer: &Offer,
    values: Map<String, Value>,
) -> Result<Response, HankoError> {
    let store = call.app.state_store.as_ref();
    let now = Utc::now();
    let token = match &record.screen {
        Screen::Engine { token } | Screen::PasswordChosen { token } => Some(token.clone()),
        _ => None,
    };
    let engine_call = match &offer.exec {
        Exec::Capabilities => return start_engine(call, record, current.live).await,
        Exec::RememberMe => {
            record.remember_me = values.get("remember_me") == Some(&json!(true));
            return rerender(call, record, current.live).await;
        }
        Exec::Back => {
            let Some(previous) = record.history.pop() else {
                return Err(HankoError::NotPermitted);
            };
            record.screen = previous;
            return rerender(call, record, current.live).await;
        }
        Exec::ChoosePassword => {
            let token = token.ok_or(HankoError::NotPermitted)?;
            record.advance(Screen::PasswordChosen { token });
            return rerender(call, record, current.live).await;
        }
        Exec::Pretend(p) => {
            let Screen::Concealed {
                purpose,
                password,
                passcode,
                ..
            } = record.screen.clone()
            else {
                return Err(HankoError::NotPermitted);
            };
            record.advance(Screen::Concealed {
                pretend: *p,
                purpose,
                password,
                passcode,
                sent_at: (*p == Pretend::Passcode).then_some(now),
            });
            return rerender(call, record, current.live).await;
        }
        Exec::PretendPassword => {
            // As long as a real check takes (spec 6.4).
            let hasher = call.app.auth_api.hasher.clone();
            let password = text(&values, "password").to_string();
            let _ = authflow_core::credentials::hash_pool::run(move || {
                hasher.hash(&password, &authflow_core::clock::OsRandom)
            })
            .await;
            return refuse_input(
                store,
                record,
                current.page,
                offer,
                "password",
                InputError::with_cause(InputCode::ValueInvalid, "InvalidCredentials"),
            )
            .await;
        }
        Exec::PretendCode => {
            return refuse_input(
                store,
                record,
                current.page,
                offer,
                "code",
                InputError::new(InputCode::PasscodeInvalid),
            )
            .await;
        }
        Exec::PretendResend => {
            let wait = current
                .page
                .payload
                .as_ref()
                .and_then(|p| p["resend_after"].as_u64());
            if let Some(wait) = wait.filter(|w| *w > 0) {
                let e = HankoError::RateLimited {
                    retry_after: wait,
                    cause: None,
                    in_state: true,
                };
                record::save(store, &record).await?;
                return Ok(state_response(&current.page, &record, Some(&e)));
            }
            if let Screen::Concealed { sent_at, .. } = &mut record.screen {
                *sent_at = Some(now);
            }
            record.passcode_resent = true;
            return rerender(call, record, current.live).await;
        }
        Exec::SessionDelete => return delete_session(call, record, current, &values).await,
        Exec::StartRecovery => return start_recovery(call, record, current).await,
        Exec::SetPassword => return set_password(call, record, current, offer, &values).await,
        Exec::Identify { options, guess } => {
            let (input_name, identification, value) =
                chosen_identifier(options, *guess, &values).ok_or(HankoError::NotPermitted)?;
            let Some(identification) = identification else {
                return refuse_input(
                    store,
                    record,
                    current.page,
                    offer,
                    input_name,
                    InputError::new(InputCode::ValueInvalid),
                )
                .await;
            };
            record.login_id = Some(GivenLoginId {
                identification,
                value: value.clone(),
            });
            EngineCall {
                input: json!({"identification": identification.as_str(), "login_id": value}),
                movement: Move::Forward,
                input_name: Some(input_name),
                username: identification == Identification::Username,
            }
        }
        Exec::ChooseOob {
            authentication,
            index,
        } => {
            let input = match current.view.as_ref().map(|v| &v.action) {
                Some(authflow_core::flow::Action::Authenticate { options, .. }) => options
                    .get(*index)
                    .map(|o| view::oob_choice(*authentication, *index, o)),
                _ => None,
            }
            .ok_or(HankoError::NotPermitted)?;
            EngineCall::new(input, Move::Forward, None)
        }
        Exec::Password { authentication } => EngineCall::new(
            json!({"authentication": authentication.as_str(), "password": text(&values, "password")}),
            Move::Past,
            Some("password"),
        ),
        Exec::NewPassword { authentication } => {
            let mut input = json!({"new_password": text(&values, "new_password")});
            if let Some(a) = authentication {
                input["authentication"] = json!(a.as_str());
            }
            EngineCall::new(input, Move::Past, Some("new_password"))
        }
        Exec::Skip { authentication } => EngineCall::new(
            json!({"authentication": authentication.as_str()}),
            Move::Past,
            None,
        ),
        Exec::Code => EngineCall::new(
            json!({"code": text(&values, "code")}),
            Move::Past,
            Some("code"),
        ),
        Exec::Resend => EngineCall::new(json!({"resend": true}), Move::Stay, None),
        Exec::Totp => EngineCall::new(
            json!({"authentication": "secondary_totp", "code": text(&values, "otp_code")}),
            Move::Past,
            Some("otp_code"),
        ),
        Exec::ChooseTotp => EngineCall::new(
            json!({"authentication": "secondary_totp"}),
            Move::Forward,
            None,
        ),
        Exec::TotpSetup => EngineCall::new(
            json!({"code": text(&values, "otp_code")}),
            Move::Past,
            Some("otp_code"),
        ),
        Exec::ConfirmRecoveryCodes => {
            EngineCall::new(json!({"confirm_recovery_code": true}), Move::Past, None)
        }
        Exec::RecoveryPasscode => EngineCall::new(
            json!({"account_recovery_code": text(&values, "code")}),
            Move::Past,
            Some("code"),
        ),
        Exec::RecoveryCode => EngineCall::new(
            json!({"authentication": "recovery_code", "recovery_code": text(&values, "recovery_code")}),
            Move::Past,
            Some("recovery_code"),
        ),
    };
    let token = token.ok_or(HankoError::NotPermitted)?;
    let outcome = feed(call, &token, engine_call.input.clone()).await;
    match outcome {
        Ok(view) if view.finished.is_some() && view.flow_kind == FlowKind::AccountRecovery => {
            log_in_after_reset(call, record, text(&values, "new_password")).await
        }
        Ok(view) => {
            if engine_call.movement == Move::Stay {
                record.passcode_resent = true;
            }
            record.totp_used |= offer.exec == Exec::Totp;
            advance_to(call, record, view, engine_call.movement).await
        }
        Err((error, intermediate)) => {
            let target = Target {
                input: engine_call.input_name,
                username: engine_call.username,
                hints: call.settings.config.show_account_existence_hints,
                conceal_taken_email: record.path == FlowPath::Registration
                    && call.settings.email_verification_required,
            };
            match from_flow(&error.error, target, now.timestamp()) {
                Mapped::Fatal(e) => Err(e),
                Mapped::Conceal => conceal(call, record, &engine_call).await,
                Mapped::InState(e, input_error) => {
                    let e = with_resend_wait(e, &current.page);
                    let ctx_record = record.clone();
                    let ctx = Ctx {
                        settings: call.settings,
                        record: &ctx_record,
                        now: Utc::now(),
                    };
                    let mut page = match (intermediate, error.state) {
                        (Some(v), _) => {
                            record.screen = Screen::Engine {
                                token: v.state_token.clone(),
                            };
                            view::engine_page(&ctx, &v, false)?
                        }
                        (None, Some(v)) => {
                            let chosen = matches!(record.screen, Screen::PasswordChosen { .. });
                            view::engine_page(&ctx, &v, chosen)?
                        }
                        (None, None) => current.page,
                    };
                    if let Some((input, ie)) = input_error {
                        page.mark(offer.name, &input, ie);
                    }
                    record::save(store, &record).await?;
                    Ok(state_response(&page, &record, Some(&e)))
                }
            }
        }
    }
}

/// A resend inside the cooldown: `Retry-After` is the state's `resend_after`.
fn with_resend_wait(e: HankoError, page: &Page) -> HankoError {
    match e {
        HankoError::RateLimited {
            cause, in_state, ..
        } if page.name == "passcode_confirmation" => {
            let wait = page
                .payload
                .as_ref()
                .and_then(|p| p["resend_after"].as_u64())
                .filter(|w| *w > 0)
                .unwrap_or(60);
            HankoError::RateLimited {
                retry_after: wait,
                cause,
                in_state,
            }
        }
        other => other,
    }
}

/// The input that was given, its identification (`None`: not among the options).
fn chosen_identifier(
    options: &[(&'static str, Identification)],
    guess: bool,
    values: &Map<String, Value>,
) -> Option<(&'static str, Option<Identification>, String)> {
    if guess {
        let (name, _) = options.first()?;
        let value = text(values, name).to_string();
        let wanted = if value.contains('@') {
            Identification::Email
        } else if value.starts_with('+') {
            Identification::Phone
        } else {
            Identification::Username
        };
        let found = options.iter().any(|(_, i)| *i == wanted).then_some(wanted);
        return Some((name, found, value));
    }
    options
        .iter()
        .find(|(name, _)| values.contains_key(*name))
        .map(|(name, i)| (*name, Some(*i), text(values, name).to_string()))
}

/// Feed the engine, then answer what the dialect answers by itself. An error of an
/// automatic answer comes with the state it was given to.
async fn feed(
    call: &Call<'_>,
    token: &str,
    input: Value,
) -> Result<StateView, (EngineError, Option<StateView>)> {
    let mut view = call
        .app
        .engine
        .input(&call.ctx, token, input)
        .await
        .map_err(|e| (e, None))?;
    follow_automatic(call, &mut view).await?;
    Ok(view)
}

async fn follow_automatic(
    call: &Call<'_>,
    view: &mut StateView,
) -> Result<(), (EngineError, Option<StateView>)> {
    for _ in 0..MAX_AUTOMATIC {
        if view.finished.is_some() {
            return Ok(());
        }
        let Some(input) = view::automatic_input(view) else {
            return Ok(());
        };
        *view = call
            .app
            .engine
            .input(&call.ctx, &view.state_token, input)
            .await
            .map_err(|e| (e, Some(view.clone())))?;
    }
    Ok(())
}

/// `register_client_capabilities`: the engine flow starts now (spec 7.1).
async fn start_engine(
    call: &Call<'_>,
    mut record: FlowRecord,
    live: Option<LiveSession>,
) -> Result<Response, HankoError> {
    let store = call.app.state_store.as_ref();
    let flows = &call.settings.config.flows;
    let (kind, name) = match record.path {
        FlowPath::Registration => (FlowKind::Signup, flows.registration.as_str()),
        FlowPath::Login => (FlowKind::Login, flows.login.as_str()),
        FlowPath::Profile => {
            record.replace(Screen::ProfileInit);
            return rerender(call, record, live).await;
        }
    };
    let request = CreateRequest {
        kind,
        name,
        url_query: None,
        request_query: None,
        batch_input: None,
    };
    match call.app.engine.create(&call.ctx, request).await {
        Ok(mut view) => {
            if let Err((e, _)) = follow_automatic(call, &mut view).await {
                return Err(fatal_of(&e.error));
            }
            advance_to(call, record, view, Move::Past).await
        }
        Err(e) if matches!(e.error, FlowError::NoPublicSignup) => {
            record.replace(Screen::SignupDisabled);
            record::save(store, &record).await?;
            let ctx = Ctx {
                settings: call.settings,
                record: &record,
                now: Utc::now(),
            };
            Ok(state_response(&view::signup_disabled(&ctx), &record, None))
        }
        Err(e) => Err(fatal_of(&e.error)),
    }
}

/// `continue_to_passcode_confirmation_recovery` (spec 8.1): an `account_recovery` flow for
/// the identifier given at `login_init`; its destination is chosen automatically. A
/// concealed (unknown) identifier runs it too: the engine then sends nothing but keeps the
/// same cooldowns and answers, so the two cannot be told apart (spec 6.4).
async fn start_recovery(
    call: &Call<'_>,
    record: FlowRecord,
    current: Current,
) -> Result<Response, HankoError> {
    let given = record.login_id.clone().ok_or(HankoError::NotPermitted)?;
    let name = &call.settings.config.flows.account_recovery;
    match identified_flow(call, FlowKind::AccountRecovery, name, &given).await {
        Ok(view) => advance_to(call, record, view, Move::Forward).await,
        // A sending limit: refused in `login_password`, which stays.
        Err(e) => match from_flow(&e, no_input_target(), Utc::now().timestamp()) {
            Mapped::InState(e, _) => {
                record::save(call.app.state_store.as_ref(), &record).await?;
                Ok(state_response(&current.page, &record, Some(&e)))
            }
            Mapped::Fatal(e) => Err(e),
            Mapped::Conceal => Err(HankoError::NotPermitted),
        },
    }
}

/// After a reset the user is logged in with the new password through the login flow, so
/// its second factor, lockout and session rules apply (spec 7.3 `login_password_recovery`).
async fn log_in_after_reset(
    call: &Call<'_>,
    mut record: FlowRecord,
    new_password: &str,
) -> Result<Response, HankoError> {
    let given = record.login_id.clone().ok_or(HankoError::NotPermitted)?;
    let name = &call.settings.config.flows.login;
    let identified = identified_flow(call, FlowKind::Login, name, &given)
        .await
        .map_err(|e| fatal_of(&e))?;
    let offers_password = matches!(&identified.action,
        Action::Authenticate { options, .. }
            if options.iter().any(|o| o.authentication == Authentication::PrimaryPassword));
    if !offers_password {
        return Err(HankoError::FlowDiscontinuity(
            "the login flow asks for no password after a reset".into(),
        ));
    }
    let input = json!({"authentication": "primary_password", "password": new_password});
    let view = feed(call, &identified.state_token, input)
        .await
        .map_err(|(e, _)| fatal_of(&e.error))?;
    record.recovered = true;
    advance_to(call, record, view, Move::Past).await
}

/// A new engine flow with the identifier given at `login_init` fed to its first step.
async fn identified_flow(
    call: &Call<'_>,
    kind: FlowKind,
    name: &str,
    given: &GivenLoginId,
) -> Result<StateView, FlowError> {
    let request = CreateRequest {
        kind,
        name,
        url_query: None,
        request_query: None,
        batch_input: None,
    };
    let created = call
        .app
        .engine
        .create(&call.ctx, request)
        .await
        .map_err(|e| e.error)?;
    let input = json!({"identification": given.identification.as_str(), "login_id": given.value});
    feed(call, &created.state_token, input)
        .await
        .map_err(|(e, _)| e.error)
}

fn no_input_target() -> Target<'static> {
    Target {
        input: None,
        username: false,
        hints: true,
        conceal_taken_email: false,
    }
}

fn fatal_of(e: &FlowError) -> HankoError {
    match from_flow(e, no_input_target(), Utc::now().timestamp()) {
        Mapped::Fatal(e) | Mapped::InState(e, _) => e,
        Mapped::Conceal => HankoError::NotPermitted,
    }
}

/// Show the engine's next state, or finish (spec 9.1).
async fn advance_to(
    call: &Call<'_>,
    mut record: FlowRecord,
    view: StateView,
    movement: Move,
) -> Result<Response, HankoError> {
    if let Some(finished) = &view.finished {
        return succeed(call, record, finished).await;
    }
    let next = Screen::Engine {
        token: view.state_token.clone(),
    };
    match movement {
        Move::Forward => record.advance(next),
        Move::Past => record.replace(next),
        Move::Stay => record.screen = next,
    }
    let ctx = Ctx {
        settings: call.settings,
        record: &record,
        now: Utc::now(),
    };
    let page = view::engine_page(&ctx, &view, false)?;
    record::save(call.app.state_store.as_ref(), &record).await?;
    Ok(state_response(&page, &record, None))
}

async fn rerender(
    call: &Call<'_>,
    record: FlowRecord,
    live: Option<LiveSession>,
) -> Result<Response, HankoError> {
    let current = render_current(call, &record, live).await?;
    record::save(call.app.state_store.as_ref(), &record).await?;
    Ok(state_response(&current.page, &record, None))
}

/// 400 in the same state with `error` on `input` (new token).
async fn refuse_input(
    store: &dyn authflow_core::store::StateStore,
    record: FlowRecord,
    mut page: Page,
    offer: &Offer,
    input: &str,
    error: InputError,
) -> Result<Response, HankoError> {
    page.mark(offer.name, input, error);
    record::save(store, &record).await?;
    Ok(state_response(
        &page,
        &record,
        Some(&HankoError::FormDataInvalid),
    ))
}

/// An unknown identifier at login or a taken email at registration (spec 6.4): go on as
/// if it were fine; nothing can succeed from here.
async fn conceal(
    call: &Call<'_>,
    mut record: FlowRecord,
    engine_call: &EngineCall,
) -> Result<Response, HankoError> {
    let s = call.settings;
    let email = engine_call.input["identification"] == json!("email");
    let screen = if record.path == FlowPath::Registration {
        Screen::Concealed {
            pretend: Pretend::Passcode,
            purpose: "verification".into(),
            password: false,
            passcode: true,
            sent_at: Some(Utc::now()),
        }
    } else {
        let password = s.password_primary;
        let passcode = email && s.pretend_passcode_email;
        let pretend = match (password, passcode) {
            (true, true) => Pretend::MethodChooser,
            (false, true) => Pretend::Passcode,
            _ => Pretend::Password,
        };
        Screen::Concealed {
            pretend,
            purpose: "login".into(),
            password,
            passcode,
            sent_at: (pretend == Pretend::Passcode).then(Utc::now),
        }
    };
    record.advance(screen);
    rerender(call, record, None).await
}

/// `success`: the session, its token, and the flow is gone (spec 5.1, 9).
async fn succeed(
    call: &Call<'_>,
    record: FlowRecord,
    finished: &authflow_core::flow::action::FinishedFlow,
) -> Result<Response, HankoError> {
    let mut amr = finished.amr.clone();
    if record.recovered && !amr.iter().any(|m| m == "otp") {
        amr.push("otp".into());
    }
    let issued = session::issue(
        call.app,
        call.settings,
        &finished.user_id,
        finished.session_id.as_deref(),
        &amr,
    )
    .await?;
    record::delete(call.app.state_store.as_ref(), &record.id).await?;
    let mut payload = json!({"claims": issued.claims, "user": issued.user});
    if record.path == FlowPath::Login {
        let method = if finished.amr.iter().any(|m| m == "pwd") {
            "password"
        } else {
            "passcode"
        };
        payload["last_login"] = json!({"login_method": method});
        if record.totp_used {
            payload["last_login"]["mfa_method"] = json!("totp");
        }
    }
    let page = Page {
        name: "success",
        payload: Some(payload),
        offers: Vec::new(),
    };
    let body = view::envelope(&page, &record, 200, None);
    let headers = session::session_headers(call.settings, &issued.jwt, record.remember_me);
    Ok(respond(StatusCode::OK, body, headers))
}

/// `session_delete` in `profile_init` (spec 7.4).
async fn delete_session(
    call: &Call<'_>,
    record: FlowRecord,
    current: Current,
    values: &Map<String, Value>,
) -> Result<Response, HankoError> {
    let store = call.app.state_store.as_ref();
    let live = current.live.ok_or(HankoError::Unauthorized)?;
    let wanted = text(values, "session_id");
    let sessions = session::sessions_of(call.app, &live.session.user_id, &live.session.id).await?;
    if wanted == live.session.id {
        let e = HankoError::Refused {
            cause: "CurrentSession",
        };
        record::save(store, &record).await?;
        return Ok(state_response(&current.page, &record, Some(&e)));
    }
    if !sessions.iter().any(|s| s["id"] == json!(wanted)) {
        return refuse_input(
            store,
            record,
            current.page,
            &Offer {
                name: "session_delete",
                description: "",
                inputs: Vec::new(),
                exec: Exec::SessionDelete,
            },
            "session_id",
            InputError::new(InputCode::ValueInvalid),
        )
        .await;
    }
    call.app
        .db
        .commit(vec![authflow_core::store::Change::RevokeSession {
            session_id: wanted.to_string(),
            at: Utc::now(),
        }])
        .await
        .map_err(|e| HankoError::Technical(e.to_string()))?;
    rerender(call, record, Some(live)).await
}
