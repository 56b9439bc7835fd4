//! Second factors through the Authentication Flow API (issue 6): a TOTP app enrolled at
//! signup and asked for at login (each code once), recovery codes shown after enrolment and
//! each usable once, and `secondary_authentication_mode` deciding who is asked. TOTP codes
//! are computed here from the secret the flow shows, as the user's app would.

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use authflow_core::credentials::totp::{self, TotpSecret};
use authflow_testkit::{ApiResponse, Backend, FlowApi, TestServer, backends};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_authflow");

/// No email verification at signup, cheap hashing: the stories are about second factors.
const BASE: &str = "\
verification: {claims: {email: {required: false}}}
authenticator: {password: {hashing: {memory_kib: 1024, iterations: 1, parallelism: 1}}}
";

const PASSWORD: &str = "a long enough password 1";
/// Crockford base32, the alphabet of generated recovery codes.
const CROCKFORD: &str = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

async fn start(backend: Backend, authentication: &str) -> Result<TestServer> {
    TestServer::builder(backend)
        .bin(BIN)
        .extra_yaml(&format!("{BASE}authentication:\n{authentication}"))
        .start()
        .await
        .with_context(|| format!("start server on {backend}"))
}

fn assert_error(r: &ApiResponse, status: u16, reason: &str) {
    assert_eq!(r.status, status, "{r}");
    assert_eq!(r.error_reason(), Some(reason), "{r}");
}

fn assert_invalid(r: &ApiResponse, authentication_type: &str) {
    assert_error(r, 401, "InvalidCredentials");
    assert_eq!(
        r.str_at("/error/info/AuthenticationType"),
        Some(authentication_type),
        "{r}"
    );
}

async fn input_ok(api: &FlowApi, state: &ApiResponse, input: Value) -> Result<ApiResponse> {
    let token = state.state_token().context("state token")?;
    let next = api.input(token, input.clone()).await?;
    next.ensure_status(200)
        .with_context(|| format!("input {input}"))?;
    Ok(next)
}

