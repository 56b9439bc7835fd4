//! `reauth` flows: the user comes from the IdP session cookie of the request, then proves
//! it is still them with one of their authenticators.

use anyhow::{Context, Result};
use authflow_testkit::{ApiResponse, TestServer, backends, run_bin, stderr_text};
use serde_json::json;

const PASSWORD: &str = "reauth password 1";

async fn start(backend: authflow_testkit::Backend) -> Result<TestServer> {
    TestServer::builder(backend)
        .bin(env!("CARGO_BIN_EXE_authflow"))
        .extra_yaml("verification: {claims: {email: {required: false}}}\n")
        .start()
        .await
}

/// `session=…` of a finished login.
fn session_cookie(finished: &ApiResponse) -> Result<String> {
    Ok(finished
        .header("set-cookie")
        .and_then(|c| c.split(';').next())
        .context("no session cookie")?
        .to_string())
}

async fn create_reauth(server: &TestServer, cookie: Option<&str>) -> Result<ApiResponse> {
    // A client without the cookie jar of the test's other requests: only `cookie` is sent.
    let mut request = server
        .new_client()
        .post(server.url("/api/v1/authentication_flows"))
        .json(&json!({"type": "reauth", "name": "default"}));
    if let Some(c) = cookie {
        request = request.header("cookie", c);
    }
    server.api().send(request).await
}

fn assert_error(r: &ApiResponse, status: u16, reason: &str) {
    assert_eq!(r.status, status, "{r}");
    assert_eq!(r.error_reason(), Some(reason), "{r}");
}

#[tokio::test]
async fn a_session_user_reauthenticates_with_a_password() -> Result<()> {
    for backend in backends() {
        let server = start(backend).await?;
        let api = server.api();
        api.signup_with_password("rea@example.com", PASSWORD)
            .await?
            .ensure_status(200)?;
        let login = api.login_with_password("rea@example.com", PASSWORD).await?;
        let cookie = session_cookie(&login)?;

        assert_error(
            &create_reauth(&server, None).await?,
            400,
            "AuthenticationFlowNoUserID",
        );
        let forged = create_reauth(&server, Some("session=0123456789")).await?;
        assert_error(&forged, 400, "AuthenticationFlowNoUserID");

        let flow = create_reauth(&server, Some(&cookie)).await?;
        flow.ensure_status(200)?;
        assert_eq!(
            flow.action_type(),
            Some("authenticate"),
            "{backend}: {flow}"
        );
        assert!(flow.offers_authentication("primary_password"), "{flow}");
        let wrong = api
            .input(
                flow.state_token().unwrap(),
                json!({"authentication": "primary_password", "password": "not it"}),
            )
            .await?;
        assert_error(&wrong, 401, "InvalidCredentials");
        let done = api
            .input(
                flow.state_token().unwrap(),
                json!({"authentication": "primary_password", "password": PASSWORD}),
            )
            .await?;
        assert_eq!(done.action_type(), Some("finished"), "{done}");
        assert_eq!(done.str_at("/result/type"), Some("reauth"));
        assert!(
            done.header("set-cookie")
                .is_some_and(|c| c.starts_with("session="))
        );
    }
    Ok(())
}

#[tokio::test]
async fn ended_sessions_and_disabled_users_cannot_reauthenticate() -> Result<()> {
    for backend in backends() {
        let server = start(backend).await?;
        let api = server.api();
        api.signup_with_password("gone@example.com", PASSWORD)
            .await?
            .ensure_status(200)?;
        let login = api
            .login_with_password("gone@example.com", PASSWORD)
            .await?;
        let cookie = session_cookie(&login)?;
        create_reauth(&server, Some(&cookie))
            .await?
            .ensure_status(200)?;

        let config = server
            .config_path()
            .to_str()
            .context("config path")?
            .to_string();
        let bin = std::path::Path::new(env!("CARGO_BIN_EXE_authflow"));
        let disable = run_bin(
            bin,
            &["user", "disable", "--config", &config, "gone@example.com"],
        )
        .await?;
        assert!(disable.status.success(), "{}", stderr_text(&disable));
        // Disabling ends the sessions, so the cookie names nobody any more.
        let refused = create_reauth(&server, Some(&cookie)).await?;
        assert_eq!(refused.status, 400, "{backend}: {refused}");
        assert_eq!(refused.error_reason(), Some("AuthenticationFlowNoUserID"));
    }
    Ok(())
}
