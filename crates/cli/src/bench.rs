//! `authflow-bench`: throughput of the real server, per backend.
//!
//! ```text
//! cargo run --release --bin authflow-bench [-- --duration 5 --login-clients 8 --step-clients 64 --users 32]
//! ```
//!
//! Measures (1) raw argon2id hashes/s with the server's default parameters on every core,
//! (2) complete password logins/s through the API and (3) non-hashing flow steps/s (create +
//! identify). It builds and starts `target/release/authflow` (or runs `AUTHFLOW_BIN`) through the
//! testkit on SQLite, and on PostgreSQL + Redis when `AUTHFLOW_TEST_POSTGRES_URL` and
//! `AUTHFLOW_TEST_REDIS_URL` are set. Every option may also be given as an environment variable
//! (`AUTHFLOW_BENCH_DURATION`, `AUTHFLOW_BENCH_LOGIN_CLIENTS`, `AUTHFLOW_BENCH_STEP_CLIENTS`,
//! `AUTHFLOW_BENCH_USERS`).

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use argon2::{Algorithm, Argon2, Params, Version};
use authflow_testkit::{Backend, FlowApi, TestServer, authflow_bin, backends};
use hdrhistogram::Histogram;
use serde_json::json;

/// The server's default argon2id parameters (`authenticator.password.hashing`).
const ARGON2_MEMORY_KIB: u32 = 19456;
const ARGON2_ITERATIONS: u32 = 2;
const ARGON2_PARALLELISM: u32 = 1;

const PASSWORD: &str = "bench-Password-1234";

/// Config that skips email verification and lifts every limit a benchmark would hit.
const BENCH_CONFIG: &str = "\
verification:
  claims:
    email:
      required: false
authentication_flow:
  rate_limits:
    per_ip:
      period: 1s
      burst: 1000000
authentication:
  rate_limits:
    general:
      per_ip:
        enabled: false
      per_user_per_ip:
        enabled: false
    signup:
      per_ip:
        enabled: false
    account_enumeration:
      per_ip:
        enabled: false
";

const USAGE: &str = "usage: authflow-bench [--duration SECS] [--login-clients N] \
                     [--step-clients N] [--users N]";

struct Settings {
    duration: Duration,
    login_clients: usize,
    step_clients: usize,
    users: usize,
    cores: usize,
}

impl Settings {
    fn from_args_and_env() -> Result<Settings> {
        let mut settings = Settings {
            duration: Duration::from_secs(env_number("AUTHFLOW_BENCH_DURATION", 5)? as u64),
            login_clients: env_number("AUTHFLOW_BENCH_LOGIN_CLIENTS", 8)?,
            step_clients: env_number("AUTHFLOW_BENCH_STEP_CLIENTS", 64)?,
            users: env_number("AUTHFLOW_BENCH_USERS", 32)?,
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        };
        let mut args = std::env::args().skip(1);
        while let Some(flag) = args.next() {
            if flag == "--help" || flag == "-h" {
                println!("{USAGE}");
                std::process::exit(0);
            }
            let value = args
                .next()
                .with_context(|| format!("{flag} needs a value\n{USAGE}"))?;
            settings.set(&flag, parse_number(&flag, &value)?)?;
        }
        Ok(settings)
    }

    fn set(&mut self, flag: &str, value: usize) -> Result<()> {
        match flag {
            "--duration" => self.duration = Duration::from_secs(value as u64),
            "--login-clients" => self.login_clients = value,
            "--step-clients" => self.step_clients = value,
            "--users" => self.users = value,
            _ => bail!("unknown option {flag}\n{USAGE}"),
        }
        Ok(())
    }
}

fn env_number(name: &str, default: usize) -> Result<usize> {
    match std::env::var(name) {
        Ok(value) => parse_number(name, &value),
        Err(_) => Ok(default),
    }
}

fn parse_number(what: &str, value: &str) -> Result<usize> {
    match value.trim().parse::<usize>() {
        Ok(n) if n > 0 => Ok(n),
        _ => bail!("{what}: expected a positive integer, got {value:?}"),
    }
}

/// Operations completed in a time span, with their latencies when measured.
struct Rate {
    operations: u64,
    elapsed: Duration,
    latency: Option<Histogram<u64>>,
}

