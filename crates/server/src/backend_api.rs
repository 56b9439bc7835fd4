//! The backend `/auth` API of seed 003 (backend-auth-api.md): six `POST` endpoints that an
//! organization's own backend calls with its API key to sign its users up and in. It works
//! on the stores, the password hasher and policies and the rate limiter directly; the flow
//! engine is not involved.

mod accounts;
mod error;
mod foobar;
pub mod keys;
pub mod orgs;
mod request;
mod session_token;

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::{Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};

use authflow_core::clock::{OsRandom, SystemClock};
use authflow_core::config::{AuthApiConfig, Config, LockoutKind, RateLimit};
use authflow_core::credentials::login_id::NormalizedLoginId;
use authflow_core::credentials::password::{PasswordCheck, PasswordHasher};
use authflow_core::credentials::token::random_id;
use authflow_core::flow::FlowError;
use authflow_core::flow::limits::{Bucket, RateLimiter};
use authflow_core::flow::lockout::Lockout;
use authflow_core::flow::settings::Limit;
use authflow_core::model::{
    AuditEvent, Authenticator, AuthenticatorKind, AuthenticatorType, Identity, LoginIdType,
    PasswordHistoryEntry, User,
};
use authflow_core::store::{Change, StateStore, StoreError};

use self::accounts::{
    Account, check_new_password, email_for_lookup, email_for_signup, email_key, find_account,
    hash_password, refuse_reused_password, verify_password,
};
pub use self::error::AuthApiError;
use self::request::{AuthRequest, Caller, ensure_enabled};
use crate::AppState;

/// What `/auth` needs from the configuration, resolved at start.
pub struct AuthApiSettings {
    pub config: AuthApiConfig,
    /// `server.public_origin`: the `iss` of session tokens.
    pub issuer: String,
    /// Same argon2id parameters as the flow APIs.
    pub hasher: Arc<PasswordHasher>,
    /// `authentication.lockout`, on the same state as the flow APIs' logins.
    pub lockout: Lockout,
}

impl AuthApiSettings {
    pub fn new(config: &Config, state_store: Arc<dyn StateStore>) -> Self {
        AuthApiSettings {
            config: config.auth_api.clone(),
            issuer: config.server.public_origin.clone(),
            hasher: Arc::new(PasswordHasher::new(
                config.authenticator.password.hashing.clone(),
            )),
            lockout: Lockout::new(
                config.authentication.lockout.clone(),
                state_store,
                Arc::new(SystemClock),
            ),
        }
    }
}

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/auth/fooBar", post(foo_bar).fallback(method_not_allowed))
        .route("/auth/signup", post(signup).fallback(method_not_allowed))
        .route("/auth/login", post(login).fallback(method_not_allowed))
        .route(
            "/auth/validate",
            post(validate).fallback(method_not_allowed),
        )
        .route(
            "/auth/changePassword",
            post(change_password).fallback(method_not_allowed),
        )
        .route("/auth/logout", post(logout).fallback(method_not_allowed))
}

/// Whether `path` belongs to `/auth`, which never takes part in CORS.
pub fn is_backend_path(path: &str) -> bool {
    path == "/auth" || path.starts_with("/auth/")
}

/// Used by the CORS middleware for `/auth` paths: a preflight is refused (403; 404 while
/// the API is disabled) and no `Access-Control-*` header is ever added.
pub async fn without_cors(app: &AppState, request: Request, next: Next) -> Response {
    if request.method() != Method::OPTIONS {
        return next.run(request).await;
    }
    match ensure_enabled(app) {
        Ok(()) => AuthApiError::CorsRefused.into_response(),
        Err(e) => e.into_response(),
    }
}

async fn method_not_allowed(State(app): State<AppState>) -> AuthApiError {
    ensure_enabled(&app)
        .err()
        .unwrap_or(AuthApiError::MethodNotAllowed)
}

type Reply = Result<Json<Value>, AuthApiError>;

