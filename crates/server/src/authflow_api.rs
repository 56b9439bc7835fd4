//! The Authentication Flow API (Authgear-compatible dialect): three POST endpoints over
//! the engine, rendering its typed actions as the JSON of authentication-flow-api.md.

use std::net::SocketAddr;

use axum::Router;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderValue, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Map, Value, json};

use authflow_core::flow::action::{OtpOptionView, OtpPrompt};
use authflow_core::flow::def::{Channel, FlowKind, OtpForm};
use authflow_core::flow::otp::DeliveryStatus;
use authflow_core::flow::recovery;
use authflow_core::flow::{
    Action, CookieEffect, CreateRequest, InputError, RequestContext, StateView,
};

use crate::AppState;
use crate::error::ApiError;
use crate::extract::JsonObject;

const BASE: &str = "/api/v1/authentication_flows";

pub fn routes() -> Router<AppState> {
    let not_allowed = || async { ApiError::method_not_allowed() };
    Router::new()
        .route(BASE, post(create).fallback(not_allowed))
        .route(
            &format!("{BASE}/states/input"),
            post(input).fallback(not_allowed),
        )
        .route(&format!("{BASE}/states"), post(read).fallback(not_allowed))
}

const FLOW_TYPES: [&str; 6] = [
    "signup",
    "promote",
    "login",
    "signup_login",
    "reauth",
    "account_recovery",
];

async fn create(
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    uri: Uri,
    headers: HeaderMap,
    JsonObject(body): JsonObject,
) -> Result<Response, ApiError> {
    let ctx = app.request_context(peer, &headers);
    rate_limit(&app, &ctx).await?;
    reject_extra_members(&body, &["type", "name", "url_query", "batch_input"])?;
    let mut causes = required(&body, &["type", "name"]);
    let kind = match body.get("type") {
        Some(Value::String(t)) => match FlowKind::parse(t) {
            Some(k) => Some(k),
            None => {
                causes.push(json!({"location": "/type", "kind": "enum",
                    "details": {"expected": FLOW_TYPES, "actual": t}}));
                None
            }
        },
        Some(other) => {
            causes.push(type_cause("/type", "string", other));
            None
        }
        None => None,
    };
    let name = string_or_cause(&body, "name", &mut causes);
    if let Some(v) = body.get("url_query").filter(|v| !v.is_string()) {
        causes.push(type_cause("/url_query", "string", v));
    }
    let batch = batch_member(&body, "batch_input", &mut causes);
    if !causes.is_empty() {
        return Err(ApiError::validation(causes));
    }
    let (kind, name) = (kind.expect("validated"), name.expect("validated"));
    let request = CreateRequest {
        kind,
        name: &name,
        url_query: body.get("url_query").and_then(Value::as_str),
        request_query: uri.query(),
        batch_input: batch,
    };
    let outcome = app.engine.create(&ctx, request).await;
    respond(outcome, Some(kind))
}

async fn input(
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    JsonObject(body): JsonObject,
) -> Result<Response, ApiError> {
    let ctx = app.request_context(peer, &headers);
    rate_limit(&app, &ctx).await?;
    reject_extra_members(&body, &["state_token", "input", "batch_input"])?;
    let mut causes = Vec::new();
    let inputs = match (body.get("input"), body.get("batch_input")) {
        (Some(_), Some(_)) | (None, None) => {
            return Err(ApiError::validation(vec![
                required_cause(&body, "input"),
                required_cause(&body, "batch_input"),
            ]));
        }
        (Some(Value::Object(o)), None) => Some(vec![Value::Object(o.clone())]),
        (Some(other), None) => {
            causes.push(type_cause("/input", "object", other));
            None
        }
        (None, Some(_)) => batch_member(&body, "batch_input", &mut causes),
    };
    let token = match body.get("state_token") {
        None => {
            // The page of a recovery link sends its code without a state token (8.14).
            if let Some(code) = inputs
                .as_deref()
                .and_then(|i| i.first())
                .and_then(recovery::link_code_of)
            {
                let outcome = app.engine.account_recovery_from_link(&ctx, code).await;
                return respond(outcome, Some(FlowKind::AccountRecovery));
            }
            return Err(ApiError::from_flow(
                &authflow_core::flow::FlowError::FlowNotFound,
                None,
            ));
        }
        Some(Value::String(t)) => Some(t.clone()),
        Some(other) => {
            causes.push(type_cause("/state_token", "string", other));
            None
        }
    };
    if !causes.is_empty() {
        return Err(ApiError::validation(causes));
    }
    let (token, inputs) = (token.expect("validated"), inputs.expect("validated"));
    let outcome = app.engine.batch_input(&ctx, &token, inputs).await;
    respond(outcome, None)
}

