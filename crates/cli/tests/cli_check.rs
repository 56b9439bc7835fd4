//! `authflow check` and the start-up failures of `authflow serve` (spec `flow-config.md` 2.4,
//! 2.5 and 7.10).

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use authflow_testkit::{run_command, stderr_text, stdout_text};
use tokio::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_authflow");
const SERVE_TIMEOUT: Duration = Duration::from_secs(60);

/// The example of `flow-config.md` 7.10.
const TYPICAL_MISTAKES: &str = r#"server:
  public_origin: http://127.0.0.1:3000
  listen_backlog: 64                             # 1 unknown key
database:
  url: ${AUTHFLOW_DB}                            # 2 variable not set
authentication:
  secondary_authentication_mode: optional        # 3 not in the enum
authentication_flow:
  signup_flows:
  - name: default
    steps:
    - name: setup_email
      type: identify
      one_of:
      - identification: email
    - type: verify
      target_step: setup_phon                    # 4 no such step
    - name: setup_email                          # 5 duplicate name
      type: identify
      one_of:
      - identification: phone                    # 6 no phone login ID key
  login_flows:
  - name: default
    steps:
    - type: identify
      one_of:
      - identification: email
        steps:
        - type: verify                           # 7 not a login step
          target_step: x
    - type: change_password
      target_step: late_password                 # 8 does not run before
    - name: late_password
      type: authenticate
      one_of:
      - authentication: primary_password
"#;

/// What `check` prints for [`TYPICAL_MISTAKES`].
const TYPICAL_MISTAKES_OUTPUT: [&str; 8] = [
    r#"server.listen_backlog: unknown key"#,
    r#"database.url: environment variable AUTHFLOW_DB is not set"#,
    r#"authentication.secondary_authentication_mode: must be one of disabled, if_exists, required (got "optional")"#,
    r#"authentication_flow.signup_flows[0].steps[1].target_step: no step named "setup_phon""#,
    r#"authentication_flow.signup_flows[0].steps[2].name: duplicate step name "setup_email" (first at authentication_flow.signup_flows[0].steps[0].name)"#,
    r#"authentication_flow.signup_flows[0].steps[2].one_of[0].identification: "phone" needs a login ID key of type phone in identity.login_id.keys"#,
    r#"authentication_flow.login_flows[0].steps[0].one_of[0].steps[0].type: "verify" is not allowed in a login flow (allowed: identify, authenticate, check_account_status, terminate_other_sessions, change_password, prompt_create_passkey)"#,
    r#"authentication_flow.login_flows[0].steps[1].target_step: step "late_password" does not run before this step"#,
];

fn write_config(dir: &Path, yaml: &str) -> Result<PathBuf> {
    let path = dir.join("authflow.yaml");
    std::fs::write(&path, yaml)?;
    Ok(path)
}

/// `authflow ARGS` in `dir`, without `AUTHFLOW_DB` in its environment.
fn authflow(dir: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(BIN);
    command
        .args(args)
        .current_dir(dir)
        .env_remove("AUTHFLOW_DB");
    command
}

async fn check(dir: &Path, config: &Path) -> Result<Output> {
    let config = config.to_str().context("non-UTF-8 temp path")?;
    run_command(&mut authflow(dir, &["check", "--config", config])).await
}

fn describe(output: &Output) -> String {
    format!(
        "{}\n--- stdout ---\n{}--- stderr ---\n{}",
        output.status,
        stdout_text(output),
        stderr_text(output)
    )
}

fn free_port() -> Result<u16> {
    let listener = std::net::TcpListener::bind(("127.0.0.1", 0))?;
    Ok(listener.local_addr()?.port())
}

/// Runs `authflow serve --config CONFIG` until it exits, failing if anything ever accepts a
/// connection on `port` meanwhile.
async fn serve_expecting_exit(dir: &Path, config: &Path, port: u16) -> Result<Output> {
    let config = config.to_str().context("non-UTF-8 temp path")?;
    let mut command = authflow(dir, &["serve", "--config", config]);
    command
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    let mut child = command.spawn()?;
    let deadline = Instant::now() + SERVE_TIMEOUT;
    while child.try_wait()?.is_none() {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            bail!("serve listened on port {port} although it must not start");
        }
        if Instant::now() >= deadline {
            bail!("serve did not exit within {} s", SERVE_TIMEOUT.as_secs());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(child.wait_with_output().await?)
}

#[tokio::test]
async fn check_accepts_minimal_file() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let config = write_config(dir.path(), "database: {url: sqlite://./authflow.db}\n")?;
    let output = check(dir.path(), &config).await?;
    ensure!(output.status.code() == Some(0), "{}", describe(&output));
    ensure!(stdout_text(&output) == "ok\n", "{}", describe(&output));
    ensure!(
        !dir.path().join("authflow.db").exists(),
        "check must not open the database"
    );
    Ok(())
}

