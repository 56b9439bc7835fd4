//! The flow engine: runs flows of the [`FlowCatalog`] over the storage traits.
//!
//! Data in, data out: a request brings a state token and an input; the engine loads the
//! state, lets the current step consume the input (and the following steps too, spec
//! 17.1), advances through steps that need no input, stores the new state under a new
//! token and renders its action. Durable writes are only collected in the state and
//! applied in one transaction when the flow finishes.

use std::sync::Arc;

use serde_json::Value;

use super::action::{Action, CookieEffect, FinishedFlow, StateView};
use super::def::{FlowCatalog, FlowDef, FlowKind};
use super::error::{FlowError, FlowResult};
use super::limits::{Bucket, RateLimiter};
use super::lockout::Lockout;
use super::oauth::{self, AuthenticationInfo, OAuthSession};
use super::otp::{Messenger, OtpService};
use super::reads;
use super::reauth::IdTokenVerifier;
use super::settings::EngineSettings;
use super::state::{FlowState, complete_step, current_step};
use super::steps;
use crate::clock::{Clock, SecureRandom};
use crate::credentials::hash_pool;
use crate::credentials::password::PasswordHasher;
use crate::credentials::seal::Sealer;
use crate::credentials::token;
use crate::model::{AuditEvent, DEFAULT_ORG_ID, Session, SessionKind, User};
use crate::store::{Change, Database, StateStore, StoreError};

/// At most this many automatic advances per request (spec 6.1): more is a config loop.
const MAX_AUTO_ADVANCES: usize = 100;

/// Facts about the HTTP request that the engine needs, without HTTP types.
#[derive(Debug, Clone, Default)]
pub struct RequestContext {
    /// Client IP (after trusted-proxy resolution), the key of per-IP limits.
    pub ip: String,
    /// The `mfa_device_token` cookie's value, if any (spec 10).
    pub device_token: Option<String>,
    /// The IdP session cookie's value, if the request carried one (reauth flows).
    pub session_secret: Option<String>,
    /// The client shows typed codes only (the Hanko dialect, hanko-flow-api.md 8.2): a login
    /// link or a link recovery destination sends a code instead.
    pub codes_only: bool,
}

/// An error answering an input, with the unchanged state to echo (spec 4.3) when the
/// submitted token resolved to a live state.
#[derive(Debug)]
pub struct InputError {
    pub error: FlowError,
    pub flow_kind: Option<FlowKind>,
    pub state: Option<StateView>,
}

impl From<FlowError> for InputError {
    fn from(error: FlowError) -> Self {
        InputError {
            error,
            flow_kind: None,
            state: None,
        }
    }
}

/// A request to create a flow.
pub struct CreateRequest<'a> {
    pub kind: FlowKind,
    pub name: &'a str,
    /// The custom UI's whole query string (`url_query` member).
    pub url_query: Option<&'a str>,
    /// The query of the create request's own URL (seed 001 appends it there).
    pub request_query: Option<&'a str>,
    pub batch_input: Option<Vec<Value>>,
}

/// Everything the engine works with, passed in at construction.
pub struct EngineDeps {
    pub catalog: Arc<FlowCatalog>,
    pub settings: Arc<EngineSettings>,
    pub db: Arc<dyn Database>,
    pub state_store: Arc<dyn StateStore>,
    pub clock: Arc<dyn Clock>,
    pub rng: Arc<dyn SecureRandom>,
    pub messenger: Arc<dyn Messenger>,
    /// Seals TOTP secrets (and codes shown later) at rest.
    pub sealer: Arc<Sealer>,
    /// Checks the ID tokens that name a reauth flow's user (hint or `id_token` input).
    pub id_tokens: Arc<dyn IdTokenVerifier>,
}

pub struct Engine {
    pub(super) catalog: Arc<FlowCatalog>,
    pub(super) settings: Arc<EngineSettings>,
    pub(super) db: Arc<dyn Database>,
    pub(super) state_store: Arc<dyn StateStore>,
    pub(super) clock: Arc<dyn Clock>,
    pub(super) rng: Arc<dyn SecureRandom>,
    pub(super) hasher: Arc<PasswordHasher>,
    pub(super) limiter: RateLimiter,
    pub(super) otp: OtpService,
    pub(super) lockout: Lockout,
    pub(super) sealer: Arc<Sealer>,
    pub(super) id_tokens: Arc<dyn IdTokenVerifier>,
}