fn authentications(state: &ApiResponse) -> Vec<String> {
    state
        .at("/result/action/data/options")
        .and_then(Value::as_array)
        .map(|options| {
            options
                .iter()
                .filter_map(|o| o["authentication"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn current_step() -> u64 {
    totp::time_step(chrono::Utc::now())
}

/// A code of `secret` that is surely not the one of `step` (nor of its neighbours).
fn wrong_code(secret: &TotpSecret, step: u64) -> String {
    let window: Vec<String> = (step - 1..=step + 2)
        .map(|s| totp::code_at_step(secret, s))
        .collect();
    (0..)
        .map(|n: u32| format!("{:06}", n * 7919 % 1_000_000))
        .find(|c| !window.contains(c))
        .expect("a code outside the window")
}

/// What a user keeps from signing up with a TOTP app.
struct Enrolled {
    secret: TotpSecret,
    /// The time step of the code that confirmed the app.
    step: u64,
    recovery_codes: Vec<String>,
}

/// The `default` signup with `secondary_authentication_mode: required`: password, then
/// the TOTP setup (checking what the user sees on the way), then the recovery codes.
async fn signup_with_totp(api: &FlowApi, email: &str) -> Result<Enrolled> {
    let created = api.create_flow("signup", "default").await?;
    let password = input_ok(
        api,
        &created,
        json!({"identification": "email", "login_id": email}),
    )
    .await?;
    let second = input_ok(
        api,
        &password,
        json!({"authentication": "primary_password", "new_password": PASSWORD}),
    )
    .await?;
    assert_eq!(
        second.action_type(),
        Some("create_authenticator"),
        "{second}"
    );
    assert_eq!(
        second.at("/result/action/data/options"),
        Some(&json!([{"authentication": "secondary_totp"}])),
        "{second}"
    );

    let setup = input_ok(api, &second, json!({"authentication": "secondary_totp"})).await?;
    assert_eq!(setup.action_type(), Some("create_authenticator"), "{setup}");
    assert_eq!(
        setup.str_at("/result/action/authentication"),
        Some("secondary_totp")
    );
    assert_eq!(setup.data_type(), Some("create_totp_data"), "{setup}");
    let text = setup
        .str_at("/result/action/data/secret")
        .context("secret")?
        .to_string();
    assert_eq!(text.len(), 32, "{text}");
    let uri = setup
        .str_at("/result/action/data/otpauth_uri")
        .context("otpauth_uri")?;
    let label = email.replace('@', "%40");
    assert!(
        uri.starts_with(&format!(
            "otpauth://totp/{label}?algorithm=SHA1&digits=6&issuer=http%3A%2F%2F"
        )),
        "{uri}"
    );
    assert!(uri.ends_with(&format!("&period=30&secret={text}")), "{uri}");
    let again = api.read_state(setup.state_token().unwrap()).await?;
    assert_eq!(
        again.str_at("/result/action/data/secret"),
        Some(text.as_str()),
        "re-reading shows the same secret"
    );
    let secret = TotpSecret::from_base32(&text)?;

    let step = current_step();
    let wrong = api
        .input(
            setup.state_token().unwrap(),
            json!({"code": wrong_code(&secret, step)}),
        )
        .await?;
    assert_invalid(&wrong, "totp");
    assert_eq!(wrong.data_type(), Some("create_totp_data"), "state echoed");

    let view = input_ok(
        api,
        &setup,
        json!({"code": totp::code_at_step(&secret, step)}),
    )
    .await?;
    assert_eq!(view.action_type(), Some("view_recovery_code"), "{view}");
    assert_eq!(view.data_type(), Some("view_recovery_code_data"), "{view}");
    let codes: Vec<String> = view
        .at("/result/action/data/recovery_codes")
        .and_then(Value::as_array)
        .context("recovery_codes")?
        .iter()
        .filter_map(|c| c.as_str().map(str::to_string))
        .collect();
    assert_eq!(codes.len(), 16, "{view}");
    for code in &codes {
        assert!(
            code.len() == 10 && code.chars().all(|c| CROCKFORD.contains(c)),
            "{code}"
        );
    }
    let mut distinct = codes.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), 16);
    let reread = api.read_state(view.state_token().unwrap()).await?;
    assert_eq!(
        reread.at("/result/action/data/recovery_codes"),
        view.at("/result/action/data/recovery_codes"),
        "re-reading shows the same codes"
    );
    let unconfirmed = api
        .input(
            view.state_token().unwrap(),
            json!({"confirm_recovery_code": false}),
        )
        .await?;
    assert_error(&unconfirmed, 400, "ValidationFailed");

    let done = input_ok(api, &view, json!({"confirm_recovery_code": true})).await?;
    assert_eq!(done.action_type(), Some("finished"), "{done}");
    Ok(Enrolled {
        secret,
        step,
        recovery_codes: codes,
    })
}

/// Identify and give the password: the response asks for the second factor.
async fn login_until_second_factor(api: &FlowApi, email: &str) -> Result<ApiResponse> {
    let created = api.create_flow("login", "default").await?;
    let password = input_ok(
        api,
        &created,
        json!({"identification": "email", "login_id": email}),
    )
    .await?;
    input_ok(
        api,
        &password,
        json!({"authentication": "primary_password", "password": PASSWORD}),
    )
    .await
}

async fn login_with_totp(api: &FlowApi, email: &str, code: &str) -> Result<ApiResponse> {
    let second = login_until_second_factor(api, email).await?;
    let token = second.state_token().context("state token")?;
    api.input(
        token,
        json!({"authentication": "secondary_totp", "code": code}),
    )
    .await
}

async fn login_with_recovery_code(api: &FlowApi, email: &str, code: &str) -> Result<ApiResponse> {
    let second = login_until_second_factor(api, email).await?;
    let token = second.state_token().context("state token")?;
    api.input(
        token,
        json!({"authentication": "recovery_code", "recovery_code": code}),
    )
    .await
}

#[tokio::test]
async fn a_totp_app_enrolled_at_signup_is_asked_for_at_login_each_code_once() -> Result<()> {
    for backend in backends() {
        let server = start(backend, "  secondary_authentication_mode: required\n").await?;
        let api = server.api();
        let email = "tess@example.com";
        let enrolled = signup_with_totp(&api, email).await?;

        let second = login_until_second_factor(&api, email).await?;
        assert_eq!(second.action_type(), Some("authenticate"), "{second}");
        assert_eq!(
            authentications(&second),
            ["secondary_totp", "recovery_code"],
            "{second}"
        );
        let token = second.state_token().unwrap();
        let wrong = api
            .input(
                token,
                json!({"authentication": "secondary_totp", "code": wrong_code(&enrolled.secret, enrolled.step)}),
            )
            .await?;
        assert_invalid(&wrong, "totp");
        // The code that confirmed the app was used already: the next step's code works.
        let enrolment_code = totp::code_at_step(&enrolled.secret, enrolled.step);
        let replayed = api
            .input(
                token,
                json!({"authentication": "secondary_totp", "code": enrolment_code}),
            )
            .await?;
        assert_invalid(&replayed, "totp");
        let code = totp::code_at_step(&enrolled.secret, enrolled.step + 1);
        let done = api
            .input(
                token,
                json!({"authentication": "secondary_totp", "code": code}),
            )
            .await?;
        assert_eq!(done.action_type(), Some("finished"), "{backend}: {done}");

        // Another login with the same code in the same time step is refused.
        let again = login_with_totp(&api, email, &code).await?;
        assert_invalid(&again, "totp");

        let logs = server.logs();
        assert!(
            !logs.contains(&enrolled.secret.to_base32()),
            "secret logged"
        );
        for code in &enrolled.recovery_codes {
            assert!(!logs.contains(code.as_str()), "recovery code logged");
        }
    }
    Ok(())
}

#[tokio::test]
async fn each_recovery_code_logs_in_once() -> Result<()> {
    for backend in backends() {
        let server = start(backend, "  secondary_authentication_mode: required\n").await?;
        let api = server.api();
        let email = "rory@example.com";
        let enrolled = signup_with_totp(&api, email).await?;
        let (first, second) = (&enrolled.recovery_codes[0], &enrolled.recovery_codes[1]);

        // Typed as people do: lowercase, in two groups.
        let typed = format!("{}-{}", &first[..5], &first[5..]).to_lowercase();
        let done = login_with_recovery_code(&api, email, &typed).await?;
        assert_eq!(done.action_type(), Some("finished"), "{backend}: {done}");
        let reused = login_with_recovery_code(&api, email, first).await?;
        assert_invalid(&reused, "recovery_code");
        let made_up = login_with_recovery_code(&api, email, "0000000000").await?;
        assert_invalid(&made_up, "recovery_code");
        let done = login_with_recovery_code(&api, email, second).await?;
        assert_eq!(done.action_type(), Some("finished"), "{backend}: {done}");
    }
    Ok(())
}

/// `authflow user import` of a record with a password and a TOTP secret.
async fn import_totp_user(server: &TestServer, email: &str, secret: &str) -> Result<()> {
    import_user(
        server,
        json!({
            "email": email,
            "password": {"type": "bcrypt", "password_hash": bcrypt::hash(PASSWORD, 4)?},
            "mfa": {"totp": {"secret": secret}},
        }),
    )
    .await
}

/// `authflow user import` of one Authgear user-import record, into the server's database.
async fn import_user(server: &TestServer, record: Value) -> Result<()> {
    let path = server.dir().join("users.jsonl");
    std::fs::write(&path, format!("{record}\n"))?;
    let run = tokio::process::Command::new(BIN)
        .arg("user")
        .arg("import")
        .arg("--config")
        .arg(server.config_path())
        .arg(&path)
        .current_dir(server.dir())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(60), run).await??;
    ensure!(
        output.status.success(),
        "import failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(())
}

const IMPORTED_SECRET: &str = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP";

#[tokio::test]
async fn if_exists_asks_only_users_who_have_a_second_factor() -> Result<()> {
    for backend in backends() {
        let server = start(backend, "  secondary_authentication_mode: if_exists\n").await?;
        let api = server.api();
        // Signup enrols nothing: password only, then a password-only login.
        let signed_up = api
            .signup_with_password("paul@example.com", PASSWORD)
            .await?;
        assert_eq!(signed_up.action_type(), Some("finished"));
        let login = api
            .login_with_password("paul@example.com", PASSWORD)
            .await?;
        assert_eq!(login.action_type(), Some("finished"), "{backend}: {login}");

        // An imported TOTP secret is asked for, and its codes work.
        import_totp_user(&server, "ida@example.com", IMPORTED_SECRET).await?;
        let second = login_until_second_factor(&api, "ida@example.com").await?;
        assert_eq!(second.action_type(), Some("authenticate"), "{second}");
        // No recovery codes were imported: TOTP is the only option.
        assert_eq!(authentications(&second), ["secondary_totp"], "{second}");
        let secret = TotpSecret::from_base32(IMPORTED_SECRET)?;
        let code = totp::code_at_step(&secret, current_step());
        let done = api
            .input(
                second.state_token().unwrap(),
                json!({"authentication": "secondary_totp", "code": code}),
            )
            .await?;
        assert_eq!(done.action_type(), Some("finished"), "{backend}: {done}");

        // Recovery codes alone are no second factor (spec 17.3): nothing more is asked.
        import_user(
            &server,
            json!({
                "email": "una@example.com",
                "password": {"type": "bcrypt", "password_hash": bcrypt::hash(PASSWORD, 4)?},
                "recovery_codes": ["7KQ2M9XZT4"],
            }),
        )
        .await?;
        let login = api.login_with_password("una@example.com", PASSWORD).await?;
        assert_eq!(login.action_type(), Some("finished"), "{backend}: {login}");
    }
    Ok(())
}

#[tokio::test]
async fn disabled_mode_never_asks_for_a_second_factor() -> Result<()> {
    for backend in backends() {
        let server = start(backend, "  secondary_authentication_mode: disabled\n").await?;
        let api = server.api();
        import_totp_user(&server, "dora@example.com", IMPORTED_SECRET).await?;
        let login = api
            .login_with_password("dora@example.com", PASSWORD)
            .await?;
        assert_eq!(login.action_type(), Some("finished"), "{backend}: {login}");
    }
    Ok(())
}

#[tokio::test]
async fn wrong_totp_codes_are_rate_limited_like_passwords() -> Result<()> {
    let config = "  secondary_authentication_mode: required\n  \
rate_limits: {totp: {per_user_per_ip: {period: 1m, burst: 2}}}\n";
    for backend in backends() {
        let server = start(backend, config).await?;
        let api = server.api();
        import_totp_user(&server, "lena@example.com", IMPORTED_SECRET).await?;
        let secret = TotpSecret::from_base32(IMPORTED_SECRET)?;
        let second = login_until_second_factor(&api, "lena@example.com").await?;
        let token = second.state_token().unwrap();
        let wrong = wrong_code(&secret, current_step());
        for _ in 0..2 {
            let r = api
                .input(
                    token,
                    json!({"authentication": "secondary_totp", "code": wrong}),
                )
                .await?;
            assert_invalid(&r, "totp");
        }
        let right = totp::code_at_step(&secret, current_step());
        let limited = api
            .input(
                token,
                json!({"authentication": "secondary_totp", "code": right}),
            )
            .await?;
        assert_error(&limited, 429, "RateLimited");
        assert_eq!(
            limited.str_at("/error/info/bucket_name"),
            Some("VerifyTOTPPerUserPerIP"),
            "{limited}"
        );
        assert_eq!(
            limited.str_at("/error/info/rate_limit_name"),
            Some("authentication.totp")
        );
    }
    Ok(())
}

#[tokio::test]
async fn wrong_totp_codes_lock_the_account_when_totp_counts() -> Result<()> {
    let config = "  secondary_authentication_mode: required\n  \
lockout: {max_attempts: 3, history_duration: 1m, minimum_duration: 2s, maximum_duration: 10s, \
backoff_factor: 2, lockout_type: per_user, totp: {enabled: true}}\n";
    for backend in backends() {
        let server = start(backend, config).await?;
        let api = server.api();
        import_totp_user(&server, "max@example.com", IMPORTED_SECRET).await?;
        let secret = TotpSecret::from_base32(IMPORTED_SECRET)?;
        let second = login_until_second_factor(&api, "max@example.com").await?;
        let token = second.state_token().unwrap();
        let wrong = wrong_code(&secret, current_step());
        for _ in 0..3 {
            let r = api
                .input(
                    token,
                    json!({"authentication": "secondary_totp", "code": wrong}),
                )
                .await?;
            assert_invalid(&r, "totp");
        }
        let right = totp::code_at_step(&secret, current_step());
        let locked = api
            .input(
                token,
                json!({"authentication": "secondary_totp", "code": right}),
            )
            .await?;
        assert_error(&locked, 429, "AccountLockout");
        tokio::time::sleep(Duration::from_millis(2300)).await;
        let done = api
            .input(
                token,
                json!({"authentication": "secondary_totp", "code": right}),
            )
            .await?;
        assert_eq!(done.action_type(), Some("finished"), "{backend}: {done}");
    }
    Ok(())
}

/// Two flows at the second factor get the same credential at the same moment: the first
/// flow to finish has not written anything yet, and still only one gets in.
#[tokio::test]
async fn one_code_sent_to_two_flows_at_once_lets_one_in() -> Result<()> {
    let recovery_code = "7KQ2M9XZT4";
    for backend in backends() {
        let server = start(backend, "  secondary_authentication_mode: required\n").await?;
        let api = server.api();
        let email = "cleo@example.com";
        import_user(
            &server,
            json!({
                "email": email,
                "password": {"type": "bcrypt", "password_hash": bcrypt::hash(PASSWORD, 4)?},
                "mfa": {"totp": {"secret": IMPORTED_SECRET}},
                "recovery_codes": [recovery_code],
            }),
        )
        .await?;
        let secret = TotpSecret::from_base32(IMPORTED_SECRET)?;
        let inputs = [
            json!({"authentication": "secondary_totp", "code": totp::code_at_step(&secret, current_step())}),
            json!({"authentication": "recovery_code", "recovery_code": recovery_code}),
        ];
        for input in inputs {
            let a = login_until_second_factor(&api, email).await?;
            let b = login_until_second_factor(&api, email).await?;
            let (a, b) = tokio::join!(
                api.input(a.state_token().unwrap(), input.clone()),
                api.input(b.state_token().unwrap(), input.clone()),
            );
            let (a, b) = (a?, b?);
            let finished = [&a, &b]
                .iter()
                .filter(|r| r.action_type() == Some("finished"))
                .count();
            assert_eq!(finished, 1, "{backend} {input}: {a} / {b}");
            // The loser is refused as a wrong credential, or, when the winner committed
            // before its options were computed, told the last code is no option any more.
            let refused = if a.status == 200 { &b } else { &a };
            assert!(
                matches!(
                    (refused.status, refused.error_reason()),
                    (401, Some("InvalidCredentials")) | (400, Some("ValidationFailed"))
                ),
                "{backend} {input}: {refused}"
            );
        }
    }
    Ok(())
}

/// A browser of its own (its own cookie jar) on `server`.
fn browser(server: &TestServer) -> FlowApi {
    FlowApi::new(server.base_url(), server.new_client())
}

#[tokio::test]
async fn a_device_token_skips_the_second_factor_in_that_browser_only() -> Result<()> {
    for backend in backends() {
        let server = start(backend, "  secondary_authentication_mode: required\n").await?;
        let first = browser(&server);
        let enrolled = signup_with_totp(&first, "dev@example.com").await?;
        let second = login_until_second_factor(&first, "dev@example.com").await?;
        assert_eq!(
            second.at("/result/action/data/device_token_enabled"),
            Some(&json!(true)),
            "{backend}: {second}"
        );
        let code = totp::code_at_step(&enrolled.secret, enrolled.step + 1);
        let done = input_ok(
            &first,
            &second,
            json!({"authentication": "secondary_totp", "code": code, "request_device_token": true}),
        )
        .await?;
        assert_eq!(done.action_type(), Some("finished"), "{done}");
        let cookies: Vec<&str> = done
            .headers
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        let device = cookies
            .iter()
            .find(|c| c.starts_with("mfa_device_token="))
            .with_context(|| format!("no device token cookie in {cookies:?}"))?;
        let value = device["mfa_device_token=".len()..]
            .split(';')
            .next()
            .unwrap();
        assert_eq!(value.len(), 64);
        assert!(value.chars().all(|c| CROCKFORD.contains(c)), "{device}");
        for attribute in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=2592000"] {
            assert!(device.contains(attribute), "{device} lacks {attribute}");
        }

        // The same browser: the password alone finishes the login.
        let skipped = login_until_second_factor(&first, "dev@example.com").await?;
        assert_eq!(
            skipped.action_type(),
            Some("finished"),
            "{backend}: {skipped}"
        );

        // Another browser, or a forged token: the second factor is asked for.
        let other = login_until_second_factor(&browser(&server), "dev@example.com").await?;
        assert_eq!(other.action_type(), Some("authenticate"), "{other}");
        let forged = server
            .new_client()
            .post(server.url("/api/v1/authentication_flows"))
            .header("cookie", format!("mfa_device_token={}", "0".repeat(64)))
            .json(&json!({"type": "login", "name": "default", "batch_input": [
                {"identification": "email", "login_id": "dev@example.com"},
                {"authentication": "primary_password", "password": PASSWORD},
            ]}))
            .send()
            .await?;
        let forged = ApiResponse::read(forged).await?;
        assert_eq!(forged.action_type(), Some("authenticate"), "{forged}");

        // Another user presenting this browser's token is still asked.
        let stranger = browser(&server);
        signup_with_totp(&stranger, "stranger@example.com").await?;
        let with_token = server
            .new_client()
            .post(server.url("/api/v1/authentication_flows"))
            .header("cookie", format!("mfa_device_token={value}"))
            .json(&json!({"type": "login", "name": "default", "batch_input": [
                {"identification": "email", "login_id": "stranger@example.com"},
                {"authentication": "primary_password", "password": PASSWORD},
            ]}))
            .send()
            .await?;
        let with_token = ApiResponse::read(with_token).await?;
        assert_eq!(
            with_token.action_type(),
            Some("authenticate"),
            "{with_token}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn device_tokens_can_be_switched_off() -> Result<()> {
    let server = start(
        Backend::Sqlite,
        "  secondary_authentication_mode: required\n  device_token: {disabled: true}\n",
    )
    .await?;
    let api = browser(&server);
    let enrolled = signup_with_totp(&api, "nodev@example.com").await?;
    let second = login_until_second_factor(&api, "nodev@example.com").await?;
    assert_eq!(
        second.at("/result/action/data/device_token_enabled"),
        Some(&json!(false))
    );
    let code = totp::code_at_step(&enrolled.secret, enrolled.step + 1);
    let refused = api
        .input(
            second.state_token().unwrap(),
            json!({"authentication": "secondary_totp", "code": code, "request_device_token": true}),
        )
        .await?;
    assert_error(&refused, 400, "ValidationFailed");
    let not_a_bool = api
        .input(
            second.state_token().unwrap(),
            json!({"authentication": "secondary_totp", "code": code, "request_device_token": "yes"}),
        )
        .await?;
    assert_error(&not_a_bool, 400, "ValidationFailed");
    assert_eq!(
        not_a_bool.str_at("/error/info/causes/0/location"),
        Some("/request_device_token")
    );
    let done = input_ok(
        &api,
        &second,
        json!({"authentication": "secondary_totp", "code": code, "request_device_token": false}),
    )
    .await?;
    assert_eq!(done.action_type(), Some("finished"));
    assert!(
        !done
            .headers
            .get_all("set-cookie")
            .iter()
            .any(|c| c.to_str().unwrap_or("").starts_with("mfa_device_token=")),
        "a disabled device token was issued"
    );
    Ok(())
}

/// `authenticator.totp.maximum`: `create_authenticator` offers no TOTP app to a user who has
/// the maximum (here 0, so the required second factor must be a secondary password).
#[tokio::test]
async fn the_totp_maximum_hides_the_totp_option() -> Result<()> {
    let config = "\
verification: {claims: {email: {required: false}}}
authenticator:
  password: {hashing: {memory_kib: 1024, iterations: 1, parallelism: 1}}
  totp: {maximum: 0}
authentication:
  secondary_authenticators: [totp, password]
  secondary_authentication_mode: required
";
    for backend in backends() {
        let server = TestServer::builder(backend)
            .bin(BIN)
            .extra_yaml(config)
            .start()
            .await?;
        let api = server.api();
        let created = api.create_flow("signup", "default").await?;
        let primary = input_ok(
            &api,
            &created,
            json!({"identification": "email", "login_id": "max@example.com"}),
        )
        .await?;
        let second = input_ok(
            &api,
            &primary,
            json!({"authentication": "primary_password", "new_password": PASSWORD}),
        )
        .await?;
        assert_eq!(
            second.action_type(),
            Some("create_authenticator"),
            "{second}"
        );
        assert_eq!(authentications(&second), ["secondary_password"], "{second}");
        let refused = api
            .input(
                second.state_token().unwrap(),
                json!({"authentication": "secondary_totp"}),
            )
            .await?;
        assert_eq!(refused.status, 400, "{refused}");
        let codes = input_ok(
            &api,
            &second,
            json!({"authentication": "secondary_password", "new_password": "another secret 2"}),
        )
        .await?;
        assert_eq!(codes.action_type(), Some("view_recovery_code"), "{codes}");
        let done = input_ok(&api, &codes, json!({"confirm_recovery_code": true})).await?;
        assert_eq!(done.action_type(), Some("finished"), "{done}");
    }
    Ok(())
}