fn rfc3339(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

// ---------------------------------------------------------------------------------------
// POST /auth/fooBar

async fn foo_bar(State(app): State<AppState>, req: AuthRequest) -> Reply {
    let [identity] = req.params.required(["identity"])?;
    let email = email_for_lookup(&app, "identity", identity)?;
    let buckets = anti_abuse_buckets(&app, &req.caller, &email);
    take_tokens(&app, &buckets).await?;
    let (token, expires_at) = foobar::issue(
        app.state_store.as_ref(),
        &req.caller.org.id,
        &email.unique_key,
        app.auth_api.config.anti_abuse_token_lifetime,
        &OsRandom,
    )
    .await?;
    Ok(Json(
        json!({"foobar": token, "expires_at": rfc3339(expires_at)}),
    ))
}

fn anti_abuse_buckets(app: &AppState, caller: &Caller, email: &NormalizedLoginId) -> Vec<Bucket> {
    let limits = &app.auth_api.config.rate_limits;
    let identity_scope = format!("{}:{}", caller.org.id, email.unique_key);
    [
        (
            "AuthAPIAntiAbuseTokenPerIP",
            caller.ip.as_str(),
            limits.anti_abuse_token_per_ip(),
            "auth_api.rate_limits.anti_abuse_token_per_ip",
        ),
        (
            "AuthAPIAntiAbuseTokenPerIdentity",
            identity_scope.as_str(),
            limits.anti_abuse_token_per_identity(),
            "auth_api.rate_limits.anti_abuse_token_per_identity",
        ),
    ]
    .into_iter()
    .filter_map(|(name, scope, limit, path)| {
        let limit = enabled_limit(limit?)?;
        Some(Bucket::new(name, scope, limit, Some((path, "auth_api"))))
    })
    .collect()
}

fn enabled_limit(limit: RateLimit) -> Option<Limit> {
    (limit.enabled && !limit.period.is_zero()).then(|| Limit {
        period: limit.period,
        burst: limit.burst.max(1),
    })
}

// ---------------------------------------------------------------------------------------
// Rate limits

async fn take_tokens(app: &AppState, buckets: &[Bucket]) -> Result<(), AuthApiError> {
    RateLimiter::new(app.state_store.clone())
        .take_all(buckets)
        .await
        .map_err(|e| limit_error(buckets, e))
}

async fn give_back_tokens(app: &AppState, buckets: &[Bucket]) -> Result<(), AuthApiError> {
    RateLimiter::new(app.state_store.clone())
        .give_back_all(buckets)
        .await
        .map_err(|e| limit_error(buckets, e))
}

/// `rate_limited` with `Retry-After` = the bucket's refill interval (period / burst), the
/// longest a GCRA bucket makes a client wait for its next token; `account_locked`.
fn limit_error(buckets: &[Bucket], error: FlowError) -> AuthApiError {
    match error {
        FlowError::RateLimited(hit) => {
            let limit = buckets
                .iter()
                .find(|b| b.bucket_name == hit.bucket_name)
                .map(|b| b.limit);
            let retry_after = limit.map(|l| l.period / l.burst.max(1)).unwrap_or_default();
            AuthApiError::RateLimited { retry_after }
        }
        FlowError::AccountLockout { until } => AuthApiError::AccountLocked { until },
        other => AuthApiError::Internal(format!("rate limit or lockout: {other}")),
    }
}

/// The buckets of failed password checks, shared with the flow APIs' logins.
fn password_buckets(app: &AppState, ip: &str, user_id: Option<&str>) -> Vec<Bucket> {
    let limits = &app.engine.settings().rate_limits;
    let mut buckets = Vec::new();
    if let Some(limit) = limits.password_per_ip {
        buckets.push(Bucket::new(
            "VerifyPasswordPerIP",
            ip,
            limit,
            Some(("authentication.password.per_ip", "authentication.password")),
        ));
    }
    if let (Some(limit), Some(user_id)) = (limits.password_per_user_per_ip, user_id) {
        buckets.push(Bucket::new(
            "VerifyPasswordPerUserPerIP",
            &format!("{user_id}:{ip}"),
            limit,
            Some((
                "authentication.password.per_user_per_ip",
                "authentication.password",
            )),
        ));
    }
    buckets
}

// ---------------------------------------------------------------------------------------
// POST /auth/signup

async fn signup(State(app): State<AppState>, req: AuthRequest) -> Reply {
    let [foobar, email, password, fullname, disclaimed] =
        req.params
            .required(["foobar", "email", "password", "fullname", "disclaimed"])?;
    if disclaimed != "true" {
        return Err(AuthApiError::invalid("disclaimed", "must be \"true\""));
    }
    let org = &req.caller.org;
    let email = email_for_signup(&app, "email", email)?;
    let policy = app.auth_api.config.policy_for_org(&org.name);
    check_new_password(policy, "password", password, &[&email.normalized, fullname])?;
    foobar::redeem(app.state_store.as_ref(), foobar, &org.id, &email.unique_key).await?;
    if find_account(&app, &org.id, &email).await?.is_some() {
        return Err(AuthApiError::UserExists);
    }
    let password_hash = hash_password(&app, password).await?;
    let new_user = NewUser {
        org_id: &org.id,
        email: &email,
        fullname,
        password_hash,
    };
    let (user_id, changes) = new_user.changes(&email_key(&app).0, Utc::now());
    app.db.commit(changes).await.map_err(|e| match e {
        StoreError::DuplicateIdentity { .. } => AuthApiError::UserExists,
        other => other.into(),
    })?;
    Ok(Json(
        json!({"user_id": user_id, "org_id": org.id, "email": email.normalized}),
    ))
}

struct NewUser<'a> {
    org_id: &'a str,
    email: &'a NormalizedLoginId,
    fullname: &'a str,
    password_hash: String,
}

