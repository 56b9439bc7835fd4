//! `authflow-bench`: throughput of the real server, per backend.
//!
//! ```text
//! cargo run --release --bin authflow-bench [-- --duration 4 --rounds 5 --login-clients 8 --step-clients 16,32,64 --users 32]
//! ```
//!
//! Measures (1) raw argon2id hashes/s with the server's default parameters on every core,
//! (2) complete password logins/s through the API and (3) non-hashing flow steps/s (create +
//! identify). (1) and (2) alternate for `--rounds` rounds of `--duration` seconds each, and
//! the login rate is compared with the hash rate of its own round: a shared machine's speed
//! drifts by more than the gap being measured, so a baseline taken once at the start would
//! compare a fast minute with a slow one. It builds and starts `target/release/authflow` (or
//! runs `AUTHFLOW_BIN`) through the testkit on SQLite, and on PostgreSQL + Redis when
//! `AUTHFLOW_TEST_POSTGRES_URL` and `AUTHFLOW_TEST_REDIS_URL` are set. Every option may also be given as an environment variable
//! (`AUTHFLOW_BENCH_DURATION`, `AUTHFLOW_BENCH_ROUNDS`, `AUTHFLOW_BENCH_LOGIN_CLIENTS`,
//! `AUTHFLOW_BENCH_STEP_CLIENTS`, `AUTHFLOW_BENCH_USERS`).

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use authflow_testkit::{
    Backend, CREATE_PATH, FlowApi, INPUT_PATH, TestServer, authflow_bin, backends,
};
use hdrhistogram::Histogram;
use serde_json::{Value, json};

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

const USAGE: &str = "usage: authflow-bench [--duration SECS] [--rounds N] [--login-clients N] \
                     [--step-clients N[,N...]] [--users N]";

struct Settings {
    duration: Duration,
    rounds: usize,
    login_clients: usize,
    /// One step measure per count, to show where throughput stops growing.
    step_clients: Vec<usize>,
    users: usize,
    cores: usize,
}

impl Settings {
    fn from_args_and_env() -> Result<Settings> {
        let mut settings = Settings {
            duration: Duration::from_secs(env_number("AUTHFLOW_BENCH_DURATION", 4)? as u64),
            rounds: env_number("AUTHFLOW_BENCH_ROUNDS", 5)?,
            login_clients: env_number("AUTHFLOW_BENCH_LOGIN_CLIENTS", 8)?,
            step_clients: match std::env::var("AUTHFLOW_BENCH_STEP_CLIENTS") {
                Ok(list) => parse_list("AUTHFLOW_BENCH_STEP_CLIENTS", &list)?,
                Err(_) => vec![16, 32, 64],
            },
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
            settings.set(&flag, &value)?;
        }
        Ok(settings)
    }

