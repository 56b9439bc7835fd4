//! Signup, login and signup_login with passwords through the Authentication Flow API,
//! against the real binary on every available backend (SQLite; PostgreSQL + Redis).

use anyhow::Result;
use authflow_testkit::{ApiResponse, Backend, FlowApi, TestServer, backends};
use serde_json::{Value, json};

/// Password-only signups: no email verification step.
const NO_VERIFY: &str = "verification: {claims: {email: {required: false}}}\n";

async fn start(backend: Backend, extra: &str) -> Result<TestServer> {
    TestServer::builder(backend)
        .bin(env!("CARGO_BIN_EXE_authflow"))
        .extra_yaml(extra)
        .start()
        .await
}

fn assert_error(r: &ApiResponse, status: u16, reason: &str) {
    assert_eq!(r.status, status, "{r}");
    assert_eq!(r.error_reason(), Some(reason), "{r}");
    assert_eq!(r.error_code(), Some(u64::from(status)), "{r}");
}

fn session_cookie(r: &ApiResponse) -> Option<String> {
    r.headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with("session="))
        .map(str::to_string)
}

async fn signup(api: &FlowApi, email: &str, password: &str) -> ApiResponse {
    api.signup_with_password(email, password)
        .await
        .expect("signup finishes")
}

#[tokio::test]
async fn signup_then_login_with_email_and_password() -> Result<()> {
    for backend in backends() {
        let server = start(backend, NO_VERIFY).await?;
        let api = server.api();

        let created = api.create_flow("signup", "default").await?;
        created.ensure_status(200)?;
        assert_eq!(created.str_at("/result/type"), Some("signup"));
        assert_eq!(created.str_at("/result/name"), Some("default"));
        assert_eq!(created.action_type(), Some("identify"));
        assert_eq!(
            created.at("/result/action/data"),
            Some(&json!({"type": "identification_data", "options": [{"identification": "email"}]}))
        );
        assert!(created.at("/result/id").is_none(), "no id member");
        let token = created.state_token().unwrap().to_string();
        assert!(token.starts_with("authflowstate_") && token.len() == 14 + 32);

        let identified = api
            .input(
                &token,
                json!({"identification": "email", "login_id": "Alice@Example.com"}),
            )
            .await?;
        identified.ensure_status(200)?;
        assert_eq!(identified.action_type(), Some("create_authenticator"));
        assert_eq!(
            identified.at("/result/action/data/options/0"),
            Some(&json!({"authentication": "primary_password",
                "password_policy": {"minimum_length": 8, "history": {"enabled": false}}}))
        );
        let finished = api
            .input(
                identified.state_token().unwrap(),
                json!({"authentication": "primary_password", "new_password": "correct horse 1"}),
            )
            .await?;
        finished.ensure_status(200)?;
        assert_eq!(finished.action_type(), Some("finished"));
        assert_eq!(finished.at("/result/action/data"), Some(&json!({})));
        let cookie = session_cookie(&finished).expect("session cookie");
        assert!(
            cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"),
            "{cookie}"
        );
        assert!(!cookie.contains("Secure"), "plain http origin: {cookie}");
        assert_eq!(finished.header("cache-control"), Some("no-store"));

        // Login by the normalized email, whatever its case.
        let login = api.create_flow("login", "default").await?;
        let auth = api
            .input(
                login.state_token().unwrap(),
                json!({"identification": "email", "login_id": "alice@example.COM"}),
            )
            .await?;
        auth.ensure_status(200)?;
        assert_eq!(auth.action_type(), Some("authenticate"));
        assert_eq!(
            auth.at("/result/action/data"),
            Some(&json!({"type": "authentication_data",
                "options": [{"authentication": "primary_password"}], "device_token_enabled": false}))
        );
        let done = api
            .input(
                auth.state_token().unwrap(),
                json!({"authentication": "primary_password", "password": "correct horse 1"}),
            )
            .await?;
        assert_eq!(done.action_type(), Some("finished"), "{done}");
        assert!(session_cookie(&done).is_some());
    }
    Ok(())
}

