//! The OpenID Connect server over plain HTTP against the real binary, on every backend:
//! authorize → custom UI (Authentication Flow API with `url_query`) → consent → token, and
//! the cases that must answer with an error page instead of a redirect. The full
//! relying-party journey with a third-party library is in `tests/oidc-client/` (Node).

use anyhow::{Context, Result};
use authflow_testkit::{ApiResponse, Backend, FlowApi, TestServer, backends};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use url::Url;

const CALLBACK: &str = "http://127.0.0.1:9/callback";
const CUSTOM_UI: &str = "http://127.0.0.1:9/custom-ui";
const SECRET: &str = "backend-secret-0123456789";
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";

fn config() -> String {
    format!(
        "verification: {{claims: {{email: {{required: false}}}}}}
oauth:
  clients:
  - client_id: spa
    x_application_type: spa
    redirect_uris: [\"{CALLBACK}\"]
    x_custom_ui_uri: \"{CUSTOM_UI}\"
  - client_id: backend
    client_secret: \"{SECRET}\"
    redirect_uris: [\"{CALLBACK}\"]
    x_custom_ui_uri: \"{CUSTOM_UI}\"
"
    )
}

async fn start(backend: Backend) -> Result<TestServer> {
    TestServer::builder(backend)
        .bin(env!("CARGO_BIN_EXE_authflow"))
        .extra_yaml(&config())
        .start()
        .await
}

/// A browser that keeps cookies and never follows redirects.
fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .cookie_store(true)
        .build()
        .expect("http client")
}

fn challenge() -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(VERIFIER.as_bytes()))
}

fn authorize_url(server: &TestServer, pairs: &[(&str, &str)]) -> String {
    let mut url = Url::parse(&server.url("/oauth2/authorize")).unwrap();
    url.query_pairs_mut().extend_pairs(pairs);
    url.to_string()
}

fn spa_request(challenge: &str) -> Vec<(&'static str, String)> {
    vec![
        ("response_type", "code".into()),
        ("client_id", "spa".into()),
        ("redirect_uri", CALLBACK.into()),
        ("scope", "openid email offline_access".into()),
        ("state", "st-1".into()),
        ("nonce", "n-1".into()),
        ("code_challenge", challenge.into()),
        ("code_challenge_method", "S256".into()),
    ]
}

fn as_pairs<'a>(v: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    v.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

fn location(r: &reqwest::Response) -> Result<Url> {
    let value = r
        .headers()
        .get("location")
        .context("no Location header")?
        .to_str()?;
    Ok(Url::parse(value)?)
}

fn query(url: &Url, key: &str) -> Option<String> {
    url.query_pairs()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
}

/// Play the custom UI: sign up through the flow API with the UI's query as `url_query`.
async fn sign_up(api: &FlowApi, ui: &Url, email: &str) -> Result<ApiResponse> {
    let mut state = api
        .create_flow_with(
            json!({"type": "signup", "name": "default", "url_query": ui.query().unwrap_or("")}),
        )
        .await?;
    for _ in 0..5 {
        state.ensure_status(200)?;
        let input = match state.action_type() {
            Some("finished") => return Ok(state),
            Some("identify") => json!({"identification": "email", "login_id": email}),
            Some("create_authenticator") => {
                json!({"authentication": "primary_password", "new_password": "correct horse 1"})
            }
            other => anyhow::bail!("unexpected action {other:?}: {state}"),
        };
        let token = state.state_token().context("state token")?.to_string();
        state = api.input(&token, input).await?;
    }
    anyhow::bail!("signup did not finish")
}

async fn token(
    http: &reqwest::Client,
    server: &TestServer,
    form: &[(&str, &str)],
) -> Result<(u16, Value)> {
    let r = http
        .post(server.url("/oauth2/token"))
        .form(form)
        .send()
        .await?;
    Ok((r.status().as_u16(), r.json().await?))
}

fn jwt_claims(jwt: &str) -> Value {
    let payload = jwt.split('.').nth(1).expect("payload");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).expect("base64url")).expect("json")
}

