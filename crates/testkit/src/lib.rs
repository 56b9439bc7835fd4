//! Test harness for authflow: starts the real `authflow` binary on a free loopback port, on a
//! fresh database, and speaks the Authentication Flow API to it over plain HTTP.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use authflow_testkit::{backends, TestServer};
//! for backend in backends() {
//!     let server = TestServer::start(backend, "verification: {claims: {email: {required: false}}}").await?;
//!     let finished = server.api().signup_with_password("a@example.com", "correct horse 1").await?;
//!     assert_eq!(finished.action_type(), Some("finished"));
//! }
//! # Ok(()) }
//! ```
//!
//! Environment:
//! - `AUTHFLOW_BIN`: the `authflow` binary to run (default: found next to the running test or
//!   bench executable, that is `target/<profile>/authflow`).
//! - `AUTHFLOW_TEST_POSTGRES_URL` and `AUTHFLOW_TEST_REDIS_URL`: when both are set and not
//!   empty, [`backends`] also yields [`Backend::PostgresRedis`]. The PostgreSQL URL is an admin
//!   URL: every server gets its own database `authflow_it_<random>`, created through it and
//!   dropped when the last server using it stops.

use std::fmt;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use rand::Rng;
use serde_json::{Value, json};
use tempfile::TempDir;

/// Admin URL of the PostgreSQL server used by [`Backend::PostgresRedis`].
pub const POSTGRES_URL_ENV: &str = "AUTHFLOW_TEST_POSTGRES_URL";
/// URL of the Redis server used by [`Backend::PostgresRedis`].
pub const REDIS_URL_ENV: &str = "AUTHFLOW_TEST_REDIS_URL";
/// Overrides the `authflow` binary that is started.
pub const BIN_ENV: &str = "AUTHFLOW_BIN";

/// `POST` here creates a flow.
pub const CREATE_PATH: &str = "/api/v1/authentication_flows";
/// `POST` here feeds `input` / `batch_input` to a state.
pub const INPUT_PATH: &str = "/api/v1/authentication_flows/states/input";
/// `POST` here reads a state again.
pub const STATES_PATH: &str = "/api/v1/authentication_flows/states";

const READY_TIMEOUT: Duration = Duration::from_secs(30);
const READY_POLL: Duration = Duration::from_millis(50);
const PORT_ATTEMPTS: usize = 5;
const CLI_TIMEOUT: Duration = Duration::from_secs(60);
const ADMIN_TIMEOUT: Duration = Duration::from_secs(10);
const MAX_WALK_STEPS: usize = 10;
/// Top-level config sections the harness writes itself.
const HARNESS_SECTIONS: [&str; 3] = ["server", "database", "state_store"];

// ------------------------------------------------------------------------------------------------
// Backends

/// Where a test server keeps its data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Backend {
    /// A fresh SQLite file; short-lived state in the database.
    Sqlite,
    /// A fresh PostgreSQL database and a random Redis key prefix (`state_store`).
    PostgresRedis,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::PostgresRedis => "postgres+redis",
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The backends to test on: SQLite always; PostgreSQL + Redis when both
/// `AUTHFLOW_TEST_POSTGRES_URL` and `AUTHFLOW_TEST_REDIS_URL` are set (and not empty).
pub fn backends() -> Vec<Backend> {
    let mut list = vec![Backend::Sqlite];
    if env_value(POSTGRES_URL_ENV).is_some() && env_value(REDIS_URL_ENV).is_some() {
        list.push(Backend::PostgresRedis);
    }
    list
}