#[tokio::test]
async fn wrong_password_keeps_the_state_and_the_token_can_retry() -> Result<()> {
    for backend in backends() {
        let server = start(backend, NO_VERIFY).await?;
        let api = server.api();
        signup(&api, "bob@example.com", "a good password").await;

        let login = api.create_flow("login", "default").await?;
        let auth = api
            .input(
                login.state_token().unwrap(),
                json!({"identification": "email", "login_id": "bob@example.com"}),
            )
            .await?;
        let token = auth.state_token().unwrap().to_string();
        let wrong = api
            .input(
                &token,
                json!({"authentication": "primary_password", "password": "not it"}),
            )
            .await?;
        assert_error(&wrong, 401, "InvalidCredentials");
        assert_eq!(wrong.str_at("/error/name"), Some("Unauthorized"));
        assert_eq!(wrong.str_at("/error/message"), Some("invalid credentials"));
        assert_eq!(wrong.str_at("/error/info/FlowType"), Some("login"));
        assert_eq!(
            wrong.str_at("/error/info/AuthenticationType"),
            Some("password")
        );
        assert_eq!(
            wrong.state_token(),
            Some(token.as_str()),
            "result echoes the sent token"
        );
        assert_eq!(wrong.action_type(), Some("authenticate"));

        let right = api
            .input(
                &token,
                json!({"authentication": "primary_password", "password": "a good password"}),
            )
            .await?;
        assert_eq!(right.action_type(), Some("finished"), "{right}");
        // Finishing invalidates every token of the flow.
        let after = api.read_state(&token).await?;
        assert_error(&after, 404, "AuthenticationFlowNotFound");
        let reuse = api
            .input(
                &token,
                json!({"authentication": "primary_password", "password": "a good password"}),
            )
            .await?;
        assert_error(&reuse, 404, "AuthenticationFlowNotFound");
        assert!(reuse.at("/result").is_none());
    }
    Ok(())
}

#[tokio::test]
async fn phone_and_password_login_in_one_request_with_batch_input() -> Result<()> {
    let config = "identity: {login_id: {keys: [{type: phone}]}}\n\
                  verification: {claims: {phone_number: {required: false}}}\n";
    for backend in backends() {
        let server = start(backend, config).await?;
        let api = server.api();
        let created = api
            .create_flow_with(json!({"type": "signup", "name": "default", "batch_input": [
                {"identification": "phone", "login_id": "+85251001234"},
                {"authentication": "primary_password", "new_password": "12345678"},
            ]}))
            .await?;
        assert_eq!(created.action_type(), Some("finished"), "{created}");

        let login = api
            .create_flow_with(json!({"type": "login", "name": "default", "batch_input": [
                {"identification": "phone", "login_id": "+85251001234"},
                {"authentication": "primary_password", "password": "12345678"},
            ]}))
            .await?;
        assert_eq!(login.action_type(), Some("finished"), "{login}");
        assert!(session_cookie(&login).is_some());

        // A failing batch answers the error with the state the request started from.
        let failing = api
            .create_flow_with(json!({"type": "login", "name": "default", "batch_input": [
                {"identification": "phone", "login_id": "+85251001234"},
                {"authentication": "primary_password", "password": "wrong"},
            ]}))
            .await?;
        assert_error(&failing, 401, "InvalidCredentials");
        assert_eq!(failing.action_type(), Some("identify"), "{failing}");

        let invalid = api
            .create_flow_with(json!({"type": "signup", "name": "default", "batch_input": [
                {"identification": "phone", "login_id": "+852 5100 1234"},
            ]}))
            .await?;
        assert_error(&invalid, 400, "ValidationFailed");
        assert_eq!(invalid.str_at("/error/message"), Some("invalid login ID"));
        assert_eq!(invalid.str_at("/error/info/causes/0/kind"), Some("format"));
        assert_eq!(
            invalid.str_at("/error/info/causes/0/details/format"),
            Some("phone")
        );
    }
    Ok(())
}

