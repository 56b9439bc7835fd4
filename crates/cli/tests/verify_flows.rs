//! The default signup verifies the email with a code (delivered to the development
//! outbox): wrong codes, resend cooldown, attempt limit, expiry, single use.

use std::time::Duration;

use anyhow::{Context, Result};
use authflow_testkit::{ApiResponse, Backend, FlowApi, TestServer, backends};
use serde_json::{Value, json};

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

async fn last_code_for(api: &FlowApi, to: &str) -> Result<String> {
    let messages = outbox(api).await?;
    messages
        .iter()
        .rev()
        .find(|m| m["to"] == to)
        .and_then(|m| m["code"].as_str())
        .map(str::to_string)
        .context("no message in the outbox")
}

/// Create a signup flow and identify `email`: the response is the `verify` state.
async fn start_signup(api: &FlowApi, email: &str) -> Result<(String, ApiResponse)> {
    let created = api.create_flow("signup", "default").await?;
    let first = created.state_token().unwrap().to_string();
    let verify = api
        .input(
            &first,
            json!({"identification": "email", "login_id": email}),
        )
        .await?;
    verify.ensure_status(200)?;
    Ok((first, verify))
}

fn assert_error(r: &ApiResponse, status: u16, reason: &str) {
    assert_eq!(r.status, status, "{r}");
    assert_eq!(r.error_reason(), Some(reason), "{r}");
}

#[tokio::test]
async fn default_signup_verifies_the_email_then_sets_a_password() -> Result<()> {
    for backend in backends() {
        let server = start(backend, "").await?;
        let api = server.api();
        let (_, verify) = start_signup(&api, "vera@example.com").await?;
        assert_eq!(verify.action_type(), Some("verify"));
        let data = verify.at("/result/action/data").unwrap();
        assert_eq!(data["type"], "verify_oob_otp_data");
        assert_eq!(data["channel"], "email");
        assert_eq!(data["otp_form"], "code");
        assert_eq!(data["masked_claim_value"], "ve**@example.com");
        assert_eq!(data["code_length"], 6);
        assert_eq!(data["can_check"], false);
        assert_eq!(data["failed_attempt_rate_limit_exceeded"], false);
        assert!(
            data["can_resend_at"]
                .as_str()
                .is_some_and(|t| t.ends_with('Z'))
        );

        let code = last_code_for(&api, "vera@example.com").await?;
        assert_eq!(code.len(), 6);
        assert!(code.bytes().all(|b| b.is_ascii_digit()));
        let message = outbox(&api).await?.pop().unwrap();
        assert!(
            message["body"]
                .as_str()
                .unwrap()
                .contains("valid for 5 minutes"),
            "{message}"
        );

        let token = verify.state_token().unwrap().to_string();
        let wrong_code = if code == "000000" { "111111" } else { "000000" };
        let wrong = api.input(&token, json!({"code": wrong_code})).await?;
        assert_error(&wrong, 403, "InvalidVerificationCode");
        assert_eq!(
            wrong.str_at("/error/message"),
            Some("invalid verification code")
        );
        assert_eq!(
            wrong.str_at("/error/info/cause/kind"),
            Some("InvalidVerificationCode")
        );
        assert_eq!(wrong.state_token(), Some(token.as_str()));

        let verified = api.input(&token, json!({"code": code})).await?;
        assert_eq!(
            verified.action_type(),
            Some("create_authenticator"),
            "{verified}"
        );
        // Single use: the same code on the same state no longer works.
        let again = api.input(&token, json!({"code": code})).await?;
        assert_error(&again, 403, "InvalidVerificationCode");
        assert_eq!(again.str_at("/error/info/cause/kind"), Some("CodeNotFound"));

        let done = api
            .input(
                verified.state_token().unwrap(),
                json!({"authentication": "primary_password", "new_password": "verified password"}),
            )
            .await?;
        assert_eq!(done.action_type(), Some("finished"), "{done}");
        let login = api
            .login_with_password("vera@example.com", "verified password")
            .await?;
        assert_eq!(login.action_type(), Some("finished"));
    }
    Ok(())
}

