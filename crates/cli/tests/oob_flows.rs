//! Passwordless login with one-time codes and login links (OOB authenticators), the seed
//! 002 examples end to end, and the limits on sending. Codes and links are read from the
//! development outbox; `delivery.rs` covers the real SMTP and webhook transports.

use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use authflow_testkit::{ApiResponse, Backend, FlowApi, TestServer, backends};
use futures::StreamExt;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

const EMAIL_AND_PHONE: &str = "identity:\n  login_id:\n    keys: [{type: email}, {type: phone}]\n\
authentication:\n  primary_authenticators: [password, oob_otp_email, oob_otp_sms]\n";

const SIGNUP_EMAIL_AND_PHONE: &str =
    include_str!("../../../docs/examples/seed-002-signup-email-and-phone.yaml");
const SIGNUP_LOGIN_BOTH_IDENTIFIERS: &str =
    include_str!("../../../docs/examples/seed-002-signup-login-both-identifiers.yaml");

async fn start(backend: Backend, extra: &str) -> Result<TestServer> {
    TestServer::builder(backend)
        .bin(env!("CARGO_BIN_EXE_authflow"))
        .extra_yaml(extra)
        .start()
        .await
}

/// A seed example without its `database` section (the harness writes its own).
fn without_database(yaml: &str) -> String {
    yaml.lines()
        .filter(|l| !l.starts_with("database:"))
        .map(|l| format!("{l}\n"))
        .collect()
}

async fn last_message_to(api: &FlowApi, to: &str) -> Result<Value> {
    let r = api.get("/authflow/outbox").await?;
    r.ensure_status(200)?;
    r.at("/messages")
        .and_then(Value::as_array)
        .and_then(|m| m.iter().rev().find(|m| m["to"] == to).cloned())
        .with_context(|| format!("no message to {to} in the outbox"))
}

async fn messages_to(api: &FlowApi, to: &str) -> Result<usize> {
    let r = api.get("/authflow/outbox").await?;
    Ok(r.at("/messages")
        .and_then(Value::as_array)
        .map_or(0, |m| m.iter().filter(|m| m["to"] == to).count()))
}

async fn last_code_to(api: &FlowApi, to: &str) -> Result<String> {
    let m = last_message_to(api, to).await?;
    m["code"].as_str().map(str::to_string).context("no code")
}

