//! `change_password` in login flows (authentication-flow-api.md 8.11): a password that no
//! longer meets the policy, or has expired, must be replaced before the login finishes.
//! Users come from `authflow user import` (bcrypt hashes), whose passwords predate the policy.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};
use authflow_testkit::{ApiResponse, Backend, FlowApi, TestServer, backends, run_bin, stderr_text};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_authflow");

async fn start(backend: Backend, extra: &str) -> Result<TestServer> {
    TestServer::builder(backend)
        .bin(BIN)
        .extra_yaml(&format!(
            "verification: {{claims: {{email: {{required: false}}}}}}\n{extra}"
        ))
        .start()
        .await
}

/// Import one user with a bcrypt hash of `password` (no policy applies to imports).
async fn import(server: &TestServer, email: &str, password: &str) -> Result<()> {
    let record = json!({
        "email": email,
        "email_verified": true,
        "password": {"type": "bcrypt", "password_hash": bcrypt::hash(password, 4)?},
    });
    let path = server.dir().join(format!("{email}.jsonl"));
    std::fs::write(&path, format!("{record}\n"))?;
    let config = server.config_path().to_str().context("config")?;
    let out = run_bin(
        Path::new(BIN),
        &[
            "user",
            "import",
            "--config",
            config,
            path.to_str().context("path")?,
        ],
    )
    .await?;
    anyhow::ensure!(out.status.success(), "import: {}", stderr_text(&out));
    Ok(())
}

async fn login_until_after_password(
    api: &FlowApi,
    email: &str,
    password: &str,
) -> Result<ApiResponse> {
    let created = api.create_flow("login", "default").await?;
    let r = api
        .input(
            created.state_token().unwrap(),
            json!({"identification": "email", "login_id": email}),
        )
        .await?;
    r.ensure_status(200)?;
    let r = api
        .input(
            r.state_token().unwrap(),
            json!({"authentication": "primary_password", "password": password}),
        )
        .await?;
    r.ensure_status(200)?;
    Ok(r)
}

fn data(r: &ApiResponse) -> Value {
    r.at("/result/action/data").cloned().unwrap_or(Value::Null)
}

#[tokio::test]
async fn a_password_below_the_policy_must_be_changed_at_login() -> Result<()> {
    let policy =
        "authenticator:\n  password:\n    policy: {min_length: 12, digit_required: true}\n";
    for backend in backends() {
        let server = start(backend, policy).await?;
        let api = server.api();
        import(&server, "old@example.com", "short1").await?;
        let change = login_until_after_password(&api, "old@example.com", "short1").await?;
        assert_eq!(
            change.action_type(),
            Some("change_password"),
            "{backend}: {change}"
        );
        let d = data(&change);
        assert_eq!(d["type"], "new_password_data");
        assert_eq!(d["force_change_reason"], "policy");
        assert_eq!(d["password_policy"]["minimum_length"], 12);

        let weak = api
            .input(
                change.state_token().unwrap(),
                json!({"new_password": "still short"}),
            )
            .await?;
        assert_eq!(weak.status, 400, "{weak}");
        assert_eq!(weak.error_reason(), Some("PasswordPolicyViolated"));
        let done = api
            .input(
                change.state_token().unwrap(),
                json!({"new_password": "a much longer one 2"}),
            )
            .await?;
        assert_eq!(done.action_type(), Some("finished"), "{done}");

        // The new password logs in straight away; the old one no longer does.
        let again =
            login_until_after_password(&api, "old@example.com", "a much longer one 2").await?;
        assert_eq!(again.action_type(), Some("finished"), "{again}");
        let created = api.create_flow("login", "default").await?;
        let old = api
            .batch_input(
                created.state_token().unwrap(),
                vec![
                    json!({"identification": "email", "login_id": "old@example.com"}),
                    json!({"authentication": "primary_password", "password": "short1"}),
                ],
            )
            .await?;
        assert_eq!(old.status, 401, "{old}");
    }
    Ok(())
}

#[tokio::test]
async fn an_expired_password_must_be_changed_at_login() -> Result<()> {
    let expiry = "authenticator:\n  password:\n    expiry:\n      force_change: \
{enabled: true, duration_since_last_update: 1s}\n";
    for backend in backends() {
        let server = start(backend, expiry).await?;
        let api = server.api();
        api.signup_with_password("aged@example.com", "first password 1")
            .await?
            .ensure_status(200)?;
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let change =
            login_until_after_password(&api, "aged@example.com", "first password 1").await?;
        assert_eq!(
            change.action_type(),
            Some("change_password"),
            "{backend}: {change}"
        );
        assert_eq!(data(&change)["force_change_reason"], "expiry");
        let same = api
            .input(
                change.state_token().unwrap(),
                json!({"new_password": "first password 1"}),
            )
            .await?;
        assert_eq!(
            same.error_reason(),
            Some("PasswordPolicyViolated"),
            "{same}"
        );
        let done = api
            .input(
                change.state_token().unwrap(),
                json!({"new_password": "second password 2"}),
            )
            .await?;
        assert_eq!(done.action_type(), Some("finished"), "{done}");
    }
    Ok(())
}