    fn set(&mut self, flag: &str, value: &str) -> Result<()> {
        let number = || parse_number(flag, value);
        match flag {
            "--duration" => self.duration = Duration::from_secs(number()? as u64),
            "--rounds" => self.rounds = number()?,
            "--login-clients" => self.login_clients = number()?,
            "--step-clients" => self.step_clients = parse_list(flag, value)?,
            "--users" => self.users = number()?,
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

fn parse_list(what: &str, value: &str) -> Result<Vec<usize>> {
    value.split(',').map(|n| parse_number(what, n)).collect()
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
    /// CPU used by the server process during the measure (None for the raw hashes).
    server: Option<CpuUse>,
    /// CPU used by the bench itself (the load generator; the hash threads for raw hashes).
    client: Option<CpuUse>,
}

impl Rate {
    /// `self` and `other` as one measure: operations, time, latencies and CPU summed.
    fn merge(mut self, other: Rate) -> Result<Rate> {
        self.operations += other.operations;
        self.elapsed += other.elapsed;
        if let (Some(total), Some(more)) = (&mut self.latency, &other.latency) {
            total.add(more)?;
        }
        self.server = CpuUse::sum(self.server, other.server);
        self.client = CpuUse::sum(self.client, other.client);
        Ok(self)
    }

    fn per_second(&self) -> f64 {
        self.operations as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// CPU milliseconds per operation of `cpu` (server or client).
    fn cpu_ms_per_op(&self, cpu: &Option<CpuUse>) -> String {
        match cpu {
            Some(c) => format!(
                "{:.3}",
                c.cpu.as_secs_f64() * 1000.0 / (self.operations.max(1) as f64)
            ),
            None => "-".to_owned(),
        }
    }

    fn quantile_ms(&self, quantile: f64) -> String {
        match &self.latency {
            Some(h) => format!("{:.2}", h.value_at_quantile(quantile) as f64 / 1000.0),
            None => "-".to_owned(),
        }
    }
}

// ------------------------------------------------------------------------------------------------
// CPU accounting (Linux /proc): the machine may be shared, so besides rates the bench reports the
// CPU each side spent per operation, which does not depend on how much of the machine it got.

/// What a process (or thread) used between two samples.
#[derive(Debug, Clone, Copy, Default)]
struct CpuUse {
    cpu: Duration,
    minor_faults: u64,
    /// Voluntary + involuntary, summed over the live threads (exited threads are not counted).
    context_switches: u64,
}

impl CpuUse {
    fn sum(a: Option<CpuUse>, b: Option<CpuUse>) -> Option<CpuUse> {
        match (a, b) {
            (Some(a), Some(b)) => Some(CpuUse {
                cpu: a.cpu + b.cpu,
                minor_faults: a.minor_faults + b.minor_faults,
                context_switches: a.context_switches + b.context_switches,
            }),
            (a, b) => a.or(b),
        }
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct CpuSample {
    ticks: u64,
    minor_faults: u64,
    context_switches: u64,
}

impl CpuSample {
    fn of_thread() -> CpuSample {
        Self::read("/proc/thread-self").unwrap_or_default()
    }

    fn of_process(pid: u32) -> CpuSample {
        Self::read(&format!("/proc/{pid}")).unwrap_or_default()
    }

    fn read(dir: &str) -> Option<CpuSample> {
        let stat = std::fs::read_to_string(format!("{dir}/stat")).ok()?;
        // Fields after the command name (which may contain spaces), starting at field 3.
        let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
        let field = |n: usize| fields.get(n - 3)?.parse::<u64>().ok();
        let context_switches = std::fs::read_dir(format!("{dir}/task"))
            .map(|tasks| {
                tasks
                    .flatten()
                    .map(|task| context_switches(&task.path().join("status")))
                    .sum()
            })
            .unwrap_or_else(|_| context_switches(std::path::Path::new(&format!("{dir}/status"))));
        Some(CpuSample {
            ticks: field(14)? + field(15)?,
            minor_faults: field(10)?,
            context_switches,
        })
    }

    fn since(&self, start: &CpuSample) -> CpuUse {
        let ticks = self.ticks.saturating_sub(start.ticks);
        CpuUse {
            cpu: Duration::from_secs_f64(ticks as f64 / clock_ticks_per_second()),
            minor_faults: self.minor_faults.saturating_sub(start.minor_faults),
            context_switches: self.context_switches.saturating_sub(start.context_switches),
        }
    }
}

fn context_switches(status: &std::path::Path) -> u64 {
    let Ok(text) = std::fs::read_to_string(status) else {
        return 0;
    };
    text.lines()
        .filter(|line| line.contains("ctxt_switches:"))
        .filter_map(|line| line.split_whitespace().nth(1)?.parse::<u64>().ok())
        .sum()
}

fn clock_ticks_per_second() -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|out| String::from_utf8(out.stdout).ok())
            .and_then(|text| text.trim().parse::<f64>().ok())
            .filter(|&ticks| ticks > 0.0)
            .unwrap_or(100.0)
    })
}

/// CPU of the server process and of the bench process over one measure.
struct CpuWatch {
    server_pid: u32,
    server: CpuSample,
    client: CpuSample,
}

impl CpuWatch {
    fn start(server_pid: u32) -> CpuWatch {
        CpuWatch {
            server_pid,
            server: CpuSample::of_process(server_pid),
            client: CpuSample::of_process(std::process::id()),
        }
    }

    fn stop(&self, rate: &mut Rate) {
        rate.server = Some(CpuSample::of_process(self.server_pid).since(&self.server));
        rate.client = Some(CpuSample::of_process(std::process::id()).since(&self.client));
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
    let results = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| scope.spawn(|| hash_until(&hasher, deadline)))
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().expect("hash thread panicked"))
            .collect::<Result<Vec<_>>>()
    })?;
    let operations = results.iter().map(|(n, _)| n).sum();
    let cpu = results.iter().map(|(_, cpu)| *cpu).sum();
    Ok(Rate {
        operations,
        elapsed: start.elapsed(),
        latency: None,
        server: None,
        client: Some(CpuUse {
            cpu,
            minor_faults: 0,
            context_switches: 0,
        }),
    })
}