fn env_value(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

// ------------------------------------------------------------------------------------------------
// Locating and running the binary

/// The `authflow` binary: `AUTHFLOW_BIN` if set, else `authflow` next to the running executable
/// (a bench in `target/<profile>/`) or one level up (a test in `target/<profile>/deps/`).
pub fn authflow_bin() -> Result<PathBuf> {
    if let Some(path) = env_value(BIN_ENV) {
        return Ok(PathBuf::from(path));
    }
    let exe = std::env::current_exe().context("cannot locate the running executable")?;
    let name = format!("authflow{}", std::env::consts::EXE_SUFFIX);
    exe.ancestors()
        .skip(1)
        .take(2)
        .map(|dir| dir.join(&name))
        .find(|candidate| candidate.is_file())
        .with_context(|| {
            format!(
                "no authflow binary next to {}: build it (cargo build -p authflow) or set {BIN_ENV}",
                exe.display()
            )
        })
}

/// Runs the discovered `authflow` binary with `args` (for CLI tests such as `authflow check`).
pub async fn run_authflow(args: &[&str]) -> Result<Output> {
    run_bin(&authflow_bin()?, args).await
}

/// Runs `bin` with `args`, stdin closed, and collects its output (60 s at most).
pub async fn run_bin(bin: &Path, args: &[&str]) -> Result<Output> {
    run_command(tokio::process::Command::new(bin).args(args)).await
}

/// Runs a prepared command (set env, current dir, ... on it first) with stdin closed and
/// collects its output; fails if it runs longer than 60 s (the process is then killed).
pub async fn run_command(cmd: &mut tokio::process::Command) -> Result<Output> {
    cmd.stdin(Stdio::null()).kill_on_drop(true);
    let described = format!("{cmd:?}");
    let output = cmd.output();
    match tokio::time::timeout(CLI_TIMEOUT, output).await {
        Ok(result) => result.with_context(|| format!("cannot run {described}")),
        Err(_) => bail!(
            "{described} did not exit within {} s",
            CLI_TIMEOUT.as_secs()
        ),
    }
}

/// Standard output of a finished command, lossily decoded.
pub fn stdout_text(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Standard error of a finished command, lossily decoded.
pub fn stderr_text(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

// ------------------------------------------------------------------------------------------------
// Storage provisioning

#[derive(Clone)]
struct StateStore {
    url: String,
    key_prefix: String,
}

/// A PostgreSQL database created for one test deployment; dropped with the last reference.
struct PgDatabase {
    admin_url: String,
    name: String,
    url: String,
}

impl PgDatabase {
    async fn create(admin_url: &str, name: String) -> Result<Self> {
        let url = database_url_for(admin_url, &name)?;
        let sql = format!("CREATE DATABASE \"{name}\"");
        admin_execute(admin_url, sql).await.with_context(|| {
            format!(
                "cannot create test database {name} through {POSTGRES_URL_ENV} ({})",
                redact_password(admin_url)
            )
        })?;
        Ok(PgDatabase {
            admin_url: admin_url.to_owned(),
            name,
            url,
        })
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        let admin_url = self.admin_url.clone();
        let sql = format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name);
        // Drop may run inside a tokio runtime: use a private runtime on its own thread.
        let dropper = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            if let Ok(runtime) = runtime {
                let _ = runtime.block_on(admin_execute(&admin_url, sql));
            }
        });
        let _ = dropper.join();
    }
}

async fn admin_execute(admin_url: &str, sql: String) -> Result<()> {
    use sqlx::Connection;
    let work = async {
        let mut conn = sqlx::PgConnection::connect(admin_url).await?;
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
            .execute(&mut conn)
            .await?;
        conn.close().await?;
        anyhow::Ok(())
    };
    tokio::time::timeout(ADMIN_TIMEOUT, work)
        .await
        .map_err(|_| anyhow!("timed out after {} s", ADMIN_TIMEOUT.as_secs()))?
}

fn database_url_for(admin_url: &str, name: &str) -> Result<String> {
    let mut url =
        url::Url::parse(admin_url).with_context(|| format!("{POSTGRES_URL_ENV} is not a URL"))?;
    url.set_path(&format!("/{name}"));
    Ok(url.to_string())
}

fn redact_password(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        _ => url.to_owned(),
    }
}

fn random_suffix() -> String {
    format!("{:016x}", rand::rng().random::<u64>())
}

/// Everything a primary server and its replicas share: binary, storage, config fragments.
#[derive(Clone)]
struct Deployment {
    bin: PathBuf,
    backend: Backend,
    database_url: String,
    state_store: Option<StateStore>,
    server_yaml: String,
    extra_yaml: String,
    envs: Vec<(String, String)>,
    dir: Arc<TempDir>,
    _database: Option<Arc<PgDatabase>>,
}

