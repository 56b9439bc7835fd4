//! `authflow user ...`: users of the Authentication Flow API (the default organization),
//! managed from the command line, and `user import` of Authgear's user-import records
//! (flow-config.md 2.7). Results go to standard output as JSON, problems to standard
//! error with exit status 1. No password, hash, TOTP secret or recovery code is ever
//! printed.
//!
//! Records are written exactly as the flow engine writes them at signup (same login ID
//! normalization, identity, authenticator and claim layout), so a user created or
//! imported here logs in through the flow API.

use std::collections::HashSet;
use std::io::{BufRead, Read};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, anyhow, bail};
use chrono::{DateTime, Utc};
use clap::Subcommand;
use serde_json::{Map, Value, json};

use authflow_core::clock::{Clock, OsRandom, SystemClock};
use authflow_core::config::Loaded;
use authflow_core::credentials::login_id::{
    self, EmailRules, LoginIdProblem, LoginIdRules, PhoneRules,
};
use authflow_core::credentials::password::{
    HashKind, MAX_PASSWORD_BYTES, PasswordHasher, check_policy, hash_kind,
};
use authflow_core::credentials::seal::Sealer;
use authflow_core::credentials::totp::{self, TotpSecret};
use authflow_core::credentials::{recovery, token};
use authflow_core::flow::EngineSettings;
use authflow_core::model::*;
use authflow_core::store::{Change, ChangeSet, Database, StoreError};

#[derive(Subcommand)]
pub enum UserCommand {
    /// Create a user with the given login IDs; prints the user as JSON.
    Create {
        #[arg(long)]
        config: PathBuf,
        #[arg(long)]
        email: Option<String>,
        /// E.164, e.g. +14155550123.
        #[arg(long)]
        phone: Option<String>,
        #[arg(long)]
        username: Option<String>,
        /// Display name.
        #[arg(long)]
        name: Option<String>,
        /// Read the primary password from standard input (one line); checked against
        /// authenticator.password.policy and hashed with the configured argon2id parameters.
        #[arg(long)]
        password_stdin: bool,
        /// Mark the email address as verified.
        #[arg(long)]
        email_verified: bool,
        /// Mark the phone number as verified.
        #[arg(long)]
        phone_verified: bool,
    },
    /// Print a user as JSON: login IDs, authenticator types, verified claims, recovery
    /// code counts (no secrets).
    Get {
        #[arg(long)]
        config: PathBuf,
        /// A login ID (email, phone or username) or a user id.
        user: String,
    },
    /// Disable a user: flows refuse them with DisabledUser and their sessions end.
    Disable {
        #[arg(long)]
        config: PathBuf,
        /// A login ID or a user id.
        user: String,
        /// Kept with the user and returned as the DisabledUser reason.
        #[arg(long)]
        reason: Option<String>,
    },
    /// Enable a disabled user again.
    Enable {
        #[arg(long)]
        config: PathBuf,
        /// A login ID or a user id.
        user: String,
    },
    /// Delete a user and everything of theirs (identities, authenticators, sessions, ...).
    Delete {
        #[arg(long)]
        config: PathBuf,
        /// A login ID or a user id.
        user: String,
    },
    /// One JSON line per user, oldest first.
    List {
        #[arg(long)]
        config: PathBuf,
        #[arg(long, default_value_t = 100)]
        limit: u32,
        #[arg(long, default_value_t = 0)]
        offset: u32,
    },
    /// Import Authgear user-import records, one JSON object per line (`-` = standard
    /// input). Prints {"created", "skipped", "failed"}; exit status 1 if a line failed.
    Import {
        #[arg(long)]
        config: PathBuf,
        file: PathBuf,
    },
}

impl UserCommand {
    fn config_path(&self) -> &Path {
        match self {
            UserCommand::Create { config, .. }
            | UserCommand::Get { config, .. }
            | UserCommand::Disable { config, .. }
            | UserCommand::Enable { config, .. }
            | UserCommand::Delete { config, .. }
            | UserCommand::List { config, .. }
            | UserCommand::Import { config, .. } => config,
        }
    }
}

/// Why a command failed.
enum Failure {
    /// `path: message` lines of an invalid config, printed as they are.
    Config(Vec<String>),
    /// One message, printed as `authflow user: ...`.
    Other(anyhow::Error),
    /// Problems were already printed (import lines); only the exit status is left.
    Reported,
}

impl<E: Into<anyhow::Error>> From<E> for Failure {
    fn from(e: E) -> Self {
        Failure::Other(e.into())
    }
}

