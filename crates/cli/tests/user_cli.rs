//! `authflow user ...` (issue 6, flow-config.md 2.7) against the real binary, on every
//! backend of `backends()`: the CLI writes into the database of a running server, and
//! the users it makes log in through that server's Authentication Flow API.

use std::process::{Output, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use argon2::password_hash::{PasswordHasher as _, SaltString};
use authflow_testkit::{ApiResponse, Backend, FlowApi, TestServer, backends};
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_authflow");
const CLI_TIMEOUT: Duration = Duration::from_secs(60);

/// Email and username login IDs, a policy with a digit rule, cheap hashing, no email
/// verification at signup, rate limits the tests do not reach.
const CONFIG_YAML: &str = "\
identity: {login_id: {keys: [{type: email}, {type: username}]}}
verification: {claims: {email: {required: false}}}
authenticator:
  password:
    policy: {min_length: 8, digit_required: true}
    hashing: {memory_kib: 1024, iterations: 1, parallelism: 1}
authentication: {rate_limits: {general: {per_ip: {period: 1m, burst: 1000}, per_user_per_ip: {period: 1m, burst: 1000}}}}
";

const ALICE_PASSWORD: &str = "Secr3t!pass";
const BCRYPT_PASSWORD: &str = "Bcrypt!pass1";
const ARGON2_PASSWORD: &str = "Argon2!pass1";
const TOTP_SECRET: &str = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP";
const RECOVERY_CODES: [&str; 2] = ["94X5N-ST2VM", "ZTC1BQJSMX"];

async fn start(backend: Backend) -> Result<TestServer> {
    TestServer::builder(backend)
        .bin(BIN)
        .extra_yaml(CONFIG_YAML)
        .start()
        .await
        .with_context(|| format!("start server on {backend}"))
}

// ------------------------------------------------------------------------------------------------
// CLI helpers

struct Run {
    output: Output,
    stdout: String,
    stderr: String,
}

impl Run {
    fn ok(&self) -> bool {
        self.output.status.success()
    }

    fn code(&self) -> Option<i32> {
        self.output.status.code()
    }

    /// The single JSON object on standard output.
    fn json(&self) -> Result<Value> {
        serde_json::from_str(self.stdout.trim())
            .with_context(|| format!("stdout is not one JSON value: {self}"))
    }

    /// One JSON value per stdout line.
    fn json_lines(&self) -> Result<Vec<Value>> {
        self.stdout
            .lines()
            .map(|l| serde_json::from_str(l).with_context(|| format!("not JSON: {l}")))
            .collect()
    }

    fn ensure_ok(&self) -> Result<&Self> {
        ensure!(self.ok(), "command failed: {self}");
        Ok(self)
    }

    fn ensure_failed(&self) -> Result<&Self> {
        ensure!(self.code() == Some(1), "expected exit status 1: {self}");
        Ok(self)
    }

    /// Neither output stream contains any of `secrets`.
    fn ensure_hides(&self, secrets: &[&str]) -> Result<()> {
        for secret in secrets {
            ensure!(
                !self.stdout.contains(secret) && !self.stderr.contains(secret),
                "output shows a secret ({} characters long): {self}",
                secret.len()
            );
        }
        Ok(())
    }
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "status {:?}\n--- stdout ---\n{}--- stderr ---\n{}",
            self.code(),
            self.stdout,
            self.stderr
        )
    }
}

/// `authflow user <sub> --config <server's config> <rest...>`, with `stdin` fed in.
async fn user(server: &TestServer, sub: &str, rest: &[&str], stdin: Option<&str>) -> Result<Run> {
    let mut cmd = Command::new(BIN);
    cmd.arg("user")
        .arg(sub)
        .arg("--config")
        .arg(server.config_path())
        .args(rest)
        .current_dir(server.dir())
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd.spawn().context("spawn authflow user")?;
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().context("stdin pipe")?;
        pipe.write_all(input.as_bytes()).await?;
        drop(pipe);
    }
    let output = tokio::time::timeout(CLI_TIMEOUT, child.wait_with_output())
        .await
        .context("authflow user did not exit in time")??;
    Ok(Run {
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        output,
    })
}

async fn import(server: &TestServer, lines: &[String]) -> Result<Run> {
    let path = server.dir().join("users.jsonl");
    std::fs::write(&path, lines.join("\n") + "\n")?;
    let path = path.to_str().context("path")?.to_owned();
    user(server, "import", &[&path], None).await
}