/// Hashes in a tight loop until `deadline`, reusing one memory buffer (as the server does), so
/// the baseline is argon2id itself without allocation. Returns (hashes, CPU time of the thread).
fn hash_until(hasher: &Argon2<'_>, deadline: Instant) -> Result<(u64, Duration)> {
    let mut output = [0u8; 32];
    let mut memory = vec![Block::default(); ARGON2_MEMORY_KIB as usize];
    let mut count = 0;
    let cpu_start = CpuSample::of_thread();
    while Instant::now() < deadline {
        hasher
            .hash_password_into_with_memory(
                PASSWORD.as_bytes(),
                b"authflow-bench-salt",
                &mut output,
                &mut memory,
            )
            .map_err(|e| anyhow::anyhow!("argon2: {e}"))?;
        count += 1;
    }
    let cpu = CpuSample::of_thread().since(&cpu_start).cpu;
    Ok((count, cpu))
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
        server: None,
        client: None,
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

/// The load generator's HTTP client: kept cheap because it shares the machine with the server.
/// One keep-alive connection per client task (reqwest's pool), URLs built once, bodies sent as
/// bytes, and only the checks a real client needs (status, action type, state token).
#[derive(Clone)]
struct LoadClient {
    http: reqwest::Client,
    create_url: Arc<str>,
    input_url: Arc<str>,
}

impl LoadClient {
    fn new(base_url: &str, http: reqwest::Client) -> LoadClient {
        let base = base_url.trim_end_matches('/');
        LoadClient {
            http,
            create_url: format!("{base}{CREATE_PATH}").into(),
            input_url: format!("{base}{INPUT_PATH}").into(),
        }
    }

    /// POSTs a JSON body and returns `(state_token, action type)` of a 200 answer.
    async fn post(&self, url: &str, body: Vec<u8>) -> Result<(String, String)> {
        let response = self
            .http
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body)
            .send()
            .await
            .context("request failed")?;
        let status = response.status();
        let bytes = response.bytes().await.context("reading the response")?;
        if status != reqwest::StatusCode::OK {
            bail!("HTTP {status}: {}", String::from_utf8_lossy(&bytes));
        }
        let body: Answer<'_> = serde_json::from_slice(&bytes)
            .with_context(|| format!("unexpected answer: {}", String::from_utf8_lossy(&bytes)))?;
        Ok((
            body.result.state_token.to_owned(),
            body.result.action.kind.to_owned(),
        ))
    }

    /// Creates a `default` login flow: expects the `identify` action.
    async fn create_login(&self) -> Result<String> {
        let body = br#"{"type":"login","name":"default"}"#.to_vec();
        let (token, action) = self.post(&self.create_url, body).await?;
        expect_action("create login flow", &action, "identify")?;
        Ok(token)
    }

    async fn input(&self, token: &str, input: Value) -> Result<(String, String)> {
        let body = serde_json::to_vec(&json!({"state_token": token, "input": input}))?;
        self.post(&self.input_url, body).await
    }

    /// Identifies by email: expects `authenticate` (no hashing happens in this step).
    async fn identify(&self, token: &str, email: &str) -> Result<String> {
        let input = json!({"identification": "email", "login_id": email});
        let (token, action) = self.input(token, input).await?;
        expect_action("identify", &action, "authenticate")?;
        Ok(token)
    }
}

/// The members of a flow answer the load generator reads; the rest is skipped unparsed.
#[derive(serde::Deserialize)]
struct Answer<'a> {
    #[serde(borrow)]
    result: AnswerResult<'a>,
}

#[derive(serde::Deserialize)]
struct AnswerResult<'a> {
    state_token: &'a str,
    #[serde(borrow)]
    action: AnswerAction<'a>,
}

#[derive(serde::Deserialize)]
struct AnswerAction<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
}