#[tokio::test]
async fn resend_waits_for_the_cooldown_and_reentering_sends_nothing() -> Result<()> {
    let config = "verification: {rate_limits: {email: {trigger_cooldown: 2s}}}\n";
    for backend in backends() {
        let server = start(backend, config).await?;
        let api = server.api();
        let (first, verify) = start_signup(&api, "rex@example.com").await?;
        let sent = outbox(&api).await?.len();
        let token = verify.state_token().unwrap().to_string();

        let early = api.input(&token, json!({"resend": true})).await?;
        assert_error(&early, 429, "RateLimited");
        assert_eq!(
            early.str_at("/error/info/bucket_name"),
            Some("VerificationCooldownEmail")
        );
        // Entering the step again (branching from the first token) sends nothing.
        let reentered = api
            .input(
                &first,
                json!({"identification": "email", "login_id": "rex@example.com"}),
            )
            .await?;
        assert_eq!(reentered.action_type(), Some("verify"));
        assert_eq!(outbox(&api).await?.len(), sent);
        let old_code = last_code_for(&api, "rex@example.com").await?;

        tokio::time::sleep(Duration::from_millis(2100)).await;
        let resent = api.input(&token, json!({"resend": true})).await?;
        assert_eq!(resent.action_type(), Some("verify"), "{resent}");
        assert_ne!(
            resent.state_token(),
            Some(token.as_str()),
            "a resend makes a new state"
        );
        assert_eq!(outbox(&api).await?.len(), sent + 1);
        let new_code = last_code_for(&api, "rex@example.com").await?;
        if new_code != old_code {
            let stale = api
                .input(resent.state_token().unwrap(), json!({"code": old_code}))
                .await?;
            assert_error(&stale, 403, "InvalidVerificationCode");
        }
        let ok = api
            .input(resent.state_token().unwrap(), json!({"code": new_code}))
            .await?;
        assert_eq!(ok.action_type(), Some("create_authenticator"), "{ok}");

        let both = api
            .input(&token, json!({"code": "123456", "resend": true}))
            .await?;
        assert_error(&both, 400, "ValidationFailed");
    }
    Ok(())
}

#[tokio::test]
async fn too_many_wrong_codes_revoke_the_code() -> Result<()> {
    for backend in backends() {
        let server = start(backend, "").await?;
        let api = server.api();
        let (_, verify) = start_signup(&api, "max@example.com").await?;
        let token = verify.state_token().unwrap().to_string();
        let code = last_code_for(&api, "max@example.com").await?;
        let wrong = if code == "999999" { "999998" } else { "999999" };
        for _ in 0..5 {
            let r = api.input(&token, json!({"code": wrong})).await?;
            assert_error(&r, 403, "InvalidVerificationCode");
        }
        let revoked = api.input(&token, json!({"code": code})).await?;
        assert_error(&revoked, 429, "RateLimited");
        assert_eq!(
            revoked.str_at("/error/info/bucket_name"),
            Some("TrackFailedOTPAttemptBucket")
        );
        assert!(revoked.at("/error/info/rate_limit").is_none());
        let state = api.read_state(&token).await?;
        assert_eq!(
            state.at("/result/action/data/failed_attempt_rate_limit_exceeded"),
            Some(&json!(true))
        );
    }
    Ok(())
}

#[tokio::test]
async fn an_expired_code_is_not_found() -> Result<()> {
    let config = "verification: {code_valid_period: 1s}\n";
    for backend in backends() {
        let server = start(backend, config).await?;
        let api = server.api();
        let (_, verify) = start_signup(&api, "old@example.com").await?;
        let code = last_code_for(&api, "old@example.com").await?;
        tokio::time::sleep(Duration::from_millis(1300)).await;
        let late = api
            .input(verify.state_token().unwrap(), json!({"code": code}))
            .await?;
        assert_error(&late, 403, "InvalidVerificationCode");
        assert_eq!(late.str_at("/error/info/cause/kind"), Some("CodeNotFound"));
    }
    Ok(())
}