/// The server's log without the development outbox's own lines (which show each message
/// to the operator by design): no code or link may appear there.
fn log_outside_outbox(server: &TestServer) -> String {
    server
        .logs()
        .lines()
        .filter(|l| !l.contains("dev outbox message"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn assert_error(r: &ApiResponse, status: u16, reason: &str) {
    assert_eq!(r.status, status, "{r}");
    assert_eq!(r.error_reason(), Some(reason), "{r}");
}

fn wrong(code: &str) -> &'static str {
    if code == "000000" { "111111" } else { "000000" }
}

/// Position of `authentication` in the rendered options (the `index` an OOB input needs).
fn option_index(state: &ApiResponse, authentication: &str) -> Result<usize> {
    state
        .at("/result/action/data/options")
        .and_then(Value::as_array)
        .and_then(|o| o.iter().position(|o| o["authentication"] == authentication))
        .with_context(|| format!("{authentication} not offered: {state}"))
}

async fn input_ok(api: &FlowApi, state: &ApiResponse, input: Value) -> Result<ApiResponse> {
    let token = state.state_token().context("no state token")?;
    let next = api.input(token, input.clone()).await?;
    next.ensure_status(200)
        .with_context(|| format!("input {input}"))?;
    Ok(next)
}

/// Sign up `email` with the default flow: verify the address, then register it as an
/// OOB OTP authenticator (no password).
async fn signup_passwordless(api: &FlowApi, email: &str) -> Result<()> {
    let created = api.create_flow("signup", "default").await?;
    let verify = input_ok(
        api,
        &created,
        json!({"identification": "email", "login_id": email}),
    )
    .await?;
    let code = last_code_to(api, email).await?;
    let create = input_ok(api, &verify, json!({"code": code})).await?;
    assert_eq!(
        create.action_type(),
        Some("create_authenticator"),
        "{create}"
    );
    let option = option_index(&create, "primary_oob_otp_email")?;
    let options = create.at("/result/action/data/options").unwrap();
    assert_eq!(
        options[option]["target"]["verification_required"],
        json!(false),
        "the identified address was verified a step ago: {create}"
    );
    let done = input_ok(
        api,
        &create,
        json!({"authentication": "primary_oob_otp_email", "index": option}),
    )
    .await?;
    assert_eq!(done.action_type(), Some("finished"), "{done}");
    Ok(())
}

/// Start the default login flow for `login_id` and choose `authentication`: the response
/// is the `verify_oob_otp_data` state (or the channel choice).
async fn choose_oob(
    api: &FlowApi,
    identification: &str,
    login_id: &str,
    authentication: &str,
    channel: Option<&str>,
) -> Result<ApiResponse> {
    let created = api.create_flow("login", "default").await?;
    let authenticate = input_ok(
        api,
        &created,
        json!({"identification": identification, "login_id": login_id}),
    )
    .await?;
    let index = option_index(&authenticate, authentication)?;
    let mut input = json!({"authentication": authentication, "index": index});
    if let Some(c) = channel {
        input["channel"] = json!(c);
    }
    input_ok(api, &authenticate, input).await
}

#[tokio::test]
async fn passwordless_login_with_an_email_code() -> Result<()> {
    for backend in backends() {
        let server = start(backend, EMAIL_AND_PHONE).await?;
        let api = server.api();
        signup_passwordless(&api, "olga@example.com").await?;

        let created = api.create_flow("login", "default").await?;
        let authenticate = input_ok(
            &api,
            &created,
            json!({"identification": "email", "login_id": "Olga@Example.com"}),
        )
        .await?;
        let index = option_index(&authenticate, "primary_oob_otp_email")?;
        let option = &authenticate.at("/result/action/data/options").unwrap()[index];
        assert_eq!(option["otp_form"], "code", "{backend}");
        assert_eq!(option["channels"], json!(["email"]));
        assert_eq!(option["masked_display_name"], "ol**@example.com");

        // An OOB option needs its index; another index is refused.
        let no_index = api
            .input(
                authenticate.state_token().unwrap(),
                json!({"authentication": "primary_oob_otp_email"}),
            )
            .await?;
        assert_error(&no_index, 400, "ValidationFailed");
        let bad_index = api
            .input(
                authenticate.state_token().unwrap(),
                json!({"authentication": "primary_oob_otp_email", "index": index + 7}),
            )
            .await?;
        assert_error(&bad_index, 400, "ValidationFailed");
        assert_eq!(
            bad_index.str_at("/error/info/causes/0/location"),
            Some("/index")
        );

        let sent_before = messages_to(&api, "olga@example.com").await?;
        let verify = input_ok(
            &api,
            &authenticate,
            json!({"authentication": "primary_oob_otp_email", "index": index}),
        )
        .await?;
        assert_eq!(verify.action_type(), Some("authenticate"));
        assert_eq!(
            verify.str_at("/result/action/authentication"),
            Some("primary_oob_otp_email")
        );
        let data = verify.at("/result/action/data").unwrap();
        assert_eq!(data["type"], "verify_oob_otp_data");
        assert_eq!(data["channel"], "email");
        assert_eq!(data["otp_form"], "code");
        assert_eq!(data["masked_claim_value"], "ol**@example.com");
        assert_eq!(data["code_length"], 6);
        assert_eq!(data["can_check"], false);
        assert_eq!(data["failed_attempt_rate_limit_exceeded"], false);
        assert_eq!(
            messages_to(&api, "olga@example.com").await?,
            sent_before + 1
        );
        let message = last_message_to(&api, "olga@example.com").await?;
        assert_eq!(message["purpose"], "authentication");
        assert!(
            message["subject"].as_str().unwrap().contains("login code"),
            "{message}"
        );
        let code = message["code"].as_str().unwrap().to_string();

        let token = verify.state_token().unwrap();
        let refused = api.input(token, json!({"code": wrong(&code)})).await?;
        assert_error(&refused, 401, "InvalidCredentials");
        assert_eq!(
            refused.str_at("/error/info/AuthenticationType"),
            Some("oob_otp_email")
        );
        assert_eq!(
            refused.state_token(),
            Some(token),
            "the state is echoed unchanged"
        );

        let done = api.input(token, json!({"code": code})).await?;
        assert_eq!(done.action_type(), Some("finished"), "{done}");
        assert!(
            done.header("set-cookie")
                .is_some_and(|c| c.starts_with("session="))
        );

        // Single use: a second login flow cannot reuse the code.
        let again = choose_oob(
            &api,
            "email",
            "olga@example.com",
            "primary_oob_otp_email",
            None,
        )
        .await?;
        let replay = api
            .input(again.state_token().unwrap(), json!({"code": code}))
            .await?;
        assert_error(&replay, 401, "InvalidCredentials");
        assert!(
            !log_outside_outbox(&server).contains(&code),
            "{backend}: a delivered code appears in the server log"
        );
    }
    Ok(())
}

/// `phone_otp_mode: whatsapp_sms` offers two channels: verification asks which, and a login
/// input must name one.
#[tokio::test]
async fn phone_codes_over_whatsapp_or_sms_sign_up_and_log_in() -> Result<()> {
    let config = format!(
        "{EMAIL_AND_PHONE}authenticator:\n  oob_otp:\n    sms: {{phone_otp_mode: whatsapp_sms}}\n"
    );
    for backend in backends() {
        let server = start(backend, &config).await?;
        let api = server.api();
        let phone = "+14155550123";

        let created = api.create_flow("signup", "default").await?;
        let select = input_ok(
            &api,
            &created,
            json!({"identification": "phone", "login_id": phone}),
        )
        .await?;
        assert_eq!(select.action_type(), Some("verify"), "{select}");
        let data = select.at("/result/action/data").unwrap();
        assert_eq!(data["type"], "select_oob_otp_channels_data", "{select}");
        assert_eq!(data["channels"], json!(["whatsapp", "sms"]));
        assert_eq!(
            messages_to(&api, phone).await?,
            0,
            "nothing sent before the choice"
        );
        let refused = api
            .input(select.state_token().unwrap(), json!({"channel": "email"}))
            .await?;
        assert_error(&refused, 400, "ValidationFailed");

        let verify = input_ok(&api, &select, json!({"channel": "whatsapp"})).await?;
        assert_eq!(
            verify.str_at("/result/action/data/type"),
            Some("verify_oob_otp_data")
        );
        assert_eq!(
            verify.str_at("/result/action/data/channel"),
            Some("whatsapp")
        );
        let message = last_message_to(&api, phone).await?;
        assert_eq!(message["channel"], "whatsapp");
        let code = message["code"].as_str().unwrap().to_string();
        let create = input_ok(&api, &verify, json!({"code": code})).await?;
        let index = option_index(&create, "primary_oob_otp_sms")?;
        let done = input_ok(
            &api,
            &create,
            json!({"authentication": "primary_oob_otp_sms", "index": index}),
        )
        .await?;
        assert_eq!(done.action_type(), Some("finished"), "{done}");

        // Login: the option lists both channels, so the input must name one.
        let created = api.create_flow("login", "default").await?;
        let authenticate = input_ok(
            &api,
            &created,
            json!({"identification": "phone", "login_id": phone}),
        )
        .await?;
        let index = option_index(&authenticate, "primary_oob_otp_sms")?;
        let option = &authenticate.at("/result/action/data/options").unwrap()[index];
        assert_eq!(option["channels"], json!(["whatsapp", "sms"]), "{backend}");
        assert_eq!(option["masked_display_name"], "+141555*****");
        let missing = api
            .input(
                authenticate.state_token().unwrap(),
                json!({"authentication": "primary_oob_otp_sms", "index": index}),
            )
            .await?;
        assert_error(&missing, 400, "ValidationFailed");
        let verify = input_ok(
            &api,
            &authenticate,
            json!({"authentication": "primary_oob_otp_sms", "index": index, "channel": "sms"}),
        )
        .await?;
        assert_eq!(verify.str_at("/result/action/data/channel"), Some("sms"));
        let message = last_message_to(&api, phone).await?;
        assert_eq!(message["channel"], "sms");
        let code = message["code"].as_str().unwrap().to_string();
        let refused = api
            .input(verify.state_token().unwrap(), json!({"code": wrong(&code)}))
            .await?;
        assert_error(&refused, 401, "InvalidCredentials");
        assert_eq!(
            refused.str_at("/error/info/AuthenticationType"),
            Some("oob_otp_sms")
        );
        let done = input_ok(&api, &verify, json!({"code": code})).await?;
        assert_eq!(done.action_type(), Some("finished"), "{done}");
    }
    Ok(())
}

#[tokio::test]
async fn wrong_login_codes_revoke_the_code_at_the_limit() -> Result<()> {
    let config = format!(
        "{EMAIL_AND_PHONE}  rate_limits:\n    oob_otp:\n      email: {{max_failed_attempts_revoke_otp: 3}}\n"
    );
    for backend in backends() {
        let server = start(backend, &config).await?;
        let api = server.api();
        signup_passwordless(&api, "rita@example.com").await?;
        let verify = choose_oob(
            &api,
            "email",
            "rita@example.com",
            "primary_oob_otp_email",
            None,
        )
        .await?;
        let code = last_code_to(&api, "rita@example.com").await?;
        let token = verify.state_token().unwrap();
        for _ in 0..3 {
            let r = api.input(token, json!({"code": wrong(&code)})).await?;
            assert_error(&r, 401, "InvalidCredentials");
        }
        let revoked = api.input(token, json!({"code": code})).await?;
        assert_eq!(revoked.status, 429, "{backend}: {revoked}");
        let state = api.read_state(token).await?;
        assert_eq!(
            state.at("/result/action/data/failed_attempt_rate_limit_exceeded"),
            Some(&json!(true)),
            "{state}"
        );
    }
    Ok(())
}

async fn open_socket(
    url: &str,
) -> Result<
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
> {
    let (socket, response) = tokio_tungstenite::connect_async(url)
        .await
        .with_context(|| format!("WebSocket {url}"))?;
    assert_eq!(response.status(), 101);
    Ok(socket)
}

/// The next text message on the socket, skipping pings.
async fn next_text(
    socket: &mut tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
) -> Result<String> {
    let wait = async {
        while let Some(message) = socket.next().await {
            match message? {
                Message::Text(t) => return Ok(t.to_string()),
                Message::Close(_) => bail!("socket closed"),
                _ => {}
            }
        }
        bail!("socket ended")
    };
    tokio::time::timeout(Duration::from_secs(10), wait)
        .await
        .context("no WebSocket message within 10 s")?
}

fn login_link_config() -> String {
    format!(
        "{EMAIL_AND_PHONE}authenticator:\n  oob_otp:\n    email: {{email_otp_mode: login_link}}\n"
    )
}

/// Form-post the link's code to the approval page of `server`.
async fn approve(server: &TestServer, link: &str) -> Result<reqwest::Response> {
    let code = link.split("code=").nth(1).context("link without code")?;
    Ok(server
        .client()
        .post(server.url("/authflow/v2/verify_login_link"))
        .form(&[("code", code)])
        .send()
        .await?)
}

#[tokio::test]
async fn a_login_link_approved_in_the_mail_finishes_the_waiting_flow() -> Result<()> {
    let config = login_link_config();
    for backend in backends() {
        let server = start(backend, &config).await?;
        let api = server.api();
        signup_passwordless(&api, "lina@example.com").await?;
        let created = api.create_flow("login", "default").await?;
        let authenticate = input_ok(
            &api,
            &created,
            json!({"identification": "email", "login_id": "lina@example.com"}),
        )
        .await?;
        let index = option_index(&authenticate, "primary_oob_otp_email")?;
        assert_eq!(
            authenticate.at("/result/action/data/options").unwrap()[index]["otp_form"],
            "link"
        );
        let verify = input_ok(
            &api,
            &authenticate,
            json!({"authentication": "primary_oob_otp_email", "index": index}),
        )
        .await?;
        let data = verify.at("/result/action/data").unwrap().clone();
        assert_eq!(data["otp_form"], "link", "{backend}");
        assert_eq!(data["code_length"], 32);
        assert_eq!(data["can_check"], false);
        let ws_url = data["websocket_url"].as_str().context("no websocket_url")?;
        let expected_prefix = format!(
            "{}/api/v1/authentication_flows/ws?channel=ws_",
            server.base_url().replacen("http", "ws", 1)
        );
        assert!(ws_url.starts_with(&expected_prefix), "{ws_url}");
        let mut socket = open_socket(ws_url).await?;

        let message = last_message_to(&api, "lina@example.com").await?;
        let link = message["link"].as_str().context("no link")?.to_string();
        let code = message["code"].as_str().unwrap();
        assert_eq!(code.len(), 32);
        assert!(link.starts_with(&format!(
            "{}/authflow/v2/verify_login_link?code=",
            server.base_url()
        )));
        assert!(
            message["body"].as_str().unwrap().contains("20 minutes"),
            "{message}"
        );

        let token = verify.state_token().unwrap();
        let early = api.input(token, json!({"check": true})).await?;
        assert_error(&early, 401, "InvalidCredentials");

        // Opening the link (what a mail scanner does) approves nothing.
        let page = server.client().get(&link).send().await?;
        assert_eq!(page.status(), 200);
        assert_eq!(page.headers()["referrer-policy"].to_str()?, "no-referrer");
        let html = page.text().await?;
        assert!(html.contains("<form method=\"post\""), "{html}");
        let state = api.read_state(token).await?;
        assert_eq!(
            state.at("/result/action/data/can_check"),
            Some(&json!(false))
        );

        let approved = approve(&server, &link).await?;
        assert_eq!(approved.status(), 200);
        assert!(approved.text().await?.contains("approved"));
        assert_eq!(next_text(&mut socket).await?, r#"{"kind":"refresh"}"#);
        let state = api.read_state(token).await?;
        assert_eq!(
            state.at("/result/action/data/can_check"),
            Some(&json!(true)),
            "{state}"
        );
        let done = api.input(token, json!({"check": true})).await?;
        assert_eq!(done.action_type(), Some("finished"), "{done}");

        // The link is single use.
        let reused = approve(&server, &link).await?;
        assert_eq!(reused.status(), 400);
        assert!(
            !log_outside_outbox(&server).contains(code),
            "{backend}: a link code appears in the server log"
        );
    }
    Ok(())
}

#[tokio::test]
async fn the_websocket_refuses_foreign_origins_and_bad_channels() -> Result<()> {
    let server = start(Backend::Sqlite, &login_link_config()).await?;
    let ws = server.base_url().replacen("http", "ws", 1);
    let bad = tokio_tungstenite::connect_async(format!(
        "{ws}/api/v1/authentication_flows/ws?channel=nonsense"
    ))
    .await;
    match bad {
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => assert_eq!(r.status(), 400),
        other => bail!("bad channel accepted: {other:?}"),
    }
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut request =
        format!("{ws}/api/v1/authentication_flows/ws?channel=ws_0123456789ABCDEFGHJKMNPQRSTVWXYZ")
            .into_client_request()?;
    request
        .headers_mut()
        .insert("origin", "https://evil.example".parse()?);
    match tokio_tungstenite::connect_async(request).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => assert_eq!(r.status(), 403),
        other => bail!("foreign origin accepted: {other:?}"),
    }
    Ok(())
}

/// With Redis as the state store, an approval on one replica reaches a socket held by another.
#[tokio::test]
async fn a_login_link_approval_reaches_a_socket_on_another_replica() -> Result<()> {
    if !backends().contains(&Backend::PostgresRedis) {
        eprintln!("skipped: needs PostgreSQL + Redis (AUTHFLOW_TEST_POSTGRES_URL/REDIS_URL)");
        return Ok(());
    }
    let first = start(Backend::PostgresRedis, &login_link_config()).await?;
    let second = first.start_replica().await?;
    let api = first.api();
    signup_passwordless(&api, "remy@example.com").await?;
    let verify = choose_oob(
        &api,
        "email",
        "remy@example.com",
        "primary_oob_otp_email",
        None,
    )
    .await?;
    let ws_url = verify
        .str_at("/result/action/data/websocket_url")
        .context("no websocket_url")?
        .replace(
            &first.base_url().replacen("http", "ws", 1),
            &second.base_url().replacen("http", "ws", 1),
        );
    assert!(ws_url.contains(second.base_url().trim_start_matches("http://")));
    let mut socket = open_socket(&ws_url).await?;
    // Let the second replica's Redis subscription settle before the approval is published.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let link = last_message_to(&api, "remy@example.com").await?["link"]
        .as_str()
        .context("no link")?
        .to_string();
    let approved = approve(&first, &link).await?;
    assert_eq!(approved.status(), 200);
    assert_eq!(next_text(&mut socket).await?, r#"{"kind":"refresh"}"#);
    // The flow continues on the second replica too: its state lives in Redis.
    let done = second
        .api()
        .input(verify.state_token().unwrap(), json!({"check": true}))
        .await?;
    assert_eq!(done.action_type(), Some("finished"), "{done}");
    Ok(())
}

#[tokio::test]
async fn sending_is_limited_per_target() -> Result<()> {
    let config = format!(
        "{EMAIL_AND_PHONE}  rate_limits:\n    oob_otp:\n      email: {{trigger_cooldown: 1s}}\n\
messaging:\n  rate_limits:\n    email_per_target: {{period: 1h, burst: 2}}\n"
    );
    for backend in backends() {
        let server = start(backend, &config).await?;
        let api = server.api();
        signup_passwordless(&api, "sven@example.com").await?;
        // The signup's verification email took one token; one more login code may go.
        let verify = choose_oob(
            &api,
            "email",
            "sven@example.com",
            "primary_oob_otp_email",
            None,
        )
        .await?;
        let token = verify.state_token().unwrap();
        let sent = messages_to(&api, "sven@example.com").await?;
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let limited = api.input(token, json!({"resend": true})).await?;
        assert_error(&limited, 429, "RateLimited");
        assert_eq!(
            limited.str_at("/error/info/bucket_name"),
            Some("MessagingEmailPerTarget"),
            "{backend}: {limited}"
        );
        assert_eq!(messages_to(&api, "sven@example.com").await?, sent);
        // Another address is not affected.
        signup_passwordless(&api, "tove@example.com").await?;
    }
    Ok(())
}

#[tokio::test]
async fn an_explicit_resend_inside_the_cooldown_is_refused() -> Result<()> {
    for backend in backends() {
        let server = start(backend, EMAIL_AND_PHONE).await?;
        let api = server.api();
        signup_passwordless(&api, "cora@example.com").await?;
        let verify = choose_oob(
            &api,
            "email",
            "cora@example.com",
            "primary_oob_otp_email",
            None,
        )
        .await?;
        let early = api
            .input(verify.state_token().unwrap(), json!({"resend": true}))
            .await?;
        assert_error(&early, 429, "RateLimited");
        assert_eq!(
            early.str_at("/error/info/bucket_name"),
            Some("OOBOTPCooldownEmail"),
            "{backend}: {early}"
        );
        // A second flow inside the cooldown sends nothing, and says when it may.
        let sent = messages_to(&api, "cora@example.com").await?;
        let other = choose_oob(
            &api,
            "email",
            "cora@example.com",
            "primary_oob_otp_email",
            None,
        )
        .await?;
        assert_eq!(messages_to(&api, "cora@example.com").await?, sent);
        let first_at = verify.str_at("/result/action/data/can_resend_at").unwrap();
        assert_eq!(
            other.str_at("/result/action/data/can_resend_at"),
            Some(first_at)
        );
    }
    Ok(())
}

/// The seed 002 example 1 signup: `email` and `phone`, each verified, each an OTP
/// authenticator.
async fn signup_email_and_phone(api: &FlowApi, email: &str, phone: &str) -> Result<()> {
    let mut state = api.create_flow("signup", "default").await?;
    for (identification, login_id, authentication) in [
        ("email", email, "primary_oob_otp_email"),
        ("phone", phone, "primary_oob_otp_sms"),
    ] {
        ensure!(state.action_type() == Some("identify"), "{state}");
        let verify = input_ok(
            api,
            &state,
            json!({"identification": identification, "login_id": login_id}),
        )
        .await?;
        let create = input_ok(
            api,
            &verify,
            json!({"code": last_code_to(api, login_id).await?}),
        )
        .await?;
        let index = option_index(&create, authentication)?;
        state = input_ok(
            api,
            &create,
            json!({"authentication": authentication, "index": index}),
        )
        .await?;
    }
    ensure!(state.action_type() == Some("finished"), "{state}");
    Ok(())
}

/// Seed 002, example 1: signup verifies an email and a phone, each an OTP authenticator;
/// the user then logs in with either through the generated login flow.
#[tokio::test]
async fn seed_002_signup_with_email_and_phone_then_login_with_either() -> Result<()> {
    let config = without_database(SIGNUP_EMAIL_AND_PHONE);
    for backend in backends() {
        let server = start(backend, &config).await?;
        let api = server.api();
        let (email, phone) = ("ella@example.com", "+85251001235");
        signup_email_and_phone(&api, email, phone).await?;

        for (identification, login_id, authentication) in [
            ("email", email, "primary_oob_otp_email"),
            ("phone", phone, "primary_oob_otp_sms"),
        ] {
            let verify = choose_oob(&api, identification, login_id, authentication, None).await?;
            let code = last_code_to(&api, login_id).await?;
            let done = input_ok(&api, &verify, json!({"code": code})).await?;
            assert_eq!(done.action_type(), Some("finished"), "{login_id}: {done}");
        }
    }
    Ok(())
}

/// Seed 002, example 2: a new phone number signs up (collecting and verifying an email too,
/// then registering an OTP authenticator for a typed target); the same user then comes back
/// through the same `signup_login` flow with either identifier and logs in.
#[tokio::test]
async fn seed_002_signup_login_with_both_identifiers() -> Result<()> {
    let config = without_database(SIGNUP_LOGIN_BOTH_IDENTIFIERS);
    for backend in backends() {
        let server = start(backend, &config).await?;
        let api = server.api();
        let (email, phone) = ("pia@example.com", "+85251001236");
        let created = api.create_flow("signup_login", "default").await?;
        let verify = input_ok(
            &api,
            &created,
            json!({"identification": "phone", "login_id": phone}),
        )
        .await?;
        assert_eq!(verify.str_at("/result/type"), Some("signup"), "{verify}");
        let email_step = input_ok(
            &api,
            &verify,
            json!({"code": last_code_to(&api, phone).await?}),
        )
        .await?;
        assert_eq!(email_step.action_type(), Some("identify"), "{email_step}");
        let verify = input_ok(
            &api,
            &email_step,
            json!({"identification": "email", "login_id": email}),
        )
        .await?;
        let create = input_ok(
            &api,
            &verify,
            json!({"code": last_code_to(&api, email).await?}),
        )
        .await?;
        assert_eq!(
            create.action_type(),
            Some("create_authenticator"),
            "{create}"
        );
        let index = option_index(&create, "primary_oob_otp_email")?;
        let option = &create.at("/result/action/data/options").unwrap()[index];
        assert!(option.get("target").is_none(), "no target_step: {option}");
        // The typed target is the email verified a step ago: no second verification.
        let done = input_ok(
            &api,
            &create,
            json!({"authentication": "primary_oob_otp_email", "index": index, "target": email}),
        )
        .await?;
        assert_eq!(done.action_type(), Some("finished"), "{backend}: {done}");

        for (identification, login_id) in [("email", email), ("phone", phone)] {
            let created = api.create_flow("signup_login", "default").await?;
            let authenticate = input_ok(
                &api,
                &created,
                json!({"identification": identification, "login_id": login_id}),
            )
            .await?;
            assert_eq!(
                authenticate.str_at("/result/type"),
                Some("login"),
                "{authenticate}"
            );
            let authentication = if identification == "email" {
                "primary_oob_otp_email"
            } else {
                "primary_oob_otp_sms"
            };
            let index = option_index(&authenticate, authentication)?;
            let verify = input_ok(
                &api,
                &authenticate,
                json!({"authentication": authentication, "index": index}),
            )
            .await?;
            let code = last_code_to(&api, login_id).await?;
            let done = input_ok(&api, &verify, json!({"code": code})).await?;
            assert_eq!(done.action_type(), Some("finished"), "{login_id}: {done}");
        }
    }
    Ok(())
}

/// `secondary_oob_otp_email`: signup registers a second address (typed, then verified), and
/// login asks for a code sent to it after the password.
#[tokio::test]
async fn an_email_code_as_second_factor() -> Result<()> {
    let config = "authentication:\n  primary_authenticators: [password]\n  \
secondary_authenticators: [oob_otp_email]\n  secondary_authentication_mode: required\n  \
recovery_code: {disabled: true}\n";
    for backend in backends() {
        let server = start(backend, config).await?;
        let api = server.api();
        let (email, second) = ("sam@example.com", "sam.backup@example.org");
        let created = api.create_flow("signup", "default").await?;
        let verify = input_ok(
            &api,
            &created,
            json!({"identification": "email", "login_id": email}),
        )
        .await?;
        let primary = input_ok(
            &api,
            &verify,
            json!({"code": last_code_to(&api, email).await?}),
        )
        .await?;
        let secondary = input_ok(
            &api,
            &primary,
            json!({"authentication": "primary_password", "new_password": "sam's password 1"}),
        )
        .await?;
        assert_eq!(
            secondary.action_type(),
            Some("create_authenticator"),
            "{backend}: {secondary}"
        );
        let index = option_index(&secondary, "secondary_oob_otp_email")?;
        let typo = api
            .input(
                secondary.state_token().unwrap(),
                json!({"authentication": "secondary_oob_otp_email", "index": index, "target": "not an email"}),
            )
            .await?;
        assert_error(&typo, 400, "ValidationFailed");
        let confirm = input_ok(
            &api,
            &secondary,
            json!({"authentication": "secondary_oob_otp_email", "index": index, "target": second}),
        )
        .await?;
        assert_eq!(
            confirm.str_at("/result/action/data/type"),
            Some("verify_oob_otp_data"),
            "{confirm}"
        );
        let code = last_code_to(&api, second).await?;
        let refused = api
            .input(
                confirm.state_token().unwrap(),
                json!({"code": wrong(&code)}),
            )
            .await?;
        assert_error(&refused, 403, "InvalidVerificationCode");
        let done = input_ok(&api, &confirm, json!({"code": code})).await?;
        assert_eq!(done.action_type(), Some("finished"), "{done}");

        let created = api.create_flow("login", "default").await?;
        let password = input_ok(
            &api,
            &created,
            json!({"identification": "email", "login_id": email}),
        )
        .await?;
        let second_factor = input_ok(
            &api,
            &password,
            json!({"authentication": "primary_password", "password": "sam's password 1"}),
        )
        .await?;
        assert_eq!(
            second_factor.action_type(),
            Some("authenticate"),
            "{second_factor}"
        );
        let index = option_index(&second_factor, "secondary_oob_otp_email")?;
        assert_eq!(
            second_factor.at("/result/action/data/options").unwrap()[index]["masked_display_name"],
            "sam.b*****@example.org"
        );
        let verify = input_ok(
            &api,
            &second_factor,
            json!({"authentication": "secondary_oob_otp_email", "index": index}),
        )
        .await?;
        let code = last_code_to(&api, second).await?;
        let done = input_ok(&api, &verify, json!({"code": code})).await?;
        assert_eq!(done.action_type(), Some("finished"), "{done}");
    }
    Ok(())
}

#[tokio::test]
async fn sending_is_limited_per_ip_and_login_codes_expire() -> Result<()> {
    let config = format!(
        "{EMAIL_AND_PHONE}authenticator:\n  oob_otp:\n    email: {{valid_periods: {{code: 1s}}}}\n\
messaging:\n  rate_limits:\n    email_per_ip: {{period: 1h, burst: 3}}\n"
    );
    for backend in backends() {
        let server = start(backend, &config).await?;
        let api = server.api();
        // Two signups take two of the three emails this IP may cause.
        signup_passwordless(&api, "ulla@example.com").await?;
        signup_passwordless(&api, "vito@example.com").await?;
        let verify = choose_oob(
            &api,
            "email",
            "ulla@example.com",
            "primary_oob_otp_email",
            None,
        )
        .await?;
        let code = last_code_to(&api, "ulla@example.com").await?;
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let expired = api
            .input(verify.state_token().unwrap(), json!({"code": code}))
            .await?;
        assert_error(&expired, 401, "InvalidCredentials");

        // The fourth email from this IP is refused, whatever the address.
        let created = api.create_flow("login", "default").await?;
        let authenticate = input_ok(
            &api,
            &created,
            json!({"identification": "email", "login_id": "vito@example.com"}),
        )
        .await?;
        let index = option_index(&authenticate, "primary_oob_otp_email")?;
        let limited = api
            .input(
                authenticate.state_token().unwrap(),
                json!({"authentication": "primary_oob_otp_email", "index": index}),
            )
            .await?;
        assert_error(&limited, 429, "RateLimited");
        assert_eq!(
            limited.str_at("/error/info/bucket_name"),
            Some("MessagingEmailPerIP"),
            "{backend}: {limited}"
        );
    }
    Ok(())
}

/// `enumerate_destinations: true` (authentication-flow-api.md 8.13): a user identified by
/// email is offered their phone too; the code goes to the chosen one.
#[tokio::test]
async fn enumerated_destinations_list_every_login_id_of_the_user() -> Result<()> {
    let recovery = "  account_recovery_flows:
  - name: default
    steps:
    - type: identify
      one_of:
      - identification: email
      - identification: phone
    - type: select_destination
      enumerate_destinations: true
      allowed_channels: [{channel: email, otp_form: code}, {channel: sms, otp_form: code}]
    - type: verify_account_recovery_code
    - type: reset_password
";
    let config = format!("{}{recovery}", without_database(SIGNUP_EMAIL_AND_PHONE));
    for backend in backends() {
        let server = start(backend, &config).await?;
        let api = server.api();
        let (email, phone) = ("enzo@example.com", "+85251001237");
        signup_email_and_phone(&api, email, phone).await?;

        let options_for = async |login_id: &str| -> Result<(ApiResponse, Vec<Value>)> {
            let created = api.create_flow("account_recovery", "default").await?;
            let select = input_ok(
                &api,
                &created,
                json!({"identification": "email", "login_id": login_id}),
            )
            .await?;
            let options = select
                .at("/result/action/data/options")
                .and_then(Value::as_array)
                .cloned()
                .context("options")?;
            Ok((select, options))
        };
        let (select, options) = options_for(email).await?;
        let channels: Vec<&str> = options
            .iter()
            .filter_map(|o| o["channel"].as_str())
            .collect();
        assert_eq!(channels, ["email", "sms"], "{select}");
        assert_eq!(
            options[1]["masked_display_name"],
            json!("+8525100****"),
            "{select}"
        );
        // An unknown email has no phone to list.
        let (_, unknown) = options_for("nobody@example.com").await?;
        assert_eq!(unknown.len(), 1, "{unknown:?}");

        let sent = input_ok(&api, &select, json!({"index": 1})).await?;
        assert_eq!(
            sent.str_at("/result/action/data/channel"),
            Some("sms"),
            "{sent}"
        );
        let reset = input_ok(
            &api,
            &sent,
            json!({"account_recovery_code": last_code_to(&api, phone).await?}),
        )
        .await?;
        assert_eq!(reset.action_type(), Some("reset_password"), "{reset}");
        let done = input_ok(&api, &reset, json!({"new_password": "enumerated 123 Aa"})).await?;
        assert_eq!(done.action_type(), Some("finished"), "{done}");
    }
    Ok(())
}