impl Deployment {
    async fn provision(builder: TestServerBuilder) -> Result<Self> {
        check_extra_yaml(&builder.extra_yaml)?;
        let bin = match builder.bin {
            Some(bin) => bin,
            None => authflow_bin()?,
        };
        let dir = tempfile::Builder::new()
            .prefix("authflow-it-")
            .tempdir()
            .context("cannot create a temp dir")?;
        let mut deployment = Deployment {
            bin,
            backend: builder.backend,
            database_url: sqlite_url(dir.path()),
            state_store: None,
            server_yaml: builder.server_yaml,
            extra_yaml: builder.extra_yaml,
            envs: builder.envs,
            dir: Arc::new(dir),
            _database: None,
        };
        if builder.backend == Backend::PostgresRedis {
            deployment.use_postgres_redis().await?;
        }
        Ok(deployment)
    }

    async fn use_postgres_redis(&mut self) -> Result<()> {
        let admin_url = env_value(POSTGRES_URL_ENV)
            .with_context(|| format!("{POSTGRES_URL_ENV} is not set"))?;
        let redis_url =
            env_value(REDIS_URL_ENV).with_context(|| format!("{REDIS_URL_ENV} is not set"))?;
        let suffix = random_suffix();
        let database = PgDatabase::create(&admin_url, format!("authflow_it_{suffix}")).await?;
        self.database_url = database.url.clone();
        self.state_store = Some(StateStore {
            url: redis_url,
            key_prefix: format!("authflow_it_{suffix}:"),
        });
        self._database = Some(Arc::new(database));
        Ok(())
    }

    fn config_yaml(&self, listen: &str) -> String {
        let mut yaml = format!("server:\n  listen: {}\n", yaml_string(listen));
        for line in self.server_yaml.lines() {
            yaml.push_str(&format!("  {line}\n"));
        }
        yaml.push_str(&format!(
            "database:\n  url: {}\n",
            yaml_string(&self.database_url)
        ));
        if let Some(store) = &self.state_store {
            yaml.push_str(&format!(
                "state_store:\n  url: {}\n  key_prefix: {}\n",
                yaml_string(&store.url),
                yaml_string(&store.key_prefix)
            ));
        }
        yaml.push_str(&self.extra_yaml);
        if !yaml.ends_with('\n') {
            yaml.push('\n');
        }
        yaml
    }
}

fn sqlite_url(dir: &Path) -> String {
    format!("sqlite://{}", dir.join("authflow.db").display())
}

/// A double-quoted YAML scalar (JSON strings are valid YAML).
fn yaml_string(value: &str) -> String {
    Value::String(value.to_owned()).to_string()
}

/// Rejects caller YAML that repeats a section the harness writes itself.
fn check_extra_yaml(extra_yaml: &str) -> Result<()> {
    for line in extra_yaml.lines() {
        let top_level = !line.starts_with([' ', '\t', '#', '-']);
        let key = line.split(':').next().unwrap_or("").trim();
        if top_level && HARNESS_SECTIONS.contains(&key) {
            bail!(
                "extra_yaml must not contain the top-level section `{key}`: the harness writes \
                 server/database/state_store itself (use TestServerBuilder::server_yaml for \
                 extra server keys)"
            );
        }
    }
    Ok(())
}

// ------------------------------------------------------------------------------------------------
// Log capture

/// stdout and stderr of a server process, interleaved line by line.
#[derive(Clone, Default)]
struct LogBuffer(Arc<Mutex<String>>);

