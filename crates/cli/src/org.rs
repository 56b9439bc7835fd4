//! `authflow org ...`: organizations and API keys of the backend `/auth` API
//! (backend-auth-api.md 1). Results go to standard output as JSON lines, problems to
//! standard error with exit status 1.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Subcommand;

use authflow_core::config::Loaded;
use authflow_core::store::Database;
use authflow_server::backend_api::orgs::{self, OrgAdminError};

#[derive(Subcommand)]
pub enum OrgCommand {
    /// Create an organization; prints {"org_id", "api_key"} (the key is shown only once).
    Create {
        #[arg(long)]
        config: PathBuf,
        #[arg(long)]
        name: String,
    },
    /// One JSON line per organization: id, name, creation time, active key ids.
    List {
        #[arg(long)]
        config: PathBuf,
    },
    /// Issue a new key; the old ones keep working for auth_api.key_rotation_grace_period.
    RotateKey {
        #[arg(long)]
        config: PathBuf,
        /// Organization name or id.
        org: String,
    },
    /// End one key at once.
    RevokeKey {
        #[arg(long)]
        config: PathBuf,
        /// Organization name or id.
        org: String,
        key_id: String,
    },
}

impl OrgCommand {
    fn config_path(&self) -> &Path {
        match self {
            OrgCommand::Create { config, .. }
            | OrgCommand::List { config }
            | OrgCommand::RotateKey { config, .. }
            | OrgCommand::RevokeKey { config, .. } => config,
        }
    }
}

/// Why an `org` command failed; printed as one line on standard error.
#[derive(Debug)]
enum Failure {
    /// `path: message` lines of an invalid config.
    Config(Vec<String>),
    Runtime(std::io::Error),
    Connect(authflow_store::ConnectError),
    Org(OrgAdminError),
}

impl From<OrgAdminError> for Failure {
    fn from(e: OrgAdminError) -> Self {
        Failure::Org(e)
    }
}

pub fn run(command: OrgCommand) -> ExitCode {
    match execute(command) {
        Ok(lines) => {
            for line in lines {
                println!("{line}");
            }
            ExitCode::SUCCESS
        }
        Err(failure) => {
            report(failure);
            ExitCode::from(1)
        }
    }
}

fn report(failure: Failure) {
    match failure {
        Failure::Config(problems) => problems.iter().for_each(|p| eprintln!("{p}")),
        Failure::Runtime(e) => eprintln!("cannot start the async runtime: {e}"),
        Failure::Connect(e) => eprintln!("{e}"),
        Failure::Org(e) => eprintln!("authflow org: {e}"),
    }
}

fn execute(command: OrgCommand) -> Result<Vec<String>, Failure> {
    let loaded = authflow_core::config::load_file(command.config_path())
        .map_err(|problems| Failure::Config(problems.iter().map(|p| p.to_string()).collect()))?;
    let runtime = tokio::runtime::Runtime::new().map_err(Failure::Runtime)?;
    runtime.block_on(async {
        let db = connect(&loaded).await?;
        apply(db.as_ref(), &loaded, command).await
    })
}

/// The database of the config, migrated. The state store is not needed: organizations and
/// keys are durable records only.
async fn connect(loaded: &Loaded) -> Result<std::sync::Arc<dyn Database>, Failure> {
    let database = &loaded.config.database;
    authflow_store::connect_database(&database.url, database.max_connections)
        .await
        .map_err(Failure::Connect)
}

async fn apply(
    db: &dyn Database,
    loaded: &Loaded,
    command: OrgCommand,
) -> Result<Vec<String>, Failure> {
    let grace = loaded.config.auth_api.key_rotation_grace_period;
    let lines = match command {
        OrgCommand::Create { name, .. } => vec![orgs::create(db, &name).await?.to_json()],
        OrgCommand::List { .. } => orgs::list(db).await?,
        OrgCommand::RotateKey { org, .. } => {
            vec![orgs::rotate_key(db, &org, grace).await?.to_json()]
        }
        OrgCommand::RevokeKey { org, key_id, .. } => {
            orgs::revoke_key(db, &org, &key_id).await?;
            vec![serde_json::json!({"revoked": key_id})]
        }
    };
    Ok(lines.iter().map(|v| v.to_string()).collect())
}