impl NewUser<'_> {
    /// The new user's id and every record of them, for one transaction.
    fn changes(self, login_id_key: &str, now: DateTime<Utc>) -> (String, Vec<Change>) {
        let user_id = keys::uuid_v4(&OsRandom);
        let user = User {
            id: user_id.clone(),
            org_id: self.org_id.to_string(),
            created_at: now,
            disabled: false,
            disabled_reason: None,
            name: Some(self.fullname.to_string()),
        };
        let identity = Identity {
            id: random_id(&OsRandom),
            user_id: user_id.clone(),
            org_id: self.org_id.to_string(),
            login_id_key: login_id_key.to_string(),
            login_id_type: LoginIdType::Email,
            original: self.email.original.clone(),
            normalized: self.email.normalized.clone(),
            unique_key: self.email.unique_key.clone(),
            created_at: now,
        };
        let changes = vec![
            Change::CreateUser(user),
            Change::CreateIdentity(identity),
            Change::CreateAuthenticator(password_authenticator(&user_id, &self.password_hash, now)),
            Change::AddPasswordHistory(PasswordHistoryEntry {
                user_id: user_id.clone(),
                password_hash: self.password_hash,
                created_at: now,
            }),
            audit(self.org_id, &user_id, "user.signed_up", now),
        ];
        (user_id, changes)
    }
}

fn password_authenticator(user_id: &str, hash: &str, now: DateTime<Utc>) -> Authenticator {
    Authenticator {
        id: random_id(&OsRandom),
        user_id: user_id.to_string(),
        kind: AuthenticatorKind::Primary,
        authenticator_type: AuthenticatorType::Password,
        data: json!({ "password_hash": hash }),
        created_at: now,
        updated_at: now,
    }
}

fn audit(org_id: &str, user_id: &str, event_type: &str, now: DateTime<Utc>) -> Change {
    Change::AuditEvent(AuditEvent {
        id: random_id(&OsRandom),
        org_id: org_id.to_string(),
        user_id: Some(user_id.to_string()),
        event_type: event_type.to_string(),
        payload: json!({ "api": "auth_api" }),
        created_at: now,
    })
}

// ---------------------------------------------------------------------------------------
// POST /auth/login

async fn login(State(app): State<AppState>, req: AuthRequest) -> Reply {
    let [foobar, email, password, org_id] = req
        .params
        .required(["foobar", "email", "password", "org_id"])?;
    if !keys::is_uuid(org_id) {
        return Err(AuthApiError::invalid("org_id", "must be a UUID"));
    }
    let caller = &req.caller;
    if !org_id.eq_ignore_ascii_case(&caller.org.id) {
        return Err(AuthApiError::OrganizationMismatch);
    }
    let email = email_for_lookup(&app, "email", email)?;
    foobar::redeem(
        app.state_store.as_ref(),
        foobar,
        &caller.org.id,
        &email.unique_key,
    )
    .await?;
    let account = find_account(&app, &caller.org.id, &email).await?;
    let check = check_login_password(&app, caller, account.as_ref(), password).await?;
    let account = account.ok_or(AuthApiError::UserNotFound)?;
    let now = Utc::now();
    let issued = session_token::issue(&app, caller, &account, now)?;
    let mut changes = vec![
        Change::CreateSession(issued.session.clone()),
        audit(&caller.org.id, &account.user.id, "user.authenticated", now),
    ];
    changes.extend(rehash_change(&app, &account, check, password, now).await?);
    app.db.commit(changes).await?;
    Ok(Json(json!({
        "sessionToken": issued.jwt,
        "expires_at": rfc3339(issued.session.expires_at),
    })))
}

