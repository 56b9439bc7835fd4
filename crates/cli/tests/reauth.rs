//! `reauth` flows: the user comes from the ID-token hint of the tied authorization request,
//! else from the IdP session cookie of the request, else from an `id_token` input of a flow
//! that starts with `identify`; then proves it is still them with one of their
//! authenticators (authentication-flow-api.md 3.1, 12.3, 17.9).

use anyhow::{Context, Result};
use authflow_testkit::{ApiResponse, FlowApi, TestServer, backends, run_bin, stderr_text};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use url::Url;

const PASSWORD: &str = "reauth password 1";
const OTHER_PASSWORD: &str = "another password 2";
const CALLBACK: &str = "http://127.0.0.1:9/callback";
const CUSTOM_UI: &str = "http://127.0.0.1:9/custom-ui";
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";

/// A public client behind a custom UI and a reauth flow that asks for an ID token when no
/// user is known.
fn config() -> String {
    format!(
        "verification: {{claims: {{email: {{required: false}}}}}}
oauth:
  clients:
  - client_id: spa
    x_application_type: spa
    redirect_uris: [\"{CALLBACK}\"]
    x_custom_ui_uri: \"{CUSTOM_UI}\"
authentication_flow:
  reauth_flows:
  - name: by_id_token
    steps:
    - type: identify
      one_of:
      - identification: id_token
    - type: authenticate
      one_of:
      - authentication: primary_password
"
    )
}

async fn start(backend: authflow_testkit::Backend) -> Result<TestServer> {
    TestServer::builder(backend)
        .bin(env!("CARGO_BIN_EXE_authflow"))
        .extra_yaml(&config())
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

// ---------------------------------------------------------------------------------------
// ID tokens (spec 12.3, 17.9)

const ALICE: &str = "alice@example.com";
const BOB: &str = "bob@example.com";

/// A browser that keeps cookies and never follows redirects.
fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .cookie_store(true)
        .build()
        .expect("http client")
}

/// The flow API over a client without the cookies of the test's other requests.
fn fresh_api(server: &TestServer) -> FlowApi {
    FlowApi::new(server.base_url(), server.new_client())
}

fn query(url: &Url, key: &str) -> Option<String> {
    url.query_pairs()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
}

fn location(r: &reqwest::Response) -> Result<Url> {
    let value = r.headers().get("location").context("no Location")?;
    Ok(Url::parse(value.to_str()?)?)
}

/// `/oauth2/authorize` for `client_id` (plus `extra` parameters): the custom UI's URL.
async fn authorize(
    http: &reqwest::Client,
    server: &TestServer,
    client_id: &str,
    extra: &[(&str, &str)],
) -> Result<Url> {
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(VERIFIER.as_bytes()));
    let mut url = Url::parse(&server.url("/oauth2/authorize"))?;
    url.query_pairs_mut()
        .extend_pairs([
            ("response_type", "code"),
            ("client_id", client_id),
            ("redirect_uri", CALLBACK),
            ("scope", "openid"),
            ("code_challenge", challenge.as_str()),
            ("code_challenge_method", "S256"),
        ])
        .extend_pairs(extra);
    let response = http.get(url.as_str()).send().await?;
    anyhow::ensure!(response.status() == 302, "authorize: {}", response.status());
    let ui = location(&response)?;
    anyhow::ensure!(ui.as_str().starts_with(CUSTOM_UI), "{ui}");
    Ok(ui)
}

/// Play the custom UI: log in through the flow API with the UI's query as `url_query`.
async fn login_through_ui(
    api: &FlowApi,
    ui: &Url,
    email: &str,
    password: &str,
) -> Result<ApiResponse> {
    let body = json!({"type": "login", "name": "default", "url_query": ui.query().unwrap_or("")});
    let first = api.create_flow_with(body).await?;
    first.ensure_status(200)?;
    let token = first.state_token().context("state token")?;
    let identified = api
        .input(token, json!({"identification": "email", "login_id": email}))
        .await?;
    identified.ensure_status(200)?;
    let token = identified.state_token().context("state token")?;
    let input = json!({"authentication": "primary_password", "password": password});
    let finished = api.input(token, input).await?;
    finished.ensure_status(200)?;
    Ok(finished)
}