impl LogBuffer {
    fn capture<R: Read + Send + 'static>(&self, source: Option<R>) -> Option<JoinHandle<()>> {
        let source = source?;
        let buffer = self.clone();
        Some(std::thread::spawn(move || buffer.copy_lines(source)))
    }

    fn copy_lines<R: Read>(&self, source: R) {
        let mut reader = BufReader::new(source);
        let mut line = Vec::new();
        while matches!(reader.read_until(b'\n', &mut line), Ok(n) if n > 0) {
            self.lock().push_str(&String::from_utf8_lossy(&line));
            line.clear();
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, String> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn text(&self) -> String {
        self.lock().clone()
    }
}

// ------------------------------------------------------------------------------------------------
// TestServer

/// Options for starting a [`TestServer`]; see [`TestServer::builder`].
pub struct TestServerBuilder {
    backend: Backend,
    bin: Option<PathBuf>,
    server_yaml: String,
    extra_yaml: String,
    envs: Vec<(String, String)>,
}

impl TestServerBuilder {
    /// The binary to start (tests in `crates/cli` pass `env!("CARGO_BIN_EXE_authflow")`).
    pub fn bin(mut self, bin: impl Into<PathBuf>) -> Self {
        self.bin = Some(bin.into());
        self
    }

    /// Extra keys of the `server` section, as YAML written at column 0 (the harness indents it
    /// and writes `listen` itself), e.g. `"public_origin: https://auth.example.com"`.
    pub fn server_yaml(mut self, yaml: &str) -> Self {
        self.server_yaml = yaml.to_owned();
        self
    }

    /// Extra top-level sections, as YAML text appended to the generated config. It must not
    /// contain `server`, `database` or `state_store`: the harness writes those itself.
    pub fn extra_yaml(mut self, yaml: &str) -> Self {
        self.extra_yaml = yaml.to_owned();
        self
    }

    /// An environment variable for the server process (for example one the config refers to as
    /// `${NAME}`).
    pub fn env(mut self, name: &str, value: &str) -> Self {
        self.envs.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Provisions storage, writes the config, starts the server and waits for `/healthz`.
    pub async fn start(self) -> Result<TestServer> {
        let deployment = Deployment::provision(self).await?;
        TestServer::launch(deployment).await
    }
}

/// A running `authflow serve` process. Killed on drop; its temp dir (and PostgreSQL database)
/// is removed when the last server of the deployment (primary or replica) is dropped.
pub struct TestServer {
    deployment: Deployment,
    child: Child,
    log: LogBuffer,
    log_threads: Vec<JoinHandle<()>>,
    base_url: String,
    config_path: PathBuf,
    client: reqwest::Client,
}

enum LaunchError {
    PortTaken(anyhow::Error),
    Failed(anyhow::Error),
}

impl TestServer {
    /// Starts the binary of [`authflow_bin`] on `backend`. `extra_yaml` holds extra top-level
    /// config sections (YAML text, appended); it must not repeat `server`, `database` or
    /// `state_store`.
    pub async fn start(backend: Backend, extra_yaml: &str) -> Result<TestServer> {
        Self::builder(backend).extra_yaml(extra_yaml).start().await
    }

    /// Like [`TestServer::start`] with an explicit binary.
    pub async fn start_bin(
        bin: impl Into<PathBuf>,
        backend: Backend,
        extra_yaml: &str,
    ) -> Result<TestServer> {
        Self::builder(backend)
            .bin(bin)
            .extra_yaml(extra_yaml)
            .start()
            .await
    }

    /// All start options: binary, extra `server` keys, extra sections, process environment.
    pub fn builder(backend: Backend) -> TestServerBuilder {
        TestServerBuilder {
            backend,
            bin: None,
            server_yaml: String::new(),
            extra_yaml: String::new(),
            envs: Vec::new(),
        }
    }

    /// Starts another server process with the same config on the same database and state
    /// store (meant for [`Backend::PostgresRedis`]; on SQLite both share the file).
    pub async fn start_replica(&self) -> Result<TestServer> {
        Self::launch(self.deployment.clone()).await
    }

    async fn launch(deployment: Deployment) -> Result<TestServer> {
        let mut port_errors = Vec::new();
        for _ in 0..PORT_ATTEMPTS {
            match Self::launch_on_free_port(&deployment).await {
                Ok(server) => return Ok(server),
                Err(LaunchError::Failed(error)) => return Err(error),
                Err(LaunchError::PortTaken(error)) => port_errors.push(error),
            }
        }
        let last = port_errors
            .pop()
            .unwrap_or_else(|| anyhow!("no attempt made"));
        Err(last.context(format!("no free port after {PORT_ATTEMPTS} attempts")))
    }

    async fn launch_on_free_port(deployment: &Deployment) -> Result<TestServer, LaunchError> {
        let port = free_port().map_err(LaunchError::Failed)?;
        let mut server = Self::spawn(deployment, port).map_err(LaunchError::Failed)?;
        server.wait_ready().await?;
        Ok(server)
    }

    fn spawn(deployment: &Deployment, port: u16) -> Result<TestServer> {
        let listen = format!("127.0.0.1:{port}");
        let config_path = deployment.dir.path().join(format!("authflow-{port}.yaml"));
        std::fs::write(&config_path, deployment.config_yaml(&listen))
            .with_context(|| format!("cannot write {}", config_path.display()))?;
        let mut child = Command::new(&deployment.bin)
            .arg("serve")
            .arg("--config")
            .arg(&config_path)
            .current_dir(deployment.dir.path())
            .envs(deployment.envs.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("cannot start {}", deployment.bin.display()))?;
        let log = LogBuffer::default();
        let log_threads = [
            log.capture(child.stdout.take()),
            log.capture(child.stderr.take()),
        ]
        .into_iter()
        .flatten()
        .collect();
        Ok(TestServer {
            deployment: deployment.clone(),
            child,
            log,
            log_threads,
            base_url: format!("http://{listen}"),
            config_path,
            client: new_http_client(),
        })
    }

    async fn wait_ready(&mut self) -> Result<(), LaunchError> {
        let deadline = Instant::now() + READY_TIMEOUT;
        let probe = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(2))
            .build()
            .map_err(|e| LaunchError::Failed(e.into()))?;
        let healthz = self.url("/healthz");
        loop {
            if let Some(error) = self.exit_error() {
                return Err(error);
            }
            if let Ok(response) = probe.get(&healthz).send().await
                && response.status() == reqwest::StatusCode::OK
            {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(LaunchError::Failed(anyhow!(
                    "{} did not answer 200 within {} s\n{}",
                    healthz,
                    READY_TIMEOUT.as_secs(),
                    self.logs_section()
                )));
            }
            tokio::time::sleep(READY_POLL).await;
        }
    }

    /// `Some` when the process has already exited (with all of its output collected).
    fn exit_error(&mut self) -> Option<LaunchError> {
        let status = match self.child.try_wait() {
            Ok(Some(status)) => status,
            Ok(None) => return None,
            Err(error) => return Some(LaunchError::Failed(error.into())),
        };
        for thread in self.log_threads.drain(..) {
            let _ = thread.join();
        }
        let logs = self.log.text();
        let error = anyhow!(
            "authflow serve exited ({status}) before /healthz answered\n{}",
            self.logs_section()
        );
        Some(if mentions_port_in_use(&logs) {
            LaunchError::PortTaken(error)
        } else {
            LaunchError::Failed(error)
        })
    }

    fn logs_section(&self) -> String {
        format!(
            "--- config {} ---\n{}--- server output ---\n{}",
            self.config_path.display(),
            std::fs::read_to_string(&self.config_path).unwrap_or_default(),
            self.log.text()
        )
    }

    /// `http://127.0.0.1:PORT` (no trailing slash).
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// `base_url` + `path` (`path` starts with `/`).
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    /// The server's shared HTTP client (one cookie jar for every clone). Use
    /// [`TestServer::new_client`] for an independent "browser".
    pub fn client(&self) -> reqwest::Client {
        self.client.clone()
    }

    /// A new HTTP client with its own, empty cookie jar.
    pub fn new_client(&self) -> reqwest::Client {
        new_http_client()
    }

    /// Authentication Flow API helpers using [`TestServer::client`].
    pub fn api(&self) -> FlowApi {
        FlowApi::new(&self.base_url, self.client())
    }

    /// Process id of the server.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The config file the server was started with.
    pub fn config_path(&self) -> &Path {
        &self.config_path
    }

    /// The temp dir of the deployment (config files, SQLite database); the server's working
    /// directory.
    pub fn dir(&self) -> &Path {
        self.deployment.dir.path()
    }

    pub fn backend(&self) -> Backend {
        self.deployment.backend
    }

    /// The `database.url` the server uses.
    pub fn database_url(&self) -> &str {
        &self.deployment.database_url
    }

    /// Everything the process wrote to stdout and stderr so far.
    pub fn logs(&self) -> String {
        self.log.text()
    }

    /// Waits until the logs contain `needle`; returns the logs then.
    pub async fn wait_for_log(&self, needle: &str, timeout: Duration) -> Result<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let logs = self.logs();
            if logs.contains(needle) {
                return Ok(logs);
            }
            if Instant::now() >= deadline {
                bail!("{needle:?} not logged within {timeout:?}; logs:\n{logs}");
            }
            tokio::time::sleep(READY_POLL).await;
        }
    }

    /// Kills the process now (SIGKILL) and waits for it; idempotent.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.kill();
    }
}