impl Rate {
    fn per_second(&self) -> f64 {
        self.operations as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    fn quantile_ms(&self, quantile: f64) -> String {
        match &self.latency {
            Some(h) => format!("{:.2}", h.value_at_quantile(quantile) as f64 / 1000.0),
            None => "-".to_owned(),
        }
    }
}

fn new_histogram() -> Histogram<u64> {
    // Microseconds, 1 µs .. 10 min, 3 significant digits.
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid histogram bounds")
}

// ------------------------------------------------------------------------------------------------
// (1) raw argon2id

fn bench_argon2(duration: Duration, threads: usize) -> Result<Rate> {
    let params = Params::new(
        ARGON2_MEMORY_KIB,
        ARGON2_ITERATIONS,
        ARGON2_PARALLELISM,
        Some(32),
    )
    .map_err(|e| anyhow::anyhow!("argon2 params: {e}"))?;
    let hasher = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
    let start = Instant::now();
    let deadline = start + duration;
    let operations = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| scope.spawn(|| hash_until(&hasher, deadline)))
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().expect("hash thread panicked"))
            .sum::<Result<u64>>()
    })?;
    Ok(Rate {
        operations,
        elapsed: start.elapsed(),
        latency: None,
    })
}

fn hash_until(hasher: &Argon2<'_>, deadline: Instant) -> Result<u64> {
    let mut output = [0u8; 32];
    let mut count = 0;
    while Instant::now() < deadline {
        hasher
            .hash_password_into(PASSWORD.as_bytes(), b"authflow-bench-salt", &mut output)
            .map_err(|e| anyhow::anyhow!("argon2: {e}"))?;
        count += 1;
    }
    Ok(count)
}

// ------------------------------------------------------------------------------------------------
// Concurrent clients

