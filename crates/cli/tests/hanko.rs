//! The Hanko-style Flow API (hanko-flow-api.md) over HTTP against the real binary, on every
//! available backend: registration with a passcode and a password, login by password and
//! by passcode, every refusal and error code, `back`, sessions, `/me`, logout, JWKS.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use authflow_testkit::{ApiResponse, Backend, TestServer, backends};
use serde_json::{Value, json};

const PASSWORD: &str = "correct horse 7";

/// Email login, password and passcode by email as primary methods; emails verified at
/// registration (the default).
const CONFIG: &str = "hanko_api:\n  enabled: true\nauthentication:\n  primary_authenticators: [password, oob_otp_email]\n";

async fn start(backend: Backend, extra: &str) -> Result<TestServer> {
    start_with(backend, extra, &[]).await
}

async fn start_with(backend: Backend, extra: &str, env: &[(&str, &str)]) -> Result<TestServer> {
    let mut b = TestServer::builder(backend)
        .bin(env!("CARGO_BIN_EXE_authflow"))
        .extra_yaml(extra);
    for (k, v) in env {
        b = b.env(k, v);
    }
    b.start().await
}

/// A browser-less client of the dialect: follows `href`s, sends the current `csrf_token`.
struct Hanko {
    base: String,
    http: reqwest::Client,
    token: Option<String>,
}

impl Hanko {
    fn new(server: &TestServer) -> Self {
        Hanko {
            base: server.url("/hanko"),
            http: server.new_client(),
            token: None,
        }
    }

    async fn post(&self, path: &str, body: Option<Value>) -> Result<ApiResponse> {
        let mut r = self.http.post(format!("{}{path}", self.base));
        if let Some(b) = body {
            r = r.json(&b);
        }
        if let Some(t) = &self.token {
            r = r.bearer_auth(t);
        }
        ApiResponse::read(r.send().await?).await
    }

    async fn get(&self, path: &str) -> Result<ApiResponse> {
        let mut r = self.http.get(format!("{}{path}", self.base));
        if let Some(t) = &self.token {
            r = r.bearer_auth(t);
        }
        ApiResponse::read(r.send().await?).await
    }

    /// Start `flow` and pass `preflight`: the flow's first real state.
    async fn begin(&self, flow: &str) -> Result<ApiResponse> {
        let pre = self.post(&format!("/{flow}"), None).await?;
        pre.ensure_status(200)?;
        assert_eq!(pre.str_at("/name"), Some("preflight"), "{pre}");
        self.act(
            &pre,
            "register_client_capabilities",
            json!({"webauthn_available": false}),
        )
        .await
    }

    /// Run `action` of `state` with its current token.
    async fn act(&self, state: &ApiResponse, action: &str, input: Value) -> Result<ApiResponse> {
        let csrf = state
            .str_at("/csrf_token")
            .context("csrf_token")?
            .to_string();
        self.act_with(state, action, input, Some(&csrf)).await
    }

    async fn act_with(
        &self,
        state: &ApiResponse,
        action: &str,
        input: Value,
        csrf: Option<&str>,
    ) -> Result<ApiResponse> {
        let href = state
            .str_at(&format!("/actions/{action}/href"))
            .with_context(|| format!("{action} is not offered: {state}"))?
            .to_string();
        let mut body = json!({"input_data": input});
        if let Some(c) = csrf {
            body["csrf_token"] = json!(c);
        }
        self.post(&href, Some(body)).await
    }
}

fn assert_state(r: &ApiResponse, status: u16, name: &str) {
    assert_eq!(r.status, status, "{r}");
    assert_eq!(
        r.at("/status").and_then(Value::as_u64),
        Some(u64::from(status)),
        "{r}"
    );
    assert_eq!(r.str_at("/name"), Some(name), "{r}");
    assert!(
        r.at("/actions").is_some_and(Value::is_object),
        "actions is an object: {r}"
    );
    assert!(
        r.at("/links").is_some_and(Value::is_array),
        "links is an array: {r}"
    );
}

/// A refusal of checks 1–7: state `error`, no token, no actions.
fn assert_refused(r: &ApiResponse, status: u16, code: &str) {
    assert_state(r, status, "error");
    assert_eq!(r.str_at("/error/code"), Some(code), "{r}");
    assert_eq!(r.str_at("/csrf_token"), Some(""), "{r}");
    assert_eq!(r.at("/actions"), Some(&json!({})), "{r}");
}

fn input_error<'a>(r: &'a ApiResponse, action: &str, input: &str) -> Option<&'a str> {
    r.str_at(&format!("/actions/{action}/inputs/{input}/error/code"))
}

async fn last_code_for(server: &TestServer, to: &str) -> Result<String> {
    let r = server.api().get("/authflow/outbox").await?;
    r.ensure_status(200)?;
    r.at("/messages")
        .and_then(Value::as_array)
        .and_then(|m| m.iter().rev().find(|m| m["to"] == to))
        .and_then(|m| m["code"].as_str())
        .map(str::to_string)
        .context("no message in the outbox")
}

async fn message_count(server: &TestServer, to: &str) -> Result<usize> {
    let r = server.api().get("/authflow/outbox").await?;
    Ok(r.at("/messages")
        .and_then(Value::as_array)
        .map(|m| m.iter().filter(|m| m["to"] == to).count())
        .unwrap_or(0))
}

/// Register `email` with its mailed passcode and `PASSWORD`; the `success` response.
async fn register(server: &TestServer, email: &str) -> Result<ApiResponse> {
    let h = Hanko::new(server);
    let init = h.begin("registration").await?;
    let sent = h
        .act(&init, "register_login_identifier", json!({"email": email}))
        .await?;
    assert_state(&sent, 200, "passcode_confirmation");
    let code = last_code_for(server, email).await?;
    let pw = h
        .act(&sent, "verify_passcode", json!({"code": code}))
        .await?;
    assert_state(&pw, 200, "password_creation");
    let done = h
        .act(&pw, "register_password", json!({"new_password": PASSWORD}))
        .await?;
    assert_state(&done, 200, "success");
    Ok(done)
}

fn different_code(code: &str) -> String {
    if code == "000000" { "111111" } else { "000000" }.to_string()
}

