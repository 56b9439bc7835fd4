//! The YAML examples of seed 002 (flow-config.md 7.9) pass `authflow check`.

use std::process::Command;

const SIGNUP_EMAIL_AND_PHONE: &str = r#"
database: {url: "sqlite://./a.db"}
identity:
  login_id:
    keys: [{type: email}, {type: phone}]
authentication:
  primary_authenticators: [oob_otp_email, oob_otp_sms]
  secondary_authentication_mode: disabled
authentication_flow:
  signup_flows:
  - name: default
    steps:
    - name: setup_email
      type: identify
      one_of:
      - identification: email
        steps:
        - type: verify
          target_step: setup_email
        - name: authenticate_primary_email
          type: create_authenticator
          one_of:
          - authentication: primary_oob_otp_email
            target_step: setup_email
    - name: setup_phone
      type: identify
      one_of:
      - identification: phone
        steps:
        - type: verify
          target_step: setup_phone
        - name: authenticate_primary_phone
          type: create_authenticator
          one_of:
          - authentication: primary_oob_otp_sms
            target_step: setup_phone
"#;

const SIGNUP_LOGIN_BOTH_IDENTIFIERS: &str = r#"
database: {url: "sqlite://./a.db"}
identity:
  login_id:
    keys: [{type: email}, {type: phone}]
authentication:
  primary_authenticators: [oob_otp_email, oob_otp_sms]
  secondary_authentication_mode: disabled
authentication_flow:
  signup_login_flows:
  - name: default
    steps:
    - type: identify
      one_of:
      - {identification: phone, login_flow: default, signup_flow: default}
      - {identification: email, login_flow: default, signup_flow: default}
  login_flows:
  - name: default
    steps:
    - type: identify
      one_of:
      - identification: phone
        steps:
        - type: authenticate
          one_of: [{authentication: primary_oob_otp_sms}]
      - identification: email
        steps:
        - type: authenticate
          one_of: [{authentication: primary_oob_otp_email}]
  signup_flows:
  - name: default
    steps:
    - name: setup_id1
      type: identify
      one_of:
      - identification: phone
        steps:
        - {type: verify, target_step: setup_id1}
        - name: setup_id2
          type: identify
          one_of:
          - identification: email
            steps: [{type: verify, target_step: setup_id2}]
      - identification: email
        steps:
        - {type: verify, target_step: setup_id1}
        - name: setup_id3
          type: identify
          one_of:
          - identification: phone
            steps: [{type: verify, target_step: setup_id3}]
    - type: create_authenticator
      one_of:
      - authentication: primary_oob_otp_sms
      - authentication: primary_oob_otp_email
"#;

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