// ------------------------------------------------------------------------------------------------
// Flow API helpers

/// Identify by email or username, then the primary password; returns the response to the
/// first refused input or the one after the password (`finished` when all went well).
async fn login(api: &FlowApi, login_id: &str, password: &str) -> Result<ApiResponse> {
    let identification = if login_id.contains('@') {
        "email"
    } else {
        "username"
    };
    let first = api.create_flow("login", "default").await?;
    first.ensure_status(200)?;
    let identified = api
        .input(
            first.state_token().context("state token")?,
            json!({"identification": identification, "login_id": login_id}),
        )
        .await?;
    if identified.status != 200 {
        return Ok(identified);
    }
    ensure!(
        identified.offers_authentication("primary_password"),
        "no primary_password option: {identified}"
    );
    api.input(
        identified.state_token().context("state token")?,
        json!({"authentication": "primary_password", "password": password}),
    )
    .await
}

async fn ensure_login(api: &FlowApi, login_id: &str, password: &str) -> Result<()> {
    let state = login(api, login_id, password).await?;
    ensure!(
        state.status == 200 && state.action_type() == Some("finished"),
        "login of {login_id} did not finish: {state}"
    );
    Ok(())
}

async fn ensure_login_refused(
    api: &FlowApi,
    login_id: &str,
    password: &str,
    reason: &str,
) -> Result<()> {
    let state = login(api, login_id, password).await?;
    ensure!(
        state.error_reason() == Some(reason),
        "login of {login_id}: expected {reason}, got {state}"
    );
    Ok(())
}

fn bcrypt_hash(password: &str) -> String {
    bcrypt::hash(password, 4).expect("bcrypt")
}

fn argon2id_hash(password: &str) -> String {
    let params = argon2::Params::new(1024, 1, 1, None).expect("params");
    argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
        .hash_password(
            password.as_bytes(),
            &SaltString::encode_b64(&[7; 16]).expect("salt"),
        )
        .expect("argon2id")
        .to_string()
}