#[tokio::test]
async fn registration_with_email_passcode_and_password_then_session_me_logout() -> Result<()> {
    for backend in backends() {
        let server = start(backend, CONFIG).await?;
        let mut h = Hanko::new(&server);

        let pre = h.post("/registration", None).await?;
        assert_state(&pre, 200, "preflight");
        let href = pre
            .str_at("/actions/register_client_capabilities/href")
            .unwrap();
        assert!(
            href.starts_with("/registration?action=register_client_capabilities%40"),
            "{href}"
        );
        assert_eq!(
            pre.at("/actions/register_client_capabilities/inputs/webauthn_available"),
            Some(
                &json!({"name": "webauthn_available", "type": "boolean", "required": true, "hidden": true})
            )
        );
        let t0 = pre.str_at("/csrf_token").unwrap().to_string();
        assert_eq!(t0.len(), 32);
        assert!(t0.bytes().all(|b| b.is_ascii_alphanumeric()));

        let init = h
            .act(
                &pre,
                "register_client_capabilities",
                json!({"webauthn_available": false}),
            )
            .await?;
        assert_state(&init, 200, "registration_init");
        assert_ne!(init.str_at("/csrf_token"), Some(t0.as_str()), "rotated");
        assert_eq!(
            init.at("/actions/register_login_identifier/inputs/email"),
            Some(&json!({"name": "email", "type": "email", "required": true, "max_length": 320}))
        );

        let email = format!("ada-{}@example.com", backend.name());
        let sent = h
            .act(&init, "register_login_identifier", json!({"email": email}))
            .await?;
        assert_state(&sent, 200, "passcode_confirmation");
        let payload = sent.at("/payload").unwrap();
        assert_eq!(payload["purpose"], "verification");
        assert_eq!(payload["channel"], "email");
        assert_eq!(payload["code_length"], 6);
        assert_eq!(payload["passcode_resent"], false);
        assert!(
            payload["resend_after"]
                .as_u64()
                .is_some_and(|s| s > 0 && s <= 60)
        );
        assert!(sent.at("/actions/resend_passcode").is_some());
        assert!(
            sent.at("/actions/back").is_some(),
            "back to registration_init"
        );

        // Resending inside the cooldown: 429 in the same state.
        let early = h.act(&sent, "resend_passcode", json!({})).await?;
        assert_state(&early, 429, "passcode_confirmation");
        assert_eq!(early.str_at("/error/code"), Some("rate_limit_exceeded"));
        assert!(early.header("retry-after").is_some(), "{early}");

        let code = last_code_for(&server, &email).await?;
        let wrong = h
            .act(
                &early,
                "verify_passcode",
                json!({"code": different_code(&code)}),
            )
            .await?;
        assert_state(&wrong, 400, "passcode_confirmation");
        assert_eq!(wrong.str_at("/error/code"), Some("form_data_invalid_error"));
        assert_eq!(
            input_error(&wrong, "verify_passcode", "code"),
            Some("passcode_invalid")
        );
        let pw = h
            .act(&wrong, "verify_passcode", json!({"code": code}))
            .await?;
        assert_state(&pw, 200, "password_creation");
        assert!(
            pw.at("/actions/back").is_none(),
            "no way back past a passcode"
        );
        assert!(
            pw.at("/actions/skip").is_some(),
            "passcode login is another option"
        );
        assert_eq!(
            pw.at("/actions/register_password/inputs/new_password"),
            Some(
                &json!({"name": "new_password", "type": "password", "required": false, "min_length": 8})
            )
        );

        let short = h
            .act(&pw, "register_password", json!({"new_password": "short"}))
            .await?;
        assert_state(&short, 400, "password_creation");
        assert_eq!(
            short.at("/actions/register_password/inputs/new_password/error"),
            Some(
                &json!({"code": "value_too_short_error", "message": "The value is too short.", "cause": "PasswordTooShort"})
            )
        );
        let done = h
            .act(
                &short,
                "register_password",
                json!({"new_password": PASSWORD}),
            )
            .await?;
        assert_state(&done, 200, "success");
        assert_eq!(done.str_at("/csrf_token"), Some(""));
        assert_eq!(done.header("x-session-lifetime"), Some("43200"));
        assert_eq!(done.header("x-session-retention"), Some("persistent"));
        assert!(
            done.header("set-cookie").is_none(),
            "header mode: no cookie"
        );
        let jwt = done
            .header("x-auth-token")
            .context("X-Auth-Token")?
            .to_string();
        let claims = done.at("/payload/claims").unwrap();
        let user_id = claims["subject"].as_str().unwrap().to_string();
        assert_eq!(claims["amr"], json!(["otp", "pwd"]));
        assert_eq!(
            claims["email"],
            json!({"address": email, "is_primary": true, "is_verified": true})
        );
        assert!(
            claims["expiration"]
                .as_str()
                .is_some_and(|e| e.ends_with('Z'))
        );
        assert_eq!(done.at("/payload/user/id"), Some(&json!(user_id)));

        // The JWT verifies with the published keys.
        let jwks = h.get("/.well-known/jwks.json").await?;
        jwks.ensure_status(200)?;
        assert_eq!(jwks.header("cache-control"), Some("max-age=300"));
        let verified = authflow_server::hanko::verify_with_jwks(
            &jwt,
            &jwks.body,
            claims["audience"][0].as_str().unwrap(),
        )
        .map_err(anyhow::Error::msg)?;
        assert_eq!(verified["sub"], json!(user_id));
        assert_eq!(verified["session_id"], claims["session_id"]);
        assert_eq!(verified["email"]["address"], json!(email));

        // Sessions.
        assert_eq!(
            h.get("/sessions/validate").await?.body,
            json!({"is_valid": false})
        );
        assert_refused(&h.post("/profile", None).await?, 401, "unauthorized");
        h.token = Some(jwt.clone());
        let valid = h.get("/sessions/validate").await?;
        valid.ensure_status(200)?;
        assert_eq!(valid.at("/is_valid"), Some(&json!(true)));
        assert_eq!(valid.at("/user_id"), Some(&json!(user_id)));
        assert_eq!(valid.at("/claims/session_id"), claims.get("session_id"));
        let by_body = h
            .post("/sessions/validate", Some(json!({"session_token": jwt})))
            .await?;
        assert_eq!(by_body.at("/is_valid"), Some(&json!(true)), "{by_body}");
        assert_eq!(
            h.post("/sessions/validate", Some(json!({}))).await?.status,
            400
        );

        let me = h.get("/me").await?;
        me.ensure_status(200)?;
        assert_eq!(me.at("/id"), Some(&json!(user_id)));
        assert_eq!(me.at("/user_id"), Some(&json!(user_id)));
        assert_eq!(me.at("/emails/0/address"), Some(&json!(email)));
        assert_eq!(me.at("/emails/0/is_verified"), Some(&json!(true)));
        assert_eq!(me.at("/emails/0/is_primary"), Some(&json!(true)));
        assert_eq!(h.get(&format!("/users/{user_id}")).await?.body, me.body);
        assert_eq!(
            h.get("/users/5c3f0000-0000-4000-8000-000000000000")
                .await?
                .status,
            403
        );

        // The profile flow needs the session.
        let profile = h.begin("profile").await?;
        assert_state(&profile, 200, "profile_init");
        assert_eq!(profile.at("/payload/user/id"), Some(&json!(user_id)));

        let out = h.post("/logout", None).await?;
        assert_eq!(out.status, 204, "{out}");
        assert_eq!(
            h.post("/sessions/validate", Some(json!({"session_token": jwt})))
                .await?
                .body,
            json!({"is_valid": false})
        );
        let me = h.get("/me").await?;
        assert_eq!(me.status, 401);
        assert_eq!(me.body, json!({"code": 401, "message": "Unauthorized"}));
        assert_eq!(h.post("/logout", None).await?.status, 401);
    }
    Ok(())
}