/// Follow `finish_redirect_uri` through consent and redeem the code: the token response.
async fn redeem(
    http: &reqwest::Client,
    server: &TestServer,
    client_id: &str,
    finished: &ApiResponse,
) -> Result<Value> {
    let finish = finished
        .str_at("/result/action/data/finish_redirect_uri")
        .with_context(|| format!("no finish_redirect_uri: {finished}"))?;
    let consent = http.get(finish).send().await?;
    anyhow::ensure!(consent.status() == 302, "consent: {}", consent.status());
    let code = query(&location(&consent)?, "code").context("code")?;
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", CALLBACK),
        ("client_id", client_id),
        ("code_verifier", VERIFIER),
    ];
    let response = http
        .post(server.url("/oauth2/token"))
        .form(&form)
        .send()
        .await?;
    anyhow::ensure!(response.status() == 200, "token: {}", response.status());
    Ok(response.json().await?)
}

/// The token response of an authorization code flow of `client_id` in which `email` logs in.
async fn tokens_of(
    server: &TestServer,
    client_id: &str,
    email: &str,
    password: &str,
) -> Result<Value> {
    let http = browser();
    let api = FlowApi::new(server.base_url(), http.clone());
    let ui = authorize(&http, server, client_id, &[]).await?;
    let finished = login_through_ui(&api, &ui, email, password).await?;
    redeem(&http, server, client_id, &finished).await
}

async fn id_token_of(server: &TestServer, email: &str, password: &str) -> Result<String> {
    let tokens = tokens_of(server, "spa", email, password).await?;
    Ok(tokens["id_token"].as_str().context("id_token")?.to_string())
}

fn jwt_part(jwt: &str, index: usize) -> Value {
    let part = jwt.split('.').nth(index).expect("JWT part");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).expect("base64url")).expect("json")
}

fn claims(jwt: &str) -> Value {
    jwt_part(jwt, 1)
}

/// `signed`'s header and signature around `other`'s claims: not signed by authflow.
fn tampered(signed: &str, other: &str) -> String {
    let parts: Vec<&str> = signed.split('.').collect();
    let payload = other.split('.').nth(1).expect("payload");
    format!("{}.{payload}.{}", parts[0], parts[2])
}

/// `claims` signed with a fresh ES256 key under the `kid` of authflow's published ES256 key,
/// so that only the signature tells it apart.
async fn foreign_signed(server: &TestServer, claims: &Value) -> Result<String> {
    use p256::pkcs8::EncodePrivateKey as _;
    let jwks: Value = server
        .new_client()
        .get(server.url("/oauth2/jwks"))
        .send()
        .await?
        .json()
        .await?;
    let kid = jwks["keys"]
        .as_array()
        .and_then(|keys| keys.iter().find(|k| k["alg"] == "ES256"))
        .and_then(|k| k["kid"].as_str())
        .context("no ES256 key in the JWKS")?;
    let pem =
        p256::SecretKey::random(&mut rsa::rand_core::OsRng).to_pkcs8_pem(Default::default())?;
    let key = jsonwebtoken::EncodingKey::from_ec_pem(pem.as_bytes())?;
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
    header.kid = Some(kid.to_string());
    Ok(jsonwebtoken::encode(&header, claims, &key)?)
}

fn unix_now() -> i64 {
    let since_epoch = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    since_epoch.expect("clock after 1970").as_secs() as i64
}

/// `issued` re-signed by the server's own current key with `exp` in the past. No client may
/// get an ID token that short-lived (the lifetime is at least 300 s), so the test reads the
/// key from the server's database, under the secret name its `kid` gives.
async fn expired_copy(server: &TestServer, issued: &str) -> Result<String> {
    let header = jwt_part(issued, 0);
    let kid = header["kid"].as_str().context("kid")?;
    let period = kid.split('-').nth(1).context("period in kid")?;
    let name = format!("oauth_signing_key:RS256:{period}");
    let db = authflow_store::connect_database(server.database_url(), 1).await?;
    let pem = db.get_or_insert_server_secret(&name, "").await?;
    anyhow::ensure!(!pem.is_empty(), "no signing key {name}");
    let key = jsonwebtoken::EncodingKey::from_rsa_pem(pem.as_bytes())?;
    let mut claims = claims(issued);
    claims["iat"] = json!(unix_now() - 600);
    claims["exp"] = json!(unix_now() - 300);
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.kid = Some(kid.to_string());
    Ok(jsonwebtoken::encode(&header, &claims, &key)?)
}

/// Create a reauth flow from a client that sends only `cookie`.
async fn create(server: &TestServer, body: Value, cookie: Option<&str>) -> Result<ApiResponse> {
    let mut request = server
        .new_client()
        .post(server.url("/api/v1/authentication_flows"))
        .json(&body);
    if let Some(c) = cookie {
        request = request.header("cookie", c);
    }
    server.api().send(request).await
}