pub fn run(command: UserCommand) -> ExitCode {
    match execute(command) {
        Ok(lines) => {
            lines.iter().for_each(|line| println!("{line}"));
            ExitCode::SUCCESS
        }
        Err(Failure::Config(problems)) => {
            problems.iter().for_each(|p| eprintln!("{p}"));
            ExitCode::from(1)
        }
        Err(Failure::Other(e)) => {
            eprintln!("authflow user: {e:#}");
            ExitCode::from(1)
        }
        Err(Failure::Reported) => ExitCode::from(1),
    }
}

fn execute(command: UserCommand) -> Result<Vec<String>, Failure> {
    let loaded = authflow_core::config::load_file(command.config_path())
        .map_err(|problems| Failure::Config(problems.iter().map(|p| p.to_string()).collect()))?;
    // Read standard input before connecting: a missing password fails fast.
    let password = match &command {
        UserCommand::Create {
            password_stdin: true,
            ..
        } => Some(read_password(std::io::stdin().lock())?),
        _ => None,
    };
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(async {
        let admin = Admin::connect(loaded).await?;
        admin.apply(command, password).await
    })
}

/// The password on standard input: everything up to the end, one trailing newline
/// (`\n` or `\r\n`) removed.
fn read_password(input: impl Read) -> anyhow::Result<String> {
    let mut bytes = Vec::new();
    // A few bytes more than allowed (a newline may follow) tell that it is too long.
    input
        .take(MAX_PASSWORD_BYTES as u64 + 3)
        .read_to_end(&mut bytes)
        .context("cannot read the password from standard input")?;
    if bytes.ends_with(b"\n") {
        bytes.pop();
        if bytes.ends_with(b"\r") {
            bytes.pop();
        }
    }
    if bytes.is_empty() {
        bail!("--password-stdin: no password on standard input");
    }
    if bytes.len() > MAX_PASSWORD_BYTES {
        bail!("password: longer than {MAX_PASSWORD_BYTES} bytes");
    }
    String::from_utf8(bytes).map_err(|_| anyhow!("the password on standard input is not UTF-8"))
}

struct Admin {
    loaded: Loaded,
    settings: EngineSettings,
    db: Arc<dyn Database>,
    clock: SystemClock,
    rng: OsRandom,
}

impl Admin {
    /// The database of the config, migrated. The state store is not needed: users are
    /// durable records only.
    async fn connect(loaded: Loaded) -> Result<Self, Failure> {
        let database = &loaded.config.database;
        // Database only: no state store, so no serve lock; this runs next to a server.
        let db = authflow_store::connect_database(&database.url, database.max_connections)
            .await
            .map_err(anyhow::Error::from)?;
        Ok(Admin {
            settings: authflow_server::settings::engine_settings(&loaded.config),
            loaded,
            db,
            clock: SystemClock,
            rng: OsRandom,
        })
    }

    async fn apply(
        &self,
        command: UserCommand,
        password: Option<String>,
    ) -> Result<Vec<String>, Failure> {
        let out = match command {
            UserCommand::Create {
                email,
                phone,
                username,
                name,
                email_verified,
                phone_verified,
                ..
            } => {
                let request = CreateRequest {
                    login_ids: [
                        (LoginIdType::Email, "--email", email),
                        (LoginIdType::Phone, "--phone", phone),
                        (LoginIdType::Username, "--username", username),
                    ]
                    .into_iter()
                    .filter_map(|(t, flag, v)| v.map(|v| (t, flag, v)))
                    .collect(),
                    name,
                    email_verified,
                    phone_verified,
                };
                vec![self.create(request, password).await?]
            }
            UserCommand::Get { user, .. } => {
                let user = self.find_user(&user).await?;
                vec![self.view(&user).await?]
            }
            UserCommand::Disable { user, reason, .. } => {
                let user = self.find_user(&user).await?;
                vec![self.set_disabled(user, true, reason).await?]
            }
            UserCommand::Enable { user, .. } => {
                let user = self.find_user(&user).await?;
                vec![self.set_disabled(user, false, None).await?]
            }
            UserCommand::Delete { user, .. } => {
                let user = self.find_user(&user).await?;
                self.delete(&user).await?;
                vec![json!({"deleted": user.id})]
            }
            UserCommand::List { limit, offset, .. } => self.list(limit, offset).await?,
            UserCommand::Import { file, .. } => return self.import(&file).await,
        };
        Ok(out.iter().map(Value::to_string).collect())
    }

    // -------------------------------------------------------------------------------
    // Lookup and display