fn expect_action(what: &str, got: &str, expected: &str) -> Result<()> {
    if got == expected {
        Ok(())
    } else {
        bail!("{what}: expected action {expected}, got {got}")
    }
}

async fn bench_logins(client: &LoadClient, settings: &Settings) -> Result<Rate> {
    let client = client.clone();
    let (clients, users) = (settings.login_clients, settings.users);
    run_clients(clients, settings.duration, move |task, iteration| {
        let client = client.clone();
        let email = user_email((task + iteration as usize * clients) % users);
        async move {
            let (_, latency) = timed(login(&client, &email)).await?;
            Ok(vec![latency])
        }
    })
    .await
}

/// One complete password login through the API: create, identify, authenticate → finished.
async fn login(client: &LoadClient, email: &str) -> Result<()> {
    let token = client.create_login().await?;
    let token = client.identify(&token, email).await?;
    let input = json!({"authentication": "primary_password", "password": PASSWORD});
    let (_, action) = client.input(&token, input).await?;
    expect_action("authenticate", &action, "finished")
}

async fn bench_steps(client: &LoadClient, clients: usize, settings: &Settings) -> Result<Rate> {
    let client = client.clone();
    let users = settings.users;
    run_clients(clients, settings.duration, move |task, iteration| {
        let client = client.clone();
        let email = user_email((task + iteration as usize * clients) % users);
        async move { create_and_identify(&client, &email).await }
    })
    .await
}

/// Two steps: create a login flow, identify by email (answers `authenticate`, no hashing).
async fn create_and_identify(client: &LoadClient, email: &str) -> Result<Vec<Duration>> {
    let (token, create_latency) = timed(client.create_login()).await?;
    let (_, identify_latency) = timed(client.identify(&token, email)).await?;
    Ok(vec![create_latency, identify_latency])
}

// ------------------------------------------------------------------------------------------------
// Report

async fn bench_backend(backend: Backend, settings: &Settings) -> Result<()> {
    let server = TestServer::builder(backend)
        .bin(authflow_bin()?)
        .extra_yaml(BENCH_CONFIG)
        .start()
        .await
        .with_context(|| format!("starting the server on {backend}"))?;
    let http = reqwest::Client::builder().no_proxy().build()?;
    let api = FlowApi::new(server.base_url(), http.clone());
    sign_up_users(&api, settings.users, settings.login_clients)
        .await
        .context("signing up the bench users")?;
    let client = LoadClient::new(server.base_url(), http);
    let rounds = alternate_hashes_and_logins(&client, server.pid(), settings).await?;
    let mut steps = Vec::new();
    for &clients in &settings.step_clients {
        let watch = CpuWatch::start(server.pid());
        let mut rate = bench_steps(&client, clients, settings)
            .await
            .context("step benchmark")?;
        watch.stop(&mut rate);
        steps.push((clients, rate));
    }
    print_table(backend, settings, rounds, &steps)
}

/// One round: raw hashes (the server idle), then logins through the server.
struct Round {
    hashes: Rate,
    logins: Rate,
}

impl Round {
    fn ratio(&self) -> f64 {
        self.logins.per_second() / self.hashes.per_second().max(1e-9)
    }
}

async fn alternate_hashes_and_logins(
    client: &LoadClient,
    server_pid: u32,
    settings: &Settings,
) -> Result<Vec<Round>> {
    let mut rounds = Vec::new();
    for _ in 0..settings.rounds {
        let (duration, cores) = (settings.duration, settings.cores);
        let hashes = tokio::task::spawn_blocking(move || bench_argon2(duration, cores)).await??;
        let watch = CpuWatch::start(server_pid);
        let mut logins = bench_logins(client, settings)
            .await
            .context("login benchmark")?;
        watch.stop(&mut logins);
        rounds.push(Round { hashes, logins });
    }
    Ok(rounds)
}

/// A step measure within this share of the best step rate counts as saturated.
const SATURATED_SHARE: f64 = 0.95;