fn id_token_input(id_token: impl Into<Value>) -> Value {
    json!({"identification": "id_token", "id_token": id_token.into()})
}

fn password_input(password: &str) -> Value {
    json!({"authentication": "primary_password", "password": password})
}

async fn sign_up_alice_and_bob(server: &TestServer) -> Result<()> {
    for (email, password) in [(ALICE, PASSWORD), (BOB, OTHER_PASSWORD)] {
        fresh_api(server)
            .signup_with_password(email, password)
            .await?
            .ensure_status(200)?;
    }
    Ok(())
}

#[tokio::test]
async fn an_id_token_input_names_the_user_when_nothing_else_does() -> Result<()> {
    for backend in backends() {
        let server = start(backend).await?;
        sign_up_alice_and_bob(&server).await?;
        let tokens = tokens_of(&server, "spa", ALICE, PASSWORD).await?;
        let alice = tokens["id_token"].as_str().context("id_token")?;
        let bob = id_token_of(&server, BOB, OTHER_PASSWORD).await?;
        let api = fresh_api(&server);

        // The generated flow has no identify step: without a user it cannot start.
        let default = create(&server, json!({"type": "reauth", "name": "default"}), None).await?;
        assert_error(&default, 400, "AuthenticationFlowNoUserID");

        let flow = create(
            &server,
            json!({"type": "reauth", "name": "by_id_token"}),
            None,
        )
        .await?;
        flow.ensure_status(200)?;
        assert_eq!(flow.action_type(), Some("identify"), "{backend}: {flow}");
        assert_eq!(flow.data_type(), Some("identification_data"));
        assert_eq!(
            flow.at("/result/action/data/options"),
            Some(&json!([{"identification": "id_token"}])),
            "{flow}"
        );
        let state = flow.state_token().context("state token")?;

        let not_a_string = api.input(state, id_token_input(42)).await?;
        assert_error(&not_a_string, 400, "ValidationFailed");
        assert_eq!(
            not_a_string.str_at("/error/info/causes/0/location"),
            Some("/id_token"),
            "{not_a_string}"
        );
        assert_eq!(
            not_a_string.str_at("/error/info/causes/0/kind"),
            Some("type")
        );
        let missing = api
            .input(state, json!({"identification": "id_token"}))
            .await?;
        assert_error(&missing, 400, "ValidationFailed");

        let refused = [
            ("tampered", tampered(alice, &bob)),
            (
                "foreign key",
                foreign_signed(&server, &claims(alice)).await?,
            ),
            (
                "access token",
                tokens["access_token"].as_str().unwrap().to_string(),
            ),
            ("not a JWT", "not.a.jwt".to_string()),
        ];
        for (what, token) in refused {
            let r = api.input(state, id_token_input(token)).await?;
            assert_eq!(r.status, 400, "{backend} {what}: {r}");
            assert_eq!(r.error_reason(), Some("ValidationFailed"), "{what}: {r}");
        }

        let identified = api.input(state, id_token_input(alice)).await?;
        identified.ensure_status(200)?;
        assert_eq!(
            identified.action_type(),
            Some("authenticate"),
            "{identified}"
        );
        let next = identified.state_token().context("state token")?;
        // The token named Alice: Bob's password is not hers.
        let wrong = api.input(next, password_input(OTHER_PASSWORD)).await?;
        assert_error(&wrong, 401, "InvalidCredentials");
        let done = api.input(next, password_input(PASSWORD)).await?;
        assert_eq!(done.action_type(), Some("finished"), "{done}");
        assert_eq!(done.str_at("/result/type"), Some("reauth"));
        assert!(
            done.header("set-cookie")
                .is_some_and(|c| c.starts_with("session="))
        );

        // Both inputs at once, in the batch of the create request.
        let batch = create(
            &server,
            json!({"type": "reauth", "name": "by_id_token",
                   "batch_input": [id_token_input(bob.as_str()), password_input(OTHER_PASSWORD)]}),
            None,
        )
        .await?;
        assert_eq!(batch.action_type(), Some("finished"), "{batch}");
    }
    Ok(())
}