async fn read(
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    JsonObject(body): JsonObject,
) -> Result<Response, ApiError> {
    let ctx = app.request_context(peer, &headers);
    rate_limit(&app, &ctx).await?;
    reject_extra_members(&body, &["state_token"])?;
    let mut causes = required(&body, &["state_token"]);
    let token = string_or_cause(&body, "state_token", &mut causes);
    if !causes.is_empty() {
        return Err(ApiError::validation(causes));
    }
    let outcome = app
        .engine
        .read(&token.expect("validated"))
        .await
        .map_err(InputError::from);
    respond(outcome, None)
}

async fn rate_limit(app: &AppState, ctx: &RequestContext) -> Result<(), ApiError> {
    match app.engine.check_api_rate_limit(&ctx.ip).await {
        Ok(true) => Ok(()),
        Ok(false) => Err(ApiError::too_many_requests()),
        Err(e) => Err(ApiError::from_flow(&e, None)),
    }
}

fn respond(
    outcome: Result<StateView, InputError>,
    kind: Option<FlowKind>,
) -> Result<Response, ApiError> {
    match outcome {
        Ok(view) => {
            let mut headers = HeaderMap::new();
            for cookie in &view.cookies {
                if let Ok(v) = HeaderValue::from_str(&set_cookie(cookie)) {
                    headers.append(header::SET_COOKIE, v);
                }
            }
            let body = json!({ "result": render_result(&view) });
            Ok((headers, axum::Json(body)).into_response())
        }
        Err(e) => {
            if matches!(
                e.error.reason(),
                "UnexpectedError" | "AuthenticationFlowInvalidFlowConfig"
            ) {
                tracing::error!(error = %e.error, "flow failed");
            }
            let kind = e.flow_kind.or(kind);
            Err(ApiError::from_flow(&e.error, kind).with_result(e.state.as_ref()))
        }
    }
}

fn set_cookie(c: &CookieEffect) -> String {
    let mut s = format!("{}={}; Path=/; SameSite={}", c.name, c.value, c.same_site);
    if let Some(age) = c.max_age_seconds {
        s.push_str(&format!("; Max-Age={age}"));
    }
    if c.http_only {
        s.push_str("; HttpOnly");
    }
    if c.secure {
        s.push_str("; Secure");
    }
    s
}

/// `result` of a success or error envelope.
pub fn render_result(view: &StateView) -> Value {
    json!({
        "state_token": view.state_token,
        "type": view.flow_kind.as_str(),
        "name": view.flow_name,
        "action": render_action(view),
    })
}

fn render_action(view: &StateView) -> Value {
    let mut action = json!({"type": view.action.type_name()});
    if let Some(a) = view.action.authentication() {
        action["authentication"] = json!(a.as_str());
    }
    action["data"] = match view.action {
        Action::Finished => render_finished_data(view),
        _ => render_data(&view.action),
    };
    if view.flow_kind == FlowKind::AccountRecovery && matches!(view.action, Action::Identify { .. })
    {
        action["data"]["type"] = json!("account_recovery_identification_data");
    }
    action
}