    /// By login ID against every configured key (as a login does), else by user id.
    async fn find_user(&self, name: &str) -> anyhow::Result<User> {
        for key in &self.settings.login_id_keys {
            let normalized = login_id::normalize_for_lookup(&key.rules, name);
            let identity = self
                .db
                .find_identity(DEFAULT_ORG_ID, &key.key, &normalized.unique_key)
                .await?;
            if let Some(identity) = identity {
                return self
                    .db
                    .get_user(&identity.user_id)
                    .await?
                    .with_context(|| format!("user {} of login ID is gone", identity.user_id));
            }
        }
        self.db
            .get_user(name)
            .await?
            .with_context(|| format!("no user with login ID or id {}", Value::from(name)))
    }

    /// Every non-secret field of a user.
    async fn view(&self, user: &User) -> anyhow::Result<Value> {
        let identities = self.db.list_identities(&user.id).await?;
        let authenticators = self.db.list_authenticators(&user.id).await?;
        let claims = self.db.list_verified_claims(&user.id).await?;
        let codes = self.db.list_recovery_codes(&user.id).await?;
        let unused = codes.iter().filter(|c| c.consumed_at.is_none()).count();
        Ok(json!({
            "id": user.id,
            "org_id": user.org_id,
            "created_at": user.created_at.to_rfc3339(),
            "disabled": user.disabled,
            "disabled_reason": user.disabled_reason,
            "name": user.name,
            "identities": identities.iter().map(|i| json!({
                "login_id_key": i.login_id_key,
                "login_id_type": i.login_id_type.as_str(),
                "login_id": i.normalized,
            })).collect::<Vec<_>>(),
            "authenticators": authenticators.iter().map(authenticator_view).collect::<Vec<_>>(),
            "verified_claims": claims.iter().map(|c| json!({
                "name": c.name,
                "value": c.value,
            })).collect::<Vec<_>>(),
            "recovery_codes": {"total": codes.len(), "unused": unused},
        }))
    }

    async fn list(&self, limit: u32, offset: u32) -> anyhow::Result<Vec<Value>> {
        let users = self.db.list_users(DEFAULT_ORG_ID, limit, offset).await?;
        let mut out = Vec::with_capacity(users.len());
        for user in users {
            let identities = self.db.list_identities(&user.id).await?;
            out.push(json!({
                "id": user.id,
                "created_at": user.created_at.to_rfc3339(),
                "disabled": user.disabled,
                "name": user.name,
                "login_ids": identities.iter().map(|i| i.normalized.as_str()).collect::<Vec<_>>(),
            }));
        }
        Ok(out)
    }

    // -------------------------------------------------------------------------------
    // Changes

    async fn create(
        &self,
        request: CreateRequest,
        password: Option<String>,
    ) -> anyhow::Result<Value> {
        if request.login_ids.is_empty() {
            bail!("give at least one of --email, --phone, --username");
        }
        let user_id = token::random_id(&self.rng);
        let now = self.clock.now();
        let mut identities = Vec::new();
        for (login_id_type, flag, value) in &request.login_ids {
            let identity = self
                .new_identity(&user_id, *login_id_type, value, now)
                .map_err(|e| anyhow!("{flag}: {e}"))?;
            if self.is_taken(&identity).await? {
                bail!("{flag}: login ID is already taken");
            }
            identities.push(identity);
        }
        let claim = |t: LoginIdType, name: &str| {
            identities
                .iter()
                .find(|i| i.login_id_type == t)
                .map(|i| verified_claim(&user_id, name, &i.normalized, now))
        };
        let mut claims = Vec::new();
        if request.email_verified {
            claims.push(
                claim(LoginIdType::Email, "email").context("--email-verified needs --email")?,
            );
        }
        if request.phone_verified {
            claims.push(
                claim(LoginIdType::Phone, "phone_number")
                    .context("--phone-verified needs --phone")?,
            );
        }
        let password_hash = match password {
            Some(password) => {
                Some(self.hash_new_password(&password, &identities, &request.name)?)
            }
            None => None,
        };

        let user = User {
            id: user_id.clone(),
            org_id: DEFAULT_ORG_ID.into(),
            created_at: now,
            disabled: false,
            disabled_reason: None,
            name: request.name,
        };
        let mut changes = vec![Change::CreateUser(user.clone())];
        changes.extend(identities.into_iter().map(Change::CreateIdentity));
        changes.extend(claims.into_iter().map(Change::AddVerifiedClaim));
        if let Some(hash) = password_hash {
            changes.extend(self.password_changes(&user_id, AuthenticatorKind::Primary, &hash, now));
        }
        changes.push(self.audit(&user_id, "user.created", json!({"by": "cli"})));
        self.commit(changes).await?;
        self.view(&user).await
    }

