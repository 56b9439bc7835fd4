//! Account recovery flows (authentication-flow-api.md 8.12–8.15): identify, select a
//! destination, prove the code or link, reset the password. Unknown login IDs get the same
//! answers and no message; a reset ends the user's other sessions.

use anyhow::{Context, Result};
use authflow_testkit::{ApiResponse, Backend, FlowApi, TestServer, backends};
use serde_json::{Value, json};

const PASSWORD: &str = "first password 1";
const NEW_PASSWORD: &str = "second password 2";
/// Code and link destinations for email (the default offers the link only).
const BOTH_FORMS: &str = "verification: {claims: {email: {required: false}}}\n\
ui:\n  forgot_password:\n    email: [{channel: email, otp_form: code}, {channel: email, otp_form: link}]\n";

async fn start(backend: Backend, extra: &str) -> Result<TestServer> {
    TestServer::builder(backend)
        .bin(env!("CARGO_BIN_EXE_authflow"))
        .extra_yaml(extra)
        .start()
        .await
}

async fn outbox(api: &FlowApi) -> Result<Vec<Value>> {
    let r = api.get("/authflow/outbox").await?;
    r.ensure_status(200)?;
    Ok(r.at("/messages")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default())
}

async fn last_message_to(api: &FlowApi, to: &str) -> Result<Value> {
    outbox(api)
        .await?
        .into_iter()
        .rev()
        .find(|m| m["to"] == to)
        .with_context(|| format!("no message to {to}"))
}

async fn input_ok(api: &FlowApi, state: &ApiResponse, input: Value) -> Result<ApiResponse> {
    let next = api
        .input(
            state.state_token().context("no state token")?,
            input.clone(),
        )
        .await?;
    next.ensure_status(200)
        .with_context(|| format!("input {input}"))?;
    Ok(next)
}

fn assert_error(r: &ApiResponse, status: u16, reason: &str) {
    assert_eq!(r.status, status, "{r}");
    assert_eq!(r.error_reason(), Some(reason), "{r}");
}

/// Identify `email` and choose destination `index`: the `verify_account_recovery_code` state.
async fn recover(api: &FlowApi, email: &str, index: usize) -> Result<ApiResponse> {
    let created = api.create_flow("account_recovery", "default").await?;
    created.ensure_status(200)?;
    let select = input_ok(
        api,
        &created,
        json!({"identification": "email", "login_id": email}),
    )
    .await?;
    input_ok(api, &select, json!({"index": index})).await
}

/// The body with what differs per user (tokens, masked addresses, times) blanked.
fn shape(r: &ApiResponse) -> Value {
    let mut v = r.body.clone();
    if let Some(result) = v.get_mut("result") {
        result["state_token"] = json!("…");
        if let Some(data) = result.pointer_mut("/action/data") {
            for key in ["masked_display_name", "can_resend_at"] {
                if data.get(key).is_some() {
                    data[key] = json!("…");
                }
            }
            if let Some(options) = data.get_mut("options").and_then(Value::as_array_mut) {
                for o in options {
                    o["masked_display_name"] = json!("…");
                }
            }
        }
    }
    if let Some(error) = v.get_mut("error") {
        error["tracking_id"] = json!("…");
    }
    v
}