/// `otp_form`, `channels`, `masked_display_name` / `target` of OOB options (8.4, 8.7).
fn render_otp_option(v: &OtpOptionView, option: &mut Value) {
    option["otp_form"] = json!(otp_form_name(v.otp_form));
    option["channels"] = json!(
        v.channels
            .iter()
            .map(|c| channel_name(*c))
            .collect::<Vec<_>>()
    );
    match (v.verification_required, &v.masked_display_name) {
        (Some(required), Some(masked)) => {
            option["target"] =
                json!({"masked_display_name": masked, "verification_required": required});
        }
        (None, Some(masked)) => option["masked_display_name"] = json!(masked),
        _ => {}
    }
}

fn otp_form_name(f: OtpForm) -> &'static str {
    match f {
        OtpForm::Code => "code",
        OtpForm::Link => "link",
    }
}

fn render_data(action: &Action) -> Value {
    match action {
        Action::Identify { options } => json!({
            "type": "identification_data",
            "options": options.iter().map(|o| json!({"identification": o.identification.as_str()})).collect::<Vec<_>>(),
        }),
        Action::Authenticate {
            options,
            device_token_enabled,
        } => json!({
            "type": "authentication_data",
            "options": options.iter().map(|o| {
                let mut v = json!({"authentication": o.authentication.as_str()});
                if let Some(otp) = &o.otp {
                    render_otp_option(otp, &mut v);
                }
                v
            }).collect::<Vec<_>>(),
            "device_token_enabled": device_token_enabled,
        }),
        Action::CreateAuthenticator { options } => json!({
            "type": "create_authenticator_data",
            "options": options.iter().map(|o| {
                let mut v = json!({"authentication": o.authentication.as_str()});
                if let Some(p) = &o.password_policy {
                    v["password_policy"] = p.clone();
                }
                if let Some(otp) = &o.otp {
                    render_otp_option(otp, &mut v);
                }
                v
            }).collect::<Vec<_>>(),
        }),
        Action::ChangePassword {
            password_policy,
            force_change_reason,
        } => json!({
            "type": "new_password_data",
            "password_policy": password_policy,
            "force_change_reason": force_change_reason,
        }),
        Action::Verify(p) | Action::OtpEntry { prompt: p, .. } => render_otp_prompt(p),
        Action::SelectChannel {
            channels,
            masked_claim_value,
            ..
        } => json!({
            "type": "select_oob_otp_channels_data",
            "channels": channels.iter().map(|c| channel_name(*c)).collect::<Vec<_>>(),
            "masked_claim_value": masked_claim_value,
        }),
        Action::CreateTotp {
            secret,
            otpauth_uri,
        } => json!({
            "type": "create_totp_data",
            "secret": secret.reveal(),
            "otpauth_uri": otpauth_uri.reveal(),
        }),
        Action::ViewRecoveryCode { recovery_codes } => json!({
            "type": "view_recovery_code_data",
            "recovery_codes": recovery_codes.iter().map(|c| c.reveal()).collect::<Vec<_>>(),
        }),
        Action::SelectDestination { options } => json!({
            "type": "account_recovery_select_destination_data",
            "options": options.iter().map(|o| json!({
                "masked_display_name": o.masked_display_name,
                "channel": channel_name(o.channel),
                "otp_form": otp_form_name(o.otp_form),
            })).collect::<Vec<_>>(),
        }),
        Action::VerifyAccountRecoveryCode {
            masked_display_name,
            channel,
            otp_form,
            code_length,
            can_resend_at,
            failed_attempt_rate_limit_exceeded,
        } => json!({
            "type": "account_recovery_verify_code_data",
            "masked_display_name": masked_display_name,
            "channel": channel_name(*channel),
            "otp_form": otp_form_name(*otp_form),
            "code_length": code_length,
            "can_resend_at": can_resend_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            "failed_attempt_rate_limit_exceeded": failed_attempt_rate_limit_exceeded,
        }),
        Action::ResetPassword {
            password_policy,
            masked_target,
        } => json!({
            "type": "new_password_data",
            "password_policy": password_policy,
            "masked_target": masked_target,
        }),
        Action::Finished => json!({}),
    }
}