/// Runs `clients` tasks, each calling `round(client, iteration)` until `duration` has passed.
/// A round returns the latency of every operation it counts.
async fn run_clients<F, Fut>(clients: usize, duration: Duration, round: F) -> Result<Rate>
where
    F: Fn(usize, u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Vec<Duration>>> + Send,
{
    let round = Arc::new(round);
    let start = Instant::now();
    let deadline = start + duration;
    let tasks: Vec<_> = (0..clients)
        .map(|client| {
            let round = round.clone();
            tokio::spawn(async move {
                let mut histogram = new_histogram();
                let mut iteration = 0;
                while Instant::now() < deadline {
                    for latency in round(client, iteration).await? {
                        histogram.saturating_record(latency.as_micros().max(1) as u64);
                    }
                    iteration += 1;
                }
                anyhow::Ok(histogram)
            })
        })
        .collect();
    let mut total = new_histogram();
    for task in tasks {
        total.add(task.await??)?;
    }
    Ok(Rate {
        operations: total.len(),
        elapsed: start.elapsed(),
        latency: Some(total),
    })
}

async fn timed<T>(work: impl Future<Output = Result<T>>) -> Result<(T, Duration)> {
    let start = Instant::now();
    let value = work.await?;
    Ok((value, start.elapsed()))
}

fn user_email(index: usize) -> String {
    format!("bench-{index}@example.com")
}

// ------------------------------------------------------------------------------------------------
// (2) logins and (3) flow steps

async fn sign_up_users(api: &FlowApi, users: usize, concurrency: usize) -> Result<()> {
    let mut pending = Vec::new();
    for index in 0..users {
        let api = api.clone();
        pending.push(tokio::spawn(async move {
            api.signup_with_password(&user_email(index), PASSWORD).await
        }));
        if pending.len() >= concurrency {
            pending.remove(0).await??;
        }
    }
    for task in pending {
        task.await??;
    }
    Ok(())
}

async fn bench_logins(api: &FlowApi, settings: &Settings) -> Result<Rate> {
    let api = api.clone();
    let (clients, users) = (settings.login_clients, settings.users);
    run_clients(clients, settings.duration, move |client, iteration| {
        let api = api.clone();
        let email = user_email((client + iteration as usize * clients) % users);
        async move {
            let (_, latency) = timed(api.login_with_password(&email, PASSWORD)).await?;
            Ok(vec![latency])
        }
    })
    .await
}

async fn bench_steps(api: &FlowApi, settings: &Settings) -> Result<Rate> {
    let api = api.clone();
    let (clients, users) = (settings.step_clients, settings.users);
    run_clients(clients, settings.duration, move |client, iteration| {
        let api = api.clone();
        let email = user_email((client + iteration as usize * clients) % users);
        async move { create_and_identify(&api, &email).await }
    })
    .await
}

/// Two steps: create a login flow, identify by email (answers `authenticate`, no hashing).
async fn create_and_identify(api: &FlowApi, email: &str) -> Result<Vec<Duration>> {
    let (created, create_latency) = timed(api.create_flow("login", "default")).await?;
    created.ensure_status(200).context("create login flow")?;
    let token = created.state_token().context("no state token")?;
    let input = json!({"identification": "email", "login_id": email});
    let (identified, identify_latency) = timed(api.input(token, input)).await?;
    identified.ensure_status(200).context("identify")?;
    if identified.action_type() != Some("authenticate") {
        bail!("identify: expected action authenticate, got {identified}");
    }
    Ok(vec![create_latency, identify_latency])
}

// ------------------------------------------------------------------------------------------------
// Report

async fn bench_backend(backend: Backend, settings: &Settings, hashes: &Rate) -> Result<()> {
    let server = TestServer::builder(backend)
        .bin(authflow_bin()?)
        .extra_yaml(BENCH_CONFIG)
        .start()
        .await
        .with_context(|| format!("starting the server on {backend}"))?;
    let http = reqwest::Client::builder().no_proxy().build()?;
    let api = FlowApi::new(server.base_url(), http);
    sign_up_users(&api, settings.users, settings.login_clients)
        .await
        .context("signing up the bench users")?;
    let logins = bench_logins(&api, settings)
        .await
        .context("login benchmark")?;
    let steps = bench_steps(&api, settings)
        .await
        .context("step benchmark")?;
    print_table(backend, settings, hashes, &logins, &steps);
    Ok(())
}

fn print_table(backend: Backend, settings: &Settings, hashes: &Rate, logins: &Rate, steps: &Rate) {
    let ratio = logins.per_second() / hashes.per_second().max(1e-9);
    println!("\nbackend: {backend}");
    println!(
        "  {:<34} {:>10} {:>9} {:>9}  note",
        "measure", "per second", "p50 ms", "p99 ms"
    );
    let rows = [
        (
            format!("argon2id hashes ({} threads)", settings.cores),
            hashes,
            format!("m={ARGON2_MEMORY_KIB} KiB, t={ARGON2_ITERATIONS}, p={ARGON2_PARALLELISM}"),
        ),
        (
            format!("password logins ({} clients)", settings.login_clients),
            logins,
            format!("{ratio:.2} x raw hash rate, {} users", settings.users),
        ),
        (
            format!("flow steps ({} clients)", settings.step_clients),
            steps,
            "create + identify, each request a step".to_owned(),
        ),
    ];
    for (measure, rate, note) in rows {
        println!(
            "  {:<34} {:>10.1} {:>9} {:>9}  {note}",
            measure,
            rate.per_second(),
            rate.quantile_ms(0.5),
            rate.quantile_ms(0.99)
        );
    }
}

/// Under `cargo run`, (re)builds the `authflow` binary of the bench's own profile first, so the
/// bench never measures a stale or missing server. `AUTHFLOW_BIN` skips this.
fn build_server_binary() -> Result<()> {
    let Some(cargo) = std::env::var_os("CARGO") else {
        return Ok(());
    };
    if std::env::var_os(authflow_testkit::BIN_ENV).is_some() {
        return Ok(());
    }
    let exe = std::env::current_exe()?;
    let release = exe.parent().and_then(|dir| dir.file_name()) == Some("release".as_ref());
    let mut command = std::process::Command::new(cargo);
    command.args(["build", "-p", "authflow", "--bin", "authflow"]);
    if release {
        command.arg("--release");
    }
    let status = command.status().context("cannot run cargo build")?;
    if !status.success() {
        bail!("cargo build of the authflow binary failed ({status})");
    }
    Ok(())
}

#[tokio::main]
async fn main() -> Result<()> {
    let settings = Settings::from_args_and_env()?;
    build_server_binary()?;
    println!(
        "authflow-bench: {} cores, {} s per measure, binary {}",
        settings.cores,
        settings.duration.as_secs(),
        authflow_bin()?.display()
    );
    let (duration, cores) = (settings.duration, settings.cores);
    let hashes = tokio::task::spawn_blocking(move || bench_argon2(duration, cores)).await??;
    println!(
        "argon2id: {:.1} hashes/s on {cores} threads",
        hashes.per_second()
    );
    for backend in backends() {
        bench_backend(backend, &settings, &hashes).await?;
    }
    Ok(())
}
