//! The backend `/auth` API (backend-auth-api.md, seed 003) and `authflow org`, through HTTP
//! and the CLI against the real binary, on every backend of `backends()`.

use std::process::Output;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use authflow_testkit::{
    ApiResponse, Backend, FlowApi, TestServer, backends, run_bin, stderr_text, stdout_text,
};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_authflow");
const PASSWORD: &str = "Secr3t!pass";
const NEW_PASSWORD: &str = "N3w!secret";
const WRONG_PASSWORD: &str = "Wr0ng!pass";

/// No email verification and cheap hashing, so tests are fast.
const COMMON_YAML: &str = "\
verification: {claims: {email: {required: false}}}
authenticator: {password: {hashing: {memory_kib: 1024, iterations: 1, parallelism: 1}}}
";
/// Password limits that the tests do not reach.
const GENEROUS_LIMITS_YAML: &str = "authentication: {rate_limits: {general: \
    {per_ip: {period: 1m, burst: 1000}, per_user_per_ip: {period: 1m, burst: 1000}}}}\n";

fn auth_api_yaml(extra: &str) -> String {
    format!(
        "{COMMON_YAML}{GENEROUS_LIMITS_YAML}auth_api:\n  key_rotation_grace_period: 2s\n  rate_limits:\n    \
         anti_abuse_token_per_ip: {{period: 1m, burst: 1000}}\n    \
         anti_abuse_token_per_identity: {{period: 1m, burst: 25}}\n{extra}"
    )
}

async fn start(backend: Backend, auth_api_extra: &str) -> Result<TestServer> {
    TestServer::builder(backend)
        .bin(BIN)
        .extra_yaml(&auth_api_yaml(auth_api_extra))
        .start()
        .await
}

// ------------------------------------------------------------------------------------------------
// CLI and HTTP helpers

async fn cli(server: &TestServer, args: &[&str]) -> Result<Output> {
    let config = server
        .config_path()
        .to_str()
        .context("config path")?
        .to_owned();
    let mut full = vec!["org", args[0], "--config", &config];
    full.extend_from_slice(&args[1..]);
    run_bin(std::path::Path::new(BIN), &full).await
}

/// An organization created through `authflow org create`, and its key.
#[derive(Clone)]
struct Org {
    id: String,
    key: String,
}

async fn create_org(server: &TestServer, name: &str) -> Result<Org> {
    let out = cli(server, &["create", "--name", name]).await?;
    ensure!(
        out.status.success(),
        "org create failed: {}",
        stderr_text(&out)
    );
    let line: Value = serde_json::from_str(stdout_text(&out).trim())?;
    Ok(Org {
        id: line["org_id"].as_str().context("org_id")?.to_owned(),
        key: line["api_key"].as_str().context("api_key")?.to_owned(),
    })
}

struct AuthApi {
    api: FlowApi,
}

impl AuthApi {
    fn new(server: &TestServer) -> Self {
        AuthApi { api: server.api() }
    }

    async fn post(&self, path: &str, key: Option<&str>, body: Value) -> Result<ApiResponse> {
        let mut request = self.api.http().post(self.api.url(path)).json(&body);
        if let Some(key) = key {
            request = request.header("X-API-Key", key);
        }
        self.api.send(request).await
    }

    async fn foobar(&self, org: &Org, email: &str) -> Result<String> {
        let r = self
            .post("/auth/fooBar", Some(&org.key), json!({"identity": email}))
            .await?;
        r.ensure_status(200)?;
        Ok(r.str_at("/foobar").context("foobar")?.to_owned())
    }

    async fn signup(&self, org: &Org, email: &str, password: &str) -> Result<ApiResponse> {
        let foobar = self.foobar(org, email).await?;
        self.signup_with(org, &foobar, email, password).await
    }

    async fn signup_with(
        &self,
        org: &Org,
        foobar: &str,
        email: &str,
        password: &str,
    ) -> Result<ApiResponse> {
        let body = json!({"foobar": foobar, "api_key": org.key, "email": email,
            "password": password, "fullname": "Ada Lovelace", "disclaimed": "true"});
        self.post("/auth/signup", None, body).await
    }

    async fn login(&self, org: &Org, email: &str, password: &str) -> Result<ApiResponse> {
        let foobar = self.foobar(org, email).await?;
        self.login_with(org, &foobar, email, password, &org.id)
            .await
    }

    async fn login_with(
        &self,
        org: &Org,
        foobar: &str,
        email: &str,
        password: &str,
        org_id: &str,
    ) -> Result<ApiResponse> {
        let body =
            json!({"foobar": foobar, "email": email, "password": password, "org_id": org_id});
        self.post("/auth/login", Some(&org.key), body).await
    }