#[tokio::test]
async fn login_with_password_back_wrong_password_and_replayed_token() -> Result<()> {
    for backend in backends() {
        let server = start(backend, CONFIG).await?;
        let email = "grace@example.com";
        register(&server, email).await?;
        let h = Hanko::new(&server);

        let init = h.begin("login").await?;
        assert_state(&init, 200, "login_init");
        assert_eq!(
            init.at("/actions/continue_with_login_identifier/inputs/email"),
            Some(
                &json!({"name": "email", "type": "email", "required": true, "min_length": 3, "max_length": 320})
            )
        );
        assert!(init.at("/actions/back").is_none());
        let chooser = h
            .act(
                &init,
                "continue_with_login_identifier",
                json!({"email": email}),
            )
            .await?;
        assert_state(&chooser, 200, "login_method_chooser");
        for a in [
            "continue_to_password_login",
            "continue_to_passcode_confirmation",
            "back",
        ] {
            assert!(
                chooser.at(&format!("/actions/{a}")).is_some(),
                "{a}: {chooser}"
            );
        }
        let pw = h
            .act(&chooser, "continue_to_password_login", json!({}))
            .await?;
        assert_state(&pw, 200, "login_password");
        assert_eq!(
            pw.at("/actions/password_login/inputs/password"),
            Some(&json!({"name": "password", "type": "password", "required": true}))
        );
        // back returns to the chooser, rendered afresh with a new token.
        let again = h.act(&pw, "back", json!({})).await?;
        assert_state(&again, 200, "login_method_chooser");
        let back_to_init = h.act(&again, "back", json!({})).await?;
        assert_state(&back_to_init, 200, "login_init");
        let chooser = h
            .act(
                &back_to_init,
                "continue_with_login_identifier",
                json!({"email": email}),
            )
            .await?;
        let pw = h
            .act(&chooser, "continue_to_password_login", json!({}))
            .await?;

        let wrong = h
            .act(&pw, "password_login", json!({"password": "wrong one"}))
            .await?;
        assert_state(&wrong, 400, "login_password");
        assert_eq!(
            wrong.at("/actions/password_login/inputs/password/error"),
            Some(
                &json!({"code": "value_invalid_error", "message": "The value is invalid.", "cause": "InvalidCredentials"})
            )
        );
        // The token of `pw` was used by the wrong attempt: replaying it is refused and
        // changes nothing.
        let replay = h
            .act(&pw, "password_login", json!({"password": PASSWORD}))
            .await?;
        assert_refused(&replay, 403, "operation_not_permitted_error");
        let done = h
            .act(&wrong, "password_login", json!({"password": PASSWORD}))
            .await?;
        assert_state(&done, 200, "success");
        assert_eq!(
            done.at("/payload/last_login"),
            Some(&json!({"login_method": "password"}))
        );
        assert_eq!(done.at("/payload/claims/amr"), Some(&json!(["pwd"])));
        assert!(done.header("x-auth-token").is_some());
        // success deleted the flow.
        let after = h
            .act(&wrong, "password_login", json!({"password": PASSWORD}))
            .await?;
        assert_refused(&after, 403, "operation_not_permitted_error");
    }
    Ok(())
}

#[tokio::test]
async fn login_with_passcode_wrong_then_right() -> Result<()> {
    for backend in backends() {
        let server = start(backend, CONFIG).await?;
        let email = "linus@example.com";
        register(&server, email).await?;
        let before = message_count(&server, email).await?;
        let h = Hanko::new(&server);
        let init = h.begin("login").await?;
        let chooser = h
            .act(
                &init,
                "continue_with_login_identifier",
                json!({"email": email}),
            )
            .await?;
        let sent = h
            .act(&chooser, "continue_to_passcode_confirmation", json!({}))
            .await?;
        assert_state(&sent, 200, "passcode_confirmation");
        assert_eq!(sent.at("/payload/purpose"), Some(&json!("login")));
        assert_eq!(message_count(&server, email).await?, before + 1);
        let code = last_code_for(&server, email).await?;
        let wrong = h
            .act(
                &sent,
                "verify_passcode",
                json!({"code": different_code(&code)}),
            )
            .await?;
        assert_state(&wrong, 400, "passcode_confirmation");
        assert_eq!(
            input_error(&wrong, "verify_passcode", "code"),
            Some("passcode_invalid")
        );
        let done = h
            .act(&wrong, "verify_passcode", json!({"code": code}))
            .await?;
        assert_state(&done, 200, "success");
        assert_eq!(
            done.at("/payload/last_login"),
            Some(&json!({"login_method": "passcode"}))
        );
        assert_eq!(done.at("/payload/claims/amr"), Some(&json!(["otp"])));
    }
    Ok(())
}