#[tokio::test]
async fn an_earlier_token_branches_and_abandoned_flows_leave_nothing() -> Result<()> {
    for backend in backends() {
        let server = start(backend, NO_VERIFY).await?;
        let api = server.api();
        let created = api.create_flow("signup", "default").await?;
        let first = created.state_token().unwrap().to_string();
        let a = api
            .input(
                &first,
                json!({"identification": "email", "login_id": "first@example.com"}),
            )
            .await?;
        assert_eq!(a.action_type(), Some("create_authenticator"));
        // Go back: the first token still works and can choose differently.
        let b = api
            .input(
                &first,
                json!({"identification": "email", "login_id": "second@example.com"}),
            )
            .await?;
        assert_eq!(b.action_type(), Some("create_authenticator"));
        assert_ne!(a.state_token(), b.state_token());
        let again = api.read_state(&first).await?;
        assert_eq!(again.state_token(), Some(first.as_str()));
        assert_eq!(again.action_type(), Some("identify"));

        let done = api
            .input(
                b.state_token().unwrap(),
                json!({"authentication": "primary_password", "new_password": "password two"}),
            )
            .await?;
        assert_eq!(done.action_type(), Some("finished"));
        // The other branch of the same flow can no longer finish.
        let other = api
            .input(
                a.state_token().unwrap(),
                json!({"authentication": "primary_password", "new_password": "password one"}),
            )
            .await?;
        assert_error(&other, 404, "AuthenticationFlowNotFound");

        // Nothing of the abandoned branch was written.
        let login = api.create_flow("login", "default").await?;
        let missing = api
            .input(
                login.state_token().unwrap(),
                json!({"identification": "email", "login_id": "first@example.com"}),
            )
            .await?;
        assert_error(&missing, 404, "UserNotFound");
        assert_eq!(missing.str_at("/error/message"), Some("user not found"));
        assert_eq!(
            missing.str_at("/error/info/LoginIDTypeIncoming"),
            Some("email")
        );
        assert_eq!(
            missing.str_at("/error/info/IdentityTypeIncoming"),
            Some("login_id")
        );
        assert_eq!(
            missing.at("/error/info/ExistingIdentities"),
            Some(&json!([]))
        );
        assert_eq!(
            missing.action_type(),
            Some("identify"),
            "result is the unchanged state"
        );
    }
    Ok(())
}