#[tokio::test]
async fn a_known_and_an_unknown_email_look_the_same_and_only_one_gets_mail() -> Result<()> {
    for backend in backends() {
        let server = start(backend, BOTH_FORMS).await?;
        let api = server.api();
        api.signup_with_password("kate@example.com", PASSWORD)
            .await?
            .ensure_status(200)?;
        let mut shapes = Vec::new();
        for email in ["kate@example.com", "nobody@example.com"] {
            let created = api.create_flow("account_recovery", "default").await?;
            assert_eq!(
                created.str_at("/result/action/data/type"),
                Some("account_recovery_identification_data")
            );
            let select = api
                .input(
                    created.state_token().unwrap(),
                    json!({"identification": "email", "login_id": email}),
                )
                .await?;
            let verify = api
                .input(select.state_token().unwrap(), json!({"index": 0}))
                .await?;
            let wrong = api
                .input(
                    verify.state_token().unwrap(),
                    json!({"account_recovery_code": "000000"}),
                )
                .await?;
            // At the attempt limit (5) both answer alike again.
            let mut last = wrong.clone();
            for _ in 0..5 {
                last = api
                    .input(
                        verify.state_token().unwrap(),
                        json!({"account_recovery_code": "111111"}),
                    )
                    .await?;
            }
            let after = api.read_state(verify.state_token().unwrap()).await?;
            assert_eq!(
                after.at("/result/action/data/failed_attempt_rate_limit_exceeded"),
                Some(&json!(true)),
                "{backend} {email}: {after}"
            );
            shapes.push(
                [
                    shape(&select),
                    shape(&verify),
                    shape(&wrong),
                    shape(&last),
                    shape(&after),
                ]
                .map(|s| s.to_string()),
            );
            assert_eq!(select.status, 200, "{backend} {email}: {select}");
            assert_eq!(verify.action_type(), Some("verify_account_recovery_code"));
            assert_error(&wrong, 400, "PasswordResetFailed");
            assert_eq!(wrong.str_at("/error/info/cause/kind"), Some("InvalidCode"));
        }
        assert_eq!(shapes[0], shapes[1], "{backend}: the responses differ");
        let messages = outbox(&api).await?;
        let to: Vec<&str> = messages.iter().filter_map(|m| m["to"].as_str()).collect();
        assert!(to.contains(&"kate@example.com"), "{to:?}");
        assert!(
            !to.contains(&"nobody@example.com"),
            "{backend}: mail to an unknown address"
        );
        let select = api.create_flow("account_recovery", "default").await?;
        let data = input_ok(
            &api,
            &select,
            json!({"identification": "email", "login_id": "kate@example.com"}),
        )
        .await?;
        assert_eq!(
            data.at("/result/action/data/options"),
            Some(&json!([
                {"masked_display_name": "ka**@example.com", "channel": "email", "otp_form": "code"},
                {"masked_display_name": "ka**@example.com", "channel": "email", "otp_form": "link"},
            ]))
        );
    }
    Ok(())
}

#[tokio::test]
async fn a_code_resets_the_password_and_ends_other_sessions() -> Result<()> {
    let config = format!(
        "{BOTH_FORMS}authenticator:\n  password:\n    policy: {{min_length: 10}}\n\
oauth:\n  clients:\n  - client_id: spa\n    x_application_type: spa\n    \
redirect_uris: [\"http://127.0.0.1:9/callback\"]\n    x_custom_ui_uri: \"http://127.0.0.1:9/ui\"\n"
    );
    for backend in backends() {
        let server = start(backend, &config).await?;
        let api = server.api();
        api.signup_with_password("ivan@example.com", PASSWORD)
            .await?
            .ensure_status(200)?;
        let login = api
            .login_with_password("ivan@example.com", PASSWORD)
            .await?;
        let cookie = login
            .header("set-cookie")
            .and_then(|c| c.split(';').next())
            .context("no session cookie")?
            .to_string();
        assert!(session_is_live(&server, &cookie).await?, "{backend}");

        let verify = recover(&api, "ivan@example.com", 0).await?;
        let data = verify.at("/result/action/data").unwrap();
        assert_eq!(data["type"], "account_recovery_verify_code_data");
        assert_eq!(data["otp_form"], "code");
        assert_eq!(data["code_length"], 6);
        let message = last_message_to(&api, "ivan@example.com").await?;
        assert_eq!(message["purpose"], "account_recovery");
        let code = message["code"].as_str().unwrap().to_string();

        let reset = input_ok(&api, &verify, json!({"account_recovery_code": code})).await?;
        assert_eq!(reset.action_type(), Some("reset_password"), "{reset}");
        assert_eq!(
            reset.str_at("/result/action/data/masked_target"),
            Some("iv**@example.com")
        );
        let short = api
            .input(
                reset.state_token().unwrap(),
                json!({"new_password": "short"}),
            )
            .await?;
        assert_error(&short, 400, "PasswordPolicyViolated");
        let same = api
            .input(
                reset.state_token().unwrap(),
                json!({"new_password": PASSWORD}),
            )
            .await?;
        assert_error(&same, 400, "PasswordPolicyViolated");
        let done = input_ok(&api, &reset, json!({"new_password": NEW_PASSWORD})).await?;
        assert_eq!(done.action_type(), Some("finished"), "{done}");
        assert!(
            done.header("set-cookie").is_none(),
            "a reset makes no session"
        );

        assert!(
            !session_is_live(&server, &cookie).await?,
            "{backend}: old session lives on"
        );
        let old = api.login_with_password("ivan@example.com", PASSWORD).await;
        assert!(old.is_err(), "{backend}: the old password still works");
        api.login_with_password("ivan@example.com", NEW_PASSWORD)
            .await?
            .ensure_status(200)?;

        // The code was spent by the reset.
        let again = recover(&api, "ivan@example.com", 0).await?;
        let reused = api
            .input(
                again.state_token().unwrap(),
                json!({"account_recovery_code": code}),
            )
            .await?;
        assert_error(&reused, 400, "PasswordResetFailed");
    }
    Ok(())
}