#[tokio::test]
async fn an_expired_id_token_still_names_its_user() -> Result<()> {
    for backend in backends() {
        let server = start(backend).await?;
        sign_up_alice_and_bob(&server).await?;
        let issued = id_token_of(&server, ALICE, PASSWORD).await?;
        let id_token = expired_copy(&server, &issued).await?;
        let exp = claims(&id_token)["exp"].as_i64().context("exp")?;
        assert!(exp < unix_now(), "the ID token has expired");

        let flow = create(
            &server,
            json!({"type": "reauth", "name": "by_id_token"}),
            None,
        )
        .await?;
        let state = flow.state_token().context("state token")?;
        let identified = fresh_api(&server)
            .input(state, id_token_input(id_token.as_str()))
            .await?;
        identified.ensure_status(200)?;
        assert_eq!(
            identified.action_type(),
            Some("authenticate"),
            "{backend}: {identified}"
        );

        // A disabled user's token names a user who may not sign in.
        let config = server.config_path().to_str().context("config path")?;
        let bin = std::path::Path::new(env!("CARGO_BIN_EXE_authflow"));
        let disable = run_bin(bin, &["user", "disable", "--config", config, ALICE]).await?;
        assert!(disable.status.success(), "{}", stderr_text(&disable));
        let refused = fresh_api(&server)
            .input(state, id_token_input(id_token.as_str()))
            .await?;
        assert_error(&refused, 403, "DisabledUser");
    }
    Ok(())
}

#[tokio::test]
async fn the_id_token_hint_of_the_authorization_request_names_the_user() -> Result<()> {
    for backend in backends() {
        let server = start(backend).await?;
        sign_up_alice_and_bob(&server).await?;
        let alice = id_token_of(&server, ALICE, PASSWORD).await?;
        let bob_login = fresh_api(&server)
            .login_with_password(BOB, OTHER_PASSWORD)
            .await?;
        let bob_cookie = session_cookie(&bob_login)?;

        // The hint wins over the session cookie of another user (spec 3.1: hint, else cookie).
        let http = browser();
        let hint = [("id_token_hint", alice.as_str()), ("prompt", "login")];
        let ui = authorize(&http, &server, "spa", &hint).await?;
        assert_eq!(query(&ui, "id_token_hint").as_deref(), Some(alice.as_str()));
        let url_query = ui.query().unwrap_or("");
        let body = json!({"type": "reauth", "name": "default", "url_query": url_query});
        let flow = create(&server, body, Some(&bob_cookie)).await?;
        flow.ensure_status(200)?;
        assert_eq!(
            flow.action_type(),
            Some("authenticate"),
            "{backend}: {flow}"
        );
        let api = FlowApi::new(server.base_url(), http.clone());
        let state = flow.state_token().context("state token")?;
        let wrong = api.input(state, password_input(OTHER_PASSWORD)).await?;
        assert_error(&wrong, 401, "InvalidCredentials");
        let done = api.input(state, password_input(PASSWORD)).await?;
        assert_eq!(done.action_type(), Some("finished"), "{done}");
        let tokens = redeem(&http, &server, "spa", &done).await?;
        let reauthenticated = claims(tokens["id_token"].as_str().context("id_token")?);
        assert_eq!(
            reauthenticated["sub"],
            claims(&alice)["sub"],
            "{reauthenticated}"
        );

        // A flow starting with identify asks for no ID token when the hint names the user.
        let ui = authorize(&browser(), &server, "spa", &hint).await?;
        let body = json!({"type": "reauth", "name": "by_id_token", "url_query": ui.query()});
        let flow = create(&server, body, None).await?;
        assert_eq!(flow.action_type(), Some("authenticate"), "{flow}");

        // A hint that authflow did not sign is refused rather than replaced by the cookie.
        let forged = tampered(&alice, &id_token_of(&server, BOB, OTHER_PASSWORD).await?);
        let ui = authorize(&browser(), &server, "spa", &[("id_token_hint", &forged)]).await?;
        let body = json!({"type": "reauth", "name": "default", "url_query": ui.query()});
        let refused = create(&server, body, Some(&bob_cookie)).await?;
        assert_error(&refused, 400, "ValidationFailed");

        // Tied to an authorization request without a hint and without a cookie: nobody.
        let ui = authorize(&browser(), &server, "spa", &[]).await?;
        let body = json!({"type": "reauth", "name": "default", "url_query": ui.query()});
        let nobody = create(&server, body, None).await?;
        assert_error(&nobody, 400, "AuthenticationFlowNoUserID");
        let body = json!({"type": "reauth", "name": "by_id_token", "url_query": ui.query()});
        let asks = create(&server, body, None).await?;
        assert_eq!(asks.action_type(), Some("identify"), "{asks}");
    }
    Ok(())
}