    /// Policy first (spec 9.4), then argon2id with the configured parameters.
    fn hash_new_password(
        &self,
        password: &str,
        identities: &[Identity],
        name: &Option<String>,
    ) -> anyhow::Result<String> {
        let mut inputs: Vec<&str> = identities.iter().map(|i| i.normalized.as_str()).collect();
        inputs.extend(name.as_deref());
        let violations = check_policy(&self.settings.password_policy, password, &inputs);
        if !violations.is_empty() {
            let causes: Vec<String> = violations
                .iter()
                .map(|v| match v.info() {
                    Some(info) => format!("{} {info}", v.name()),
                    None => v.name().to_string(),
                })
                .collect();
            bail!(
                "password does not meet authenticator.password.policy: {}",
                causes.join(", ")
            );
        }
        let hasher = PasswordHasher::try_new(self.settings.hashing.clone())?;
        Ok(hasher.hash(password, &self.rng))
    }

    async fn set_disabled(
        &self,
        user: User,
        disabled: bool,
        reason: Option<String>,
    ) -> anyhow::Result<Value> {
        let now = self.clock.now();
        let mut changes = vec![Change::SetUserDisabled {
            user_id: user.id.clone(),
            disabled,
            reason: reason.clone(),
        }];
        let event = if disabled {
            // A disabled user keeps no live session.
            changes.push(Change::RevokeUserSessions {
                user_id: user.id.clone(),
                except: None,
                at: now,
            });
            "user.disabled"
        } else {
            "user.reenabled"
        };
        changes.push(self.audit(&user.id, event, json!({"by": "cli"})));
        self.commit(changes).await?;
        let updated = User {
            disabled,
            disabled_reason: reason,
            ..user
        };
        self.view(&updated).await
    }

    async fn delete(&self, user: &User) -> anyhow::Result<()> {
        let changes = vec![
            Change::DeleteUser {
                user_id: user.id.clone(),
            },
            // Audit events outlive the user (no foreign key).
            self.audit(&user.id, "user.deleted", json!({"by": "cli"})),
        ];
        self.commit(changes).await
    }

    async fn commit(&self, changes: ChangeSet) -> anyhow::Result<()> {
        self.db.commit(changes).await.map_err(|e| match e {
            StoreError::DuplicateIdentity { login_id_key } => {
                anyhow!("login ID of key {login_id_key:?} is already taken")
            }
            other => other.into(),
        })
    }

    // -------------------------------------------------------------------------------
    // Record building blocks shared by create and import

    /// An identity as signup makes it: the first key of the type, signup checks applied.
    fn new_identity(
        &self,
        user_id: &str,
        login_id_type: LoginIdType,
        value: &str,
        now: DateTime<Utc>,
    ) -> Result<Identity, String> {
        let key = self.settings.key_of_type(login_id_type).ok_or_else(|| {
            format!(
                "no login ID key of type {} in identity.login_id.keys",
                login_id_type.as_str()
            )
        })?;
        let normalized = login_id::normalize_for_signup(&key.rules, value)
            .map_err(|p| login_id_problem(login_id_type, p))?;
        Ok(Identity {
            id: token::random_id(&self.rng),
            user_id: user_id.to_string(),
            org_id: DEFAULT_ORG_ID.into(),
            login_id_key: key.key.clone(),
            login_id_type,
            original: normalized.original,
            normalized: normalized.normalized,
            unique_key: normalized.unique_key,
            created_at: now,
        })
    }

    async fn is_taken(&self, identity: &Identity) -> anyhow::Result<bool> {
        Ok(self.existing_owner(identity).await?.is_some())
    }

    /// The user who already has this login ID.
    async fn existing_owner(&self, identity: &Identity) -> anyhow::Result<Option<String>> {
        Ok(self
            .db
            .find_identity(DEFAULT_ORG_ID, &identity.login_id_key, &identity.unique_key)
            .await?
            .map(|i| i.user_id))
    }

    /// A password authenticator plus its history entry, as signup writes them.
    fn password_changes(
        &self,
        user_id: &str,
        kind: AuthenticatorKind,
        hash: &str,
        now: DateTime<Utc>,
    ) -> Vec<Change> {
        vec![
            Change::CreateAuthenticator(Authenticator {
                id: token::random_id(&self.rng),
                user_id: user_id.to_string(),
                kind,
                authenticator_type: AuthenticatorType::Password,
                data: json!({"password_hash": hash}),
                created_at: now,
                updated_at: now,
            }),
            Change::AddPasswordHistory(PasswordHistoryEntry {
                user_id: user_id.to_string(),
                password_hash: hash.to_string(),
                created_at: now,
            }),
        ]
    }