impl Engine {
    pub fn new(deps: EngineDeps) -> Self {
        let hasher = Arc::new(PasswordHasher::new(deps.settings.hashing.clone()));
        let limiter = RateLimiter::new(deps.state_store.clone());
        let lockout = Lockout::new(
            deps.settings.lockout.clone(),
            deps.state_store.clone(),
            deps.clock.clone(),
        );
        let otp = OtpService::new(
            deps.state_store.clone(),
            deps.clock.clone(),
            deps.rng.clone(),
            deps.messenger,
        );
        Engine {
            catalog: deps.catalog,
            settings: deps.settings,
            db: deps.db,
            state_store: deps.state_store,
            clock: deps.clock,
            rng: deps.rng,
            hasher,
            limiter,
            otp,
            lockout,
            sealer: deps.sealer,
            id_tokens: deps.id_tokens,
        }
    }

    /// Run CPU-heavy password work off the async workers, one computation per core.
    pub(super) async fn run_hashing<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> FlowResult<T> {
        hash_pool::run(work)
            .await
            .map_err(|e| FlowError::Unexpected(format!("password task: {e}")))
    }

    /// The login-link page's approval (spec 9.3); the caller tells the WebSocket channel.
    pub async fn approve_link(&self, code: &str) -> FlowResult<Option<super::otp::ApprovedLink>> {
        self.otp.approve_link(code).await
    }

    pub fn settings(&self) -> &EngineSettings {
        &self.settings
    }