fn new_http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .no_proxy()
        .timeout(Duration::from_secs(60))
        .build()
        .expect("reqwest client")
}

fn free_port() -> Result<u16> {
    let listener = std::net::TcpListener::bind(("127.0.0.1", 0)).context("cannot bind port 0")?;
    Ok(listener.local_addr()?.port())
}

fn mentions_port_in_use(logs: &str) -> bool {
    let logs = logs.to_ascii_lowercase();
    logs.contains("address already in use") || logs.contains("addrinuse")
}

// ------------------------------------------------------------------------------------------------
// Authentication Flow API

/// Status, headers and parsed body of one API response.
#[derive(Debug, Clone)]
pub struct ApiResponse {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    /// The parsed JSON body; `Value::Null` if the body is not JSON.
    pub body: Value,
    /// The raw body text.
    pub text: String,
}

impl ApiResponse {
    /// Reads a whole response.
    pub async fn read(response: reqwest::Response) -> Result<ApiResponse> {
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await.context("cannot read response body")?;
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Ok(ApiResponse {
            status,
            headers,
            body,
            text,
        })
    }

    /// The value at a JSON pointer into the body (`"/result/action/type"`).
    pub fn at(&self, pointer: &str) -> Option<&Value> {
        self.body.pointer(pointer)
    }

