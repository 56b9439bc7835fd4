//! The YAML examples of seed 002 (flow-config.md 7.9) pass `authflow check`.

use std::process::Command;

const SIGNUP_EMAIL_AND_PHONE: &str =
    include_str!("../../../docs/examples/seed-002-signup-email-and-phone.yaml");
const SIGNUP_LOGIN_BOTH_IDENTIFIERS: &str =
    include_str!("../../../docs/examples/seed-002-signup-login-both-identifiers.yaml");

fn check(yaml: &str) -> (i32, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("authflow.yaml");
    std::fs::write(&path, yaml).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_authflow"))
        .args(["check", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn seed_002_signup_with_email_and_phone_checks_cleanly() {
    let (code, stdout, stderr) = check(SIGNUP_EMAIL_AND_PHONE);
    assert_eq!((code, stdout.as_str()), (0, "ok\n"), "stderr: {stderr}");
    assert_eq!(stderr, "", "no warnings");
}

#[test]
fn seed_002_signup_login_with_both_identifiers_checks_cleanly() {
    let (code, stdout, stderr) = check(SIGNUP_LOGIN_BOTH_IDENTIFIERS);
    assert_eq!((code, stdout.as_str()), (0, "ok\n"), "stderr: {stderr}");
    assert_eq!(stderr, "", "no warnings");
}

#[test]
fn a_broken_target_step_in_the_seed_example_is_reported() {
    let broken =
        SIGNUP_EMAIL_AND_PHONE.replacen("target_step: setup_phone", "target_step: setup_phon", 1);
    let (code, stdout, _) = check(&broken);
    assert_eq!(code, 1);
    assert_eq!(
        stdout,
        "authentication_flow.signup_flows[0].steps[1].one_of[0].steps[0].target_step: no step named \"setup_phon\"\n"
    );
}