    /// Logs in and returns the session token.
    async fn session(&self, org: &Org, email: &str, password: &str) -> Result<String> {
        let r = self.login(org, email, password).await?;
        r.ensure_status(200)?;
        Ok(r.str_at("/sessionToken")
            .context("sessionToken")?
            .to_owned())
    }

    async fn with_token(
        &self,
        path: &str,
        org: &Org,
        token: &str,
        email: &str,
    ) -> Result<ApiResponse> {
        let body = json!({"sessionToken": token, "email": email});
        self.post(path, Some(&org.key), body).await
    }

    async fn validate(&self, org: &Org, token: &str, email: &str) -> Result<ApiResponse> {
        self.with_token("/auth/validate", org, token, email).await
    }

    async fn logout(&self, org: &Org, token: &str, email: &str) -> Result<ApiResponse> {
        self.with_token("/auth/logout", org, token, email).await
    }

    async fn change_password(
        &self,
        org: &Org,
        token: &str,
        email: &str,
        new_password: &str,
    ) -> Result<ApiResponse> {
        let body = json!({"sessionToken": token, "email": email, "newPassword": new_password});
        self.post("/auth/changePassword", Some(&org.key), body)
            .await
    }
}

/// The error shape of backend-auth-api.md 3, with `Cache-Control: no-store`.
fn assert_error(r: &ApiResponse, status: u16, code: &str) -> Result<()> {
    ensure!(
        r.status == status && r.str_at("/error/code") == Some(code),
        "expected HTTP {status} {code}, got {r}"
    );
    ensure!(r.str_at("/error/message").is_some(), "no message: {r}");
    ensure!(
        r.header("cache-control") == Some("no-store"),
        "no no-store: {r}"
    );
    Ok(())
}

fn assert_param_error(r: &ApiResponse, code: &str, param: &str) -> Result<()> {
    assert_error(r, 400, code)?;
    ensure!(
        r.str_at("/error/param") == Some(param),
        "expected param {param}: {r}"
    );
    Ok(())
}

fn assert_ok(r: &ApiResponse) -> Result<()> {
    r.ensure_status(200)?;
    ensure!(
        r.header("cache-control") == Some("no-store"),
        "no no-store: {r}"
    );
    ensure!(
        !r.headers
            .keys()
            .any(|h| h.as_str().starts_with("access-control-")),
        "CORS header on /auth: {r}"
    );
    Ok(())
}

fn assert_no_secrets(server: &TestServer, secrets: &[&str]) -> Result<()> {
    let logs = server.logs();
    ensure!(!logs.is_empty(), "the server logged nothing");
    for secret in secrets {
        ensure!(
            !logs.contains(secret),
            "a secret reached the logs: {secret}"
        );
    }
    Ok(())
}

fn jwt_part(token: &str, index: usize) -> Result<Value> {
    let part = token.split('.').nth(index).context("JWT part")?;
    Ok(serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part)?)?)
}

fn key_id(key: &str) -> &str {
    &key[4..20]
}

fn is_uuid(s: &str) -> bool {
    let lengths: Vec<usize> = s.split('-').map(str::len).collect();
    lengths == [8, 4, 4, 4, 12] && s.chars().all(|c| c == '-' || c.is_ascii_hexdigit())
}

// ------------------------------------------------------------------------------------------------
// Endpoints