/// Whether `cookie` is a live IdP session: `prompt=none` answers with a code only then.
async fn session_is_live(server: &TestServer, cookie: &str) -> Result<bool> {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let mut url = url::Url::parse(&server.url("/oauth2/authorize"))?;
    url.query_pairs_mut().extend_pairs([
        ("response_type", "code"),
        ("client_id", "spa"),
        ("redirect_uri", "http://127.0.0.1:9/callback"),
        ("scope", "openid"),
        ("state", "s"),
        (
            "code_challenge",
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
        ),
        ("code_challenge_method", "S256"),
        ("prompt", "none"),
    ]);
    let answer = http
        .get(url.as_str())
        .header("cookie", cookie)
        .send()
        .await?;
    let location = answer
        .headers()
        .get("location")
        .context("no redirect")?
        .to_str()?
        .to_string();
    Ok(location.contains("code="))
}

#[tokio::test]
async fn a_link_opens_a_flow_at_reset_password_without_a_state_token() -> Result<()> {
    for backend in backends() {
        let server = start(backend, BOTH_FORMS).await?;
        let api = server.api();
        api.signup_with_password("lena@example.com", PASSWORD)
            .await?
            .ensure_status(200)?;
        let verify = recover(&api, "lena@example.com", 1).await?;
        assert_eq!(verify.str_at("/result/action/data/otp_form"), Some("link"));
        assert_eq!(
            verify.at("/result/action/data/code_length"),
            Some(&json!(32))
        );
        let message = last_message_to(&api, "lena@example.com").await?;
        let link = message["link"].as_str().context("no link")?.to_string();
        assert!(
            link.starts_with(&format!(
                "{}/authflow/v2/reset_password?code=",
                server.base_url()
            )),
            "{link}"
        );
        assert!(message["body"].as_str().unwrap().contains("20 minutes"));
        let code = message["code"].as_str().unwrap().to_string();

        // The page the link opens: a form, and GET changes nothing.
        let page = server.client().get(&link).send().await?;
        assert_eq!(page.status(), 200);
        assert!(page.text().await?.contains("name=\"new_password\""));

        // The token-less way in (spec 8.14).
        let body = json!({"input": {"account_recovery_code": code}});
        let opened = api
            .post_json("/api/v1/authentication_flows/states/input", &body)
            .await?;
        opened.ensure_status(200)?;
        assert_eq!(
            opened.action_type(),
            Some("reset_password"),
            "{backend}: {opened}"
        );
        assert_eq!(opened.str_at("/result/type"), Some("account_recovery"));
        let forged = api
            .post_json(
                "/api/v1/authentication_flows/states/input",
                &json!({"input": {"account_recovery_code": "0123456789ABCDEFGHJKMNPQRSTVWXYZ"}}),
            )
            .await?;
        assert_error(&forged, 400, "PasswordResetFailed");
        assert!(forged.at("/result").is_none(), "{forged}");

        // A made-up code on the page's form is refused with the invalid-link page.
        let made_up = server
            .client()
            .post(server.url("/authflow/v2/reset_password"))
            .form(&[
                ("code", "0123456789ABCDEFGHJKMNPQRSTVWXYZ"),
                ("new_password", NEW_PASSWORD),
            ])
            .send()
            .await?;
        assert_eq!(made_up.status(), 400);
        assert!(made_up.text().await?.contains("Invalid link"));

        // The page's form: a weak password is refused and the form shown again.
        let weak = server
            .client()
            .post(server.url("/authflow/v2/reset_password"))
            .form(&[("code", code.as_str()), ("new_password", "x")])
            .send()
            .await?;
        assert_eq!(weak.status(), 400);
        assert!(weak.text().await?.contains("name=\"new_password\""));
        let done = server
            .client()
            .post(server.url("/authflow/v2/reset_password"))
            .form(&[("code", code.as_str()), ("new_password", NEW_PASSWORD)])
            .send()
            .await?;
        assert_eq!(done.status(), 200);
        assert!(done.text().await?.contains("Password changed"));
        api.login_with_password("lena@example.com", NEW_PASSWORD)
            .await?
            .ensure_status(200)?;

        // Spent: the flow opened earlier cannot finish with it, and the link is dead.
        let late = api
            .input(
                opened.state_token().unwrap(),
                json!({"new_password": "third password 3"}),
            )
            .await?;
        assert_error(&late, 400, "PasswordResetFailed");
        assert_eq!(late.str_at("/error/info/cause/kind"), Some("UsedCode"));
        let reused = api
            .post_json("/api/v1/authentication_flows/states/input", &body)
            .await?;
        assert_error(&reused, 400, "PasswordResetFailed");
        assert_eq!(reused.str_at("/error/info/cause/kind"), Some("UsedCode"));
        assert!(
            !server
                .logs()
                .lines()
                .filter(|l| !l.contains("dev outbox message"))
                .any(|l| l.contains(&code)),
            "{backend}: the link code is logged"
        );
    }
    Ok(())
}

