//! Transport rules of the Authentication Flow API (spec `authentication-flow-api.md` sections 2,
//! 4.3, 5 and 14), against the real binary on every backend of `backends()`.

use anyhow::{Context, Result, ensure};
use authflow_testkit::{
    ApiResponse, CREATE_PATH, FlowApi, INPUT_PATH, STATES_PATH, TestServer, backends,
};
use reqwest::Method;
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_authflow");
const MIB: usize = 1024 * 1024;
const TOKEN_ALPHABET: &str = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// One started server per backend.
async fn servers() -> Result<Vec<TestServer>> {
    let mut servers = Vec::new();
    for backend in backends() {
        servers.push(TestServer::start_bin(BIN, backend, "").await?);
    }
    Ok(servers)
}

/// Asserts the error envelope: status, `error.name`, `error.reason`, `error.code` == status,
/// JSON content type and `Cache-Control: no-store`.
fn assert_error(response: &ApiResponse, status: u16, name: &str, reason: &str) -> Result<()> {
    ensure!(
        response.status == status
            && response.error_name() == Some(name)
            && response.error_reason() == Some(reason),
        "expected HTTP {status} {name}/{reason}, got {response}"
    );
    ensure!(
        response.error_code() == Some(u64::from(status)),
        "error.code must equal the HTTP status: {response}"
    );
    ensure!(
        response.str_at("/error/message").is_some(),
        "error.message missing: {response}"
    );
    assert_common_headers(response)
}

/// Like [`assert_error`], for errors that carry neither `info` nor `result`.
fn assert_bare_error(response: &ApiResponse, status: u16, name: &str, reason: &str) -> Result<()> {
    assert_error(response, status, name, reason)?;
    ensure!(
        response.at("/error/info").is_none(),
        "error.info must be absent: {response}"
    );
    ensure!(
        response.at("/result").is_none(),
        "result must be absent: {response}"
    );
    Ok(())
}

fn assert_common_headers(response: &ApiResponse) -> Result<()> {
    let content_type = response.header("content-type").unwrap_or("");
    ensure!(
        content_type.starts_with("application/json"),
        "Content-Type must be application/json, got {content_type:?}: {response}"
    );
    ensure!(
        response.header("cache-control") == Some("no-store"),
        "Cache-Control must be no-store, got {:?}: {response}",
        response.header("cache-control")
    );
    Ok(())
}

/// The `info.causes` of a `ValidationFailed` error.
fn causes(response: &ApiResponse) -> Result<&Vec<Value>> {
    response
        .at("/error/info/causes")
        .and_then(Value::as_array)
        .with_context(|| format!("no error.info.causes array: {response}"))
}

fn has_cause(response: &ApiResponse, kind: &str, location: &str) -> Result<bool> {
    Ok(causes(response)?.iter().any(|cause| {
        cause["kind"] == kind && cause["location"] == location && cause["details"].is_object()
    }))
}

fn is_state_token(token: &str) -> bool {
    token
        .strip_prefix("authflowstate_")
        .is_some_and(|rest| rest.len() == 32 && rest.chars().all(|c| TOKEN_ALPHABET.contains(c)))
}

/// A token of the right format that no server issued.
fn forged_token() -> String {
    format!("authflowstate_{TOKEN_ALPHABET}")
}

/// The same token with its last character changed.
fn tampered(token: &str) -> String {
    let mut chars: Vec<char> = token.chars().collect();
    let last = chars.last_mut().expect("non-empty token");
    *last = if *last == '0' { '1' } else { '0' };
    chars.into_iter().collect()
}

async fn new_signup_state(api: &FlowApi) -> Result<String> {
    let created = api.create_flow("signup", "default").await?;
    created.ensure_status(200)?;
    Ok(created.state_token().context("no state token")?.to_owned())
}

#[tokio::test]
async fn healthz_answers_200() -> Result<()> {
    for server in servers().await? {
        let response = server.api().get("/healthz").await?;
        response
            .ensure_status(200)
            .with_context(|| server.backend())?;
    }
    Ok(())
}

#[tokio::test]
async fn created_flow_has_success_envelope() -> Result<()> {
    for server in servers().await? {
        let response = server.api().create_flow("signup", "default").await?;
        response.ensure_status(200)?;
        assert_common_headers(&response)?;
        let token = response.state_token().unwrap_or("");
        ensure!(is_state_token(token), "bad state token: {response}");
        ensure!(
            response.str_at("/result/type") == Some("signup"),
            "{response}"
        );
        ensure!(
            response.str_at("/result/name") == Some("default"),
            "{response}"
        );
        ensure!(response.action_type() == Some("identify"), "{response}");
        ensure!(
            response.at("/result/id").is_none(),
            "no `id` member: {response}"
        );
        ensure!(response.at("/error").is_none(), "{response}");
    }
    Ok(())
}

#[tokio::test]
async fn read_state_returns_the_same_token() -> Result<()> {
    for server in servers().await? {
        let api = server.api();
        let token = new_signup_state(&api).await?;
        let again = api.read_state(&token).await?;
        again.ensure_status(200)?;
        assert_common_headers(&again)?;
        ensure!(again.state_token() == Some(token.as_str()), "{again}");
        ensure!(again.action_type() == Some("identify"), "{again}");
    }
    Ok(())
}