#[tokio::test]
async fn signup_login_validate_logout() -> Result<()> {
    for backend in backends() {
        let server = start(backend, "").await?;
        let auth = AuthApi::new(&server);
        let org = create_org(&server, "Acme").await?;

        let r = auth
            .post(
                "/auth/fooBar",
                Some(&org.key),
                json!({"identity": "Ada@Example.COM"}),
            )
            .await?;
        assert_ok(&r)?;
        let foobar = r.str_at("/foobar").context("foobar")?.to_owned();
        ensure!(r.str_at("/expires_at").is_some(), "{r}");
        let r = auth
            .signup_with(&org, &foobar, " Ada@Example.COM", PASSWORD)
            .await?;
        assert_ok(&r)?;
        let user_id = r.str_at("/user_id").context("user_id")?.to_owned();
        ensure!(
            is_uuid(&user_id) && r.str_at("/org_id") == Some(org.id.as_str()),
            "{r}"
        );
        ensure!(r.str_at("/email") == Some("ada@example.com"), "{r}");

        let r = auth.login(&org, "ada@example.com", PASSWORD).await?;
        assert_ok(&r)?;
        let token = r
            .str_at("/sessionToken")
            .context("sessionToken")?
            .to_owned();
        ensure!(r.str_at("/expires_at").is_some(), "{r}");
        let header = jwt_part(&token, 0)?;
        ensure!(header["kid"].is_string(), "no kid: {header}");
        let claims = jwt_part(&token, 1)?;
        ensure!(
            claims["sub"] == json!(user_id) && claims["org_id"] == json!(org.id),
            "{claims}"
        );
        ensure!(claims["email"] == "ada@example.com", "{claims}");
        ensure!(
            claims["aud"] == json!(format!("authflow:auth_api:{}", org.id)),
            "{claims}"
        );
        ensure!(claims["api_key_id"] == json!(key_id(&org.key)), "{claims}");
        ensure!(
            claims["sid"].is_string() && claims["iss"].is_string(),
            "{claims}"
        );
        let exp = claims["exp"].as_i64().context("exp")?;
        ensure!(
            exp - claims["iat"].as_i64().context("iat")? == 24 * 3600,
            "{claims}"
        );
        ensure!(
            !token.contains(&org.key) && !claims.to_string().contains(&org.key[20..]),
            "key in JWT"
        );

        let r = auth.validate(&org, &token, "ADA@example.com").await?;
        assert_ok(&r)?;
        ensure!(
            r.at("/valid") == Some(&json!(true)) && r.str_at("/user_id") == Some(&user_id),
            "{r}"
        );
        ensure!(r.str_at("/session_id") == claims["sid"].as_str(), "{r}");
        ensure!(
            r.str_at("/org_id") == Some(&org.id) && r.str_at("/email") == Some("ada@example.com"),
            "{r}"
        );
        ensure!(r.str_at("/expires_at").is_some(), "{r}");

        let r = auth.logout(&org, &token, "ada@example.com").await?;
        assert_ok(&r)?;
        ensure!(r.at("/logged_out") == Some(&json!(true)), "{r}");
        assert_error(
            &auth.validate(&org, &token, "ada@example.com").await?,
            401,
            "invalid_session",
        )?;
        assert_error(
            &auth.logout(&org, &token, "ada@example.com").await?,
            401,
            "invalid_session",
        )?;
        let r = auth
            .change_password(&org, &token, "ada@example.com", NEW_PASSWORD)
            .await?;
        assert_error(&r, 401, "invalid_session")?;

        assert_no_secrets(
            &server,
            &[
                &org.key,
                &org.key[21..],
                PASSWORD,
                NEW_PASSWORD,
                &token,
                &foobar,
            ],
        )?;
    }
    Ok(())
}