    fn authenticator(
        &self,
        user_id: &str,
        kind: AuthenticatorKind,
        authenticator_type: AuthenticatorType,
        data: Value,
        now: DateTime<Utc>,
    ) -> Change {
        Change::CreateAuthenticator(Authenticator {
            id: token::random_id(&self.rng),
            user_id: user_id.to_string(),
            kind,
            authenticator_type,
            data,
            created_at: now,
            updated_at: now,
        })
    }

    fn audit(&self, user_id: &str, event_type: &str, payload: Value) -> Change {
        Change::AuditEvent(AuditEvent {
            id: token::random_id(&self.rng),
            org_id: DEFAULT_ORG_ID.into(),
            user_id: Some(user_id.to_string()),
            event_type: event_type.into(),
            payload,
            created_at: self.clock.now(),
        })
    }

    /// The rules OOB targets are normalized with: the login ID key's, else the defaults
    /// (as the engine's `normalize_target`).
    fn target_rules(&self, medium: LoginIdType) -> LoginIdRules {
        self.settings
            .key_of_type(medium)
            .map(|k| k.rules.clone())
            .unwrap_or_else(|| match medium {
                LoginIdType::Phone => LoginIdRules::Phone(PhoneRules::default()),
                _ => LoginIdRules::Email(EmailRules::default()),
            })
    }

    // -------------------------------------------------------------------------------
    // Import

    async fn import(&self, file: &Path) -> Result<Vec<String>, Failure> {
        let reader: Box<dyn BufRead> = if file == Path::new("-") {
            Box::new(std::io::stdin().lock())
        } else {
            let f = std::fs::File::open(file)
                .with_context(|| format!("cannot open {}", file.display()))?;
            Box::new(std::io::BufReader::new(f))
        };
        let sealer = Sealer::load(&self.loaded.config.secrets, self.db.as_ref(), &self.rng)
            .await
            .context("cannot load the encryption key")?;
        let mut importer = Importer {
            admin: self,
            sealer: sealer.sealer,
            uses_generated_key: sealer.uses_generated_key,
            warned: HashSet::new(),
            summary: Summary::default(),
        };
        for (index, line) in reader.split(b'\n').enumerate() {
            let number = index + 1;
            let line = line.with_context(|| format!("cannot read {}", file.display()))?;
            importer.line(number, &line).await;
        }
        let summary = &importer.summary;
        let out = json!({
            "created": summary.created,
            "skipped": summary.skipped,
            "failed": summary.failed,
        });
        if summary.failed > 0 {
            println!("{out}");
            return Err(Failure::Reported);
        }
        Ok(vec![out.to_string()])
    }
}

struct CreateRequest {
    login_ids: Vec<(LoginIdType, &'static str, String)>,
    name: Option<String>,
    email_verified: bool,
    phone_verified: bool,
}

fn verified_claim(user_id: &str, name: &str, value: &str, now: DateTime<Utc>) -> VerifiedClaim {
    VerifiedClaim {
        user_id: user_id.to_string(),
        name: name.to_string(),
        value: value.to_string(),
        created_at: now,
    }
}

fn authenticator_view(a: &Authenticator) -> Value {
    let mut v = json!({
        "id": a.id,
        "kind": match a.kind {
            AuthenticatorKind::Primary => "primary",
            AuthenticatorKind::Secondary => "secondary",
        },
        "type": a.authenticator_type.as_str(),
        "created_at": a.created_at.to_rfc3339(),
    });
    // OOB targets are contact addresses, not secrets; every other member may be one.
    if let Some(target) = a.data.get("target").and_then(Value::as_str)
        && matches!(
            a.authenticator_type,
            AuthenticatorType::OobOtpEmail | AuthenticatorType::OobOtpSms
        )
    {
        v["target"] = target.into();
    }
    v
}

fn login_id_problem(login_id_type: LoginIdType, problem: LoginIdProblem) -> String {
    match problem {
        LoginIdProblem::Format(_) => match login_id_type {
            LoginIdType::Email => "not a valid email address".into(),
            LoginIdType::Phone => "not a valid phone number in E.164 form (+14155550123)".into(),
            LoginIdType::Username => "not a valid username".into(),
        },
        LoginIdProblem::Blocked(reason) => format!("blocked ({reason})"),
        LoginIdProblem::MaxLength { expected, actual } => {
            format!("{actual} characters, at most {expected} allowed")
        }
    }
}

// -----------------------------------------------------------------------------------
// Import records

/// Authgear record members authflow does not keep: one warning per name, then ignored.
const IGNORED_MEMBERS: [&str; 15] = [
    "given_name",
    "family_name",
    "middle_name",
    "nickname",
    "profile",
    "picture",
    "website",
    "gender",
    "birthdate",
    "zoneinfo",
    "locale",
    "address",
    "custom_attributes",
    "roles",
    "groups",
];

const RECORD_MEMBERS: [&str; 10] = [
    "preferred_username",
    "email",
    "phone_number",
    "email_verified",
    "phone_number_verified",
    "name",
    "disabled",
    "password",
    "mfa",
    "recovery_codes",
];

#[derive(Default)]
struct Summary {
    created: u64,
    skipped: u64,
    failed: u64,
}

struct Importer<'a> {
    admin: &'a Admin,
    sealer: Sealer,
    uses_generated_key: bool,
    /// Ignored member names already warned about.
    warned: HashSet<String>,
    summary: Summary,
}