#[tokio::test]
async fn wrong_content_type_is_bad_request() -> Result<()> {
    let body = r#"{"type":"signup","name":"default"}"#;
    for server in servers().await? {
        let api = server.api();
        for content_type in [
            Some("text/plain"),
            Some("application/x-www-form-urlencoded"),
            None,
        ] {
            for path in [CREATE_PATH, INPUT_PATH, STATES_PATH] {
                let response = api.post_raw(path, content_type, body).await?;
                assert_bare_error(&response, 400, "BadRequest", "BadRequest")
                    .with_context(|| format!("{} {path} {content_type:?}", server.backend()))?;
            }
        }
    }
    Ok(())
}

#[tokio::test]
async fn json_content_type_with_charset_is_accepted() -> Result<()> {
    let body = r#"{"type":"signup","name":"default"}"#;
    for server in servers().await? {
        let api = server.api();
        for content_type in ["application/json", "application/json; charset=utf-8"] {
            let response = api.post_raw(CREATE_PATH, Some(content_type), body).await?;
            response
                .ensure_status(200)
                .with_context(|| format!("{} {content_type}", server.backend()))?;
        }
    }
    Ok(())
}

#[tokio::test]
async fn malformed_json_is_invalid_json() -> Result<()> {
    let bodies = [
        "",
        "{",
        r#"{"type":"signup","name":"default",}"#,
        r#"{"type":"signup" "name":"default"}"#,
        "[]",
        r#"[{"type":"signup","name":"default"}]"#,
        r#""signup""#,
        "42",
        "null",
        "true",
    ];
    for server in servers().await? {
        let api = server.api();
        for path in [CREATE_PATH, INPUT_PATH, STATES_PATH] {
            for body in bodies {
                let response = api.post_raw(path, Some("application/json"), body).await?;
                assert_bare_error(&response, 400, "BadRequest", "InvalidJSON")
                    .with_context(|| format!("{} {path} body {body:?}", server.backend()))?;
            }
        }
    }
    Ok(())
}