#[tokio::test]
async fn transport_and_parameter_errors() -> Result<()> {
    for backend in backends() {
        let server = start(backend, "").await?;
        let auth = AuthApi::new(&server);
        let org = create_org(&server, "Acme").await?;
        let key = Some(org.key.as_str());
        let api = server.api();

        // invalid_json: wrong content type, not an object, malformed.
        let r = api
            .send(
                api.http()
                    .post(api.url("/auth/fooBar"))
                    .header("X-API-Key", &org.key)
                    .header("content-type", "text/plain")
                    .body("{\"identity\": \"a@example.com\"}"),
            )
            .await?;
        assert_error(&r, 400, "invalid_json")?;
        for body in ["[1]", "{\"identity\": ", "\"a\""] {
            let r = api
                .send(
                    api.http()
                        .post(api.url("/auth/signup"))
                        .header("X-API-Key", &org.key)
                        .header("content-type", "application/json")
                        .body(body),
                )
                .await?;
            assert_error(&r, 400, "invalid_json")?;
        }
        // body_too_large, before anything else is looked at.
        let big = json!({"identity": "a".repeat(70 * 1024)});
        assert_error(
            &auth.post("/auth/fooBar", key, big).await?,
            413,
            "body_too_large",
        )?;

        // invalid_api_key: missing, malformed, unknown, header and body disagreeing. It comes
        // before any parameter check.
        let unknown = format!("afk_{}_{}", "0".repeat(16), "A".repeat(32));
        for bad in [None, Some("nope"), Some(unknown.as_str())] {
            assert_error(
                &auth.post("/auth/fooBar", bad, json!({})).await?,
                401,
                "invalid_api_key",
            )?;
        }
        let r = auth
            .post(
                "/auth/fooBar",
                key,
                json!({"identity": "a@example.com", "api_key": unknown}),
            )
            .await?;
        assert_error(&r, 401, "invalid_api_key")?;
        let r = auth
            .post(
                "/auth/fooBar",
                None,
                json!({"identity": "a@example.com", "api_key": org.key}),
            )
            .await?;
        assert_ok(&r)?;

        // missing_parameter and invalid_parameter name the member.
        assert_param_error(
            &auth.post("/auth/fooBar", key, json!({})).await?,
            "missing_parameter",
            "identity",
        )?;
        assert_param_error(
            &auth
                .post("/auth/fooBar", key, json!({"identity": ""}))
                .await?,
            "missing_parameter",
            "identity",
        )?;
        assert_param_error(
            &auth
                .post("/auth/fooBar", key, json!({"identity": 7}))
                .await?,
            "invalid_parameter",
            "identity",
        )?;
        assert_param_error(
            &auth
                .post("/auth/fooBar", key, json!({"identity": "not-an-email"}))
                .await?,
            "invalid_parameter",
            "identity",
        )?;
        let r = auth
            .post(
                "/auth/signup",
                key,
                json!({"foobar": "x", "email": "a@example.com", "password": PASSWORD}),
            )
            .await?;
        assert_param_error(&r, "missing_parameter", "fullname")?;
        let r = auth
            .post(
                "/auth/signup",
                key,
                json!({"foobar": "x", "email": "a@example.com", "password": PASSWORD,
            "fullname": "A", "disclaimed": "false"}),
            )
            .await?;
        assert_param_error(&r, "invalid_parameter", "disclaimed")?;
        let r = auth
            .post(
                "/auth/signup",
                key,
                json!({"foobar": "x", "email": "a@", "password": PASSWORD,
            "fullname": "A", "disclaimed": "true"}),
            )
            .await?;
        assert_param_error(&r, "invalid_parameter", "email")?;
        assert_param_error(
            &auth
                .post(
                    "/auth/login",
                    key,
                    json!({"foobar": "x", "email": "a@example.com"}),
                )
                .await?,
            "missing_parameter",
            "password",
        )?;
        let r = auth
            .login_with(&org, "x", "a@example.com", PASSWORD, "acme")
            .await?;
        assert_param_error(&r, "invalid_parameter", "org_id")?;
        for path in ["/auth/validate", "/auth/logout", "/auth/changePassword"] {
            let r = auth
                .post(path, key, json!({"email": "a@example.com"}))
                .await?;
            assert_param_error(&r, "missing_parameter", "sessionToken")?;
        }
        let r = auth
            .post(
                "/auth/changePassword",
                key,
                json!({"sessionToken": "t", "email": "a@example.com"}),
            )
            .await?;
        assert_param_error(&r, "missing_parameter", "newPassword")?;

        // password_policy_violated, with the flow API's causes.
        let r = auth.signup(&org, "weak@example.com", "short").await?;
        assert_param_error(&r, "password_policy_violated", "password")?;
        let names: Vec<&str> = r
            .at("/error/causes")
            .and_then(Value::as_array)
            .context("causes")?
            .iter()
            .filter_map(|c| c["Name"].as_str())
            .collect();
        ensure!(
            names
                == [
                    "PasswordTooShort",
                    "PasswordUppercaseRequired",
                    "PasswordDigitRequired",
                    "PasswordSymbolRequired"
                ],
            "{r}"
        );
        let r = auth
            .signup(&org, "weak@example.com", &format!("Aa1!{}", "x".repeat(29)))
            .await?;
        assert_param_error(&r, "password_policy_violated", "password")?;
        ensure!(
            r.at("/error/causes/0/Name") == Some(&json!("PasswordTooLong")),
            "{r}"
        );

        // Methods and paths.
        let r = api.get("/auth/login").await?;
        assert_error(&r, 405, "method_not_allowed")?;
        assert_no_secrets(&server, &[&org.key[21..], PASSWORD])?;
    }
    Ok(())
}

