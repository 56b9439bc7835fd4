//! The `authflow` binary: `serve` runs the server, `check` validates a config file, `org`
//! and `user` administer organizations and users.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod org;
mod user;

#[derive(Parser)]
#[command(
    name = "authflow",
    version,
    about = "Self-hosted authentication server"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (built-in defaults without --config: 127.0.0.1:3000, ./authflow.db).
    Serve {
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Validate a config file: prints `ok`, or one `path: message` line per problem.
    Check {
        #[arg(long)]
        config: PathBuf,
    },
    /// Organizations and API keys of the backend `/auth` API.
    Org {
        #[command(subcommand)]
        command: org::OrgCommand,
    },
    /// Users of the Authentication Flow API: create, get, disable, enable, delete, list,
    /// import (Authgear user-import records).
    User {
        #[command(subcommand)]
        command: user::UserCommand,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Check { config } => check(&config),
        Command::Serve { config } => serve(config),
        Command::Org { command } => org::run(command),
        Command::User { command } => user::run(command),
    }
}

fn check(path: &std::path::Path) -> ExitCode {
    let outcome = authflow_core::config::check_file(path);
    for line in &outcome.stderr {
        eprintln!("{line}");
    }
    for line in &outcome.stdout {
        println!("{line}");
    }
    if outcome.is_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

fn serve(config: Option<PathBuf>) -> ExitCode {
    init_logging();
    let loaded = match config.as_deref() {
        Some(path) => match authflow_core::config::load_file(path) {
            Ok(loaded) => loaded,
            Err(problems) => {
                for p in problems {
                    eprintln!("{p}");
                }
                return ExitCode::from(1);
            }
        },
        None => match builtin_defaults() {
            Ok(loaded) => loaded,
            Err(problems) => {
                for p in problems {
                    eprintln!("{p}");
                }
                return ExitCode::from(1);
            }
        },
    };
    for warning in &loaded.warnings {
        eprintln!("warning: {warning}");
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(authflow_server::run(loaded)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(1)
        }
    }
}

/// The configuration without a file: every default, SQLite `./authflow.db` in the
/// working directory (flow-config.md 2.5).
fn builtin_defaults() -> Result<authflow_core::config::Loaded, Vec<authflow_core::config::Problem>>
{
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    authflow_core::config::load_str(
        "database: {url: \"sqlite://./authflow.db\"}",
        &cwd,
        &|name| std::env::var(name).ok(),
    )
}

/// Logs to standard error; `RUST_LOG` tunes the level (default `info`).
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
}
