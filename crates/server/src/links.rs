//! Login links (authentication-flow-api.md 9.3, 11): the page a link opens, where a
//! POST approves it, and the WebSocket that tells the waiting flow to re-read its state.
//! With Redis as the state store, approvals travel through Redis pub/sub so that a
//! socket held by another replica hears of them.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, Form, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use futures::StreamExt;
use serde::Deserialize;
use tokio::sync::broadcast;

use authflow_core::credentials::token;
use authflow_core::flow::FlowError;
use authflow_core::flow::oob::{LOGIN_LINK_PATH, WEBSOCKET_PATH};
use authflow_core::flow::recovery::RESET_LINK_PATH;

use crate::AppState;
use crate::error::ApiError;
use crate::html::escape;

const PING_EVERY: Duration = Duration::from_secs(30);
/// A socket lives no longer than a flow (spec 5: 20 minutes after its newest state).
const SOCKET_LIFETIME: Duration = Duration::from_secs(20 * 60);
const REFRESH: &str = r#"{"kind":"refresh"}"#;

/// Fans approvals out to the WebSockets of this process, and through Redis to others.
pub struct LinkEvents {
    local: broadcast::Sender<String>,
    redis: Option<(redis::Client, String)>,
}

impl LinkEvents {
    /// Events of this process only (SQLite: one process).
    pub fn local() -> Self {
        LinkEvents {
            local: broadcast::channel(1024).0,
            redis: None,
        }
    }

    /// Events shared by every replica on the Redis at `url`, in a pub/sub channel named
    /// after the state store's key prefix.
    pub fn with_redis(url: &str, key_prefix: &str) -> Result<Self, redis::RedisError> {
        let client = redis::Client::open(url)?;
        let events = LinkEvents {
            local: broadcast::channel(1024).0,
            redis: Some((client, format!("{key_prefix}authflow:link_events"))),
        };
        events.spawn_redis_listener();
        Ok(events)
    }

    /// Forward every published approval into the local channel; reconnect on failure.
    fn spawn_redis_listener(&self) {
        let Some((client, channel)) = self.redis.clone() else {
            return;
        };
        let local = self.local.clone();
        tokio::spawn(async move {
            loop {
                if let Err(e) = listen(&client, &channel, &local).await {
                    tracing::warn!(error = %e, "link events: Redis subscription lost; retrying");
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        });
    }

    pub async fn publish(&self, ws_channel: &str) {
        match &self.redis {
            Some((client, channel)) => {
                let sent = async {
                    let mut conn = client.get_multiplexed_async_connection().await?;
                    redis::cmd("PUBLISH")
                        .arg(channel)
                        .arg(ws_channel)
                        .query_async::<i64>(&mut conn)
                        .await
                }
                .await;
                if let Err(e) = sent {
                    // The client still polls (spec 11), so a lost event only delays it.
                    tracing::warn!(error = %e, "link events: publish failed");
                }
            }
            None => {
                let _ = self.local.send(ws_channel.to_string());
            }
        }
    }

    fn subscribe(&self) -> broadcast::Receiver<String> {
        self.local.subscribe()
    }
}

async fn listen(
    client: &redis::Client,
    channel: &str,
    local: &broadcast::Sender<String>,
) -> redis::RedisResult<()> {
    let mut pubsub = client.get_async_pubsub().await?;
    pubsub.subscribe(channel).await?;
    let mut messages = pubsub.on_message();
    while let Some(message) = messages.next().await {
        if let Ok(ws_channel) = message.get_payload::<String>() {
            let _ = local.send(ws_channel);
        }
    }
    Ok(())
}

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(LOGIN_LINK_PATH, get(link_page).post(approve))
        .route(RESET_LINK_PATH, get(reset_page).post(reset))
        .route(WEBSOCKET_PATH, get(websocket))
}

#[derive(Deserialize)]
struct CodeParam {
    #[serde(default)]
    code: String,
}

/// Pages of this module: no framing, no referrer (the URL carries the code).
fn page(status: StatusCode, title: &str, body: &str) -> Response {
    let html = format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title}</title></head>\n<body><main><h1>{title}</h1>\n{body}\n</main></body></html>\n",
        title = escape(title),
    );
    let mut response = (status, Html(html)).into_response();
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    response
}

/// GET only shows a button: mail scanners that fetch links approve nothing (spec 9.3).
async fn link_page(Query(q): Query<CodeParam>) -> Response {
    if q.code.is_empty() {
        return invalid_link();
    }
    let body = format!(
        "<p>Someone asked to log in with this email address. If it was you, approve it; \
         then return to the window where you started.</p>\n\
         <form method=\"post\" action=\"{path}\">\
         <input type=\"hidden\" name=\"code\" value=\"{code}\">\
         <button type=\"submit\">Approve login</button></form>\n\
         <p>If you did not try to log in, close this page.</p>",
        path = LOGIN_LINK_PATH,
        code = escape(&q.code),
    );
    page(StatusCode::OK, "Approve login", &body)
}

fn invalid_link() -> Response {
    page(
        StatusCode::BAD_REQUEST,
        "Invalid link",
        "<p>This login link is invalid, was already used or has expired. \
         Ask for a new one where you started to log in.</p>",
    )
}