#[tokio::test]
async fn credential_and_conflict_errors() -> Result<()> {
    for backend in backends() {
        let server = start(backend, "").await?;
        let auth = AuthApi::new(&server);
        let org = create_org(&server, "Acme").await?;
        let email = "bob@example.com";
        assert_ok(&auth.signup(&org, email, PASSWORD).await?)?;

        // user_exists (the seed's 409), also in another letter case.
        assert_error(
            &auth.signup(&org, "BOB@example.com", PASSWORD).await?,
            409,
            "user_exists",
        )?;
        // invalid_credentials and user_not_found.
        assert_error(
            &auth.login(&org, email, WRONG_PASSWORD).await?,
            401,
            "invalid_credentials",
        )?;
        assert_error(
            &auth.login(&org, "nobody@example.com", PASSWORD).await?,
            404,
            "user_not_found",
        )?;

        // invalid_anti_abuse_token: missing (400), unknown, reused, for another email.
        let r = auth
            .post(
                "/auth/login",
                Some(&org.key),
                json!({"email": email, "password": PASSWORD, "org_id": org.id}),
            )
            .await?;
        assert_param_error(&r, "missing_parameter", "foobar")?;
        let r = auth
            .login_with(&org, "afb_unknown", email, PASSWORD, &org.id)
            .await?;
        assert_error(&r, 401, "invalid_anti_abuse_token")?;
        let foobar = auth.foobar(&org, email).await?;
        assert_ok(
            &auth
                .login_with(&org, &foobar, email, PASSWORD, &org.id)
                .await?,
        )?;
        let r = auth
            .login_with(&org, &foobar, email, PASSWORD, &org.id)
            .await?;
        assert_error(&r, 401, "invalid_anti_abuse_token")?;
        let other_email = auth.foobar(&org, "carol@example.com").await?;
        let r = auth
            .login_with(&org, &other_email, email, PASSWORD, &org.id)
            .await?;
        assert_error(&r, 401, "invalid_anti_abuse_token")?;
        let r = auth
            .signup_with(&org, &other_email, "carol@example.com", PASSWORD)
            .await?;
        assert_error(&r, 401, "invalid_anti_abuse_token")?; // used up by the wrong email
        let reused = auth.foobar(&org, "dave@example.com").await?;
        assert_ok(
            &auth
                .signup_with(&org, &reused, "dave@example.com", PASSWORD)
                .await?,
        )?;
        let r = auth
            .signup_with(&org, &reused, "dave@example.com", PASSWORD)
            .await?;
        assert_error(&r, 401, "invalid_anti_abuse_token")?;

        // invalid_session: garbage, tampered, another user's email; user_not_found for an
        // unknown email with a valid token.
        let token = auth.session(&org, email, PASSWORD).await?;
        assert_error(
            &auth.validate(&org, "garbage", email).await?,
            401,
            "invalid_session",
        )?;
        let mut tampered = jwt_part(&token, 1)?;
        tampered["sub"] = json!("someone-else");
        let forged = [
            token.split('.').next().unwrap_or(""),
            &URL_SAFE_NO_PAD.encode(tampered.to_string()),
            token.split('.').nth(2).unwrap_or(""),
        ]
        .join(".");
        assert_error(
            &auth.validate(&org, &forged, email).await?,
            401,
            "invalid_session",
        )?;
        assert_error(
            &auth.validate(&org, &token, "dave@example.com").await?,
            401,
            "invalid_session",
        )?;
        assert_error(
            &auth.validate(&org, &token, "nobody@example.com").await?,
            404,
            "user_not_found",
        )?;
        assert_error(
            &auth.logout(&org, &token, "dave@example.com").await?,
            401,
            "invalid_session",
        )?;
        assert_ok(&auth.validate(&org, &token, email).await?)?;

        // rate_limited: /auth/fooBar per identity (25 per minute in this config).
        let mut last = None;
        for _ in 0..26 {
            last = Some(
                auth.post(
                    "/auth/fooBar",
                    Some(&org.key),
                    json!({"identity": "eve@example.com"}),
                )
                .await?,
            );
        }
        let r = last.context("no response")?;
        assert_error(&r, 429, "rate_limited")?;
        let retry: u64 = r.header("retry-after").context("Retry-After")?.parse()?;
        ensure!((1..=60).contains(&retry), "{retry}");
        assert_no_secrets(&server, &[&org.key[21..], PASSWORD, &token, &foobar])?;
    }
    Ok(())
}

#[tokio::test]
async fn password_change_keeps_the_calling_session_only() -> Result<()> {
    for backend in backends() {
        let server = start(backend, "  org_password_policies:\n    Strict: {min_length: 12, max_length: 32, \
            uppercase_required: true, lowercase_required: true, digit_required: true, symbol_required: true}\n").await?;
        let auth = AuthApi::new(&server);
        let org = create_org(&server, "Acme").await?;
        let email = "fay@example.com";
        assert_ok(&auth.signup(&org, email, PASSWORD).await?)?;
        let calling = auth.session(&org, email, PASSWORD).await?;
        let other = auth.session(&org, email, PASSWORD).await?;

        let r = auth.change_password(&org, &calling, email, "weak").await?;
        assert_param_error(&r, "password_policy_violated", "newPassword")?;
        let r = auth
            .change_password(&org, &calling, email, PASSWORD)
            .await?;
        assert_param_error(&r, "password_policy_violated", "newPassword")?;
        ensure!(
            r.at("/error/causes/0/Name") == Some(&json!("PasswordReused")),
            "{r}"
        );
        assert_ok(&auth.validate(&org, &other, email).await?)?;

        let r = auth
            .change_password(&org, &calling, email, NEW_PASSWORD)
            .await?;
        assert_ok(&r)?;
        ensure!(r.at("/changed") == Some(&json!(true)), "{r}");
        assert_ok(&auth.validate(&org, &calling, email).await?)?;
        assert_error(
            &auth.validate(&org, &other, email).await?,
            401,
            "invalid_session",
        )?;
        assert_error(
            &auth.login(&org, email, PASSWORD).await?,
            401,
            "invalid_credentials",
        )?;
        assert_ok(&auth.login(&org, email, NEW_PASSWORD).await?)?;

        // An organization's own, tighter policy applies to signup and changePassword.
        let strict = create_org(&server, "Strict").await?;
        let r = auth.signup(&strict, email, PASSWORD).await?;
        assert_param_error(&r, "password_policy_violated", "password")?;
        assert_ok(&auth.signup(&strict, email, "L0nger!Secret").await?)?;
        assert_no_secrets(
            &server,
            &[&org.key[21..], PASSWORD, NEW_PASSWORD, &calling, &other],
        )?;
    }
    Ok(())
}