/// Verify the password of `account` (a dummy verification without one), counting a
/// failure toward the flow APIs' password limits and lockout. Unknown user:
/// `user_not_found` (after the same work); wrong password or disabled user:
/// `invalid_credentials`; a running lockout: `account_locked`.
async fn check_login_password(
    app: &AppState,
    caller: &Caller,
    account: Option<&Account>,
    password: &str,
) -> Result<PasswordCheck, AuthApiError> {
    let lockout = &app.auth_api.lockout;
    let user_id = account.map(|a| a.user.id.as_str());
    if let Some(user_id) = user_id {
        lockout
            .ensure_unlocked(LockoutKind::Password, user_id, &caller.ip)
            .await
            .map_err(|e| limit_error(&[], e))?;
    }
    let buckets = password_buckets(app, &caller.ip, user_id);
    take_tokens(app, &buckets).await?;
    let stored = account.and_then(Account::password_hash);
    let check = verify_password(&app.auth_api.hasher, stored, password).await?;
    let account = account.ok_or(AuthApiError::UserNotFound)?;
    if !check.is_match() {
        lockout
            .record_failure(LockoutKind::Password, &account.user.id, &caller.ip)
            .await
            .map_err(|e| limit_error(&[], e))?;
    }
    if !check.is_match() || account.user.disabled {
        return Err(AuthApiError::InvalidCredentials);
    }
    give_back_tokens(app, &buckets).await?;
    Ok(check)
}

/// A hash made with other parameters (or imported bcrypt) is replaced at login.
async fn rehash_change(
    app: &AppState,
    account: &Account,
    check: PasswordCheck,
    password: &str,
    now: DateTime<Utc>,
) -> Result<Option<Change>, AuthApiError> {
    let (PasswordCheck::Match { needs_rehash: true }, Some(authenticator)) =
        (check, &account.password)
    else {
        return Ok(None);
    };
    Ok(Some(Change::UpdateAuthenticatorData {
        authenticator_id: authenticator.id.clone(),
        data: json!({ "password_hash": hash_password(app, password).await? }),
        updated_at: now,
    }))
}

// ---------------------------------------------------------------------------------------
// POST /auth/validate, /auth/changePassword, /auth/logout

async fn validate(State(app): State<AppState>, req: AuthRequest) -> Reply {
    let [token, email] = req.params.required(["sessionToken", "email"])?;
    let email = email_for_lookup(&app, "email", email)?;
    let auth = session_token::authenticate(&app, &req.caller, token, &email, Utc::now()).await?;
    Ok(Json(json!({
        "valid": true,
        "user_id": auth.account.user.id,
        "email": auth.account.identity.normalized,
        "org_id": auth.session.org_id,
        "session_id": auth.session.id,
        "expires_at": rfc3339(auth.session.expires_at),
    })))
}

async fn change_password(State(app): State<AppState>, req: AuthRequest) -> Reply {
    let [token, email, new_password] =
        req.params
            .required(["sessionToken", "email", "newPassword"])?;
    let email = email_for_lookup(&app, "email", email)?;
    let now = Utc::now();
    let auth = session_token::authenticate(&app, &req.caller, token, &email, now).await?;
    let account = &auth.account;
    let policy = app.auth_api.config.policy_for_org(&req.caller.org.name);
    let name = account.user.name.as_deref().unwrap_or_default();
    let user_inputs = [account.identity.normalized.as_str(), name];
    check_new_password(policy, "newPassword", new_password, &user_inputs)?;
    refuse_reused_password(&app, policy, account, new_password, now).await?;
    let hash = hash_password(&app, new_password).await?;
    let changes = password_change(&req.caller, &auth, hash, now);
    app.db.commit(changes).await?;
    Ok(Json(json!({ "changed": true })))
}

/// The new password, its history entry, and the end of every other session of the user.
fn password_change(
    caller: &Caller,
    auth: &session_token::Authenticated,
    hash: String,
    now: DateTime<Utc>,
) -> Vec<Change> {
    let user_id = &auth.account.user.id;
    let store_password = match &auth.account.password {
        Some(existing) => Change::UpdateAuthenticatorData {
            authenticator_id: existing.id.clone(),
            data: json!({ "password_hash": hash }),
            updated_at: now,
        },
        None => Change::CreateAuthenticator(password_authenticator(user_id, &hash, now)),
    };
    vec![
        store_password,
        Change::AddPasswordHistory(PasswordHistoryEntry {
            user_id: user_id.clone(),
            password_hash: hash,
            created_at: now,
        }),
        Change::RevokeUserSessions {
            user_id: user_id.clone(),
            except: Some(auth.session.id.clone()),
            at: now,
        },
        audit(&caller.org.id, user_id, "user.password_changed", now),
    ]
}

async fn logout(State(app): State<AppState>, req: AuthRequest) -> Reply {
    let [token, email] = req.params.required(["sessionToken", "email"])?;
    let email = email_for_lookup(&app, "email", email)?;
    let now = Utc::now();
    let auth = session_token::authenticate(&app, &req.caller, token, &email, now).await?;
    app.db
        .commit(vec![Change::RevokeSession {
            session_id: auth.session.id,
            at: now,
        }])
        .await?;
    Ok(Json(json!({ "logged_out": true })))
}