/// `verify_oob_otp_data` (spec 8.5).
fn render_otp_prompt(p: &OtpPrompt) -> Value {
    let mut data = json!({
        "type": "verify_oob_otp_data",
        "channel": channel_name(p.channel),
        "otp_form": otp_form_name(p.otp_form),
        "masked_claim_value": p.masked_claim_value,
        "code_length": p.code_length,
        "can_resend_at": p.can_resend_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "can_check": p.can_check,
        "failed_attempt_rate_limit_exceeded": p.failed_attempt_rate_limit_exceeded,
        "delivery_status": p.delivery_status.as_str(),
    });
    if let Some(url) = &p.websocket_url {
        data["websocket_url"] = json!(url);
    }
    if let DeliveryStatus::Failed(failure) = p.delivery_status {
        data["delivery_error"] = json!({
            "name": failure.name(),
            "reason": failure.reason(),
            "message": failure.message(),
            "code": crate::error::status_of(failure.name()).as_u16(),
        });
    }
    data
}

fn render_finished_data(view: &StateView) -> Value {
    match view
        .finished
        .as_ref()
        .and_then(|f| f.finish_redirect_uri.as_ref())
    {
        Some(uri) => json!({ "finish_redirect_uri": uri }),
        None => json!({}),
    }
}

fn channel_name(c: Channel) -> &'static str {
    match c {
        Channel::Email => "email",
        Channel::Sms => "sms",
        Channel::Whatsapp => "whatsapp",
    }
}

// ---------------------------------------------------------------------------------------
// envelope validation (spec 2.1, 4.5)

fn reject_extra_members(body: &Map<String, Value>, allowed: &[&str]) -> Result<(), ApiError> {
    let extra: Vec<&str> = body
        .keys()
        .map(String::as_str)
        .filter(|k| !allowed.contains(k))
        .collect();
    if extra.is_empty() {
        return Ok(());
    }
    Err(ApiError::validation(vec![json!({
        "location": "", "kind": "additionalProperties", "details": {"extra": extra}
    })]))
}

fn present(body: &Map<String, Value>) -> Value {
    if body.is_empty() {
        Value::Null
    } else {
        json!(body.keys().collect::<Vec<_>>())
    }
}

fn required_cause(body: &Map<String, Value>, key: &str) -> Value {
    json!({"location": "", "kind": "required",
        "details": {"expected": [key], "actual": present(body), "missing": [key]}})
}

fn required(body: &Map<String, Value>, keys: &[&str]) -> Vec<Value> {
    let missing: Vec<&str> = keys
        .iter()
        .copied()
        .filter(|k| !body.contains_key(*k))
        .collect();
    if missing.is_empty() {
        return Vec::new();
    }
    vec![json!({"location": "", "kind": "required",
        "details": {"expected": keys, "actual": present(body), "missing": missing}})]
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn type_cause(location: &str, expected: &str, actual: &Value) -> Value {
    json!({"location": location, "kind": "type",
        "details": {"expected": [expected], "actual": type_name(actual)}})
}

fn string_or_cause(
    body: &Map<String, Value>,
    key: &str,
    causes: &mut Vec<Value>,
) -> Option<String> {
    match body.get(key) {
        Some(Value::String(s)) => Some(s.clone()),
        Some(other) => {
            causes.push(type_cause(&format!("/{key}"), "string", other));
            None
        }
        None => None,
    }
}

/// `batch_input`: a non-empty array of objects, if present.
fn batch_member(
    body: &Map<String, Value>,
    key: &str,
    causes: &mut Vec<Value>,
) -> Option<Vec<Value>> {
    match body.get(key)? {
        Value::Array(items) if items.is_empty() => {
            causes.push(json!({"location": format!("/{key}"), "kind": "minItems",
                "details": {"expected": 1, "actual": 0}}));
            None
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                if !item.is_object() {
                    causes.push(type_cause(&format!("/{key}/{i}"), "object", item));
                }
            }
            Some(items.clone())
        }
        other => {
            causes.push(type_cause(&format!("/{key}"), "array", other));
            None
        }
    }
}