#[tokio::test]
async fn organizations_are_isolated() -> Result<()> {
    for backend in backends() {
        let server = start(backend, "").await?;
        let auth = AuthApi::new(&server);
        let a = create_org(&server, "Org A").await?;
        let b = create_org(&server, "Org B").await?;
        let email = "gus@example.com";

        // The same email is one user in A and another in B.
        let in_a = auth.signup(&a, email, PASSWORD).await?;
        assert_ok(&in_a)?;
        let only_a = "hal@example.com";
        assert_ok(&auth.signup(&a, only_a, PASSWORD).await?)?;
        let in_b = auth.signup(&b, email, NEW_PASSWORD).await?;
        assert_ok(&in_b)?;
        ensure!(
            in_a.str_at("/user_id") != in_b.str_at("/user_id"),
            "one user in two orgs"
        );
        ensure!(in_b.str_at("/org_id") == Some(b.id.as_str()), "{in_b}");

        // A foobar of A is refused with B's key (and used up).
        let foobar_a = auth.foobar(&a, email).await?;
        let r = auth
            .login_with(&b, &foobar_a, email, NEW_PASSWORD, &b.id)
            .await?;
        assert_error(&r, 401, "invalid_anti_abuse_token")?;
        let r = auth
            .signup_with(
                &b,
                &auth.foobar(&a, "new@example.com").await?,
                "new@example.com",
                PASSWORD,
            )
            .await?;
        assert_error(&r, 401, "invalid_anti_abuse_token")?;
        // Logging in to A with B's key: organization_mismatch; A's user is unknown to B.
        let foobar_b = auth.foobar(&b, only_a).await?;
        let r = auth
            .login_with(&b, &foobar_b, only_a, PASSWORD, &a.id)
            .await?;
        assert_error(&r, 401, "organization_mismatch")?;
        assert_error(
            &auth.login(&b, only_a, PASSWORD).await?,
            404,
            "user_not_found",
        )?;
        // A's password is not B's.
        assert_error(
            &auth.login(&b, email, PASSWORD).await?,
            401,
            "invalid_credentials",
        )?;

        // A's session token is refused by B on every endpoint, even for B's user of that email.
        let token_a = auth.session(&a, email, PASSWORD).await?;
        assert_error(
            &auth.validate(&b, &token_a, email).await?,
            401,
            "invalid_session",
        )?;
        assert_error(
            &auth
                .change_password(&b, &token_a, email, "Xx1!xxxxyy")
                .await?,
            401,
            "invalid_session",
        )?;
        assert_error(
            &auth.logout(&b, &token_a, email).await?,
            401,
            "invalid_session",
        )?;
        assert_ok(&auth.validate(&a, &token_a, email).await?)?;
        assert_no_secrets(
            &server,
            &[&a.key[21..], &b.key[21..], PASSWORD, NEW_PASSWORD, &token_a],
        )?;
    }
    Ok(())
}

#[tokio::test]
async fn concurrent_signups_of_one_email_give_one_user() -> Result<()> {
    for backend in backends() {
        let server = start(backend, "").await?;
        let auth = AuthApi::new(&server);
        let org = create_org(&server, "Acme").await?;
        let email = "ivy@example.com";
        let mut foobars = Vec::new();
        for _ in 0..20 {
            foobars.push(auth.foobar(&org, email).await?);
        }
        let signups = foobars
            .iter()
            .map(|f| auth.signup_with(&org, f, email, PASSWORD));
        let results = futures::future::join_all(signups).await;
        let mut statuses = Vec::new();
        for r in results {
            let r = r?;
            if r.status == 409 {
                assert_error(&r, 409, "user_exists")?;
            }
            statuses.push(r.status);
        }
        statuses.sort_unstable();
        let mut expected = vec![200];
        expected.extend([409; 19]);
        ensure!(statuses == expected, "{backend}: {statuses:?}");
        assert_ok(&auth.login(&org, email, PASSWORD).await?)?;
    }
    Ok(())
}

// ------------------------------------------------------------------------------------------------
// Expiry, limits shared with the flow APIs, CORS, disabled API