#[tokio::test]
async fn body_over_one_mib_is_rejected() -> Result<()> {
    for server in servers().await? {
        let api = server.api();
        for path in [CREATE_PATH, INPUT_PATH, STATES_PATH] {
            let body = format!(r#"{{"type":"signup","name":"{}"}}"#, "a".repeat(MIB));
            let response = api.post_raw(path, Some("application/json"), body).await?;
            assert_error(
                &response,
                413,
                "RequestEntityTooLarge",
                "RequestBodyTooLarge",
            )
            .with_context(|| format!("{} {path}", server.backend()))?;
            ensure!(
                response.at("/error/info") == Some(&json!({"limit": 1048576})),
                "info must be {{\"limit\":1048576}}: {response}"
            );
        }
    }
    Ok(())
}

#[tokio::test]
async fn body_of_exactly_one_mib_is_accepted() -> Result<()> {
    let json = r#"{"type":"signup","name":"default"}"#;
    let body = format!("{json}{}", " ".repeat(MIB - json.len()));
    assert_eq!(body.len(), MIB);
    for server in servers().await? {
        let response = server
            .api()
            .post_raw(CREATE_PATH, Some("application/json"), body.clone())
            .await?;
        response
            .ensure_status(200)
            .with_context(|| server.backend())?;
    }
    Ok(())
}

#[tokio::test]
async fn unknown_top_level_member_is_validation_failed() -> Result<()> {
    for server in servers().await? {
        let api = server.api();
        let token = new_signup_state(&api).await?;
        let input = json!({"identification": "email", "login_id": "a@example.com"});
        let requests = [
            (
                CREATE_PATH,
                json!({"type": "signup", "name": "default", "bogus": 1}),
            ),
            (
                INPUT_PATH,
                json!({"state_token": token, "input": input, "bogus": 1}),
            ),
            (STATES_PATH, json!({"state_token": token, "bogus": 1})),
        ];
        for (path, body) in requests {
            let response = api.post_json(path, &body).await?;
            let context = format!("{} {path}", server.backend());
            assert_error(&response, 400, "Invalid", "ValidationFailed").context(context.clone())?;
            let extra = causes(&response)?.iter().any(|cause| {
                cause["kind"] == "additionalProperties"
                    && cause["details"]["extra"] == json!(["bogus"])
            });
            ensure!(
                extra,
                "{context}: no additionalProperties cause naming bogus: {response}"
            );
            ensure!(
                response.at("/result").is_none(),
                "{context}: an invalid envelope has no result: {response}"
            );
        }
    }
    Ok(())
}

#[tokio::test]
async fn input_and_batch_input_are_exclusive() -> Result<()> {
    for server in servers().await? {
        let api = server.api();
        let token = new_signup_state(&api).await?;
        let input = json!({"identification": "email", "login_id": "a@example.com"});
        let bodies = [
            json!({"state_token": token, "input": input, "batch_input": [input]}),
            json!({"state_token": token}),
        ];
        for body in bodies {
            let response = api.post_json(INPUT_PATH, &body).await?;
            assert_error(&response, 400, "Invalid", "ValidationFailed")
                .with_context(|| format!("{} {body}", server.backend()))?;
            let required = causes(&response)?
                .iter()
                .filter(|cause| cause["kind"] == "required")
                .count();
            ensure!(required == 2, "expected two `required` causes: {response}");
        }
    }
    Ok(())
}

#[tokio::test]
async fn unknown_path_is_not_found() -> Result<()> {
    for server in servers().await? {
        let api = server.api();
        for path in [
            "/api/v1/authentication_flows/nope",
            "/api/v1/authentication_flows/states/nope",
            "/api/v1/authentication_flows/states/input/more",
        ] {
            let response = api.post_json(path, &json!({})).await?;
            assert_bare_error(&response, 404, "NotFound", "NotFound")
                .with_context(|| format!("{} POST {path}", server.backend()))?;
            let response = api.get(path).await?;
            assert_bare_error(&response, 404, "NotFound", "NotFound")
                .with_context(|| format!("{} GET {path}", server.backend()))?;
        }
    }
    Ok(())
}

#[tokio::test]
async fn wrong_method_is_method_not_allowed() -> Result<()> {
    let requests = [
        (Method::GET, CREATE_PATH),
        (Method::PUT, CREATE_PATH),
        (Method::DELETE, CREATE_PATH),
        (Method::GET, INPUT_PATH),
        (Method::PATCH, INPUT_PATH),
        (Method::GET, STATES_PATH),
        (Method::DELETE, STATES_PATH),
    ];
    for server in servers().await? {
        let api = server.api();
        for (method, path) in &requests {
            let request = api.http().request(method.clone(), api.url(path));
            let response = api.send(request).await?;
            assert_bare_error(&response, 405, "MethodNotAllowed", "MethodNotAllowed")
                .with_context(|| format!("{} {method} {path}", server.backend()))?;
        }
    }
    Ok(())
}

#[tokio::test]
async fn unknown_state_token_is_flow_not_found() -> Result<()> {
    for server in servers().await? {
        let api = server.api();
        let real = new_signup_state(&api).await?;
        let input = json!({"identification": "email", "login_id": "a@example.com"});
        for token in ["nope".to_owned(), forged_token(), tampered(&real)] {
            let context = format!("{} token {token}", server.backend());
            let response = api.input(&token, input.clone()).await?;
            assert_bare_error(&response, 404, "NotFound", "AuthenticationFlowNotFound")
                .context(context.clone())?;
            let response = api.read_state(&token).await?;
            assert_bare_error(&response, 404, "NotFound", "AuthenticationFlowNotFound")
                .context(context)?;
        }
    }
    Ok(())
}

#[tokio::test]
async fn input_without_token_is_flow_not_found() -> Result<()> {
    for server in servers().await? {
        let body = json!({"input": {"identification": "email", "login_id": "a@example.com"}});
        let response = server.api().post_json(INPUT_PATH, &body).await?;
        assert_bare_error(&response, 404, "NotFound", "AuthenticationFlowNotFound")
            .with_context(|| server.backend())?;
    }
    Ok(())
}

#[tokio::test]
async fn unknown_flow_name_is_flow_flow_not_found() -> Result<()> {
    for server in servers().await? {
        for flow_type in ["signup", "login"] {
            let response = server.api().create_flow(flow_type, "no_such_flow").await?;
            assert_error(&response, 404, "NotFound", "AuthenticationFlowFlowNotFound")
                .with_context(|| format!("{} {flow_type}", server.backend()))?;
            ensure!(response.at("/result").is_none(), "{response}");
        }
    }
    Ok(())
}

#[tokio::test]
async fn promote_is_unknown_flow() -> Result<()> {
    for server in servers().await? {
        let response = server.api().create_flow("promote", "default").await?;
        assert_error(
            &response,
            400,
            "BadRequest",
            "AuthenticationFlowUnknownFlow",
        )
        .with_context(|| server.backend())?;
        ensure!(response.at("/result").is_none(), "{response}");
    }
    Ok(())
}

#[tokio::test]
async fn bogus_flow_type_is_enum_violation() -> Result<()> {
    for server in servers().await? {
        let response = server.api().create_flow("bogus", "default").await?;
        assert_error(&response, 400, "Invalid", "ValidationFailed")
            .with_context(|| server.backend())?;
        ensure!(
            has_cause(&response, "enum", "/type")?,
            "expected cause kind enum at /type: {response}"
        );
        let cause = causes(&response)?
            .iter()
            .find(|cause| cause["kind"] == "enum")
            .cloned()
            .unwrap_or_default();
        ensure!(cause["details"]["actual"] == "bogus", "{response}");
        ensure!(
            cause["details"]["expected"]
                .as_array()
                .is_some_and(|values| values.contains(&json!("signup"))),
            "enum details must list the flow types: {response}"
        );
    }
    Ok(())
}