    /// The string at a JSON pointer into the body.
    pub fn str_at(&self, pointer: &str) -> Option<&str> {
        self.at(pointer).and_then(Value::as_str)
    }

    pub fn state_token(&self) -> Option<&str> {
        self.str_at("/result/state_token")
    }

    pub fn action_type(&self) -> Option<&str> {
        self.str_at("/result/action/type")
    }

    /// `result.action.data.type`.
    pub fn data_type(&self) -> Option<&str> {
        self.str_at("/result/action/data/type")
    }

    pub fn error_name(&self) -> Option<&str> {
        self.str_at("/error/name")
    }

    pub fn error_reason(&self) -> Option<&str> {
        self.str_at("/error/reason")
    }

    pub fn error_code(&self) -> Option<u64> {
        self.at("/error/code").and_then(Value::as_u64)
    }

    /// A response header as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Whether `result.action.data.options` has an option with this `authentication`.
    pub fn offers_authentication(&self, authentication: &str) -> bool {
        let options = self
            .at("/result/action/data/options")
            .and_then(Value::as_array);
        options.is_some_and(|options| {
            options
                .iter()
                .any(|o| o.get("authentication").and_then(Value::as_str) == Some(authentication))
        })
    }

    /// `Ok(self)` if the status is `expected`, else an error showing status and body.
    pub fn ensure_status(&self, expected: u16) -> Result<&Self> {
        if self.status == expected {
            Ok(self)
        } else {
            bail!(
                "expected HTTP {expected}, got {}: {}",
                self.status,
                self.text
            )
        }
    }
}

impl fmt::Display for ApiResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HTTP {} {}", self.status, self.text)
    }
}

/// Plain-JSON client of the Authentication Flow API of one server.
#[derive(Clone)]
pub struct FlowApi {
    base_url: String,
    http: reqwest::Client,
}

impl FlowApi {
    pub fn new(base_url: &str, http: reqwest::Client) -> FlowApi {
        FlowApi {
            base_url: base_url.trim_end_matches('/').to_owned(),
            http,
        }
    }

    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// `base_url` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    /// Sends a prepared request and reads the response.
    pub async fn send(&self, request: reqwest::RequestBuilder) -> Result<ApiResponse> {
        let response = request.send().await.context("request failed")?;
        ApiResponse::read(response).await
    }

    /// `GET path`.
    pub async fn get(&self, path: &str) -> Result<ApiResponse> {
        self.send(self.http.get(self.url(path))).await
    }

    /// `POST path` with a JSON body (`Content-Type: application/json`).
    pub async fn post_json(&self, path: &str, body: &Value) -> Result<ApiResponse> {
        self.send(self.http.post(self.url(path)).json(body)).await
    }