/// What one line amounts to.
enum Plan {
    Create(ChangeSet),
    /// Every login ID already belongs to this user.
    Skip(String),
}

impl Importer<'_> {
    async fn line(&mut self, number: usize, raw: &[u8]) {
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        if raw.iter().all(u8::is_ascii_whitespace) {
            return;
        }
        match self.plan(number, raw).await {
            Ok(Plan::Create(changes)) => match self.admin.commit(changes).await {
                Ok(()) => self.summary.created += 1,
                Err(e) => self.fail(number, &format!("{e:#}")),
            },
            Ok(Plan::Skip(user_id)) => {
                self.summary.skipped += 1;
                eprintln!("line {number}: skipped: its login IDs already belong to user {user_id}");
            }
            Err(message) => self.fail(number, &message),
        }
    }

    fn fail(&mut self, number: usize, message: &str) {
        self.summary.failed += 1;
        eprintln!("line {number}: {message}");
    }

    fn warn_ignored(&mut self, number: usize, member: &str) {
        if self.warned.insert(member.to_string()) {
            eprintln!("warning: line {number}: member {member:?} is not imported (ignored)");
        }
    }

    /// Checks the whole record and builds its changes; nothing is written here. Messages
    /// name members, never their values (hashes, secrets and codes stay out of output).
    async fn plan(&mut self, number: usize, raw: &[u8]) -> Result<Plan, String> {
        let text = std::str::from_utf8(raw).map_err(|_| "not UTF-8".to_string())?;
        let value: Value =
            serde_json::from_str(text).map_err(|e| format!("not valid JSON: {e}"))?;
        let Value::Object(record) = value else {
            return Err("not a JSON object".into());
        };
        for member in record.keys() {
            if IGNORED_MEMBERS.contains(&member.as_str()) {
                self.warn_ignored(number, member);
            } else if !RECORD_MEMBERS.contains(&member.as_str()) {
                return Err(format!("{member}: unknown member"));
            }
        }
        let admin = self.admin;
        let now = admin.clock.now();
        let user_id = token::random_id(&admin.rng);

        // Login IDs.
        let mut identities = Vec::new();
        for (member, login_id_type) in [
            ("email", LoginIdType::Email),
            ("phone_number", LoginIdType::Phone),
            ("preferred_username", LoginIdType::Username),
        ] {
            if let Some(value) = opt_str(&record, "", member)? {
                let identity = admin
                    .new_identity(&user_id, login_id_type, value, now)
                    .map_err(|e| format!("{member}: {e}"))?;
                identities.push((member, identity));
            }
        }
        if identities.is_empty() {
            return Err("no login ID: give email, phone_number or preferred_username".into());
        }

        // Everything else is checked before the database is asked, so a bad record is
        // reported as such even when its login IDs exist.
        let mut changes: ChangeSet = Vec::new();
        for (member, claim, t) in [
            ("email_verified", "email", LoginIdType::Email),
            ("phone_number_verified", "phone_number", LoginIdType::Phone),
        ] {
            if opt_bool(&record, "", member)? {
                let identity = identities
                    .iter()
                    .find(|(_, i)| i.login_id_type == t)
                    .map(|(_, i)| i)
                    .ok_or_else(|| format!("{member}: true without {claim}"))?;
                changes.push(Change::AddVerifiedClaim(verified_claim(
                    &user_id,
                    claim,
                    &identity.normalized,
                    now,
                )));
            }
        }
        let name = opt_str(&record, "", "name")?.map(str::to_string);
        let disabled = opt_bool(&record, "", "disabled")?;
        if let Some(password) = opt_object(&record, "", "password")? {
            let hash = self.imported_hash(number, password, "password")?;
            changes.extend(admin.password_changes(
                &user_id,
                AuthenticatorKind::Primary,
                &hash,
                now,
            ));
        }
        if let Some(mfa) = opt_object(&record, "", "mfa")? {
            changes.extend(self.mfa_changes(number, mfa, &user_id, now)?);
        }
        if let Some(codes) = self.recovery_codes(&record)? {
            changes.push(Change::CreateRecoveryCodes(recovery::records(
                &admin.rng, &user_id, &codes, now,
            )));
        }

        // Already there?
        let mut owners = Vec::new();
        for (member, identity) in &identities {
            let owner = admin
                .existing_owner(identity)
                .await
                .map_err(|e| format!("{e:#}"))?;
            owners.push((*member, owner));
        }
        let first_owner = owners[0].1.clone();
        if let Some(owner) = &first_owner
            && owners.iter().all(|(_, o)| o.as_ref() == Some(owner))
        {
            return Ok(Plan::Skip(owner.clone()));
        }
        if let Some((member, _)) = owners.iter().find(|(_, o)| o.is_some()) {
            return Err(format!(
                "{member}: login ID already belongs to another user"
            ));
        }

        let mut all = vec![Change::CreateUser(User {
            id: user_id.clone(),
            org_id: DEFAULT_ORG_ID.into(),
            created_at: now,
            disabled,
            disabled_reason: None,
            name,
        })];
        all.extend(
            identities
                .into_iter()
                .map(|(_, i)| Change::CreateIdentity(i)),
        );
        all.extend(changes);
        all.push(admin.audit(
            &user_id,
            "user.imported",
            json!({"by": "cli", "line": number}),
        ));
        Ok(Plan::Create(all))
    }

    /// `{"type": "bcrypt" | "argon2id", "password_hash": "..."}`; the type must match.
    fn imported_hash(
        &mut self,
        number: usize,
        password: &Map<String, Value>,
        path: &str,
    ) -> Result<String, String> {
        for member in password.keys() {
            match member.as_str() {
                "type" | "password_hash" => {}
                "expire_after" => self.warn_ignored(number, &format!("{path}.expire_after")),
                other => return Err(format!("{path}.{other}: unknown member")),
            }
        }
        let expected = match opt_str(password, path, "type")? {
            Some("bcrypt") => HashKind::Bcrypt,
            Some("argon2id") => HashKind::Argon2id,
            Some(_) => return Err(format!("{path}.type: must be \"bcrypt\" or \"argon2id\"")),
            None => return Err(format!("{path}.type: missing")),
        };
        let hash = opt_str(password, path, "password_hash")?
            .ok_or_else(|| format!("{path}.password_hash: missing"))?;
        if hash_kind(hash) != Some(expected) {
            let kind = match expected {
                HashKind::Bcrypt => "bcrypt ($2a$, $2b$ or $2y$, cost at most 18)",
                HashKind::Argon2id => "argon2id PHC string",
            };
            return Err(format!("{path}.password_hash: not a valid {kind} hash"));
        }
        Ok(hash.to_string())
    }

    /// Secondary authenticators: OOB email / SMS, password, TOTP (sealed).
    fn mfa_changes(
        &mut self,
        number: usize,
        mfa: &Map<String, Value>,
        user_id: &str,
        now: DateTime<Utc>,
    ) -> Result<Vec<Change>, String> {
        let admin = self.admin;
        let mut out = Vec::new();
        for member in mfa.keys() {
            if !["email", "phone_number", "password", "totp"].contains(&member.as_str()) {
                return Err(format!("mfa.{member}: unknown member"));
            }
        }
        for (member, medium, t) in [
            ("email", LoginIdType::Email, AuthenticatorType::OobOtpEmail),
            (
                "phone_number",
                LoginIdType::Phone,
                AuthenticatorType::OobOtpSms,
            ),
        ] {
            if let Some(value) = opt_str(mfa, "mfa", member)? {
                let target = login_id::normalize_for_signup(&admin.target_rules(medium), value)
                    .map_err(|p| format!("mfa.{member}: {}", login_id_problem(medium, p)))?
                    .normalized;
                out.push(admin.authenticator(
                    user_id,
                    AuthenticatorKind::Secondary,
                    t,
                    json!({"target": target}),
                    now,
                ));
            }
        }
        if let Some(password) = opt_object(mfa, "mfa", "password")? {
            let hash = self.imported_hash(number, password, "mfa.password")?;
            out.extend(admin.password_changes(user_id, AuthenticatorKind::Secondary, &hash, now));
        }
        if let Some(totp_record) = opt_object(mfa, "mfa", "totp")? {
            if let Some(member) = totp_record.keys().find(|k| *k != "secret") {
                return Err(format!("mfa.totp.{member}: unknown member"));
            }
            let text = opt_str(totp_record, "mfa.totp", "secret")?
                .ok_or_else(|| "mfa.totp.secret: missing".to_string())?;
            let secret =
                TotpSecret::from_base32(text).map_err(|e| format!("mfa.totp.secret: {e}"))?;
            if self.uses_generated_key {
                self.uses_generated_key = false;
                eprintln!(
                    "warning: secrets.encryption_key is not set: TOTP secrets are encrypted with \
                     the key generated in the database"
                );
            }
            let sealed =
                self.sealer
                    .seal(&admin.rng, &totp::seal_context(user_id), secret.as_bytes());
            out.push(admin.authenticator(
                user_id,
                AuthenticatorKind::Secondary,
                AuthenticatorType::Totp,
                json!({ totp::DATA_SEALED_SECRET: sealed }),
                now,
            ));
        }
        Ok(out)
    }

    /// `recovery_codes`: normalized and de-duplicated; `None` when absent or empty.
    fn recovery_codes(&self, record: &Map<String, Value>) -> Result<Option<Vec<String>>, String> {
        let codes = match record.get("recovery_codes") {
            None | Some(Value::Null) => return Ok(None),
            Some(Value::Array(codes)) => codes,
            Some(_) => return Err("recovery_codes: must be a list of strings".into()),
        };
        let mut out: Vec<String> = Vec::with_capacity(codes.len());
        for (i, code) in codes.iter().enumerate() {
            let code = code
                .as_str()
                .ok_or_else(|| format!("recovery_codes[{i}]: must be a string"))?;
            let normalized =
                recovery::check_imported(code).map_err(|e| format!("recovery_codes[{i}]: {e}"))?;
            if !out.contains(&normalized) {
                out.push(normalized);
            }
        }
        Ok((!out.is_empty()).then_some(out))
    }
}