#[tokio::test]
async fn signup_errors_invalid_login_id_duplicate_and_weak_password() -> Result<()> {
    let config = format!(
        "{NO_VERIFY}authenticator: {{password: {{policy: {{min_length: 10, digit_required: true, symbol_required: true, minimum_guessable_level: 3}}}}}}\n"
    );
    for backend in backends() {
        let server = start(backend, &config).await?;
        let api = server.api();
        let created = api.create_flow("signup", "default").await?;
        let token = created.state_token().unwrap().to_string();

        let bad = api
            .input(
                &token,
                json!({"identification": "email", "login_id": "not-an-email"}),
            )
            .await?;
        assert_error(&bad, 400, "ValidationFailed");
        assert_eq!(bad.str_at("/error/message"), Some("invalid login ID"));
        assert_eq!(
            bad.str_at("/error/info/causes/0/location"),
            Some("/login_id")
        );
        assert_eq!(
            bad.str_at("/error/info/causes/0/details/format"),
            Some("email")
        );

        let wrong_shape = api
            .input(&token, json!({"identification": "email"}))
            .await?;
        assert_error(&wrong_shape, 400, "ValidationFailed");
        assert_eq!(
            wrong_shape.str_at("/error/info/causes/0/kind"),
            Some("required")
        );
        let not_offered = api
            .input(
                &token,
                json!({"identification": "phone", "login_id": "+85251001234"}),
            )
            .await?;
        assert_error(&not_offered, 400, "ValidationFailed");
        assert_eq!(
            not_offered.str_at("/error/info/causes/0/kind"),
            Some("enum")
        );

        let next = api
            .input(
                &token,
                json!({"identification": "email", "login_id": "carol@example.com"}),
            )
            .await?;
        let policy = next
            .at("/result/action/data/options/0/password_policy")
            .cloned();
        assert_eq!(
            policy,
            Some(
                json!({"minimum_length": 10, "digit_required": true, "symbol_required": true,
                "minimum_zxcvbn_score": 2, "history": {"enabled": false}})
            )
        );
        let weak = api
            .input(
                next.state_token().unwrap(),
                json!({"authentication": "primary_password", "new_password": "password"}),
            )
            .await?;
        assert_error(&weak, 400, "PasswordPolicyViolated");
        let names: Vec<&str> = weak
            .at("/error/info/causes")
            .and_then(Value::as_array)
            .map(|c| c.iter().filter_map(|x| x["Name"].as_str()).collect())
            .unwrap_or_default();
        assert_eq!(
            names,
            [
                "PasswordTooShort",
                "PasswordDigitRequired",
                "PasswordSymbolRequired",
                "PasswordBelowGuessableLevel"
            ]
        );
        assert_eq!(
            weak.at("/error/info/causes/0/Info"),
            Some(&json!({"min_length": 10, "pw_length": 8}))
        );
        let ok = api
            .input(
                next.state_token().unwrap(),
                json!({"authentication": "primary_password", "new_password": "Tr0ub4dor&3-horse!"}),
            )
            .await?;
        assert_eq!(ok.action_type(), Some("finished"), "{ok}");

        let again = api.create_flow("signup", "default").await?;
        let dup = api
            .input(
                again.state_token().unwrap(),
                json!({"identification": "email", "login_id": "CAROL@example.com"}),
            )
            .await?;
        assert_error(&dup, 400, "InvariantViolated");
        assert_eq!(dup.str_at("/error/message"), Some("duplicated identity"));
        assert_eq!(
            dup.str_at("/error/info/cause/kind"),
            Some("DuplicatedIdentity")
        );
        assert_eq!(dup.str_at("/error/info/LoginIDTypeExisting"), Some("email"));
        assert_eq!(dup.str_at("/error/info/FlowType"), Some("signup"));
    }
    Ok(())
}

#[tokio::test]
async fn signup_login_routes_new_and_existing_login_ids() -> Result<()> {
    for backend in backends() {
        let server = start(backend, NO_VERIFY).await?;
        let api = server.api();
        signup(&api, "dave@example.com", "dave's password").await;

        let existing = api.create_flow("signup_login", "default").await?;
        assert_eq!(existing.str_at("/result/type"), Some("signup_login"));
        let routed = api
            .input(
                existing.state_token().unwrap(),
                json!({"identification": "email", "login_id": "dave@example.com"}),
            )
            .await?;
        assert_eq!(routed.str_at("/result/type"), Some("login"), "{routed}");
        assert_eq!(routed.action_type(), Some("authenticate"));
        let done = api
            .input(
                routed.state_token().unwrap(),
                json!({"authentication": "primary_password", "password": "dave's password"}),
            )
            .await?;
        assert_eq!(done.action_type(), Some("finished"));

        let new = api.create_flow("signup_login", "default").await?;
        let routed = api
            .input(
                new.state_token().unwrap(),
                json!({"identification": "email", "login_id": "erin@example.com"}),
            )
            .await?;
        assert_eq!(routed.str_at("/result/type"), Some("signup"), "{routed}");
        assert_eq!(routed.action_type(), Some("create_authenticator"));
    }
    Ok(())
}