fn print_table(
    backend: Backend,
    settings: &Settings,
    rounds: Vec<Round>,
    steps: &[(usize, Rate)],
) -> Result<()> {
    let ratios: Vec<f64> = rounds.iter().map(Round::ratio).collect();
    let (hashes, logins) = merge_rounds(rounds)?;
    println!("\nbackend: {backend}");
    println!(
        "  {:<34} {:>10} {:>9} {:>9} {:>10} {:>10}  note",
        "measure", "per second", "p50 ms", "p99 ms", "srv cpu ms", "cli cpu ms"
    );
    print_row(
        &format!("argon2id hashes ({} threads)", settings.cores),
        &hashes,
        &format!("m={ARGON2_MEMORY_KIB} KiB, t={ARGON2_ITERATIONS}, p={ARGON2_PARALLELISM}"),
    );
    let listed: Vec<String> = ratios.iter().map(|r| format!("{r:.2}")).collect();
    print_row(
        &format!("password logins ({} clients)", settings.login_clients),
        &logins,
        &format!(
            "{:.2} x raw hash rate (median of rounds {}; all rounds {:.2}), {} users",
            median(ratios.clone()),
            listed.join(", "),
            logins.per_second() / hashes.per_second().max(1e-9),
            settings.users
        ),
    );
    let best = steps
        .iter()
        .map(|(_, r)| r.per_second())
        .fold(0.0, f64::max);
    let saturated_at = steps
        .iter()
        .find(|(_, r)| r.per_second() >= SATURATED_SHARE * best)
        .map(|(clients, _)| *clients);
    for (clients, rate) in steps {
        let mut note = "create + identify, each request a step".to_owned();
        if Some(*clients) == saturated_at {
            note.push_str(&format!(
                "; fewest clients within {:.0}% of the best rate",
                SATURATED_SHARE * 100.0
            ));
        }
        print_row(&format!("flow steps ({clients} clients)"), rate, &note);
    }
    println!(
        "  (cpu ms = CPU milliseconds per operation: server process / bench process, or hash threads;"
    );
    println!(
        "   {} rounds of {} s alternate raw hashes and logins, each ratio against its own round)",
        settings.rounds,
        settings.duration.as_secs()
    );
    let step_rates = steps
        .iter()
        .map(|(clients, rate)| (format!("steps ({clients} clients)"), rate));
    for (what, rate) in std::iter::once(("logins".to_owned(), &logins)).chain(step_rates) {
        if let Some(server) = &rate.server {
            let per_op = |n: u64| n as f64 / rate.operations.max(1) as f64;
            println!(
                "  server during {what}: {:.1} minor faults/op, {:.1} context switches/op",
                per_op(server.minor_faults),
                per_op(server.context_switches)
            );
        }
    }
    println!("  {}", machine_load());
    Ok(())
}

/// All rounds' hashes as one measure, and all rounds' logins as another.
fn merge_rounds(rounds: Vec<Round>) -> Result<(Rate, Rate)> {
    let mut rounds = rounds.into_iter();
    let first = rounds.next().context("no rounds")?;
    let (mut hashes, mut logins) = (first.hashes, first.logins);
    for round in rounds {
        hashes = hashes.merge(round.hashes)?;
        logins = logins.merge(round.logins)?;
    }
    Ok((hashes, logins))
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
}

fn print_row(measure: &str, rate: &Rate, note: &str) {
    println!(
        "  {:<34} {:>10.1} {:>9} {:>9} {:>10} {:>10}  {note}",
        measure,
        rate.per_second(),
        rate.quantile_ms(0.5),
        rate.quantile_ms(0.99),
        rate.cpu_ms_per_op(&rate.server),
        rate.cpu_ms_per_op(&rate.client),
    );
}

/// The load average, so a reader can tell a busy machine from a quiet one.
fn machine_load() -> String {
    match std::fs::read_to_string("/proc/loadavg") {
        Ok(text) => format!(
            "load average (1, 5, 15 min): {}",
            text.split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" ")
        ),
        Err(_) => "load average: unknown".to_owned(),
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

/// One thread drives the load: the server gets the cores, and the bench's own CPU per operation
/// stays small and is reported.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    let settings = Settings::from_args_and_env()?;
    build_server_binary()?;
    println!(
        "authflow-bench: {} cores, {} s per measure, binary {}; {}",
        settings.cores,
        settings.duration.as_secs(),
        authflow_bin()?.display(),
        machine_load()
    );
    for backend in backends() {
        bench_backend(backend, &settings).await?;
    }
    Ok(())
}