async fn approve(
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(form): Form<CodeParam>,
) -> Response {
    let ctx = app.request_context(peer, &headers);
    if let Err(refused) = api_rate_limit(&app, &ctx.ip).await {
        return refused;
    }
    if form.code.is_empty() || form.code.len() > 64 {
        return invalid_link();
    }
    match app.engine.approve_link(&form.code).await {
        Ok(Some(approved)) => {
            app.link_events.publish(&approved.ws_channel).await;
            page(
                StatusCode::OK,
                "Login approved",
                "<p>Your login is approved. Return to the window where you started; \
                 it continues by itself.</p>",
            )
        }
        Ok(None) => invalid_link(),
        Err(e) => ApiError::from_flow(&e, None).into_response(),
    }
}

/// The account recovery link (spec 8.14): a form for the new password. GET changes nothing.
async fn reset_page(Query(q): Query<CodeParam>) -> Response {
    if q.code.is_empty() || q.code.len() > 64 {
        return invalid_link();
    }
    page(
        StatusCode::OK,
        "Choose a new password",
        &reset_form(&q.code, None),
    )
}

fn reset_form(code: &str, problem: Option<&str>) -> String {
    let problem = problem
        .map(|p| format!("<p role=\"alert\">{}</p>\n", escape(p)))
        .unwrap_or_default();
    format!(
        "{problem}<form method=\"post\" action=\"{path}\">\
         <input type=\"hidden\" name=\"code\" value=\"{code}\">\
         <label>New password <input type=\"password\" name=\"new_password\" \
         autocomplete=\"new-password\" required></label>\
         <button type=\"submit\">Set password</button></form>",
        path = RESET_LINK_PATH,
        code = escape(code),
    )
}

#[derive(Deserialize)]
struct ResetForm {
    #[serde(default)]
    code: String,
    #[serde(default)]
    new_password: String,
}

/// Runs the token-less way in of spec 8.14, then `reset_password`, in one request.
async fn reset(
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(form): Form<ResetForm>,
) -> Response {
    let ctx = app.request_context(peer, &headers);
    if let Err(refused) = api_rate_limit(&app, &ctx.ip).await {
        return refused;
    }
    if form.code.is_empty() || form.code.len() > 64 {
        return invalid_link();
    }
    let flow = match app
        .engine
        .account_recovery_from_link(&ctx, &form.code)
        .await
    {
        Ok(view) => view,
        Err(e) if matches!(e.error, FlowError::PasswordResetFailed { .. }) => {
            return invalid_link();
        }
        Err(e) => return ApiError::from_flow(&e.error, None).into_response(),
    };
    let input = serde_json::json!({"new_password": form.new_password});
    match app.engine.input(&ctx, &flow.state_token, input).await {
        Ok(view) if view.finished.is_some() => page(
            StatusCode::OK,
            "Password changed",
            "<p>Your password is changed and you are signed out everywhere. \
             Log in with the new password.</p>",
        ),
        Ok(_) => invalid_link(),
        Err(e) => match e.error {
            // The code is spent only when the reset finishes: the form may be sent again.
            FlowError::PasswordPolicyViolated(_) | FlowError::ValidationFailed { .. } => page(
                StatusCode::BAD_REQUEST,
                "Choose a new password",
                &reset_form(
                    &form.code,
                    Some("That password does not meet the password policy, or was used before."),
                ),
            ),
            FlowError::PasswordResetFailed { .. } => invalid_link(),
            other => ApiError::from_flow(&other, None).into_response(),
        },
    }
}

/// The per-IP limit of the flow API also guards these pages (codes are guessable input).
async fn api_rate_limit(app: &AppState, ip: &str) -> Result<(), Response> {
    match app.engine.check_api_rate_limit(ip).await {
        Ok(true) => Ok(()),
        Ok(false) => Err(ApiError::too_many_requests().into_response()),
        Err(e) => Err(ApiError::from_flow(&e, None).into_response()),
    }
}

#[derive(Deserialize)]
struct ChannelParam {
    #[serde(default)]
    channel: String,
}

/// `GET /api/v1/authentication_flows/ws?channel=ws_…` (spec 11). Browsers always send
/// `Origin` on a WebSocket: it must be allowed. Clients that are no browser send none.
async fn websocket(
    State(app): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<ChannelParam>,
    upgrade: WebSocketUpgrade,
) -> Response {
    if let Some(origin) = headers.get(header::ORIGIN) {
        let allowed = origin.to_str().is_ok_and(|o| app.cors.allows(o));
        if !allowed {
            return ApiError::forbidden_origin().into_response();
        }
    }
    if !token::has_crockford_body(&q.channel, "ws_", 32) {
        return ApiError::invalid_request("invalid WebSocket channel").into_response();
    }
    let events = app.link_events.subscribe();
    upgrade.on_upgrade(move |socket| serve_socket(socket, q.channel, events))
}

async fn serve_socket(
    mut socket: WebSocket,
    channel: String,
    mut events: broadcast::Receiver<String>,
) {
    let mut ping = tokio::time::interval(PING_EVERY);
    ping.tick().await;
    let end = tokio::time::sleep(SOCKET_LIFETIME);
    tokio::pin!(end);
    loop {
        tokio::select! {
            event = events.recv() => match event {
                Ok(c) if c == channel => {
                    if socket.send(Message::Text(REFRESH.into())).await.is_err() {
                        return;
                    }
                }
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => break,
            },
            _ = ping.tick() => {
                if socket.send(Message::Ping(Vec::new().into())).await.is_err() {
                    return;
                }
            }
            incoming = socket.recv() => match incoming {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                Some(Ok(_)) => {}
            },
            _ = &mut end => break,
        }
    }
    let _ = socket.send(Message::Close(None)).await;
}