#[tokio::test]
async fn flow_names_types_and_disabled_public_signup() -> Result<()> {
    let config = format!("{NO_VERIFY}authentication: {{public_signup_disabled: true}}\n");
    for backend in backends() {
        let server = start(backend, &config).await?;
        let api = server.api();
        assert_error(
            &api.create_flow("login", "nope").await?,
            404,
            "AuthenticationFlowFlowNotFound",
        );
        assert_error(
            &api.create_flow("promote", "default").await?,
            400,
            "AuthenticationFlowUnknownFlow",
        );
        let signup = api.create_flow("signup", "default").await?;
        assert_error(&signup, 403, "AuthenticationFlowNoPublicSignup");
        let sl = api.create_flow("signup_login", "default").await?;
        let to_signup = api
            .input(
                sl.state_token().unwrap(),
                json!({"identification": "email", "login_id": "new@example.com"}),
            )
            .await?;
        assert_error(&to_signup, 403, "AuthenticationFlowNoPublicSignup");
        assert_eq!(
            to_signup.str_at("/error/info/FlowType"),
            Some("signup_login")
        );
    }
    Ok(())
}

#[tokio::test]
async fn password_guessing_is_rate_limited_per_user_and_ip() -> Result<()> {
    let config = format!(
        "{NO_VERIFY}authentication: {{rate_limits: {{password: {{per_user_per_ip: {{period: 1m, burst: 2}}}}}}}}\n"
    );
    for backend in backends() {
        let server = start(backend, &config).await?;
        let api = server.api();
        signup(&api, "frank@example.com", "frank's password").await;
        signup(&api, "grace@example.com", "grace's password").await;

        let attempt = |email: &'static str, password: &'static str| {
            let api = api.clone();
            async move {
                let login = api.create_flow("login", "default").await?;
                let auth = api
                    .input(
                        login.state_token().unwrap(),
                        json!({"identification": "email", "login_id": email}),
                    )
                    .await?;
                api.input(
                    auth.state_token().unwrap(),
                    json!({"authentication": "primary_password", "password": password}),
                )
                .await
            }
        };
        assert_error(
            &attempt("frank@example.com", "guess 1").await?,
            401,
            "InvalidCredentials",
        );
        assert_error(
            &attempt("frank@example.com", "guess 2").await?,
            401,
            "InvalidCredentials",
        );
        let limited = attempt("frank@example.com", "frank's password").await?;
        assert_error(&limited, 429, "RateLimited");
        assert_eq!(
            limited.str_at("/error/message"),
            Some("request rate limited")
        );
        assert_eq!(
            limited.str_at("/error/info/bucket_name"),
            Some("VerifyPasswordPerUserPerIP")
        );
        assert_eq!(
            limited.str_at("/error/info/rate_limit_name"),
            Some("authentication.password")
        );
        assert_eq!(
            limited.at("/error/info/rate_limit"),
            Some(
                &json!({"name": "authentication.password.per_user_per_ip", "group": "authentication.password"})
            )
        );
        assert_eq!(limited.str_at("/error/info/FlowType"), Some("login"));
        // Another user from the same IP is not affected.
        let other = attempt("grace@example.com", "grace's password").await?;
        assert_eq!(other.action_type(), Some("finished"), "{other}");
    }
    Ok(())
}

#[tokio::test]
async fn account_enumeration_and_api_limits() -> Result<()> {
    let config = format!(
        "{NO_VERIFY}authentication: {{rate_limits: {{account_enumeration: {{per_ip: {{period: 1m, burst: 2}}}}}}}}\n\
         authentication_flow: {{rate_limits: {{per_ip: {{period: 1m, burst: 12}}}}}}\n"
    );
    for backend in backends() {
        let server = start(backend, &config).await?;
        let api = server.api();
        let login = api.create_flow("login", "default").await?;
        let token = login.state_token().unwrap().to_string();
        let probe = |who: &'static str| {
            let (api, token) = (api.clone(), token.clone());
            async move {
                api.input(&token, json!({"identification": "email", "login_id": who}))
                    .await
            }
        };
        assert_error(&probe("a@example.com").await?, 404, "UserNotFound");
        assert_error(&probe("b@example.com").await?, 404, "UserNotFound");
        let limited = probe("c@example.com").await?;
        assert_error(&limited, 429, "RateLimited");
        assert_eq!(
            limited.str_at("/error/info/bucket_name"),
            Some("AccountEnumerationPerIP")
        );

        // The whole-API limit: 12 requests per minute, 4 used so far.
        let mut last = None;
        for _ in 0..9 {
            last = Some(api.read_state(&token).await?);
        }
        let last = last.unwrap();
        assert_error(&last, 429, "TooManyRequest");
        assert_eq!(last.str_at("/error/name"), Some("TooManyRequest"));
        assert!(last.at("/result").is_none());
    }
    Ok(())
}