    /// `POST path` with raw bytes and the given `Content-Type` (none if `None`).
    pub async fn post_raw(
        &self,
        path: &str,
        content_type: Option<&str>,
        body: impl Into<reqwest::Body>,
    ) -> Result<ApiResponse> {
        let mut request = self.http.post(self.url(path)).body(body);
        if let Some(content_type) = content_type {
            request = request.header(reqwest::header::CONTENT_TYPE, content_type);
        }
        self.send(request).await
    }

    /// Creates a flow: `{"type": flow_type, "name": name}`.
    pub async fn create_flow(&self, flow_type: &str, name: &str) -> Result<ApiResponse> {
        self.create_flow_with(json!({"type": flow_type, "name": name}))
            .await
    }

    /// Creates a flow with any request body.
    pub async fn create_flow_with(&self, body: Value) -> Result<ApiResponse> {
        self.post_json(CREATE_PATH, &body).await
    }

    /// Feeds one input to a state.
    pub async fn input(&self, state_token: &str, input: Value) -> Result<ApiResponse> {
        let body = json!({"state_token": state_token, "input": input});
        self.post_json(INPUT_PATH, &body).await
    }

    /// Feeds several inputs to a state.
    pub async fn batch_input(&self, state_token: &str, inputs: Vec<Value>) -> Result<ApiResponse> {
        let body = json!({"state_token": state_token, "batch_input": inputs});
        self.post_json(INPUT_PATH, &body).await
    }

    /// Reads a state again.
    pub async fn read_state(&self, state_token: &str) -> Result<ApiResponse> {
        self.post_json(STATES_PATH, &json!({"state_token": state_token}))
            .await
    }

    /// Signs up with an email login ID and a password through the `default` signup flow and
    /// returns the `finished` response. Answers `identify` and `create_authenticator`; any other
    /// action (for example `verify`: configure
    /// `verification: {claims: {email: {required: false}}}`) is an error naming it.
    pub async fn signup_with_password(&self, email: &str, password: &str) -> Result<ApiResponse> {
        let first = self.create_flow("signup", "default").await?;
        self.walk(first, "signup", |state| match state.action_type() {
            Some("identify") => Ok(identify_email(email)),
            Some("create_authenticator") => {
                expect_option(state, "primary_password")?;
                Ok(json!({"authentication": "primary_password", "new_password": password}))
            }
            _ => Err(unexpected_action(state)),
        })
        .await
    }

    /// Logs in with an email login ID and a password through the `default` login flow and
    /// returns the `finished` response. Answers `identify` and one `authenticate` with
    /// `primary_password`; a second factor or any other action is an error naming it.
    pub async fn login_with_password(&self, email: &str, password: &str) -> Result<ApiResponse> {
        let first = self.create_flow("login", "default").await?;
        self.walk(first, "login", |state| match state.action_type() {
            Some("identify") => Ok(identify_email(email)),
            Some("authenticate") => {
                expect_option(state, "primary_password")?;
                Ok(json!({"authentication": "primary_password", "password": password}))
            }
            _ => Err(unexpected_action(state)),
        })
        .await
    }

    /// Feeds `next_input(state)` until the flow finishes.
    async fn walk(
        &self,
        mut state: ApiResponse,
        story: &str,
        next_input: impl Fn(&ApiResponse) -> Result<Value>,
    ) -> Result<ApiResponse> {
        for _ in 0..MAX_WALK_STEPS {
            state.ensure_status(200).with_context(|| story.to_owned())?;
            if state.action_type() == Some("finished") {
                return Ok(state);
            }
            let input = next_input(&state).with_context(|| story.to_owned())?;
            let token = state
                .state_token()
                .with_context(|| format!("{story}: no state_token in {state}"))?
                .to_owned();
            state = self.input(&token, input).await?;
        }
        bail!("{story}: not finished after {MAX_WALK_STEPS} inputs; last response: {state}")
    }
}

fn identify_email(email: &str) -> Value {
    json!({"identification": "email", "login_id": email})
}

fn expect_option(state: &ApiResponse, authentication: &str) -> Result<()> {
    if state.offers_authentication(authentication) {
        Ok(())
    } else {
        bail!("{authentication} is not offered: {state}")
    }
}

fn unexpected_action(state: &ApiResponse) -> anyhow::Error {
    let action = state.action_type().unwrap_or("<none>");
    anyhow!("unexpected action {action:?}: {state}")
}