fn member_path(parent: &str, member: &str) -> String {
    if parent.is_empty() {
        member.to_string()
    } else {
        format!("{parent}.{member}")
    }
}

/// A string member; `null` counts as absent.
fn opt_str<'a>(
    object: &'a Map<String, Value>,
    parent: &str,
    member: &str,
) -> Result<Option<&'a str>, String> {
    match object.get(member) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(format!("{}: must be a string", member_path(parent, member))),
    }
}

/// A boolean member, `false` when absent or `null`.
fn opt_bool(object: &Map<String, Value>, parent: &str, member: &str) -> Result<bool, String> {
    match object.get(member) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(format!(
            "{}: must be true or false",
            member_path(parent, member)
        )),
    }
}

fn opt_object<'a>(
    object: &'a Map<String, Value>,
    parent: &str,
    member: &str,
) -> Result<Option<&'a Map<String, Value>>, String> {
    match object.get(member) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(o)) => Ok(Some(o)),
        Some(_) => Err(format!(
            "{}: must be an object",
            member_path(parent, member)
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_from_stdin_drops_one_newline() {
        assert_eq!(read_password(&b"pw\n"[..]).unwrap(), "pw");
        assert_eq!(read_password(&b"pw\r\n"[..]).unwrap(), "pw");
        assert_eq!(read_password(&b" pw \n\n"[..]).unwrap(), " pw \n");
        assert_eq!(read_password(&b"pw"[..]).unwrap(), "pw");
        assert!(read_password(&b"\n"[..]).is_err());
        assert!(read_password(&b""[..]).is_err());
        assert!(read_password(&[0xff, 0xfe][..]).is_err());
        let max = "a".repeat(MAX_PASSWORD_BYTES);
        assert!(read_password(max.as_bytes()).is_ok());
        let long = "a".repeat(MAX_PASSWORD_BYTES + 1);
        let e = read_password(long.as_bytes()).unwrap_err().to_string();
        assert!(e.contains("longer than 8192 bytes"), "{e}");
        assert!(!e.contains("aaaa"));
    }

    #[test]
    fn member_helpers_name_paths_not_values() {
        let record: Map<String, Value> = serde_json::from_str(
            r#"{"email": 5, "disabled": "yes", "password": "$2b$secret", "mfa": null}"#,
        )
        .unwrap();
        assert_eq!(
            opt_str(&record, "", "email").unwrap_err(),
            "email: must be a string"
        );
        assert_eq!(
            opt_bool(&record, "", "disabled").unwrap_err(),
            "disabled: must be true or false"
        );
        let e = opt_object(&record, "", "password").unwrap_err();
        assert_eq!(e, "password: must be an object");
        assert_eq!(opt_object(&record, "", "mfa").unwrap(), None);
        assert_eq!(
            opt_str(&record, "mfa.totp", "secret").unwrap(),
            None,
            "absent"
        );
        assert!(!opt_bool(&record, "", "phone_number_verified").unwrap());
    }
}