#[tokio::test]
async fn concurrent_signups_of_one_email_make_one_user_and_distinct_ones_all_succeed() -> Result<()>
{
    for backend in backends() {
        let server = start(backend, NO_VERIFY).await?;
        let api = server.api();
        let same = (0..30).map(|i| {
            let api = api.clone();
            async move {
                api.signup_with_password("same@example.com", &format!("password number {i}"))
                    .await
            }
        });
        let results = futures::future::join_all(same).await;
        let finished = results.iter().filter(|r| r.is_ok()).count();
        assert_eq!(finished, 1, "exactly one signup of one email finishes");

        let distinct = (0..40).map(|i| {
            let api = api.clone();
            async move {
                let email = format!("user{i}@example.com");
                api.signup_with_password(&email, "a shared password")
                    .await?;
                api.login_with_password(&email, "a shared password").await
            }
        });
        for r in futures::future::join_all(distinct).await {
            assert_eq!(r?.action_type(), Some("finished"));
        }
    }
    Ok(())
}

#[tokio::test]
async fn concurrent_finishes_report_duplicated_identity_at_commit() -> Result<()> {
    for backend in backends() {
        let server = start(backend, NO_VERIFY).await?;
        let api = server.api();
        // Two flows pass identify before either commits; the second commit is refused.
        let mut tokens = Vec::new();
        for _ in 0..2 {
            let c = api.create_flow("signup", "default").await?;
            let i = api
                .input(
                    c.state_token().unwrap(),
                    json!({"identification": "email", "login_id": "race@example.com"}),
                )
                .await?;
            tokens.push(i.state_token().unwrap().to_string());
        }
        let input = json!({"authentication": "primary_password", "new_password": "race password"});
        let first = api.input(&tokens[0], input.clone()).await?;
        assert_eq!(first.action_type(), Some("finished"));
        let second = api.input(&tokens[1], input).await?;
        assert_error(&second, 400, "InvariantViolated");
        assert_eq!(
            second.str_at("/error/info/cause/kind"),
            Some("DuplicatedIdentity")
        );
        assert_eq!(
            second.state_token(),
            Some(tokens[1].as_str()),
            "the flow stays unfinished"
        );
    }
    Ok(())
}

#[tokio::test]
async fn custom_username_flow_runs_as_written() -> Result<()> {
    let config = "identity: {login_id: {keys: [{type: username}]}}\n\
        authenticator: {password: {policy: {min_length: 8, excluded_keywords: [changeme]}}}\n\
        authentication_flow:\n\
        \x20 signup_flows:\n\
        \x20 - name: staff\n\
        \x20   steps:\n\
        \x20   - name: who\n\
        \x20     type: identify\n\
        \x20     one_of: [{identification: username}]\n\
        \x20   - type: create_authenticator\n\
        \x20     one_of: [{authentication: primary_password}]\n\
        \x20 login_flows:\n\
        \x20 - name: staff\n\
        \x20   steps:\n\
        \x20   - type: identify\n\
        \x20     one_of:\n\
        \x20     - identification: username\n\
        \x20       steps:\n\
        \x20       - name: staff_password\n\
        \x20         type: authenticate\n\
        \x20         one_of: [{authentication: primary_password}]\n\
        \x20       - {type: change_password, target_step: staff_password}\n\
        \x20   - type: check_account_status\n";
    for backend in backends() {
        let server = start(backend, config).await?;
        let api = server.api();
        // Declared flows run by name; the policy applies to new passwords.
        let s = api
            .create_flow_with(json!({"type": "signup", "name": "staff", "batch_input": [
                {"identification": "username", "login_id": "Ops_Admin1"},
                {"authentication": "primary_password", "new_password": "changeme-please"},
            ]}))
            .await?;
        assert_error(&s, 400, "PasswordPolicyViolated");
        assert_eq!(
            s.str_at("/error/info/causes/0/Name"),
            Some("PasswordContainingExcludedKeywords")
        );

        let s = api
            .create_flow_with(json!({"type": "signup", "name": "staff", "batch_input": [
                {"identification": "username", "login_id": "Ops_Admin1"},
                {"authentication": "primary_password", "new_password": "first password"},
            ]}))
            .await?;
        assert_eq!(s.action_type(), Some("finished"), "{s}");
        let l = api
            .create_flow_with(json!({"type": "login", "name": "staff", "batch_input": [
                {"identification": "username", "login_id": "ops_admin1"},
                {"authentication": "primary_password", "password": "first password"},
            ]}))
            .await?;
        assert_eq!(
            l.action_type(),
            Some("finished"),
            "policy met: change_password skipped: {l}"
        );
        let default_missing = api.create_flow("login", "default").await?;
        assert_eq!(
            default_missing.action_type(),
            Some("identify"),
            "the generated default flow remains"
        );
    }
    Ok(())
}