#[tokio::test]
async fn expired_foobar_and_session_token_are_refused() -> Result<()> {
    for backend in backends() {
        let server = start(
            backend,
            "  anti_abuse_token_lifetime: 1500ms\n  session_token_lifetime: 2s\n",
        )
        .await?;
        let auth = AuthApi::new(&server);
        let org = create_org(&server, "Acme").await?;
        let email = "jo@example.com";
        assert_ok(&auth.signup(&org, email, PASSWORD).await?)?;
        let token = auth.session(&org, email, PASSWORD).await?;
        let stale = auth.foobar(&org, email).await?;
        assert_ok(&auth.validate(&org, &token, email).await?)?;
        tokio::time::sleep(Duration::from_millis(2100)).await;
        let r = auth
            .login_with(&org, &stale, email, PASSWORD, &org.id)
            .await?;
        assert_error(&r, 401, "invalid_anti_abuse_token")?;
        assert_error(
            &auth.validate(&org, &token, email).await?,
            401,
            "invalid_session",
        )?;
    }
    Ok(())
}

#[tokio::test]
async fn failed_logins_count_toward_the_flow_password_limits() -> Result<()> {
    for backend in backends() {
        let server = TestServer::builder(backend)
            .bin(BIN)
            .extra_yaml(&format!(
                "{COMMON_YAML}authentication: {{rate_limits: {{password: {{per_ip: {{period: 1m, burst: 3}}}}}}}}\n"
            ))
            .start()
            .await?;
        let auth = AuthApi::new(&server);
        let org = create_org(&server, "Acme").await?;
        let email = "kim@example.com";
        assert_ok(&auth.signup(&org, email, PASSWORD).await?)?;
        server
            .api()
            .signup_with_password("flow@example.com", PASSWORD)
            .await?;
        for _ in 0..3 {
            assert_error(
                &auth.login(&org, email, WRONG_PASSWORD).await?,
                401,
                "invalid_credentials",
            )?;
        }
        let r = auth.login(&org, email, PASSWORD).await?;
        assert_error(&r, 429, "rate_limited")?;
        ensure!(r.header("retry-after").is_some(), "{r}");
        // The same per-IP bucket stops a flow API login.
        let err = server
            .api()
            .login_with_password("flow@example.com", PASSWORD)
            .await;
        let message = format!(
            "{:#}",
            err.err().context("flow login passed the shared limit")?
        );
        ensure!(message.contains("VerifyPasswordPerIP"), "{message}");
    }
    Ok(())
}

#[tokio::test]
async fn failed_logins_lock_the_account() -> Result<()> {
    for backend in backends() {
        let server = TestServer::builder(backend)
            .bin(BIN)
            .extra_yaml(&format!(
                "{COMMON_YAML}authentication: {{lockout: {{max_attempts: 2, history_duration: 1m, \
                 minimum_duration: 1m, maximum_duration: 5m, backoff_factor: 2, \
                 lockout_type: per_user, password: {{enabled: true}}}}}}\n"
            ))
            .start()
            .await?;
        let auth = AuthApi::new(&server);
        let org = create_org(&server, "Acme").await?;
        let email = "lou@example.com";
        assert_ok(&auth.signup(&org, email, PASSWORD).await?)?;
        for _ in 0..2 {
            assert_error(
                &auth.login(&org, email, WRONG_PASSWORD).await?,
                401,
                "invalid_credentials",
            )?;
        }
        let r = auth.login(&org, email, PASSWORD).await?;
        assert_error(&r, 429, "account_locked")?;
        ensure!(r.str_at("/error/until").is_some(), "{r}");
    }
    Ok(())
}