#[tokio::test]
async fn authorization_code_flow_through_the_custom_ui() -> Result<()> {
    for backend in backends() {
        let server = start(backend).await?;
        let http = browser();
        let api = FlowApi::new(server.base_url(), http.clone());
        let request = spa_request(&challenge());

        let authorize = http
            .get(authorize_url(&server, &as_pairs(&request)))
            .send()
            .await?;
        assert_eq!(authorize.status(), 302, "{backend}");
        let ui = location(&authorize)?;
        assert!(ui.as_str().starts_with(CUSTOM_UI), "{ui}");
        assert!(query(&ui, "x_ref").is_some());
        assert_eq!(query(&ui, "client_id").as_deref(), Some("spa"));
        assert_eq!(query(&ui, "redirect_uri").as_deref(), Some(CALLBACK));
        assert_eq!(query(&ui, "state").as_deref(), Some("st-1"));

        let finished = sign_up(&api, &ui, "oidc@example.com").await?;
        let finish = finished
            .str_at("/result/action/data/finish_redirect_uri")
            .context("finish_redirect_uri")?
            .to_string();
        assert!(
            finish.starts_with(&server.url("/oauth2/consent?")),
            "{finish}"
        );

        let consent = http.get(&finish).send().await?;
        assert_eq!(consent.status(), 302);
        let callback = location(&consent)?;
        assert!(callback.as_str().starts_with(CALLBACK), "{callback}");
        assert_eq!(query(&callback, "state").as_deref(), Some("st-1"));
        assert_eq!(query(&callback, "iss").as_deref(), Some(server.base_url()));
        let code = query(&callback, "code").context("code")?;

        // The authentication-info code of finish_redirect_uri is single use.
        let again = http.get(&finish).send().await?;
        assert_eq!(again.status(), 400);
        assert!(again.headers().get("location").is_none());

        let form = [
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", CALLBACK),
            ("client_id", "spa"),
            ("code_verifier", VERIFIER),
        ];
        let (status, body) = token(&http, &server, &form).await?;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["token_type"], "Bearer");
        assert!(body["refresh_token"].is_string());
        let id = jwt_claims(body["id_token"].as_str().unwrap());
        assert_eq!(id["iss"], server.base_url());
        assert_eq!(id["aud"], "spa");
        assert_eq!(id["nonce"], "n-1");
        assert_eq!(id["email"], "oidc@example.com");
        let access = body["access_token"].as_str().unwrap().to_string();

        let userinfo = http
            .get(server.url("/oauth2/userinfo"))
            .bearer_auth(&access)
            .send()
            .await?;
        assert_eq!(userinfo.status(), 200);
        let info: Value = userinfo.json().await?;
        assert_eq!(info["sub"], id["sub"]);

        // Reuse: refused, and the tokens it issued are revoked.
        let (status, body) = token(&http, &server, &form).await?;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("invalid_grant"))
        );
        let revoked = http
            .get(server.url("/oauth2/userinfo"))
            .bearer_auth(&access)
            .send()
            .await?;
        assert_eq!(revoked.status(), 401);

        // The IdP session now answers prompt=none at once.
        let mut silent = spa_request(&challenge());
        silent.push(("prompt", "none".into()));
        let answer = http
            .get(authorize_url(&server, &as_pairs(&silent)))
            .send()
            .await?;
        let callback = location(&answer)?;
        assert!(callback.as_str().starts_with(CALLBACK), "{callback}");
        assert!(query(&callback, "code").is_some(), "{callback}");
    }
    Ok(())
}

#[tokio::test]
async fn untrusted_redirects_get_an_error_page() -> Result<()> {
    for backend in backends() {
        let server = start(backend).await?;
        let http = browser();
        let c = challenge();
        let cases: [&[(&str, &str)]; 3] = [
            &[
                ("response_type", "code"),
                ("client_id", "nobody"),
                ("redirect_uri", CALLBACK),
            ],
            &[
                ("response_type", "code"),
                ("client_id", "spa"),
                ("redirect_uri", "http://127.0.0.1:9/evil"),
            ],
            &[
                ("response_type", "code"),
                ("client_id", "spa"),
                ("code_challenge", &c),
            ],
        ];
        for case in cases {
            let r = http.get(authorize_url(&server, case)).send().await?;
            assert_eq!(r.status(), 400, "{backend} {case:?}");
            assert!(r.headers().get("location").is_none(), "{case:?}");
            let content_type = r.headers()["content-type"].to_str()?.to_string();
            assert!(content_type.starts_with("text/html"), "{content_type}");
        }
        let bad_consent = http
            .get(server.url("/oauth2/consent?x_ref=nope&code=nope"))
            .send()
            .await?;
        assert_eq!(bad_consent.status(), 400);
        assert!(bad_consent.headers().get("location").is_none());
    }
    Ok(())
}