#[tokio::test]
async fn failed_passwords_lock_the_account_until_the_lockout_ends() -> Result<()> {
    let config = format!(
        "{NO_VERIFY}authentication: {{lockout: {{max_attempts: 3, history_duration: 1m, \
         minimum_duration: 2s, maximum_duration: 10s, backoff_factor: 2, lockout_type: per_user, \
         password: {{enabled: true}}}}}}\n"
    );
    for backend in backends() {
        let server = start(backend, &config).await?;
        let api = server.api();
        signup(&api, "heidi@example.com", "heidi's password").await;
        let attempt = |password: &'static str| {
            let api = api.clone();
            async move {
                api.create_flow_with(json!({"type": "login", "name": "default", "batch_input": [
                    {"identification": "email", "login_id": "heidi@example.com"},
                    {"authentication": "primary_password", "password": password},
                ]}))
                .await
            }
        };
        for _ in 0..3 {
            assert_error(&attempt("wrong").await?, 401, "InvalidCredentials");
        }
        let locked = attempt("heidi's password").await?;
        assert_error(&locked, 429, "AccountLockout");
        let until = locked.str_at("/error/info/until").expect("until");
        assert!(chrono_like(until), "{until}");
        tokio::time::sleep(std::time::Duration::from_millis(2300)).await;
        let ok = attempt("heidi's password").await?;
        assert_eq!(ok.action_type(), Some("finished"), "{ok}");
    }
    Ok(())
}

/// An RFC 3339 UTC timestamp such as `2026-12-02T10:15:30Z`.
fn chrono_like(s: &str) -> bool {
    s.len() == 20 && s.ends_with('Z') && s.as_bytes()[10] == b'T'
}

#[tokio::test]
async fn a_required_step_with_nothing_usable_is_no_authenticator() -> Result<()> {
    let config = format!(
        "{NO_VERIFY}authentication_flow:\n\
        \x20 login_flows:\n\
        \x20 - name: second_password\n\
        \x20   steps:\n\
        \x20   - type: identify\n\
        \x20     one_of:\n\
        \x20     - identification: email\n\
        \x20       steps:\n\
        \x20       - type: authenticate\n\
        \x20         one_of: [{{authentication: secondary_password}}]\n"
    );
    for backend in backends() {
        let server = start(backend, &config).await?;
        let api = server.api();
        signup(&api, "ivan@example.com", "ivan's password").await;
        let login = api.create_flow("login", "second_password").await?;
        let r = api
            .input(
                login.state_token().unwrap(),
                json!({"identification": "email", "login_id": "ivan@example.com"}),
            )
            .await?;
        assert_error(&r, 400, "InvariantViolated");
        assert_eq!(r.str_at("/error/message"), Some("no authenticator"));
        assert_eq!(r.str_at("/error/info/cause/kind"), Some("NoAuthenticator"));
    }
    Ok(())
}