#[tokio::test]
async fn check_accepts_config_equals_form() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let config = write_config(dir.path(), "database: {url: sqlite://./authflow.db}\n")?;
    let arg = format!("--config={}", config.display());
    let output = run_command(&mut authflow(dir.path(), &["check", &arg])).await?;
    ensure!(output.status.code() == Some(0), "{}", describe(&output));
    ensure!(stdout_text(&output) == "ok\n", "{}", describe(&output));
    Ok(())
}

#[tokio::test]
async fn check_reports_typical_mistakes() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let config = write_config(dir.path(), TYPICAL_MISTAKES)?;
    let output = check(dir.path(), &config).await?;
    ensure!(output.status.code() == Some(1), "{}", describe(&output));
    let stdout = stdout_text(&output);
    let lines: Vec<&str> = stdout.lines().collect();
    ensure!(
        lines == TYPICAL_MISTAKES_OUTPUT,
        "expected exactly:\n{}\n\ngot {}",
        TYPICAL_MISTAKES_OUTPUT.join("\n"),
        describe(&output)
    );
    Ok(())
}

#[tokio::test]
async fn check_reports_unreadable_file() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let missing = dir.path().join("missing.yaml");
    let output = check(dir.path(), &missing).await?;
    ensure!(output.status.code() == Some(1), "{}", describe(&output));
    let prefix = format!("{}: cannot read: ", missing.display());
    let stdout = stdout_text(&output);
    let line = stdout.lines().next().unwrap_or("");
    ensure!(
        line.starts_with(&prefix) && line.len() > prefix.len(),
        "expected a line starting with {prefix:?}, got {}",
        describe(&output)
    );
    Ok(())
}

#[tokio::test]
async fn check_without_config_is_a_usage_error() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let output = run_command(&mut authflow(dir.path(), &["check"])).await?;
    ensure!(output.status.code() == Some(2), "{}", describe(&output));
    Ok(())
}

#[tokio::test]
async fn serve_with_invalid_config_exits_without_listening() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let port = free_port()?;
    let yaml = format!(
        "server:\n  listen: 127.0.0.1:{port}\n  listen_backlog: 64\ndatabase:\n  url: sqlite://./authflow.db\n"
    );
    let config = write_config(dir.path(), &yaml)?;
    let output = serve_expecting_exit(dir.path(), &config, port).await?;
    ensure!(output.status.code() == Some(1), "{}", describe(&output));
    ensure!(
        stderr_text(&output)
            .lines()
            .any(|line| line == "server.listen_backlog: unknown key"),
        "the check line must go to stderr: {}",
        describe(&output)
    );
    ensure!(
        !dir.path().join("authflow.db").exists(),
        "an invalid config must not open the database"
    );
    Ok(())
}

#[tokio::test]
async fn serve_with_unreachable_postgres_fails_with_one_line() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let port = free_port()?;
    let yaml = format!(
        "server:\n  listen: 127.0.0.1:{port}\ndatabase:\n  url: postgres://nobody:secret@127.0.0.1:1/x\n"
    );
    let config = write_config(dir.path(), &yaml)?;
    let output = serve_expecting_exit(dir.path(), &config, port).await?;
    ensure!(!output.status.success(), "{}", describe(&output));
    let all = format!("{}{}", stdout_text(&output), stderr_text(&output));
    ensure!(
        !all.contains("secret"),
        "the password leaked: {}",
        describe(&output)
    );
    let problems: Vec<&str> = all
        .lines()
        .filter(|line| !line.trim().is_empty() && !line.starts_with("warning: "))
        .collect();
    ensure!(
        problems.len() == 1,
        "expected ONE line (warnings aside), got {}",
        describe(&output)
    );
    ensure!(
        problems[0].contains("127.0.0.1:1"),
        "the line must name the database URL (without password): {}",
        describe(&output)
    );
    Ok(())
}