#[tokio::test]
async fn errors_after_the_redirect_is_trusted_go_to_the_client() -> Result<()> {
    for backend in backends() {
        let server = start(backend).await?;
        let http = browser();
        let mut silent = spa_request(&challenge());
        silent.push(("prompt", "none".into()));
        let answer = http
            .get(authorize_url(&server, &as_pairs(&silent)))
            .send()
            .await?;
        assert_eq!(answer.status(), 302, "{backend}");
        let callback = location(&answer)?;
        assert_eq!(query(&callback, "error").as_deref(), Some("login_required"));
        assert_eq!(query(&callback, "state").as_deref(), Some("st-1"));

        let no_pkce = [
            ("response_type", "code"),
            ("client_id", "spa"),
            ("redirect_uri", CALLBACK),
            ("scope", "openid"),
        ];
        let answer = http.get(authorize_url(&server, &no_pkce)).send().await?;
        assert_eq!(
            query(&location(&answer)?, "error").as_deref(),
            Some("invalid_request")
        );

        let wrong_secret = http
            .post(server.url("/oauth2/token"))
            .basic_auth("backend", Some("wrong"))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await?;
        assert_eq!(wrong_secret.status(), 401);
        assert!(wrong_secret.headers().contains_key("www-authenticate"));
        let m2m = http
            .post(server.url("/oauth2/token"))
            .basic_auth("backend", Some(SECRET))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await?;
        assert_eq!(m2m.status(), 200);
        let (status, body) = token(
            &http,
            &server,
            &[("grant_type", "password"), ("client_id", "spa")],
        )
        .await?;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("unsupported_grant_type"))
        );

        let discovery: Value = http
            .get(server.url("/.well-known/openid-configuration"))
            .send()
            .await?
            .json()
            .await?;
        assert_eq!(discovery["issuer"], server.base_url());
        let jwks: Value = http
            .get(server.url("/oauth2/jwks"))
            .send()
            .await?
            .json()
            .await?;
        assert!(jwks["keys"].as_array().is_some_and(|k| k.len() >= 2));
    }
    Ok(())
}

/// A refresh token lives only as long as the IdP session it was issued in.
#[tokio::test]
async fn a_refresh_token_ends_with_its_session() -> Result<()> {
    for backend in backends() {
        let server = start(backend).await?;
        let http = browser();
        let api = FlowApi::new(server.base_url(), http.clone());
        let authorize = http
            .get(authorize_url(
                &server,
                &as_pairs(&spa_request(&challenge())),
            ))
            .send()
            .await?;
        let ui = location(&authorize)?;
        let finished = sign_up(&api, &ui, "refresh@example.com").await?;
        let finish = finished
            .str_at("/result/action/data/finish_redirect_uri")
            .context("finish_redirect_uri")?
            .to_string();
        let callback = location(&http.get(&finish).send().await?)?;
        let code = query(&callback, "code").context("code")?;
        let form = [
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", CALLBACK),
            ("client_id", "spa"),
            ("code_verifier", VERIFIER),
        ];
        let (status, body) = token(&http, &server, &form).await?;
        assert_eq!(status, 200, "{body}");
        let refresh = body["refresh_token"]
            .as_str()
            .context("refresh")?
            .to_string();
        let refresh_form = |t: &str| {
            vec![
                ("grant_type", "refresh_token".to_string()),
                ("refresh_token", t.to_string()),
                ("client_id", "spa".to_string()),
            ]
        };
        let (status, body) = token(&http, &server, &as_pairs(&refresh_form(&refresh))).await?;
        assert_eq!(status, 200, "{backend}: a live session refreshes: {body}");
        let refresh = body["refresh_token"]
            .as_str()
            .context("rotated")?
            .to_string();

        // RP-initiated logout revokes the IdP session (the browser sends its cookie).
        let logout = http.get(server.url("/oauth2/end_session")).send().await?;
        assert_eq!(logout.status(), 200);
        let (status, body) = token(&http, &server, &as_pairs(&refresh_form(&refresh))).await?;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("invalid_grant")),
            "{backend}: {body}"
        );
    }
    Ok(())
}