#[tokio::test]
async fn recovery_can_be_switched_off() -> Result<()> {
    let server = start(Backend::Sqlite, "forgot_password: {enabled: false}\n").await?;
    let r = server
        .api()
        .create_flow("account_recovery", "default")
        .await?;
    assert_error(&r, 400, "ForgotPasswordFailed");
    assert_eq!(r.str_at("/error/info/cause/kind"), Some("FeatureDisabled"));
    Ok(())
}

#[tokio::test]
async fn a_disabled_user_cannot_finish_a_recovery() -> Result<()> {
    for backend in backends() {
        let server = start(backend, BOTH_FORMS).await?;
        let api = server.api();
        api.signup_with_password("dora@example.com", PASSWORD)
            .await?
            .ensure_status(200)?;
        let config = server.config_path().to_str().context("config")?.to_string();
        let bin = std::path::Path::new(env!("CARGO_BIN_EXE_authflow"));
        let out = authflow_testkit::run_bin(
            bin,
            &["user", "disable", "--config", &config, "dora@example.com"],
        )
        .await?;
        assert!(
            out.status.success(),
            "{}",
            authflow_testkit::stderr_text(&out)
        );
        let verify = recover(&api, "dora@example.com", 0).await?;
        let code = last_message_to(&api, "dora@example.com").await?["code"]
            .as_str()
            .context("code")?
            .to_string();
        let reset = input_ok(&api, &verify, json!({"account_recovery_code": code})).await?;
        let refused = api
            .input(
                reset.state_token().unwrap(),
                json!({"new_password": NEW_PASSWORD}),
            )
            .await?;
        assert_error(&refused, 403, "DisabledUser");
    }
    Ok(())
}