fn types_of(user: &Value) -> Vec<String> {
    user["authenticators"]
        .as_array()
        .map(|list| {
            list.iter()
                .map(|a| {
                    format!(
                        "{}:{}",
                        a["kind"].as_str().unwrap_or(""),
                        a["type"].as_str().unwrap_or("")
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Bytes of the SQLite database and its WAL, to check what is stored at rest.
fn sqlite_bytes(server: &TestServer) -> Vec<u8> {
    let mut bytes = Vec::new();
    for name in ["authflow.db", "authflow.db-wal"] {
        if let Ok(mut b) = std::fs::read(server.dir().join(name)) {
            bytes.append(&mut b);
        }
    }
    bytes
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

// ------------------------------------------------------------------------------------------------
// create / get / list / disable / enable / delete

#[tokio::test]
async fn an_admin_manages_a_user_from_the_command_line() -> Result<()> {
    for backend in backends() {
        manage_a_user(backend)
            .await
            .with_context(|| format!("backend {backend}"))?;
    }
    Ok(())
}

async fn manage_a_user(backend: Backend) -> Result<()> {
    let server = start(backend).await?;
    let api = server.api();

    // A weak password is refused with the broken rules, and nothing is created.
    let weak = user(
        &server,
        "create",
        &["--email", "alice@example.com", "--password-stdin"],
        Some("short\n"),
    )
    .await?;
    weak.ensure_failed()?;
    ensure!(
        weak.stderr.contains("PasswordTooShort") && weak.stderr.contains("PasswordDigitRequired"),
        "{weak}"
    );
    weak.ensure_hides(&["short\n", "\"short\""])?;
    ensure!(weak.stdout.is_empty(), "{weak}");
    user(&server, "get", &["alice@example.com"], None)
        .await?
        .ensure_failed()?;

    // Created with two login IDs and a password read from standard input.
    let created = user(
        &server,
        "create",
        &[
            "--email",
            "Alice@Example.com",
            "--username",
            "alice1",
            "--name",
            "Alice",
            "--email-verified",
            "--password-stdin",
        ],
        Some(&format!("{ALICE_PASSWORD}\n")),
    )
    .await?;
    created.ensure_ok()?;
    created.ensure_hides(&[ALICE_PASSWORD, "$argon2id$"])?;
    let alice = created.json()?;
    let id = alice["id"].as_str().context("id")?.to_owned();
    ensure!(
        alice["name"] == "Alice" && alice["disabled"] == false,
        "{alice}"
    );
    let login_ids: Vec<&str> = alice["identities"]
        .as_array()
        .context("identities")?
        .iter()
        .filter_map(|i| i["login_id"].as_str())
        .collect();
    ensure!(login_ids == ["alice@example.com", "alice1"], "{alice}");
    ensure!(types_of(&alice) == ["primary:password"], "{alice}");
    ensure!(
        alice["verified_claims"] == json!([{"name": "email", "value": "alice@example.com"}]),
        "{alice}"
    );

    // Found by either login ID (normalized like a login) and by id.
    for name in ["ALICE@example.com", "alice1", id.as_str()] {
        let got = user(&server, "get", &[name], None).await?;
        got.ensure_ok()?;
        ensure!(got.json()?["id"] == id.as_str(), "get {name}: {got}");
        got.ensure_hides(&[ALICE_PASSWORD, "$argon2id$", "password_hash"])?;
    }
    let missing = user(&server, "get", &["nobody@example.com"], None).await?;
    missing.ensure_failed()?;
    ensure!(missing.stderr.contains("no user"), "{missing}");

    // Taken login IDs and unconfigured login ID types are refused.
    let taken = user(&server, "create", &["--username", "ALICE1"], None).await?;
    taken.ensure_failed()?;
    ensure!(
        taken
            .stderr
            .contains("--username: login ID is already taken"),
        "{taken}"
    );
    let phone = user(&server, "create", &["--phone", "+14155550123"], None).await?;
    phone.ensure_failed()?;
    ensure!(
        phone
            .stderr
            .contains("--phone: no login ID key of type phone"),
        "{phone}"
    );

    // The flow API logs the user in with the password set on the command line.
    ensure_login(&api, "alice@example.com", ALICE_PASSWORD).await?;
    ensure_login(&api, "alice1", ALICE_PASSWORD).await?;
    ensure_login_refused(&api, "alice1", "Wr0ng!pass", "InvalidCredentials").await?;

    // A second user; the list shows both, oldest first.
    user(&server, "create", &["--email", "bert@example.com"], None)
        .await?
        .ensure_ok()?;
    let listed = user(&server, "list", &[], None).await?;
    listed.ensure_ok()?;
    let rows = listed.json_lines()?;
    ensure!(rows.len() == 2, "{listed}");
    ensure!(rows[0]["id"] == id.as_str(), "{listed}");
    ensure!(
        rows[1]["login_ids"] == json!(["bert@example.com"]),
        "{listed}"
    );
    let paged = user(&server, "list", &["--limit", "1", "--offset", "1"], None).await?;
    ensure!(paged.json_lines()?.len() == 1, "{paged}");

    // Disabled: flows refuse the user; enabled again: the login works.
    let disabled = user(
        &server,
        "disable",
        &["alice@example.com", "--reason", "left the company"],
        None,
    )
    .await?;
    disabled.ensure_ok()?;
    let view = disabled.json()?;
    ensure!(
        view["disabled"] == true && view["disabled_reason"] == "left the company",
        "{disabled}"
    );
    ensure_login_refused(&api, "alice@example.com", ALICE_PASSWORD, "DisabledUser").await?;
    let enabled = user(&server, "enable", &["alice1"], None).await?;
    enabled.ensure_ok()?;
    ensure!(enabled.json()?["disabled"] == false, "{enabled}");
    ensure_login(&api, "alice@example.com", ALICE_PASSWORD).await?;

    // Deleted: gone from get, list and login.
    let deleted = user(&server, "delete", &["alice1"], None).await?;
    deleted.ensure_ok()?;
    ensure!(deleted.json()? == json!({"deleted": id}), "{deleted}");
    user(&server, "get", &[&id], None).await?.ensure_failed()?;
    ensure!(user(&server, "list", &[], None).await?.json_lines()?.len() == 1);
    let after = login(&api, "alice@example.com", ALICE_PASSWORD).await?;
    ensure!(after.status != 200, "deleted user identified: {after}");
    Ok(())
}

// ------------------------------------------------------------------------------------------------
// import

#[tokio::test]
async fn imported_users_log_in_and_reimport_is_idempotent() -> Result<()> {
    for backend in backends() {
        import_then_login(backend)
            .await
            .with_context(|| format!("backend {backend}"))?;
    }
    Ok(())
}

async fn import_then_login(backend: Backend) -> Result<()> {
    let server = start(backend).await?;
    let api = server.api();
    let bcrypt = bcrypt_hash(BCRYPT_PASSWORD);
    let argon2id = argon2id_hash(ARGON2_PASSWORD);
    let lines = vec![
        json!({
            "email": "Bob@Example.com", "email_verified": true, "name": "Bob",
            "given_name": "Robert", "family_name": "Builder",
            "password": {"type": "bcrypt", "password_hash": bcrypt},
        })
        .to_string(),
        json!({
            "preferred_username": "carol", "email": "carol@example.com",
            "given_name": "Carol",
            "password": {"type": "argon2id", "password_hash": argon2id},
        })
        .to_string(),
        json!({
            "email": "dave@example.com",
            "password": {"type": "bcrypt", "password_hash": bcrypt},
            "mfa": {"email": "dave.mfa@example.com", "totp": {"secret": TOTP_SECRET}},
            "recovery_codes": RECOVERY_CODES,
        })
        .to_string(),
        json!({
            "email": "erin@example.com", "disabled": true,
            "password": {"type": "bcrypt", "password_hash": bcrypt},
        })
        .to_string(),
    ];
    let secrets = [
        bcrypt.as_str(),
        argon2id.as_str(),
        TOTP_SECRET,
        RECOVERY_CODES[0],
        RECOVERY_CODES[1],
        BCRYPT_PASSWORD,
        ARGON2_PASSWORD,
    ];

    let first = import(&server, &lines).await?;
    first.ensure_ok()?;
    ensure!(
        first.json()? == json!({"created": 4, "skipped": 0, "failed": 0}),
        "{first}"
    );
    first.ensure_hides(&secrets)?;
    // One warning per ignored member name, however many lines have it.
    ensure!(
        first.stderr.matches("\"given_name\"").count() == 1
            && first.stderr.contains("\"family_name\""),
        "{first}"
    );

    // bcrypt and argon2id hashes work through the flow API (bcrypt twice: the first login
    // re-hashes it to argon2id).
    ensure_login(&api, "bob@example.com", BCRYPT_PASSWORD).await?;
    ensure_login(&api, "bob@example.com", BCRYPT_PASSWORD).await?;
    ensure_login_refused(
        &api,
        "bob@example.com",
        ARGON2_PASSWORD,
        "InvalidCredentials",
    )
    .await?;
    ensure_login(&api, "carol", ARGON2_PASSWORD).await?;
    ensure_login(&api, "carol@example.com", ARGON2_PASSWORD).await?;
    // A disabled record makes a disabled user.
    ensure_login_refused(&api, "erin@example.com", BCRYPT_PASSWORD, "DisabledUser").await?;

    // What was stored, as `get` shows it (no secrets).
    let bob = user(&server, "get", &["bob@example.com"], None).await?;
    let bob = bob.json()?;
    ensure!(bob["name"] == "Bob", "{bob}");
    ensure!(
        bob["verified_claims"] == json!([{"name": "email", "value": "bob@example.com"}]),
        "{bob}"
    );
    let dave = user(&server, "get", &["dave@example.com"], None).await?;
    dave.ensure_hides(&secrets)?;
    let dave = dave.json()?;
    ensure!(
        types_of(&dave)
            == [
                "primary:password",
                "secondary:oob_otp_email",
                "secondary:totp"
            ],
        "{dave}"
    );
    ensure!(
        dave["recovery_codes"] == json!({"total": 2, "unused": 2}),
        "{dave}"
    );
    let oob = dave["authenticators"]
        .as_array()
        .and_then(|a| a.iter().find(|a| a["type"] == "oob_otp_email"))
        .context("oob authenticator")?;
    ensure!(oob["target"] == "dave.mfa@example.com", "{dave}");
    let erin = user(&server, "get", &["erin@example.com"], None).await?;
    ensure!(erin.json()?["disabled"] == true, "{erin}");

    // At rest (SQLite file): the TOTP secret is sealed and the recovery codes are hashed.
    if backend == Backend::Sqlite {
        let bytes = sqlite_bytes(&server);
        ensure!(
            contains(&bytes, "bob@example.com"),
            "database file not read"
        );
        for plain in [TOTP_SECRET, "94X5NST2VM", RECOVERY_CODES[1]] {
            ensure!(!contains(&bytes, plain), "stored in plain text");
        }
    }

    // Re-running the same file creates nothing and says why.
    let again = import(&server, &lines).await?;
    again.ensure_ok()?;
    ensure!(
        again.json()? == json!({"created": 0, "skipped": 4, "failed": 0}),
        "{again}"
    );
    for n in 1..=4 {
        ensure!(
            again.stderr.contains(&format!("line {n}: skipped")),
            "{again}"
        );
    }
    again.ensure_hides(&secrets)?;
    let listed = user(&server, "list", &[], None).await?;
    ensure!(listed.json_lines()?.len() == 4, "{listed}");
    ensure_login(&api, "carol", ARGON2_PASSWORD).await?;
    Ok(())
}

#[tokio::test]
async fn bad_import_lines_are_reported_and_the_others_land() -> Result<()> {
    for backend in backends() {
        bad_lines(backend)
            .await
            .with_context(|| format!("backend {backend}"))?;
    }
    Ok(())
}

async fn bad_lines(backend: Backend) -> Result<()> {
    let server = start(backend).await?;
    let api = server.api();
    let bcrypt = bcrypt_hash(BCRYPT_PASSWORD);
    let argon2id = argon2id_hash(ARGON2_PASSWORD);
    let password = json!({"type": "bcrypt", "password_hash": bcrypt});
    let lines = vec![
        // 1: fine
        json!({"email": "frank@example.com", "password": password}).to_string(),
        // 2: not JSON
        "{\"email\": \"x@example.com\",".to_string(),
        // 3: blank (skipped, still counted)
        "   ".to_string(),
        // 4: the hash is not of the declared type
        json!({"email": "gina@example.com", "password": {"type": "bcrypt", "password_hash": argon2id}})
            .to_string(),
        // 5: phone login IDs are not configured
        json!({"phone_number": "+14155550123"}).to_string(),
        // 6: unknown member
        json!({"email": "hank@example.com", "favourite_colour": "blue"}).to_string(),
        // 7: frank's email with a new username: another user's login ID
        json!({"email": "frank@example.com", "preferred_username": "frankie"}).to_string(),
        // 8: a bad TOTP secret: nothing of the record is written
        json!({"email": "heidi@example.com", "password": password,
               "mfa": {"totp": {"secret": "not base32!"}}})
        .to_string(),
        // 9: an empty recovery code
        json!({"email": "ivan@example.com", "recovery_codes": ["ABCDE12345", " "]}).to_string(),
        // 10: no login ID
        json!({"name": "Nobody"}).to_string(),
        // 11: fine
        json!({"preferred_username": "judy", "password": password}).to_string(),
        // 12: not an object
        "[1, 2]".to_string(),
    ];
    let run = import(&server, &lines).await?;
    run.ensure_failed()?;
    ensure!(
        run.json()? == json!({"created": 2, "skipped": 0, "failed": 9}),
        "{run}"
    );
    run.ensure_hides(&[
        &bcrypt,
        &argon2id,
        "not base32!",
        "ABCDE12345",
        BCRYPT_PASSWORD,
    ])?;
    for expected in [
        "line 2: not valid JSON",
        "line 4: password.password_hash: not a valid bcrypt",
        "line 5: phone_number: no login ID key of type phone",
        "line 6: favourite_colour: unknown member",
        "line 7: email: login ID already belongs to another user",
        "line 8: mfa.totp.secret: not base32",
        "line 9: recovery_codes[1]: is empty",
        "line 10: no login ID",
        "line 12: not a JSON object",
    ] {
        ensure!(run.stderr.contains(expected), "missing {expected:?}: {run}");
    }
    ensure!(!run.stderr.contains("line 1:"), "{run}");
    ensure!(!run.stderr.contains("line 3:"), "{run}");
    ensure!(!run.stderr.contains("line 11:"), "{run}");

    // The good lines landed; nothing of the bad ones did.
    ensure_login(&api, "frank@example.com", BCRYPT_PASSWORD).await?;
    ensure_login(&api, "judy", BCRYPT_PASSWORD).await?;
    for login_id in [
        "heidi@example.com",
        "gina@example.com",
        "hank@example.com",
        "ivan@example.com",
        "frankie",
    ] {
        let got = user(&server, "get", &[login_id], None).await?;
        if got.ok() {
            bail!("{login_id} was written: {got}");
        }
    }
    let listed = user(&server, "list", &[], None).await?;
    ensure!(listed.json_lines()?.len() == 2, "{listed}");
    Ok(())
}