#[tokio::test]
async fn no_cors_on_auth_paths() -> Result<()> {
    for backend in backends() {
        let server = start(backend, "").await?;
        let org = create_org(&server, "Acme").await?;
        let api = server.api();
        let origin = "http://localhost:5173";
        let preflight = api
            .http()
            .request(reqwest::Method::OPTIONS, api.url("/auth/login"))
            .header("Origin", origin)
            .header("Access-Control-Request-Method", "POST");
        let r = api.send(preflight).await?;
        assert_error(&r, 403, "cors_not_allowed")?;
        ensure!(
            !r.headers
                .keys()
                .any(|h| h.as_str().starts_with("access-control-")),
            "{r:?}"
        );
        let request = api
            .http()
            .post(api.url("/auth/fooBar"))
            .header("Origin", origin)
            .header("X-API-Key", &org.key)
            .json(&json!({"identity": "a@example.com"}));
        assert_ok(&api.send(request).await?)?;
        // The flow API keeps its CORS for the same loopback origin.
        let flow = api
            .http()
            .request(
                reqwest::Method::OPTIONS,
                api.url("/api/v1/authentication_flows"),
            )
            .header("Origin", origin)
            .header("Access-Control-Request-Method", "POST");
        let r = api.send(flow).await?;
        ensure!(
            r.header("access-control-allow-origin") == Some(origin),
            "{r:?}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn disabled_auth_api_is_not_found() -> Result<()> {
    for backend in backends() {
        let server = start(backend, "  enabled: false\n").await?;
        let org = create_org(&server, "Acme").await?;
        let auth = AuthApi::new(&server);
        for path in [
            "/auth/fooBar",
            "/auth/signup",
            "/auth/login",
            "/auth/validate",
            "/auth/changePassword",
            "/auth/logout",
        ] {
            let r = auth.post(path, Some(&org.key), json!({})).await?;
            ensure!(r.status == 404, "{path}: {r}");
        }
        let api = server.api();
        let r = api
            .send(
                api.http()
                    .request(reqwest::Method::OPTIONS, api.url("/auth/login")),
            )
            .await?;
        ensure!(r.status == 404, "{r}");
    }
    Ok(())
}

// ------------------------------------------------------------------------------------------------
// authflow org

#[tokio::test]
async fn org_cli_create_list_rotate_revoke() -> Result<()> {
    for backend in backends() {
        let server = start(backend, "").await?;
        let auth = AuthApi::new(&server);
        let org = create_org(&server, "Acme").await?;
        ensure!(is_uuid(&org.id), "{}", org.id);
        ensure!(
            org.key.len() == 53 && org.key.starts_with("afk_") && org.key.as_bytes()[20] == b'_',
            "{}",
            org.key
        );
        ensure!(
            key_id(&org.key)
                .bytes()
                .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase()),
            "{}",
            org.key
        );

        let dup = cli(&server, &["create", "--name", "Acme"]).await?;
        ensure!(dup.status.code() == Some(1), "duplicate: {dup:?}");
        ensure!(
            stdout_text(&dup).is_empty() && stderr_text(&dup).contains("already exists"),
            "{dup:?}"
        );

        let list = cli(&server, &["list"]).await?;
        ensure!(list.status.success(), "{list:?}");
        let lines: Vec<Value> = stdout_text(&list)
            .lines()
            .map(serde_json::from_str)
            .collect::<Result<_, _>>()?;
        ensure!(
            lines.len() == 1 && lines[0]["name"] == "Acme" && lines[0]["org_id"] == json!(org.id),
            "{lines:?}"
        );
        ensure!(
            lines[0]["active_key_ids"] == json!([key_id(&org.key)]),
            "{lines:?}"
        );
        ensure!(
            lines[0]["created_at"].is_string() && !stdout_text(&list).contains(&org.key[21..]),
            "{lines:?}"
        );

        // Rotation: the new key works at once, the old one for the 2 s grace period.
        let rotated = cli(&server, &["rotate-key", "Acme"]).await?;
        ensure!(rotated.status.success(), "{rotated:?}");
        let line: Value = serde_json::from_str(stdout_text(&rotated).trim())?;
        ensure!(line["org_id"] == json!(org.id), "{line}");
        let new = Org {
            id: org.id.clone(),
            key: line["api_key"].as_str().context("api_key")?.to_owned(),
        };
        ensure!(new.key != org.key, "same key");
        auth.foobar(&org, "a@example.com").await?;
        auth.foobar(&new, "a@example.com").await?;
        tokio::time::sleep(Duration::from_millis(2100)).await;
        let r = auth
            .post(
                "/auth/fooBar",
                Some(&org.key),
                json!({"identity": "a@example.com"}),
            )
            .await?;
        assert_error(&r, 401, "invalid_api_key")?;
        auth.foobar(&new, "a@example.com").await?;

        // Revocation ends a key at once; by org id too.
        let revoked = cli(&server, &["revoke-key", &org.id, key_id(&new.key)]).await?;
        ensure!(revoked.status.success(), "{revoked:?}");
        let r = auth
            .post(
                "/auth/fooBar",
                Some(&new.key),
                json!({"identity": "a@example.com"}),
            )
            .await?;
        assert_error(&r, 401, "invalid_api_key")?;
        let again = cli(&server, &["revoke-key", "Acme", key_id(&new.key)]).await?;
        ensure!(again.status.code() == Some(1), "{again:?}");
        let unknown = cli(&server, &["revoke-key", "Nope", key_id(&new.key)]).await?;
        ensure!(
            unknown.status.code() == Some(1) && !stderr_text(&unknown).is_empty(),
            "{unknown:?}"
        );
        let list = cli(&server, &["list"]).await?;
        let line: Value = serde_json::from_str(stdout_text(&list).trim())?;
        ensure!(line["active_key_ids"] == json!([]), "{line}");
        assert_no_secrets(&server, &[&org.key[21..], &new.key[21..]])?;
    }
    Ok(())
}