#[tokio::test]
async fn refusals_and_validation_errors() -> Result<()> {
    for backend in backends() {
        let server = start(backend, CONFIG).await?;
        let h = Hanko::new(&server);
        let init = h.begin("registration").await?;
        let token = init.str_at("/csrf_token").unwrap().to_string();
        let href = init
            .str_at("/actions/register_login_identifier/href")
            .unwrap()
            .to_string();
        let flow_id = href.rsplit("%40").next().unwrap().to_string();
        let input = json!({"email": "x@example.com"});

        // CSRF: missing, wrong.
        let r = h
            .act_with(&init, "register_login_identifier", input.clone(), None)
            .await?;
        assert_refused(&r, 403, "operation_not_permitted_error");
        let r = h
            .act_with(
                &init,
                "register_login_identifier",
                input.clone(),
                Some("A".repeat(32).as_str()),
            )
            .await?;
        assert_refused(&r, 403, "operation_not_permitted_error");
        // Unknown action, malformed action, unknown flow, a flow of another kind.
        let body = json!({"input_data": input, "csrf_token": token});
        for path in [
            format!("/registration?action=password_login%40{flow_id}"),
            format!("/registration?action=register_login_identifier@{flow_id}x"),
            "/registration?action=register_login_identifier".to_string(),
            "/registration?action=register_login_identifier%40c0ffee00-0000-4000-8000-000000000000"
                .to_string(),
            format!("/login?action=register_login_identifier%40{flow_id}"),
        ] {
            let r = h.post(&path, Some(body.clone())).await?;
            assert_refused(&r, 403, "operation_not_permitted_error");
        }
        // Malformed bodies: 400 / 415, state error, flow untouched.
        let raw = |ct: &str, body: &str| {
            h.http
                .post(format!("{}{href}", h.base))
                .header("content-type", ct)
                .body(body.to_string())
        };
        let r = ApiResponse::read(raw("application/json", "{not json").send().await?).await?;
        assert_refused(&r, 400, "form_data_invalid_error");
        assert_eq!(r.str_at("/error/cause"), Some("invalid_json"));
        let r = ApiResponse::read(raw("text/plain", "hello").send().await?).await?;
        assert_refused(&r, 415, "form_data_invalid_error");
        assert_eq!(r.str_at("/error/cause"), Some("unsupported_media_type"));
        let r = ApiResponse::read(
            raw(
                "application/json",
                &json!({"input_data": [], "csrf_token": token}).to_string(),
            )
            .send()
            .await?,
        )
        .await?;
        assert_refused(&r, 400, "form_data_invalid_error");

        // Validation: missing, malformed; the token rotates, the state stays.
        let missing = h.act(&init, "register_login_identifier", json!({})).await?;
        assert_state(&missing, 400, "registration_init");
        assert_eq!(
            missing.str_at("/error/code"),
            Some("form_data_invalid_error")
        );
        assert_eq!(
            input_error(&missing, "register_login_identifier", "email"),
            Some("value_missing_error")
        );
        assert_ne!(missing.str_at("/csrf_token"), Some(token.as_str()));
        let bad = h
            .act(
                &missing,
                "register_login_identifier",
                json!({"email": "not an email"}),
            )
            .await?;
        assert_state(&bad, 400, "registration_init");
        assert_eq!(
            input_error(&bad, "register_login_identifier", "email"),
            Some("value_invalid_error")
        );
        let long = h
            .act(
                &bad,
                "register_login_identifier",
                json!({"email": format!("{}@example.com", "a".repeat(320))}),
            )
            .await?;
        assert_eq!(
            input_error(&long, "register_login_identifier", "email"),
            Some("value_too_long_error"),
            "{long}"
        );
        let wrong_type = h
            .act(&long, "register_login_identifier", json!({"email": 42}))
            .await?;
        assert_eq!(
            input_error(&wrong_type, "register_login_identifier", "email"),
            Some("value_invalid_error")
        );
        // The old token of the first refusals was never rotated by them: `init` ran only
        // once (the `missing` attempt), so its token is spent now.
        let spent = h
            .act(
                &init,
                "register_login_identifier",
                json!({"email": "x@example.com"}),
            )
            .await?;
        assert_refused(&spent, 403, "operation_not_permitted_error");
        // The current holder carries on.
        let ok = h
            .act(
                &wrong_type,
                "register_login_identifier",
                json!({"email": "x@example.com"}),
            )
            .await?;
        assert_state(&ok, 200, "passcode_confirmation");
        // back returns to registration_init.
        let back = h.act(&ok, "back", json!({})).await?;
        assert_state(&back, 200, "registration_init");

        // Unknown path, wrong method.
        assert_eq!(h.get("/nowhere").await?.status, 404);
        assert_eq!(h.get("/login").await?.status, 405);
        assert_eq!(h.post("/me", None).await?.status, 405);
    }
    Ok(())
}

#[tokio::test]
async fn an_expired_flow_answers_410() -> Result<()> {
    for backend in backends() {
        let server = start_with(
            backend,
            CONFIG,
            &[("AUTHFLOW_TEST_HANKO_FLOW_LIFETIME_SECONDS", "1")],
        )
        .await?;
        let h = Hanko::new(&server);
        let pre = h.post("/login", None).await?;
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let r = h
            .act(
                &pre,
                "register_client_capabilities",
                json!({"webauthn_available": false}),
            )
            .await?;
        assert_refused(&r, 410, "flow_expired_error");
    }
    Ok(())
}

#[tokio::test]
async fn unknown_and_taken_identifiers_are_not_revealed() -> Result<()> {
    for backend in backends() {
        let server = start(backend, CONFIG).await?;
        let known = "kim@example.com";
        register(&server, known).await?;
        let h = Hanko::new(&server);

        // Login with an unknown email looks like a login with a known one.
        let init = h.begin("login").await?;
        let chooser = h
            .act(
                &init,
                "continue_with_login_identifier",
                json!({"email": "nobody@example.com"}),
            )
            .await?;
        assert_state(&chooser, 200, "login_method_chooser");
        let pw = h
            .act(&chooser, "continue_to_password_login", json!({}))
            .await?;
        assert_state(&pw, 200, "login_password");
        let wrong = h
            .act(&pw, "password_login", json!({"password": PASSWORD}))
            .await?;
        assert_state(&wrong, 400, "login_password");
        assert_eq!(
            wrong.at("/actions/password_login/inputs/password/error/cause"),
            Some(&json!("InvalidCredentials"))
        );
        assert!(wrong.at("/actions/back").is_some());

        // Registration of a taken email goes on to a passcode that never works.
        let before = message_count(&server, known).await?;
        let init = h.begin("registration").await?;
        let sent = h
            .act(&init, "register_login_identifier", json!({"email": known}))
            .await?;
        assert_state(&sent, 200, "passcode_confirmation");
        assert_eq!(sent.at("/payload/purpose"), Some(&json!("verification")));
        assert_eq!(
            message_count(&server, known).await?,
            before,
            "no code is sent"
        );
        let r = h
            .act(&sent, "verify_passcode", json!({"code": "123456"}))
            .await?;
        assert_state(&r, 400, "passcode_confirmation");
        assert_eq!(
            input_error(&r, "verify_passcode", "code"),
            Some("passcode_invalid")
        );
    }
    Ok(())
}

#[tokio::test]
async fn existence_hints_reveal_unknown_and_taken_emails() -> Result<()> {
    for backend in backends() {
        let config = CONFIG.replace(
            "hanko_api:\n  enabled: true\n",
            "hanko_api:\n  enabled: true\n  show_account_existence_hints: true\n",
        );
        let server = start(backend, &config).await?;
        let known = "lin@example.com";
        register(&server, known).await?;
        let h = Hanko::new(&server);
        let init = h.begin("login").await?;
        let r = h
            .act(
                &init,
                "continue_with_login_identifier",
                json!({"email": "nobody@example.com"}),
            )
            .await?;
        assert_state(&r, 400, "login_init");
        assert_eq!(
            input_error(&r, "continue_with_login_identifier", "email"),
            Some("unknown_email_error")
        );
        let init = h.begin("registration").await?;
        let r = h
            .act(&init, "register_login_identifier", json!({"email": known}))
            .await?;
        assert_state(&r, 400, "registration_init");
        assert_eq!(
            input_error(&r, "register_login_identifier", "email"),
            Some("email_already_exists")
        );
    }
    Ok(())
}