    /// Per-IP limit of the whole API (spec 2), answered as `TooManyRequest`.
    pub async fn check_api_rate_limit(&self, ip: &str) -> FlowResult<bool> {
        let Some(limit) = self.settings.rate_limits.api_per_ip else {
            return Ok(true);
        };
        let bucket = Bucket::new("AuthflowAPIPerIP", ip, limit, None);
        match self.limiter.take(&bucket).await {
            Ok(()) => Ok(true),
            Err(FlowError::RateLimited(_)) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Create a flow and run it up to its first step that needs input; then feed
    /// `batch_input` if given.
    pub async fn create(
        &self,
        ctx: &RequestContext,
        request: CreateRequest<'_>,
    ) -> Result<StateView, InputError> {
        let CreateRequest {
            kind,
            name,
            url_query,
            request_query,
            batch_input,
        } = request;
        reads::within_call(async move {
            let flow = self.resolve_flow(kind, name)?;
            let mut state = FlowState::new(token::flow_id(&*self.rng), flow, self.clock.now());
            state.oauth_x_ref = self.oauth_tie_in(url_query, request_query).await?;
            if kind == FlowKind::Reauth {
                super::reauth::identify_at_create(self, ctx, flow, &mut state)
                    .await
                    .map_err(|e| with_kind(e, kind))?;
            }
            self.run_automatic_steps(ctx, &mut state)
                .await
                .map_err(|e| with_kind(e, kind))?;
            let first = self.save(&mut state).await.map_err(InputError::from)?;
            match batch_input {
                None => self.view(&state, first).await.map_err(InputError::from),
                Some(inputs) => self.feed_batch(ctx, state, first, inputs).await,
            }
        })
        .await
    }

    /// Feed one input to the state of `state_token`.
    pub async fn input(
        &self,
        ctx: &RequestContext,
        state_token: &str,
        input: Value,
    ) -> Result<StateView, InputError> {
        self.batch_input(ctx, state_token, vec![input]).await
    }

    /// Feed inputs one after another (spec 6.4).
    pub async fn batch_input(
        &self,
        ctx: &RequestContext,
        state_token: &str,
        inputs: Vec<Value>,
    ) -> Result<StateView, InputError> {
        reads::within_call(async move {
            let state = self.load(state_token).await?;
            self.feed_batch(ctx, state, state_token.to_string(), inputs)
                .await
        })
        .await
    }

    /// A recovery link's code sent without a state token (spec 8.14): a new `default`
    /// account recovery flow, positioned at `reset_password`.
    pub async fn account_recovery_from_link(
        &self,
        ctx: &RequestContext,
        code: &str,
    ) -> Result<StateView, InputError> {
        let kind = FlowKind::AccountRecovery;
        reads::within_call(async move {
            let flow = self.resolve_flow(kind, "default")?;
            let mut state = FlowState::new(token::flow_id(&*self.rng), flow, self.clock.now());
            self.run_automatic_steps(ctx, &mut state)
                .await
                .map_err(|e| with_kind(e, kind))?;
            super::recovery::flow_from_link(self, ctx, flow, &mut state, code)
                .await
                .map_err(|e| with_kind(e, kind))?;
            let token = self.save(&mut state).await.map_err(InputError::from)?;
            self.view(&state, token).await.map_err(InputError::from)
        })
        .await
    }

    /// Re-render the state of a token without consuming anything (spec 3.3).
    pub async fn read(&self, state_token: &str) -> FlowResult<StateView> {
        reads::within_call(async move {
            let state = self.load(state_token).await?;
            self.view(&state, state_token.to_string()).await
        })
        .await
    }

    async fn feed_batch(
        &self,
        ctx: &RequestContext,
        start: FlowState,
        start_token: String,
        inputs: Vec<Value>,
    ) -> Result<StateView, InputError> {
        let mut state = start.clone();
        let mut token = start_token.clone();
        let mut cookies = Vec::new();
        for input in &inputs {
            match self.feed_one(ctx, state.clone(), input).await {
                Ok(view) => {
                    cookies.extend(view.0.cookies.iter().cloned());
                    if view.0.finished.is_some() {
                        let mut finished = view.0;
                        finished.cookies = cookies;
                        return Ok(finished);
                    }
                    token = view.0.state_token.clone();
                    state = view.1;
                }
                Err(error) => return Err(self.error_with_state(error, &start, start_token).await),
            }
        }
        let mut view = self.view(&state, token).await.map_err(InputError::from)?;
        view.cookies = cookies;
        Ok(view)
    }

    async fn error_with_state(
        &self,
        error: FlowError,
        state: &FlowState,
        token: String,
    ) -> InputError {
        let view = self.view(state, token).await.ok();
        InputError {
            error,
            flow_kind: Some(state.kind),
            state: view,
        }
    }

    /// One input: consume, flow on, advance, persist (or finish).
    async fn feed_one(
        &self,
        ctx: &RequestContext,
        mut state: FlowState,
        input: &Value,
    ) -> FlowResult<(StateView, FlowState)> {
        self.run_automatic_steps(ctx, &mut state).await?;
        let mut consumed = false;
        while !state.is_at_end() {
            let snapshot = state.clone();
            match self.consume(ctx, &mut state, input).await {
                Ok(steps::Consumed::Yes) => {}
                Ok(steps::Consumed::Misfit(causes)) if !consumed => {
                    return Err(FlowError::validation(causes));
                }
                Ok(steps::Consumed::Misfit(_)) => break,
                Err(e) if !consumed => return Err(e),
                Err(_) => {
                    // A following step refused the input that an earlier step took: the
                    // run stops there without an error (spec 17.1).
                    state = snapshot;
                    break;
                }
            }
            if let Err(e) = self.run_automatic_steps(ctx, &mut state).await {
                if !consumed {
                    return Err(e);
                }
                state = snapshot;
                break;
            }
            consumed = true;
        }
        if state.is_at_end() {
            let view = self.finish(ctx, &state).await?;
            return Ok((view, state));
        }
        let token = self.save(&mut state).await?;
        Ok((self.view(&state, token).await?, state))
    }

    /// Let the current step consume `input`, or say why its shape does not fit.
    async fn consume(
        &self,
        ctx: &RequestContext,
        state: &mut FlowState,
        input: &Value,
    ) -> FlowResult<steps::Consumed> {
        let flow = self.flow_of(state)?;
        let step = current_step(flow, &state.cursor)
            .ok_or_else(|| FlowError::InvalidFlowConfig("no current step".into()))?;
        steps::consume(self, ctx, flow, step, state, input).await
    }

    /// Advance through steps that need no input until one does or the flow ends.
    pub(super) async fn run_automatic_steps(
        &self,
        ctx: &RequestContext,
        state: &mut FlowState,
    ) -> FlowResult<()> {
        for _ in 0..MAX_AUTO_ADVANCES {
            if state.is_at_end() {
                return Ok(());
            }
            let flow = self.flow_of(state)?;
            let step = current_step(flow, &state.cursor)
                .ok_or_else(|| FlowError::InvalidFlowConfig("no current step".into()))?;
            match steps::on_enter(self, ctx, flow, step, state).await? {
                steps::Entered::NeedsInput => return Ok(()),
                steps::Entered::Done(branch) => complete_step(flow, &mut state.cursor, branch),
            }
        }
        Err(FlowError::InvalidFlowConfig(
            "too many automatic advances".into(),
        ))
    }

    /// The OAuth session named by `x_ref` (in `url_query` first, else the request URL);
    /// an unknown or expired one is no error: the flow just has no tie-in (spec 12.1).
    async fn oauth_tie_in(
        &self,
        url_query: Option<&str>,
        request_query: Option<&str>,
    ) -> FlowResult<Option<String>> {
        let x_ref = url_query
            .and_then(oauth::x_ref_of)
            .or_else(|| request_query.and_then(oauth::x_ref_of));
        let Some(x_ref) = x_ref else {
            return Ok(None);
        };
        let live = self
            .state_store
            .get(&oauth::oauth_session_key(&x_ref))
            .await?
            .is_some();
        Ok(live.then_some(x_ref))
    }

    pub(super) async fn oauth_session(
        &self,
        state: &FlowState,
    ) -> FlowResult<Option<OAuthSession>> {
        let Some(x_ref) = &state.oauth_x_ref else {
            return Ok(None);
        };
        let Some(json) = self
            .state_store
            .get(&oauth::oauth_session_key(x_ref))
            .await?
        else {
            return Ok(None);
        };
        Ok(serde_json::from_str(&json).ok())
    }

    /// Write the single-use authentication info and give the URI that redeems it.
    async fn finish_redirect(
        &self,
        state: &FlowState,
        session: &OAuthSession,
        user_id: &str,
        session_id: Option<&str>,
    ) -> FlowResult<String> {
        let code = token::link_code(&*self.rng);
        let info = AuthenticationInfo {
            x_ref: state.oauth_x_ref.clone().unwrap_or_default(),
            user_id: user_id.to_string(),
            session_id: session_id.map(str::to_string),
            authenticated_at: self.clock.now(),
            amr: state.amr.clone(),
        };
        let json = serde_json::to_string(&info)
            .map_err(|e| FlowError::Unexpected(format!("authentication info: {e}")))?;
        self.state_store
            .put(
                &oauth::authentication_info_key(&code),
                &json,
                oauth::AUTHENTICATION_INFO_TTL,
            )
            .await?;
        Ok(oauth::with_code(&session.consent_uri, &code))
    }

    pub(super) fn resolve_flow(&self, kind: FlowKind, name: &str) -> FlowResult<&FlowDef> {
        match kind {
            FlowKind::Promote => return Err(FlowError::UnknownFlow),
            FlowKind::AccountRecovery if !self.settings.account_recovery.enabled => {
                return Err(FlowError::ForgotPasswordDisabled);
            }
            FlowKind::Signup if self.settings.public_signup_disabled => {
                return Err(FlowError::NoPublicSignup);
            }
            _ => {}
        }
        self.catalog
            .find(kind, name)
            .ok_or(FlowError::FlowNameNotFound)
    }

    pub(super) fn flow_of(&self, state: &FlowState) -> FlowResult<&FlowDef> {
        self.catalog
            .find(state.kind, &state.name)
            .ok_or_else(|| FlowError::InvalidFlowConfig("flow of state vanished".into()))
    }

    fn state_key(token: &str) -> String {
        format!("flowstate:{token}")
    }

    fn flow_key(flow_id: &str) -> String {
        format!("flow:{flow_id}")
    }

    /// Store `state` under a new token; the flow lives 20 minutes after its newest state.
    async fn save(&self, state: &mut FlowState) -> FlowResult<String> {
        state.issued_at = self.clock.now();
        let token = token::state_token(&*self.rng);
        let json = serde_json::to_string(state)
            .map_err(|e| FlowError::Unexpected(format!("state encoding: {e}")))?;
        let ttl = self.settings.state_ttl;
        self.state_store
            .put(&Self::state_key(&token), &json, ttl)
            .await?;
        self.state_store
            .put(&Self::flow_key(&state.flow_id), "live", ttl)
            .await?;
        Ok(token)
    }

    async fn load(&self, state_token: &str) -> FlowResult<FlowState> {
        if !token::is_state_token_format(state_token) {
            return Err(FlowError::FlowNotFound);
        }
        let json = self
            .state_store
            .get(&Self::state_key(state_token))
            .await?
            .ok_or(FlowError::FlowNotFound)?;
        let state: FlowState = serde_json::from_str(&json)
            .map_err(|e| FlowError::Unexpected(format!("state decoding: {e}")))?;
        let age = self.clock.now() - state.issued_at;
        if age.to_std().unwrap_or_default() >= self.settings.state_ttl {
            return Err(FlowError::FlowNotFound);
        }
        if self
            .state_store
            .get(&Self::flow_key(&state.flow_id))
            .await?
            .is_none()
        {
            return Err(FlowError::FlowNotFound);
        }
        Ok(state)
    }

    pub(super) async fn view(&self, state: &FlowState, token: String) -> FlowResult<StateView> {
        let action = match self.flow_of(state) {
            Ok(flow) => match current_step(flow, &state.cursor) {
                Some(step) => steps::render(self, step, state).await?,
                None => Action::Finished,
            },
            Err(e) => return Err(e),
        };
        Ok(StateView {
            state_token: token,
            flow_kind: state.kind,
            flow_name: state.name.clone(),
            action,
            finished: None,
            cookies: Vec::new(),
        })
    }

    /// Finish: delete the flow ("compare and delete", so exactly one branch commits),
    /// then apply every pending write and the session in one transaction.
    async fn finish(&self, ctx: &RequestContext, state: &FlowState) -> FlowResult<StateView> {
        let flow_key = Self::flow_key(&state.flow_id);
        if self.state_store.take(&flow_key).await?.is_none() {
            return Err(FlowError::FlowNotFound);
        }
        match self.commit_finished(ctx, state).await {
            Ok(view) => Ok(view),
            Err(e) => {
                // The flow stays unfinished: the client may retry (spec 6.3).
                let _ = self
                    .state_store
                    .put(&flow_key, "live", self.settings.state_ttl)
                    .await;
                Err(e)
            }
        }
    }

    async fn commit_finished(
        &self,
        ctx: &RequestContext,
        state: &FlowState,
    ) -> FlowResult<StateView> {
        let user_id = state
            .user_id
            .clone()
            .ok_or_else(|| FlowError::InvalidFlowConfig("flow finished without a user".into()))?;
        if state.is_new_user {
            self.take_signup_token(ctx).await?;
        }
        if !state.is_new_user {
            // No flow finishes for a disabled user, whatever its steps (spec 8.19).
            if let Some(user) = reads::user(&*self.db, &user_id).await?
                && user.disabled
            {
                return Err(FlowError::DisabledUser {
                    reason: user.disabled_reason,
                });
            }
        }
        if state.kind == FlowKind::AccountRecovery {
            super::recovery::consume_at_finish(self, state).await?;
        }
        let now = self.clock.now();
        let mut changes = Vec::new();
        if state.is_new_user {
            changes.push(Change::CreateUser(User {
                id: user_id.clone(),
                org_id: DEFAULT_ORG_ID.to_string(),
                created_at: now,
                disabled: false,
                disabled_reason: None,
                name: None,
            }));
        }
        changes.extend(pending_changes(state, now));
        let oauth_session = self.oauth_session(state).await?;
        let suppress_cookie = oauth_session
            .as_ref()
            .is_some_and(|s| s.suppress_idp_session_cookie);
        let mut cookies = Vec::new();
        let mut session_id = None;
        if creates_session(state.kind) {
            let (session, cookie) = self.new_session(&user_id, &state.amr);
            session_id = Some(session.id.clone());
            changes.push(Change::CreateSession(session));
            if !suppress_cookie {
                cookies.push(cookie);
            }
        }
        if state.kind == FlowKind::AccountRecovery {
            // A reset ends every session of the user (spec 8.15).
            changes.push(Change::RevokeUserSessions {
                user_id: user_id.clone(),
                except: None,
                at: now,
            });
        }
        changes.push(Change::AuditEvent(AuditEvent {
            id: token::random_id(&*self.rng),
            org_id: DEFAULT_ORG_ID.to_string(),
            user_id: Some(user_id.clone()),
            event_type: audit_event_type(state),
            payload: serde_json::json!({"flow_type": state.kind.as_str(), "flow_name": state.name, "amr": state.amr}),
            created_at: now,
        }));
        self.db.commit(changes).await.map_err(|e| match e {
            StoreError::DuplicateIdentity { login_id_key } => {
                let t = self
                    .settings
                    .login_id_keys
                    .iter()
                    .find(|k| k.key == login_id_key)
                    .map(|k| k.login_id_type.as_str())
                    .unwrap_or("email");
                FlowError::DuplicatedIdentity {
                    login_id_type_incoming: t,
                    login_id_type_existing: t,
                }
            }
            other => FlowError::Store(other),
        })?;
        reads::forget();
        if state.device_token_requested {
            cookies.push(super::device_token::issue(self, &user_id).await?);
        }
        let finish_redirect_uri = match &oauth_session {
            Some(s) => Some(
                self.finish_redirect(state, s, &user_id, session_id.as_deref())
                    .await?,
            ),
            None => None,
        };
        Ok(StateView {
            state_token: token::state_token(&*self.rng),
            flow_kind: state.kind,
            flow_name: state.name.clone(),
            action: Action::Finished,
            finished: Some(FinishedFlow {
                user_id,
                session_id,
                amr: state.amr.clone(),
                finish_redirect_uri,
            }),
            cookies,
        })
    }

    async fn take_signup_token(&self, ctx: &RequestContext) -> FlowResult<()> {
        let Some(limit) = self.settings.rate_limits.signup_per_ip else {
            return Ok(());
        };
        let bucket = Bucket::new(
            "SignupPerIP",
            &ctx.ip,
            limit,
            Some(("authentication.signup.per_ip", "authentication.signup")),
        );
        self.limiter.take(&bucket).await
    }

    fn new_session(&self, user_id: &str, amr: &[String]) -> (Session, CookieEffect) {
        let now = self.clock.now();
        let secret = token::random_crockford(&*self.rng, 43);
        let lifetime = self.settings.session.lifetime;
        let session = Session {
            id: token::random_id(&*self.rng),
            user_id: user_id.to_string(),
            org_id: DEFAULT_ORG_ID.to_string(),
            kind: SessionKind::Idp,
            token_hash: token::sha256_hex(&secret),
            amr: amr.to_vec(),
            created_at: now,
            last_accessed_at: now,
            expires_at: now + chrono::Duration::from_std(lifetime).unwrap_or_default(),
            revoked_at: None,
        };
        let cookie = CookieEffect {
            name: self.settings.session.cookie_name.clone(),
            value: secret,
            max_age_seconds: (!self.settings.session.use_session_cookie)
                .then_some(lifetime.as_secs()),
            same_site: "Lax",
            http_only: true,
            secure: self.settings.secure_cookies,
        };
        (session, cookie)
    }
}

fn with_kind(error: FlowError, kind: FlowKind) -> InputError {
    InputError {
        error,
        flow_kind: Some(kind),
        state: None,
    }
}

fn creates_session(kind: FlowKind) -> bool {
    matches!(
        kind,
        FlowKind::Login | FlowKind::Signup | FlowKind::SignupLogin | FlowKind::Reauth
    )
}

fn audit_event_type(state: &FlowState) -> String {
    if state.kind == FlowKind::AccountRecovery {
        "user.password_reset".into()
    } else if state.is_new_user {
        "user.signed_up".into()
    } else {
        "user.authenticated".into()
    }
}

fn pending_changes(state: &FlowState, now: chrono::DateTime<chrono::Utc>) -> Vec<Change> {
    let p = &state.pending;
    let mut changes = Vec::new();
    changes.extend(p.identities.iter().cloned().map(Change::CreateIdentity));
    changes.extend(
        p.authenticators
            .iter()
            .cloned()
            .map(Change::CreateAuthenticator),
    );
    changes.extend(p.authenticator_updates.iter().map(|(id, data)| {
        Change::UpdateAuthenticatorData {
            authenticator_id: id.clone(),
            data: data.clone(),
            updated_at: now,
        }
    }));
    changes.extend(
        p.password_history
            .iter()
            .cloned()
            .map(Change::AddPasswordHistory),
    );
    changes.extend(
        p.verified_claims
            .iter()
            .cloned()
            .map(Change::AddVerifiedClaim),
    );
    if !p.recovery_codes.is_empty() {
        changes.push(Change::CreateRecoveryCodes(p.recovery_codes.clone()));
    }
    changes.extend(
        p.consumed_recovery_codes
            .iter()
            .map(|id| Change::ConsumeRecoveryCode {
                recovery_code_id: id.clone(),
                at: now,
            }),
    );
    changes
}