#[tokio::test]
async fn too_many_wrong_passcodes_revoke_the_code() -> Result<()> {
    for backend in backends() {
        let server = start(backend, CONFIG).await?;
        let h = Hanko::new(&server);
        let email = "max@example.com";
        let init = h.begin("registration").await?;
        let mut state = h
            .act(&init, "register_login_identifier", json!({"email": email}))
            .await?;
        let code = last_code_for(&server, email).await?;
        let mut revoked = None;
        for _ in 0..10 {
            let r = h
                .act(
                    &state,
                    "verify_passcode",
                    json!({"code": different_code(&code)}),
                )
                .await?;
            if r.status == 401 {
                revoked = Some(r);
                break;
            }
            assert_state(&r, 400, "passcode_confirmation");
            state = r;
        }
        let r = revoked.context("the code was never revoked")?;
        assert_state(&r, 401, "passcode_confirmation");
        assert_eq!(
            r.str_at("/error/code"),
            Some("passcode_max_attempts_reached")
        );
        let r = h.act(&r, "verify_passcode", json!({"code": code})).await?;
        assert_ne!(r.str_at("/name"), Some("password_creation"), "{r}");
    }
    Ok(())
}

#[tokio::test]
async fn cookie_mode_sets_an_http_only_cookie_and_reads_it() -> Result<()> {
    for backend in backends() {
        let config = CONFIG.replace(
            "hanko_api:\n  enabled: true\n",
            "hanko_api:\n  enabled: true\n  session: {auth_token_header: false, cookie: {name: hsess, same_site: strict}}\n",
        );
        let server = start(backend, &config).await?;
        let done = register(&server, "cora@example.com").await?;
        assert!(done.header("x-auth-token").is_none(), "never both");
        let cookie = done.header("set-cookie").context("set-cookie")?.to_string();
        assert!(cookie.starts_with("hsess=ey"), "{cookie}");
        for part in ["Path=/", "HttpOnly", "SameSite=Strict", "Max-Age=43200"] {
            assert!(cookie.contains(part), "{part}: {cookie}");
        }
        assert!(!cookie.contains("Secure"), "http origin: {cookie}");
        let pair = cookie.split(';').next().unwrap().to_string();
        let h = Hanko::new(&server);
        let valid = ApiResponse::read(
            h.http
                .get(format!("{}/sessions/validate", h.base))
                .header("cookie", &pair)
                .send()
                .await?,
        )
        .await?;
        assert_eq!(valid.at("/is_valid"), Some(&json!(true)), "{valid}");
        // A cross-site POST carried by the cookie is refused before anything runs.
        let refused = h
            .http
            .post(format!("{}/logout", h.base))
            .header("cookie", &pair)
            .header("origin", "https://evil.example")
            .send()
            .await?;
        assert_eq!(refused.status(), 403);
        let out = h
            .http
            .post(format!("{}/logout", h.base))
            .header("cookie", &pair)
            .send()
            .await?;
        assert_eq!(out.status(), 204);
        let expired = out
            .headers()
            .get("set-cookie")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        assert!(
            expired.starts_with("hsess=;") && expired.contains("Max-Age=0"),
            "{expired}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn cors_admits_configured_origins_and_exposes_the_session_headers() -> Result<()> {
    for backend in backends() {
        let config = CONFIG.replace(
            "hanko_api:\n  enabled: true\n",
            "hanko_api:\n  enabled: true\n  allowed_origins: [\"https://app.example.com\"]\n",
        );
        let server = start(backend, &config).await?;
        let http = server.new_client();
        let url = server.url("/hanko/login");
        let pre = http
            .request(reqwest::Method::OPTIONS, &url)
            .header("origin", "https://app.example.com")
            .header("access-control-request-method", "POST")
            .send()
            .await?;
        assert_eq!(pre.status(), 204);
        let h = pre.headers();
        assert_eq!(h["access-control-allow-origin"], "https://app.example.com");
        assert_eq!(h["access-control-allow-credentials"], "true");
        assert_eq!(h["access-control-max-age"], "7200");
        let allowed_headers = h["access-control-allow-headers"].to_str()?;
        for name in ["Content-Type", "Authorization", "X-Language"] {
            assert!(allowed_headers.contains(name), "{allowed_headers}");
        }
        let exposed = h["access-control-expose-headers"].to_str()?;
        for name in ["X-Auth-Token", "X-Session-Lifetime", "X-Session-Retention"] {
            assert!(exposed.contains(name), "{exposed}");
        }
        let other = http
            .request(reqwest::Method::OPTIONS, &url)
            .header("origin", "https://evil.example")
            .send()
            .await?;
        assert_eq!(other.status(), 403);
        assert!(other.headers().get("access-control-allow-origin").is_none());
        let post = http
            .post(&url)
            .header("origin", "http://localhost:5173")
            .send()
            .await?;
        assert_eq!(post.status(), 200);
        assert_eq!(
            post.headers()["access-control-allow-origin"],
            "http://localhost:5173"
        );
        assert_eq!(post.headers()["vary"], "Origin");
    }
    Ok(())
}

#[tokio::test]
async fn the_dialect_is_absent_unless_enabled() -> Result<()> {
    let Some(backend) = backends().into_iter().next() else {
        bail!("no backend");
    };
    let server = start(backend, "").await?;
    let h = Hanko::new(&server);
    for path in ["/login", "/registration", "/logout"] {
        assert_eq!(h.post(path, None).await?.status, 404, "{path}");
    }
    assert_eq!(h.get("/.well-known/jwks.json").await?.status, 404);
    Ok(())
}

/// CONFIG with a second factor every user must have (TOTP, the default secondary).
const MFA_CONFIG: &str = "hanko_api:\n  enabled: true\nauthentication:\n  primary_authenticators: [password, oob_otp_email]\n  secondary_authentication_mode: required\n";

/// `login_init` → `login_method_chooser` → `login_password` for `email`.
async fn to_login_password(h: &Hanko, email: &str) -> Result<ApiResponse> {
    let init = h.begin("login").await?;
    let chooser = h
        .act(
            &init,
            "continue_with_login_identifier",
            json!({"email": email}),
        )
        .await?;
    assert_state(&chooser, 200, "login_method_chooser");
    let pw = h
        .act(&chooser, "continue_to_password_login", json!({}))
        .await?;
    assert_state(&pw, 200, "login_password");
    Ok(pw)
}

fn totp_code(secret: &str, step: u64) -> Result<String> {
    use authflow_core::credentials::totp::{TotpSecret, code_at_step};
    Ok(code_at_step(&TotpSecret::from_base32(secret)?, step))
}

fn assert_png_data_uri(uri: &str) -> Result<()> {
    use base64::Engine as _;
    let b64 = uri
        .strip_prefix("data:image/png;base64,")
        .with_context(|| format!("not a PNG data URI: {uri:.40}"))?;
    let bytes = base64::engine::general_purpose::STANDARD.decode(b64)?;
    assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "PNG signature");
    Ok(())
}

#[tokio::test]
async fn totp_enrolment_at_registration_then_second_factor_at_login() -> Result<()> {
    for backend in backends() {
        let server = start(backend, MFA_CONFIG).await?;
        let email = "mfa@example.com";
        let h = Hanko::new(&server);
        let init = h.begin("registration").await?;
        let sent = h
            .act(&init, "register_login_identifier", json!({"email": email}))
            .await?;
        let code = last_code_for(&server, email).await?;
        let pw = h
            .act(&sent, "verify_passcode", json!({"code": code}))
            .await?;
        let chooser = h
            .act(&pw, "register_password", json!({"new_password": PASSWORD}))
            .await?;
        assert_state(&chooser, 200, "mfa_method_chooser");
        let offered: Vec<&String> = chooser
            .at("/actions")
            .unwrap()
            .as_object()
            .unwrap()
            .keys()
            .collect();
        assert_eq!(
            offered,
            ["continue_to_otp_secret_creation"],
            "required: no skip, no back"
        );

        let first = h
            .act(&chooser, "continue_to_otp_secret_creation", json!({}))
            .await?;
        assert_state(&first, 200, "mfa_otp_secret_creation");
        let back = h.act(&first, "back", json!({})).await?;
        assert_state(&back, 200, "mfa_method_chooser");
        let setup = h
            .act(&back, "continue_to_otp_secret_creation", json!({}))
            .await?;
        assert_state(&setup, 200, "mfa_otp_secret_creation");
        let secret = setup
            .str_at("/payload/otp_secret")
            .context("otp_secret")?
            .to_string();
        assert_eq!(secret.len(), 32, "{setup}");
        let uri = setup
            .str_at("/payload/otpauth_uri")
            .context("otpauth_uri")?;
        assert!(
            uri.starts_with("otpauth://totp/") && uri.contains(&format!("secret={secret}")),
            "{uri}"
        );
        assert_png_data_uri(setup.str_at("/payload/otp_image_source").context("image")?)?;
        assert_eq!(
            setup.at("/actions/otp_code_verify/inputs/otp_code"),
            Some(&json!({"name": "otp_code", "type": "string", "required": true}))
        );

        let step = authflow_core::credentials::totp::time_step(chrono::Utc::now());
        let right = totp_code(&secret, step)?;
        let wrong_code = different_code(&right);
        let wrong = h
            .act(&setup, "otp_code_verify", json!({"otp_code": wrong_code}))
            .await?;
        assert_state(&wrong, 400, "mfa_otp_secret_creation");
        assert_eq!(wrong.str_at("/error/code"), Some("form_data_invalid_error"));
        assert_eq!(
            input_error(&wrong, "otp_code_verify", "otp_code"),
            Some("otp_code_invalid")
        );
        assert_eq!(
            wrong.str_at("/payload/otp_secret"),
            Some(secret.as_str()),
            "same secret"
        );
        let codes = h
            .act(&wrong, "otp_code_verify", json!({"otp_code": right}))
            .await?;
        assert_state(&codes, 200, "mfa_recovery_codes");
        let recovery_codes: Vec<String> = codes
            .at("/payload/recovery_codes")
            .and_then(Value::as_array)
            .context("recovery_codes")?
            .iter()
            .filter_map(|c| c.as_str().map(str::to_string))
            .collect();
        assert_eq!(recovery_codes.len(), 16, "{codes}");
        let done = h.act(&codes, "recovery_codes_confirm", json!({})).await?;
        assert_state(&done, 200, "success");

        // Login asks for the second factor; a recovery code works once.
        let h = Hanko::new(&server);
        let pw = to_login_password(&h, email).await?;
        let otp = h
            .act(&pw, "password_login", json!({"password": PASSWORD}))
            .await?;
        assert_state(&otp, 200, "login_otp");
        assert!(otp.at("/actions/otp_code_validate").is_some(), "{otp}");
        let wrong = h
            .act(&otp, "otp_code_validate", json!({"otp_code": wrong_code}))
            .await?;
        assert_state(&wrong, 400, "login_otp");
        assert_eq!(
            input_error(&wrong, "otp_code_validate", "otp_code"),
            Some("otp_code_invalid")
        );
        let done = h
            .act(
                &wrong,
                "recovery_code_validate",
                json!({"recovery_code": recovery_codes[0]}),
            )
            .await?;
        assert_state(&done, 200, "success");

        // The next time step's code from the app also logs in (the enrolment used `step`).
        let h = Hanko::new(&server);
        let pw = to_login_password(&h, email).await?;
        let otp = h
            .act(&pw, "password_login", json!({"password": PASSWORD}))
            .await?;
        let done = h
            .act(
                &otp,
                "otp_code_validate",
                json!({"otp_code": totp_code(&secret, step + 1)?}),
            )
            .await?;
        assert_state(&done, 200, "success");
        assert_eq!(
            done.at("/payload/last_login"),
            Some(&json!({"login_method": "password", "mfa_method": "totp"}))
        );

        // A reset password still needs the second factor before the session (spec 7.3).
        let h = Hanko::new(&server);
        let pw = to_login_password(&h, email).await?;
        let sent = h
            .act(&pw, "continue_to_passcode_confirmation_recovery", json!({}))
            .await?;
        assert_state(&sent, 200, "passcode_confirmation");
        let code = last_code_for(&server, email).await?;
        let reset = h
            .act(&sent, "verify_passcode", json!({"code": code}))
            .await?;
        assert_state(&reset, 200, "login_password_recovery");
        let otp = h
            .act(
                &reset,
                "password_recovery",
                json!({"new_password": "another good one 8"}),
            )
            .await?;
        assert_state(&otp, 200, "login_otp");
        let done = h
            .act(
                &otp,
                "recovery_code_validate",
                json!({"recovery_code": recovery_codes[1]}),
            )
            .await?;
        assert_state(&done, 200, "success");
        let amr = done
            .at("/payload/claims/amr")
            .and_then(Value::as_array)
            .context("amr")?;
        for m in ["pwd", "otp"] {
            assert!(amr.contains(&json!(m)), "{m} in {amr:?}");
        }
    }
    Ok(())
}

#[tokio::test]
async fn recovery_by_passcode_from_login_password_resets_and_logs_in() -> Result<()> {
    for backend in backends() {
        let server = start(backend, CONFIG).await?;
        let email = "forgetful@example.com";
        let registered = register(&server, email).await?;
        let old_jwt = registered
            .header("x-auth-token")
            .context("token")?
            .to_string();
        let mut h = Hanko::new(&server);

        let pw = to_login_password(&h, email).await?;
        assert!(
            pw.at("/actions/continue_to_passcode_confirmation_recovery")
                .is_some(),
            "{pw}"
        );
        let sent = h
            .act(&pw, "continue_to_passcode_confirmation_recovery", json!({}))
            .await?;
        assert_state(&sent, 200, "passcode_confirmation");
        assert_eq!(sent.str_at("/payload/purpose"), Some("recovery"), "{sent}");
        assert_eq!(sent.str_at("/payload/channel"), Some("email"));
        // ui.forgot_password.email is a link by default; this dialect sends a code (8.2).
        assert_eq!(sent.at("/payload/code_length"), Some(&json!(6)));
        let code = last_code_for(&server, email).await?;
        assert_eq!(code.len(), 6, "{code}");
        let resend = h.act(&sent, "resend_passcode", json!({})).await?;
        assert_state(&resend, 429, "passcode_confirmation");
        let code = last_code_for(&server, email).await?;

        let wrong = h
            .act(
                &resend,
                "verify_passcode",
                json!({"code": different_code(&code)}),
            )
            .await?;
        assert_state(&wrong, 400, "passcode_confirmation");
        assert_eq!(
            input_error(&wrong, "verify_passcode", "code"),
            Some("passcode_invalid")
        );
        let reset = h
            .act(&wrong, "verify_passcode", json!({"code": code}))
            .await?;
        assert_state(&reset, 200, "login_password_recovery");
        assert!(reset.at("/payload/password_policy").is_some(), "{reset}");
        let short = h
            .act(
                &reset,
                "password_recovery",
                json!({"new_password": "short"}),
            )
            .await?;
        assert_state(&short, 400, "login_password_recovery");
        assert_eq!(
            input_error(&short, "password_recovery", "new_password"),
            Some("value_too_short_error")
        );
        let new_password = "a brand new secret 9";
        let done = h
            .act(
                &short,
                "password_recovery",
                json!({"new_password": new_password}),
            )
            .await?;
        assert_state(&done, 200, "success");
        let amr = done
            .at("/payload/claims/amr")
            .and_then(Value::as_array)
            .context("amr")?;
        for m in ["pwd", "otp"] {
            assert!(amr.contains(&json!(m)), "{m} in {amr:?}");
        }
        let new_jwt = done.header("x-auth-token").context("token")?.to_string();

        // Other sessions ended; the new one is valid.
        h.token = Some(old_jwt);
        assert_eq!(
            h.get("/sessions/validate").await?.body,
            json!({"is_valid": false})
        );
        h.token = Some(new_jwt);
        assert_eq!(
            h.get("/sessions/validate").await?.at("/is_valid"),
            Some(&json!(true))
        );

        // The old password is refused, the new one logs in.
        let h = Hanko::new(&server);
        let pw = to_login_password(&h, email).await?;
        let refused = h
            .act(&pw, "password_login", json!({"password": PASSWORD}))
            .await?;
        assert_state(&refused, 400, "login_password");
        let done = h
            .act(
                &refused,
                "password_login",
                json!({"password": new_password}),
            )
            .await?;
        assert_state(&done, 200, "success");
    }
    Ok(())
}

#[tokio::test]
async fn recovery_for_an_unknown_email_looks_the_same_and_sends_nothing() -> Result<()> {
    for backend in backends() {
        let server = start(backend, CONFIG).await?;
        register(&server, "known@example.com").await?;
        let mut shapes = Vec::new();
        for email in ["known@example.com", "nobody@example.com"] {
            let h = Hanko::new(&server);
            let pw = to_login_password(&h, email).await?;
            let sent = h
                .act(&pw, "continue_to_passcode_confirmation_recovery", json!({}))
                .await?;
            assert_state(&sent, 200, "passcode_confirmation");
            let wrong = h
                .act(&sent, "verify_passcode", json!({"code": "000001"}))
                .await?;
            assert_state(&wrong, 400, "passcode_confirmation");
            assert_eq!(
                input_error(&wrong, "verify_passcode", "code"),
                Some("passcode_invalid")
            );
            let back = h.act(&wrong, "back", json!({})).await?;
            assert_state(&back, 200, "login_password");
            // A second recovery inside the cooldown sends nothing and says when it may.
            let again = h
                .act(
                    &back,
                    "continue_to_passcode_confirmation_recovery",
                    json!({}),
                )
                .await?;
            assert_state(&again, 200, "passcode_confirmation");
            let wait = again.at("/payload/resend_after").and_then(Value::as_u64);
            assert!(wait.is_some_and(|w| w > 0), "{again}");
            let actions: Vec<String> = sent
                .at("/actions")
                .unwrap()
                .as_object()
                .unwrap()
                .keys()
                .cloned()
                .collect();
            // resend_after is the same cooldown, read at slightly different instants.
            let mut payload = sent.at("/payload").cloned().context("payload")?;
            let wait = payload["resend_after"].take().as_u64();
            assert!(wait.is_some_and(|w| (55..=60).contains(&w)), "{sent}");
            shapes.push((payload, actions));
        }
        assert_eq!(shapes[0], shapes[1], "known and unknown answer alike");
        assert_eq!(message_count(&server, "nobody@example.com").await?, 0);
        assert_eq!(
            message_count(&server, "known@example.com").await?,
            2,
            "registration and recovery"
        );
    }
    Ok(())
}

#[tokio::test]
async fn login_link_mode_sends_this_dialect_a_typed_code() -> Result<()> {
    for backend in backends() {
        let extra = format!(
            "{CONFIG}authenticator:\n  oob_otp:\n    email: {{email_otp_mode: login_link}}\n"
        );
        let server = start(backend, &extra).await?;
        let email = "typist@example.com";
        register(&server, email).await?;
        let h = Hanko::new(&server);
        let init = h.begin("login").await?;
        let chooser = h
            .act(
                &init,
                "continue_with_login_identifier",
                json!({"email": email}),
            )
            .await?;
        let sent = h
            .act(&chooser, "continue_to_passcode_confirmation", json!({}))
            .await?;
        assert_state(&sent, 200, "passcode_confirmation");
        assert_eq!(sent.at("/payload/code_length"), Some(&json!(6)), "{sent}");
        let code = last_code_for(&server, email).await?;
        assert!(
            code.len() == 6 && code.bytes().all(|b| b.is_ascii_digit()),
            "{code}"
        );
        let done = h
            .act(&sent, "verify_passcode", json!({"code": code}))
            .await?;
        assert_state(&done, 200, "success");
    }
    Ok(())
}

#[tokio::test]
async fn profile_password_update_keeps_policy_and_history_and_ends_other_sessions() -> Result<()> {
    for backend in backends() {
        let extra =
            format!("{CONFIG}authenticator:\n  password:\n    policy: {{history_size: 2}}\n");
        let server = start(backend, &extra).await?;
        let email = "changer@example.com";
        let registered = register(&server, email).await?;
        let other_jwt = registered
            .header("x-auth-token")
            .context("token")?
            .to_string();
        let mut h = Hanko::new(&server);
        let pw = to_login_password(&h, email).await?;
        let done = h
            .act(&pw, "password_login", json!({"password": PASSWORD}))
            .await?;
        assert_state(&done, 200, "success");
        h.token = Some(done.header("x-auth-token").context("token")?.to_string());

        let profile = h.begin("profile").await?;
        assert_state(&profile, 200, "profile_init");
        assert!(
            profile.at("/actions/password_create").is_none(),
            "{profile}"
        );
        assert_eq!(
            profile.at("/actions/password_update/inputs/password"),
            Some(
                &json!({"name": "password", "type": "password", "required": true, "min_length": 8})
            )
        );
        let huge = h
            .act(
                &profile,
                "password_update",
                json!({"password": "x".repeat(8193)}),
            )
            .await?;
        assert_state(&huge, 400, "profile_init");
        assert_eq!(
            input_error(&huge, "password_update", "password"),
            Some("value_too_long_error")
        );
        let short = h
            .act(&huge, "password_update", json!({"password": "short"}))
            .await?;
        assert_state(&short, 400, "profile_init");
        assert_eq!(
            input_error(&short, "password_update", "password"),
            Some("value_too_short_error")
        );
        let same = h
            .act(&short, "password_update", json!({"password": PASSWORD}))
            .await?;
        assert_state(&same, 400, "profile_init");
        assert_eq!(
            same.at("/actions/password_update/inputs/password/error/cause"),
            Some(&json!("PasswordReused")),
            "{same}"
        );
        let new_password = "profile changed it 42";
        let changed = h
            .act(&same, "password_update", json!({"password": new_password}))
            .await?;
        assert_state(&changed, 200, "profile_init");

        // This session lives on; the other one ended; only the new password logs in.
        assert_eq!(
            h.get("/sessions/validate").await?.at("/is_valid"),
            Some(&json!(true))
        );
        h.token = Some(other_jwt);
        assert_eq!(
            h.get("/sessions/validate").await?.body,
            json!({"is_valid": false})
        );
        let h = Hanko::new(&server);
        let pw = to_login_password(&h, email).await?;
        let old = h
            .act(&pw, "password_login", json!({"password": PASSWORD}))
            .await?;
        assert_state(&old, 400, "login_password");
        let done = h
            .act(&old, "password_login", json!({"password": new_password}))
            .await?;
        assert_state(&done, 200, "success");
    }
    Ok(())
}

#[tokio::test]
async fn username_registration_and_password_login() -> Result<()> {
    let config = "hanko_api:\n  enabled: true\nidentity:\n  login_id:\n    keys: [{type: username}]\nauthentication:\n  primary_authenticators: [password]\n";
    for backend in backends() {
        let server = start(backend, config).await?;
        let h = Hanko::new(&server);
        let init = h.begin("registration").await?;
        assert_state(&init, 200, "registration_init");
        assert_eq!(
            init.at("/actions/register_login_identifier/inputs/username"),
            Some(
                &json!({"name": "username", "type": "string", "required": true, "max_length": 40})
            )
        );
        let reserved = h
            .act(
                &init,
                "register_login_identifier",
                json!({"username": "admin"}),
            )
            .await?;
        assert_state(&reserved, 400, "registration_init");
        assert_eq!(
            input_error(&reserved, "register_login_identifier", "username"),
            Some("invalid_username_error"),
            "{reserved}"
        );
        let pw = h
            .act(
                &reserved,
                "register_login_identifier",
                json!({"username": "  Ada_L "}),
            )
            .await?;
        assert_state(&pw, 200, "password_creation");
        let done = h
            .act(&pw, "register_password", json!({"new_password": PASSWORD}))
            .await?;
        assert_state(&done, 200, "success");

        let h = Hanko::new(&server);
        let init = h.begin("login").await?;
        assert_state(&init, 200, "login_init");
        assert!(
            init.at("/actions/continue_with_login_identifier/inputs/username")
                .is_some(),
            "{init}"
        );
        let pw = h
            .act(
                &init,
                "continue_with_login_identifier",
                json!({"username": "ada_l"}),
            )
            .await?;
        assert_state(&pw, 200, "login_password");
        // A username cannot receive a recovery passcode.
        assert!(
            pw.at("/actions/continue_to_passcode_confirmation_recovery")
                .is_none(),
            "{pw}"
        );
        let done = h
            .act(&pw, "password_login", json!({"password": PASSWORD}))
            .await?;
        assert_state(&done, 200, "success");
        // Looked up case-folded, shown as given (trimmed).
        assert_eq!(
            done.at("/payload/user/username/username"),
            Some(&json!("Ada_L")),
            "{done}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn phone_registration_and_login_by_sms_passcode() -> Result<()> {
    let config = "hanko_api:\n  enabled: true\nidentity:\n  login_id:\n    keys: [{type: phone}]\nauthentication:\n  primary_authenticators: [oob_otp_sms]\n";
    let phone = "+85251009876";
    for backend in backends() {
        let server = start(backend, config).await?;
        let h = Hanko::new(&server);
        let init = h.begin("registration").await?;
        let sent = h
            .act(&init, "register_login_identifier", json!({"phone": phone}))
            .await?;
        assert_state(&sent, 200, "passcode_confirmation");
        assert_eq!(sent.str_at("/payload/channel"), Some("sms"), "{sent}");
        assert_eq!(sent.str_at("/payload/purpose"), Some("verification"));
        let code = last_code_for(&server, phone).await?;
        let done = h
            .act(&sent, "verify_passcode", json!({"code": code}))
            .await?;
        assert_state(&done, 200, "success");

        let h = Hanko::new(&server);
        let init = h.begin("login").await?;
        let sent = h
            .act(
                &init,
                "continue_with_login_identifier",
                json!({"phone": phone}),
            )
            .await?;
        assert_state(&sent, 200, "passcode_confirmation");
        assert_eq!(sent.str_at("/payload/channel"), Some("sms"), "{sent}");
        assert_eq!(sent.str_at("/payload/purpose"), Some("login"));
        let code = last_code_for(&server, phone).await?;
        let wrong = h
            .act(
                &sent,
                "verify_passcode",
                json!({"code": different_code(&code)}),
            )
            .await?;
        assert_state(&wrong, 400, "passcode_confirmation");
        let done = h
            .act(&wrong, "verify_passcode", json!({"code": code}))
            .await?;
        assert_state(&done, 200, "success");
        assert_eq!(
            done.at("/payload/last_login"),
            Some(&json!({"login_method": "passcode"}))
        );
    }
    Ok(())
}

#[tokio::test]
async fn recovery_is_not_offered_when_forgot_password_is_off() -> Result<()> {
    for backend in backends() {
        let extra = format!("{CONFIG}forgot_password: {{enabled: false}}\n");
        let server = start(backend, &extra).await?;
        let email = "nohelp@example.com";
        register(&server, email).await?;
        let h = Hanko::new(&server);
        let pw = to_login_password(&h, email).await?;
        assert!(pw.at("/actions/password_login").is_some(), "{pw}");
        assert!(
            pw.at("/actions/continue_to_passcode_confirmation_recovery")
                .is_none(),
            "{pw}"
        );
    }
    Ok(())
}
