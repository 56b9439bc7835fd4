//! `authflow.yaml` loading and `authflow check` output (flow-config.md 2, 7.7–7.10, 8).

use std::path::Path;

use authflow_core::config::{Problem, load_str};

fn no_env(_: &str) -> Option<String> {
    None
}

/// The problem lines of a config that must fail.
fn problems(yaml: &str) -> Vec<String> {
    problems_with_env(yaml, &no_env)
}

fn problems_with_env(yaml: &str, env: &dyn Fn(&str) -> Option<String>) -> Vec<String> {
    match load_str(yaml, Path::new("/etc/authflow"), env) {
        Ok(_) => panic!("expected problems"),
        Err(p) => p.iter().map(Problem::to_string).collect(),
    }
}

const SPEC_7_10: &str = r#"
server:
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

#[test]
fn spec_7_10_typical_mistakes() {
    assert_eq!(
        problems(SPEC_7_10),
        [
            "server.listen_backlog: unknown key",
            "database.url: environment variable AUTHFLOW_DB is not set",
            "authentication.secondary_authentication_mode: must be one of disabled, if_exists, required (got \"optional\")",
            "authentication_flow.signup_flows[0].steps[1].target_step: no step named \"setup_phon\"",
            "authentication_flow.signup_flows[0].steps[2].name: duplicate step name \"setup_email\" (first at authentication_flow.signup_flows[0].steps[0].name)",
            "authentication_flow.signup_flows[0].steps[2].one_of[0].identification: \"phone\" needs a login ID key of type phone in identity.login_id.keys",
            "authentication_flow.login_flows[0].steps[0].one_of[0].steps[0].type: \"verify\" is not allowed in a login flow (allowed: identify, authenticate, check_account_status, terminate_other_sessions, change_password, prompt_create_passkey)",
            "authentication_flow.login_flows[0].steps[1].target_step: step \"late_password\" does not run before this step",
        ]
    );
}

fn load(yaml: &str) -> authflow_core::config::Loaded {
    load_with_env(yaml, &no_env)
}

fn load_with_env(
    yaml: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> authflow_core::config::Loaded {
    match load_str(yaml, Path::new("/etc/authflow"), env) {
        Ok(l) => l,
        Err(p) => panic!(
            "unexpected problems:\n{}",
            p.iter()
                .map(Problem::to_string)
                .collect::<Vec<_>>()
                .join("\n")
        ),
    }
}

fn warnings(loaded: &authflow_core::config::Loaded) -> Vec<String> {
    loaded.warnings.iter().map(Problem::to_string).collect()
}

const DB: &str = "database: {url: 'sqlite://./authflow.db'}\n";

/// A config with the standard database line and `rest` appended.
fn with_db(rest: &str) -> String {
    format!("{DB}{rest}")
}

// ---------------------------------------------------------------------------------------
// Keys, types, required keys, enums
// ---------------------------------------------------------------------------------------

mod strictness {
    use super::*;

    #[test]
    fn unknown_keys_at_any_depth() {
        assert_eq!(
            problems(&with_db(
                "identity:\n  login_id:\n    keys: [{type: email, foo: 1}]\n    types: {email: {bar: true}}\nsurprise: 1\n"
            )),
            [
                "identity.login_id.keys[0].foo: unknown key",
                "identity.login_id.types.email.bar: unknown key",
                "surprise: unknown key",
            ]
        );
    }

    #[test]
    fn unknown_keys_in_every_section_are_reported() {
        assert_eq!(
            problems(&with_db("server: {x: 1}\nsession: {y: 2}\nui: {z: 3}\n")),
            [
                "server.x: unknown key",
                "session.y: unknown key",
                "ui.z: unknown key"
            ]
        );
    }

    #[test]
    fn keys_that_are_not_identifiers_are_quoted() {
        assert_eq!(
            problems(&with_db("server:\n  \"listen backlog\": 1\n")),
            ["server[\"listen backlog\"]: unknown key"]
        );
    }

    #[test]
    fn merge_keys_are_unknown_keys() {
        assert_eq!(
            problems(&with_db(
                "x: &b {listen: '127.0.0.1:1'}\nserver:\n  <<: *b\n"
            )),
            ["x: unknown key", "server[\"<<\"]: unknown key"]
        );
    }

    #[test]
    fn wrong_types_name_their_path_and_value() {
        assert_eq!(
            problems(
                "database: {url: 'sqlite://a.db', max_connections: ten}\nsession: {idle_timeout_enabled: yes, lifetime_seconds: -5}\nserver: {trusted_proxies: 10.0.0.0/8}\n"
            ),
            [
                "database.max_connections: must be a non-negative integer (got \"ten\")",
                "session.idle_timeout_enabled: must be a boolean (got \"yes\")",
                "session.lifetime_seconds: must be a non-negative integer (got -5)",
                "server.trusted_proxies: must be a list (got \"10.0.0.0/8\")",
            ]
        );
    }

    #[test]
    fn a_null_list_item_is_a_type_error_but_a_null_value_is_absent() {
        assert_eq!(
            problems(&with_db("server: {allowed_origins: [null]}\n")),
            ["server.allowed_origins[0]: must be a string (got null)"]
        );
        let loaded = load(&with_db("server:\nsession: ~\n"));
        assert_eq!(loaded.config.session.cookie_name, "session");
    }

    #[test]
    fn missing_required_keys_are_reported_at_their_own_path() {
        assert_eq!(
            problems(
                "database: {}\nstate_store: {key_prefix: x}\nmessaging: {smtp: {host: smtp.example.com}}\n"
            ),
            [
                "database.url: required",
                "state_store.url: required",
                "messaging.smtp.sender: required",
            ]
        );
        assert_eq!(
            problems("server: {listen: '0.0.0.0:3000'}\n"),
            ["database: required"]
        );
        assert_eq!(problems(""), ["database: required"]);
    }

    #[test]
    fn enum_values() {
        assert_eq!(
            problems(&with_db(
                "authentication: {primary_authenticators: [password, sms]}\nverification: {criteria: some}\n"
            )),
            [
                "authentication.primary_authenticators[1]: must be one of password, oob_otp_email, oob_otp_sms, passkey (got \"sms\")",
                "verification.criteria: must be one of any, all (got \"some\")",
            ]
        );
    }

    #[test]
    fn formats_and_ranges() {
        assert_eq!(
            problems(
                "database: {url: 'mysql://x', max_connections: 0}\nserver: {public_origin: 'https://a.example.com/path', listen: '3000'}\nauth_api: {anti_abuse_token_lifetime: 5x}\nauthentication: {recovery_code: {count: 5}}\nsecrets: {encryption_key: short}\n"
            ),
            [
                "database.url: must be a sqlite:// or postgres:// URL (got \"mysql://x\")",
                "database.max_connections: must be >= 1 (got 0)",
                "server.public_origin: must be an origin such as https://auth.example.com (got \"https://a.example.com/path\")",
                "server.listen: must be host:port such as 127.0.0.1:3000 or [::1]:3000 (got \"3000\")",
                "auth_api.anti_abuse_token_lifetime: must be a duration such as 300s, 1m or 1h30m (units ms, s, m, h) (got \"5x\")",
                "authentication.recovery_code.count: must be between 10 and 50 (got 5)",
                "secrets.encryption_key: must be 32 bytes as base64 or 64 hex digits",
            ]
        );
    }

    #[test]
    fn rate_limit_objects() {
        assert_eq!(
            problems(&with_db(
                "auth_api: {rate_limits: {anti_abuse_token_per_ip: {burst: 5}}}\nauthentication: {rate_limits: {password: {per_ip: {period: 1m, burst: 0}}}}\n"
            )),
            [
                "auth_api.rate_limits.anti_abuse_token_per_ip.period: required",
                "authentication.rate_limits.password.per_ip.burst: must be >= 1 (got 0)",
            ]
        );
    }

    #[test]
    fn cross_field_rules() {
        assert_eq!(
            problems(&with_db(
                "authentication:\n  secondary_authenticators: []\n  lockout: {max_attempts: 3, minimum_duration: 10m, maximum_duration: 1m}\nauthenticator:\n  password:\n    policy: {max_length: 10}\nidentity:\n  login_id:\n    keys: [{type: email}, {type: username, key: email}]\nmessaging:\n  smtp: {host: h, sender: a@example.com, username: u}\n"
            )),
            [
                "authentication.lockout.maximum_duration: must be >= minimum_duration (10m)",
                "authentication.lockout.history_duration: required when max_attempts >= 1",
                "authentication.lockout.lockout_type: required when max_attempts >= 1",
                // A missing key sorts at the end of its mapping.
                "authentication.secondary_authentication_mode: \"if_exists\" needs at least one authentication.secondary_authenticators item",
                "authenticator.password.policy.max_length: unknown key",
                "identity.login_id.keys[1].key: duplicate key \"email\" (first at identity.login_id.keys[0].key)",
                "messaging.smtp.password: required when messaging.smtp.username is set",
            ]
        );
    }

    #[test]
    fn passkey_rules() {
        assert_eq!(
            problems(&with_db(
                "authentication: {identities: [passkey], primary_authenticators: [password]}\n"
            )),
            [
                "authentication.identities: \"passkey\" must also be in authentication.primary_authenticators",
                "authentication.identities: \"passkey\" requires \"login_id\" in authentication.identities",
            ]
        );
    }

    #[test]
    fn oauth_client_rules() {
        let yaml = with_db(
            r#"oauth:
  clients:
  - client_id: web
    x_application_type: spa
    client_secret: s
    redirect_uris: [https://a.example.com/cb]
    access_token_lifetime_seconds: 3600
    refresh_token_lifetime_seconds: 1000
  - client_id: api
    x_application_type: confidential
    redirect_uris: [https://a.example.com/cb]
  - client_id: web
    grant_types: [client_credentials]
  - client_id: web
    client_secret: s
    redirect_uris: [https://b.example.com/cb]
  - client_id: m
    x_application_type: m2m
    client_secret: x
  - client_id: "bad id"
    redirect_uris: [https://a.example.com/cb]
"#,
        );
        assert_eq!(
            problems(&yaml),
            [
                "oauth.clients[0].client_secret: not allowed for x_application_type \"spa\"",
                "oauth.clients[0].refresh_token_lifetime_seconds: must be >= access_token_lifetime_seconds",
                "oauth.clients[1].client_secret: required for x_application_type \"confidential\"",
                "oauth.clients[2].redirect_uris: required",
                "oauth.clients[3].client_id: duplicate client_id \"web\" (first at oauth.clients[0].client_id)",
                "oauth.clients[5].client_id: must match [A-Za-z0-9._~-]+ (got \"bad id\")",
            ]
        );
    }

    #[test]
    fn hanko_rules() {
        assert_eq!(
            problems(&with_db(
                "hanko_api: {enabled: true, path_prefix: /api/hanko, session: {cookie: {same_site: none}}, flows: {login: staff}}\n"
            )),
            [
                "hanko_api.path_prefix: must not be /api or under it (got \"/api/hanko\")",
                "hanko_api.session.cookie.same_site: \"none\" requires an https server.public_origin (got \"http://127.0.0.1:3000\")",
                "hanko_api.flows.login: no login flow named \"staff\"",
            ]
        );
    }

    #[test]
    fn hanko_with_username_login_ids_only_needs_no_recovery_flow() {
        let yaml = with_db(
            "hanko_api: {enabled: true}\nidentity: {login_id: {keys: [{type: username}]}}\n",
        );
        load(&yaml);
        // Named explicitly, it must exist.
        let yaml = with_db(
            "hanko_api: {enabled: true, flows: {account_recovery: default}}\nidentity: {login_id: {keys: [{type: username}]}}\n",
        );
        assert_eq!(
            problems(&yaml),
            ["hanko_api.flows.account_recovery: no account_recovery flow named \"default\""]
        );
    }

    #[test]
    fn org_password_policies_may_only_tighten() {
        assert_eq!(
            problems(&with_db(
                "auth_api:\n  org_password_policies:\n    \"ACME Corp\": {min_length: 6, uppercase_required: true, lowercase_required: true, digit_required: true}\n"
            )),
            [
                "auth_api.org_password_policies[\"ACME Corp\"].min_length: must be >= 8 (auth_api.password_policy.min_length) (got 6)",
                "auth_api.org_password_policies[\"ACME Corp\"].max_length: required: auth_api.password_policy.max_length is 32",
                "auth_api.org_password_policies[\"ACME Corp\"].symbol_required: must be true: auth_api.password_policy.symbol_required is true",
            ]
        );
    }

    #[test]
    fn ui_rules() {
        assert_eq!(
            problems(&with_db(
                "ui:\n  forgot_password:\n    email: [{channel: sms, otp_form: code}]\n  phone_input: {allowlist: [US, XX], pinned_list: [DE]}\n"
            )),
            [
                "ui.forgot_password.email[0].channel: must be \"email\" (got \"sms\")",
                "ui.phone_input.allowlist[1]: must be an ISO 3166-1 alpha-2 code (got \"XX\")",
                "ui.phone_input.pinned_list[0]: \"DE\" is not in ui.phone_input.allowlist",
            ]
        );
        assert_eq!(
            problems(&with_db(
                "ui:\n  forgot_password:\n    phone: [{channel: whatsapp, otp_form: link}]\n"
            )),
            [
                "ui.forgot_password.phone[0]: \"whatsapp+link\" is not a valid destination (valid: email+link, email+code, sms+code, sms+link, whatsapp+code)"
            ]
        );
    }
}

// ---------------------------------------------------------------------------------------
// Syntax, environment variables
// ---------------------------------------------------------------------------------------

mod syntax_and_env {
    use super::*;

    #[test]
    fn yaml_syntax_error_is_one_line_with_line_and_column() {
        assert_eq!(
            problems("# c\ndatabase:\n  url: [oops\n"),
            ["<input>:3:8: unclosed bracket '['"]
        );
    }

    #[test]
    fn duplicate_keys_are_syntax_errors() {
        assert_eq!(
            problems("database:\n  url: sqlite://a.db\n  url: sqlite://b.db\n"),
            ["<input>:3:3: duplicate key \"url\""]
        );
    }

    #[test]
    fn unset_variable() {
        assert_eq!(
            problems("database: {url: '${AUTHFLOW_DB}'}\nsecrets: {encryption_key: '${KEY}'}\n"),
            [
                "database.url: environment variable AUTHFLOW_DB is not set",
                "secrets.encryption_key: environment variable KEY is not set",
            ]
        );
    }

    fn env(name: &str) -> Option<String> {
        match name {
            "DB_PASSWORD" => Some("pw".into()),
            "PORT" => Some("2525".into()),
            "FLAG" => Some("true".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn fallback_literal_and_typed_references() {
        let loaded = load_with_env(
            r#"database: {url: "${NOPE:-postgres://app:${DB_PASSWORD}@db/authflow}", max_connections: "${PORT}"}
session: {use_session_cookie: "${FLAG}", cookie_name: "$${literal}"}
messaging: {smtp: {host: "${EMPTY:-smtp.example.com}", port: "${PORT}", sender: a@example.com}}
"#,
            &env,
        );
        let c = &loaded.config;
        // The fallback is literal up to the first `}`.
        assert_eq!(c.database.url, "postgres://app:${DB_PASSWORD@db/authflow}");
        assert_eq!(c.database.max_connections, 2525);
        assert!(c.session.use_session_cookie);
        assert_eq!(c.session.cookie_name, "${literal}");
        let smtp = c.messaging.smtp.as_ref().unwrap();
        assert_eq!(smtp.host, "smtp.example.com");
        assert_eq!(smtp.port, 2525);
    }

    #[test]
    fn references_inside_strings() {
        let loaded = load_with_env(
            "database: {url: 'postgres://app:${DB_PASSWORD}@db/authflow?sslmode=require'}\n",
            &env,
        );
        assert_eq!(
            loaded.config.database.url,
            "postgres://app:pw@db/authflow?sslmode=require"
        );
        assert_eq!(
            loaded.config.database.redacted_url(),
            "postgres://app@db/authflow?sslmode=require"
        );
    }

    #[test]
    fn a_reference_with_more_text_stays_a_string() {
        assert_eq!(
            problems_with_env(
                "database: {url: 'sqlite://a.db', max_connections: '${PORT}0 '}\n",
                &env
            ),
            ["database.max_connections: must be a non-negative integer (got \"25250 \")"]
        );
    }

    #[test]
    fn flows_and_keys_are_not_interpolated() {
        let loaded = load(&with_db(
            "authentication_flow:\n  login_flows:\n  - name: x\n    steps: [{type: identify, one_of: [{identification: email}]}]\n",
        ));
        assert!(
            loaded
                .flows
                .find(authflow_core::flow::def::FlowKind::Login, "x")
                .is_some()
        );
        assert_eq!(
            problems(&with_db(
                "authentication_flow:\n  login_flows:\n  - name: '${X}'\n    steps: [{type: check_account_status}]\n"
            )),
            [
                "authentication_flow.login_flows[0].name: \"${X}\" is not a valid name (must match ^[a-zA-Z_][a-zA-Z0-9_]*$)"
            ]
        );
        assert_eq!(
            problems(&with_db("server: {'${X}': 1}\n")),
            ["server[\"${X}\"]: unknown key"]
        );
    }
}

// ---------------------------------------------------------------------------------------
// Flow grammar and the checks of 7.7
// ---------------------------------------------------------------------------------------

mod flow_checks {
    use super::*;

    fn flow_problems(flows: &str) -> Vec<String> {
        problems(&with_db(&format!(
            "identity:\n  login_id:\n    keys: [{{type: email}}, {{type: phone}}]\nauthentication_flow:\n{flows}"
        )))
    }

    const AF: &str = "authentication_flow.";

    fn strip(lines: Vec<String>) -> Vec<String> {
        lines
            .into_iter()
            .map(|l| l.strip_prefix(AF).map(str::to_string).unwrap_or(l))
            .collect()
    }

    #[test]
    fn no_step_named() {
        assert_eq!(
            strip(flow_problems(
                "  signup_flows:\n  - name: default\n    steps:\n    - {name: a, type: identify, one_of: [{identification: email}]}\n    - {type: verify, target_step: b}\n"
            )),
            ["signup_flows[0].steps[1].target_step: no step named \"b\""]
        );
    }

    #[test]
    fn wrong_target_type() {
        assert_eq!(
            strip(flow_problems(
                r#"  signup_flows:
  - name: default
    steps:
    - name: s
      type: identify
      one_of: [{identification: email}]
    - {name: x, type: verify, target_step: s}
    - type: create_authenticator
      one_of: [{authentication: primary_oob_otp_email, target_step: x}]
  login_flows:
  - name: default
    steps:
    - {name: i, type: identify, one_of: [{identification: email}]}
    - {type: change_password, target_step: i}
"#
            )),
            [
                "signup_flows[0].steps[2].one_of[0].target_step: step \"x\" is a verify step, expected identify",
                "login_flows[0].steps[1].target_step: step \"i\" is a identify step, expected authenticate",
            ]
        );
    }

    #[test]
    fn runs_before_is_exact() {
        let yaml = r#"  signup_flows:
  - name: default
    steps:
    - name: top
      type: identify
      one_of:
      - identification: email
        steps:
        - name: nested
          type: identify
          one_of: [{identification: phone}]
        - {type: verify, target_step: nested}
        - {type: verify, target_step: top}
      - identification: phone
        steps:
        - {type: verify, target_step: nested}
    - {type: verify, target_step: nested}
    - {type: verify, target_step: top}
    - {type: verify, target_step: later}
    - {name: later, type: identify, one_of: [{identification: email}]}
"#;
        assert_eq!(
            strip(flow_problems(yaml)),
            [
                // another branch of a common ancestor
                "signup_flows[0].steps[0].one_of[1].steps[0].target_step: step \"nested\" does not run before this step",
                // nested in a branch of an earlier sibling
                "signup_flows[0].steps[1].target_step: step \"nested\" does not run before this step",
                // a later step
                "signup_flows[0].steps[3].target_step: step \"later\" does not run before this step",
            ]
        );
    }

    #[test]
    fn duplicate_names() {
        assert_eq!(
            strip(flow_problems(
                r#"  login_flows:
  - name: a
    steps:
    - name: s
      type: identify
      one_of:
      - identification: email
        steps: [{name: s, type: authenticate, one_of: [{authentication: primary_password}]}]
  - name: a
    steps: [{type: check_account_status}]
"#
            )),
            [
                "login_flows[0].steps[0].one_of[0].steps[0].name: duplicate step name \"s\" (first at authentication_flow.login_flows[0].steps[0].name)",
                "login_flows[1].name: duplicate flow name \"a\" (first at authentication_flow.login_flows[0].name)",
            ]
        );
    }

    #[test]
    fn names_must_be_valid_and_lists_non_empty() {
        assert_eq!(
            strip(flow_problems(
                "  login_flows:\n  - name: x-y\n    steps: []\n  - name: ok\n    steps: [{type: identify, one_of: []}]\n  - {steps: [{type: check_account_status, name: '1a'}]}\n  signup_flows: []\n"
            )),
            [
                "login_flows[0].name: \"x-y\" is not a valid name (must match ^[a-zA-Z_][a-zA-Z0-9_]*$)",
                "login_flows[0].steps: must have at least one item",
                "login_flows[1].steps[0].one_of: must have at least one item",
                "login_flows[2].steps[0].name: \"1a\" is not a valid name (must match ^[a-zA-Z_][a-zA-Z0-9_]*$)",
                "login_flows[2].name: required",
                "signup_flows: must have at least one item",
            ]
        );
    }

    #[test]
    fn step_types_per_kind() {
        assert_eq!(
            strip(flow_problems(
                r#"  reauth_flows:
  - name: r
    steps:
    - {type: authenticate, one_of: [{authentication: primary_password}]}
    - {type: identify, one_of: [{identification: id_token}]}
    - {type: verify}
  signup_login_flows:
  - name: sl
    steps:
    - {type: identify, one_of: [{identification: email, login_flow: default, signup_flow: default}]}
    - {type: identify, one_of: [{identification: phone, login_flow: default, signup_flow: default}]}
  account_recovery_flows:
  - name: ar
    steps: [{type: fancy}]
"#
            )),
            [
                "reauth_flows[0].steps[1].type: \"identify\" is only allowed as the first step of a reauth flow",
                "reauth_flows[0].steps[2].type: \"verify\" is not allowed in a reauth flow (allowed: identify, authenticate)",
                "signup_login_flows[0].steps: a signup_login flow must have exactly one step (got 2)",
                "account_recovery_flows[0].steps[0].type: \"fancy\" is not allowed in a account_recovery flow (allowed: identify, select_destination, verify_account_recovery_code, reset_password)",
            ]
        );
    }

    #[test]
    fn keys_depend_on_step_type_and_branch_kind() {
        assert_eq!(
            strip(flow_problems(
                r#"  login_flows:
  - name: x
    color: blue
    steps:
    - type: identify
      target_step: nope
      one_of:
      - {identification: email, target_step: a}
    - type: authenticate
      optional: "yes"
      one_of:
      - {authentication: primary_password, target_step: a}
      - {authentication: recovery_code, steps: [{type: check_account_status}]}
      - {authentication: primary_password}
      - {authentication: magic}
      - {}
    - {type: change_password}
"#
            )),
            [
                "login_flows[0].color: unknown key",
                "login_flows[0].steps[0].target_step: unknown key",
                "login_flows[0].steps[0].one_of[0].target_step: unknown key",
                "login_flows[0].steps[1].optional: must be a boolean (got \"yes\")",
                "login_flows[0].steps[1].one_of[0].target_step: unknown key",
                "login_flows[0].steps[1].one_of[1].steps: unknown key",
                "login_flows[0].steps[1].one_of[2].authentication: duplicate \"primary_password\" (first at authentication_flow.login_flows[0].steps[1].one_of[0].authentication)",
                "login_flows[0].steps[1].one_of[3].authentication: \"magic\" is not allowed in a login authenticate step (allowed: primary_password, primary_oob_otp_email, primary_oob_otp_sms, secondary_password, secondary_totp, secondary_oob_otp_email, secondary_oob_otp_sms, recovery_code, device_token, primary_passkey)",
                "login_flows[0].steps[1].one_of[4].authentication: required",
                "login_flows[0].steps[2].target_step: required",
            ]
        );
    }

    #[test]
    fn login_id_keys_for_identifications() {
        assert_eq!(
            strip(problems(&with_db(
                "authentication_flow:\n  login_flows:\n  - name: x\n    steps: [{type: identify, one_of: [{identification: username}, {identification: email}]}]\n"
            ))),
            [
                "login_flows[0].steps[0].one_of[0].identification: \"username\" needs a login ID key of type username in identity.login_id.keys"
            ]
        );
    }

    #[test]
    fn flow_references_of_signup_login() {
        assert_eq!(
            strip(flow_problems(
                "  signup_login_flows:\n  - name: default\n    steps:\n    - type: identify\n      one_of:\n      - {identification: email, login_flow: staff, signup_flow: onboarding}\n      - {identification: phone, login_flow: default}\n"
            )),
            [
                "signup_login_flows[0].steps[0].one_of[0].login_flow: no login flow named \"staff\"",
                "signup_login_flows[0].steps[0].one_of[0].signup_flow: no signup flow named \"onboarding\"",
                "signup_login_flows[0].steps[0].one_of[1].signup_flow: required",
            ]
        );
    }

    #[test]
    fn signup_login_target_without_matching_identify_warns() {
        let loaded = load(&with_db(
            r#"authentication_flow:
  signup_login_flows:
  - name: default
    steps:
    - type: identify
      one_of: [{identification: email, login_flow: pw, signup_flow: default}]
  login_flows:
  - name: pw
    steps: [{type: check_account_status}]
"#,
        ));
        assert_eq!(
            warnings(&loaded),
            [
                "authentication_flow.signup_login_flows[0].steps[0].one_of[0].login_flow: login flow \"pw\" does not start with an identify step offering \"email\""
            ]
        );
    }

    #[test]
    fn recovery_code_and_device_token_contradictions() {
        assert_eq!(
            strip(problems(&with_db(
                r#"authentication: {recovery_code: {disabled: true}, device_token: {disabled: true}}
authentication_flow:
  signup_flows:
  - name: s
    steps:
    - {name: i, type: identify, one_of: [{identification: email}]}
    - type: view_recovery_code
  login_flows:
  - name: l
    steps:
    - type: authenticate
      one_of: [{authentication: recovery_code}, {authentication: device_token}]
"#
            ))),
            [
                "signup_flows[0].steps[1].type: \"view_recovery_code\" is not allowed while authentication.recovery_code.disabled is true",
                "login_flows[0].steps[0].one_of[0].authentication: \"recovery_code\" is not allowed while authentication.recovery_code.disabled is true",
                "login_flows[0].steps[0].one_of[1].authentication: \"device_token\" is not allowed while authentication.device_token.disabled is true",
            ]
        );
    }

    #[test]
    fn account_recovery_steps() {
        assert_eq!(
            strip(flow_problems(
                r#"  account_recovery_flows:
  - name: default
    steps:
    - type: identify
      one_of:
      - identification: email
        on_failure: shout
        steps:
        - type: select_destination
          enumerate_destinations: true
          allowed_channels: [{channel: email, otp_form: link}, {channel: whatsapp, otp_form: link}]
    - type: verify_account_recovery_code
    - type: reset_password
"#
            )),
            [
                "account_recovery_flows[0].steps[0].one_of[0].on_failure: must be one of ignore, error (got \"shout\")",
                "account_recovery_flows[0].steps[0].one_of[0].steps[0].allowed_channels[1]: \"whatsapp+link\" is not a valid destination (valid: email+link, email+code, sms+code, sms+link, whatsapp+code)",
            ]
        );
    }

    #[test]
    fn later_features_are_validated_and_warned() {
        let loaded = load(&with_db(
            r#"authentication: {identities: [login_id, oauth]}
authentication_flow:
  promote_flows:
  - name: p
    steps: [{type: identify, one_of: [{identification: email}]}]
  signup_flows:
  - name: x
    steps:
    - type: identify
      one_of:
      - {identification: email, bot_protection: {mode: always}}
    - type: fill_in_user_profile
      user_profile: [{pointer: /given_name, required: true}]
"#,
        ));
        assert_eq!(
            warnings(&loaded),
            [
                "authentication.identities[1]: \"oauth\" is not implemented yet; ignored",
                "authentication_flow.promote_flows: \"promote_flows\" is not implemented yet; ignored",
                "authentication_flow.signup_flows[0].steps[0].one_of[0].bot_protection: \"bot_protection\" is not implemented yet; ignored",
                "authentication_flow.signup_flows[0].steps[1].type: \"fill_in_user_profile\" is not implemented yet; ignored",
            ]
        );
        // Promote flows are [later]: not in the catalog.
        assert!(
            loaded
                .flows
                .flows
                .iter()
                .all(|f| f.kind != authflow_core::flow::def::FlowKind::Promote)
        );
        assert_eq!(
            strip(problems(&with_db(
                "authentication_flow:\n  signup_flows:\n  - name: x\n    steps:\n    - {type: fill_in_user_profile, user_profile: [{pointer: given_name, required: true}, {pointer: /x}]}\n    - {type: identify, one_of: [{identification: email, bot_protection: {mode: sometimes}}]}\n"
            ))),
            [
                "signup_flows[0].steps[0].user_profile[0].pointer: must be a JSON pointer such as /given_name (got \"given_name\")",
                "signup_flows[0].steps[0].user_profile[1].required: required",
                "signup_flows[0].steps[1].one_of[0].bot_protection.mode: must be one of never, always (got \"sometimes\")",
            ]
        );
    }

    #[test]
    fn unknown_flow_lists() {
        assert_eq!(
            problems(&with_db(
                "authentication_flow: {bogus_flows: [], rate_limits: {per_ip: {period: 1s, burst: 2, x: 1}}}\n"
            )),
            [
                "authentication_flow.bogus_flows: unknown key",
                "authentication_flow.rate_limits.per_ip.x: unknown key",
            ]
        );
    }
}

// ---------------------------------------------------------------------------------------
// Generated default flows (7.8)
// ---------------------------------------------------------------------------------------

mod generated {
    use super::*;
    use authflow_core::flow::def::{
        Authentication, BranchOption, Channel, FlowDef, FlowKind, Identification, OtpForm, StepType,
    };

    /// The worked example of 7.8, verbatim, as declared flows.
    const SPEC_7_8: &str = r#"
authentication_flow:
  signup_flows:
  - name: default
    steps:
    - name: signup_identify
      type: identify
      one_of:
      - identification: email
        steps:
        - {type: verify, target_step: signup_identify}
        - name: authenticate_primary_email
          type: create_authenticator
          one_of: [{authentication: primary_password}]
  login_flows:
  - name: default
    steps:
    - name: login_identify
      type: identify
      one_of:
      - identification: email
        steps:
        - name: authenticate_primary_email
          type: authenticate
          one_of:
          - authentication: primary_password
            steps:
            - name: authenticate_secondary_email
              type: authenticate
              optional: true
              one_of:
              - {authentication: secondary_totp}
              - {authentication: recovery_code}
              - {authentication: device_token}
            - {type: change_password, target_step: authenticate_primary_email}
    - {type: check_account_status}
    - {type: terminate_other_sessions}
"#;

    fn generated(yaml: &str, kind: FlowKind) -> Option<FlowDef> {
        load(&with_db(yaml)).flows.find(kind, "default").cloned()
    }

    #[test]
    fn all_defaults_match_the_worked_example() {
        let declared = load(&with_db(SPEC_7_8));
        for kind in [FlowKind::Signup, FlowKind::Login] {
            assert_eq!(
                generated("", kind).unwrap(),
                *declared.flows.find(kind, "default").unwrap(),
                "{kind:?}"
            );
        }
    }

    #[test]
    fn default_signup_login_reauth_and_recovery() {
        let sl = generated("", FlowKind::SignupLogin).unwrap();
        assert_eq!(sl.steps.len(), 1);
        assert_eq!(sl.steps[0].name.as_deref(), Some("signup_login_identify"));
        let b = &sl.steps[0].branches;
        assert_eq!(b.len(), 1);
        assert_eq!(
            b[0].option,
            BranchOption::Identification(Identification::Email)
        );
        assert_eq!(b[0].login_flow.as_deref(), Some("default"));
        assert_eq!(b[0].signup_flow.as_deref(), Some("default"));

        let reauth = generated("", FlowKind::Reauth).unwrap();
        assert_eq!(reauth.steps.len(), 1);
        assert_eq!(reauth.steps[0].name.as_deref(), Some("reauthenticate"));
        let options: Vec<_> = reauth.steps[0].branches.iter().map(|b| b.option).collect();
        assert_eq!(
            options,
            [
                BranchOption::Authentication(Authentication::PrimaryPassword),
                BranchOption::Authentication(Authentication::SecondaryTotp),
            ]
        );

        let ar = generated("", FlowKind::AccountRecovery).unwrap();
        let types: Vec<_> = ar.steps.iter().map(|s| s.step_type).collect();
        assert_eq!(
            types,
            [
                StepType::Identify,
                StepType::VerifyAccountRecoveryCode,
                StepType::ResetPassword
            ]
        );
        assert_eq!(ar.steps[0].name, None);
        let email = &ar.steps[0].branches[0];
        assert_eq!(ar.steps[0].branches.len(), 1);
        assert_eq!(
            email.option,
            BranchOption::Identification(Identification::Email)
        );
        let select = &email.steps[0];
        assert_eq!(select.step_type, StepType::SelectDestination);
        assert_eq!(select.allowed_channels.len(), 1);
        assert_eq!(select.allowed_channels[0].channel, Channel::Email);
        assert_eq!(select.allowed_channels[0].otp_form, OtpForm::Link);
    }

    #[test]
    fn otp_login_with_two_login_id_types_and_required_mfa() {
        let yaml = r#"identity:
  login_id:
    keys: [{type: email}, {type: phone}, {type: username}]
authentication:
  primary_authenticators: [oob_otp_email, password]
  secondary_authenticators: [totp]
  secondary_authentication_mode: required
  device_token: {disabled: true}
verification:
  claims: {phone_number: {required: false}}
"#;
        let expected_signup = load(&with_db(
            r#"identity:
  login_id:
    keys: [{type: email}, {type: phone}, {type: username}]
authentication_flow:
  signup_flows:
  - name: default
    steps:
    - name: signup_identify
      type: identify
      one_of:
      - identification: email
        steps:
        - {type: verify, target_step: signup_identify}
        - name: authenticate_primary_email
          type: create_authenticator
          one_of:
          - {authentication: primary_oob_otp_email, target_step: signup_identify}
          - {authentication: primary_password}
        - name: authenticate_secondary_email
          type: create_authenticator
          one_of: [{authentication: secondary_totp, steps: [{type: view_recovery_code}]}]
      - identification: phone
        steps:
        - name: authenticate_primary_phone
          type: create_authenticator
          one_of: [{authentication: primary_password}]
        - name: authenticate_secondary_phone
          type: create_authenticator
          one_of: [{authentication: secondary_totp, steps: [{type: view_recovery_code}]}]
      - identification: username
        steps:
        - name: authenticate_primary_username
          type: create_authenticator
          one_of: [{authentication: primary_password}]
        - name: authenticate_secondary_username
          type: create_authenticator
          one_of: [{authentication: secondary_totp, steps: [{type: view_recovery_code}]}]
"#,
        ));
        assert_eq!(
            generated(yaml, FlowKind::Signup).unwrap(),
            *expected_signup
                .flows
                .find(FlowKind::Signup, "default")
                .unwrap()
        );
        let login = generated(yaml, FlowKind::Login).unwrap();
        let email = &login.steps[0].branches[0].steps[0];
        assert_eq!(email.name.as_deref(), Some("authenticate_primary_email"));
        let oob = &email.branches[0];
        assert_eq!(
            oob.option,
            BranchOption::Authentication(Authentication::PrimaryOobOtpEmail)
        );
        assert_eq!(oob.target_step.as_deref(), Some("login_identify"));
        assert_eq!(oob.steps.len(), 1);
        let second = &oob.steps[0];
        assert!(!second.optional, "mode required: not optional");
        let options: Vec<_> = second.branches.iter().map(|b| b.option).collect();
        assert_eq!(
            options,
            [
                BranchOption::Authentication(Authentication::SecondaryTotp),
                BranchOption::Authentication(Authentication::RecoveryCode),
            ]
        );
        // The phone branch has only the password.
        let phone = &login.steps[0].branches[1].steps[0];
        assert_eq!(phone.branches.len(), 1);
        assert_eq!(
            phone.branches[0].steps[1].step_type,
            StepType::ChangePassword
        );
        assert_eq!(
            phone.branches[0].steps[1].target_step.as_deref(),
            Some("authenticate_primary_phone")
        );
    }

    #[test]
    fn flows_without_branches_are_not_built() {
        let yaml = "identity: {login_id: {keys: [{type: username}]}}\nauthentication: {primary_authenticators: [oob_otp_email]}\n";
        assert_eq!(generated(yaml, FlowKind::Signup), None);
        assert_eq!(generated(yaml, FlowKind::Login), None);
        assert_eq!(generated(yaml, FlowKind::SignupLogin), None);
        assert_eq!(generated(yaml, FlowKind::AccountRecovery), None);
        assert!(generated(yaml, FlowKind::Reauth).is_some());
        let yaml = "authentication: {identities: [oauth]}\n";
        assert_eq!(generated(yaml, FlowKind::Login), None);
    }

    #[test]
    fn a_declared_default_replaces_the_generated_one() {
        let loaded = load(&with_db(
            "authentication_flow:\n  login_flows:\n  - name: default\n    steps: [{type: identify, one_of: [{identification: email}]}]\n",
        ));
        let logins: Vec<_> = loaded
            .flows
            .flows
            .iter()
            .filter(|f| f.kind == FlowKind::Login)
            .collect();
        assert_eq!(logins.len(), 1);
        assert!(logins[0].steps[0].branches[0].steps.is_empty());
    }

    #[test]
    fn generated_signup_login_follows_declared_defaults() {
        // The declared default login flow offers phone only: the generated signup_login
        // flow has no email branch, and no branch at all means it is not built.
        let loaded = load(&with_db(
            r#"identity: {login_id: {keys: [{type: email}, {type: phone}]}}
authentication_flow:
  login_flows:
  - name: default
    steps: [{type: identify, one_of: [{identification: phone}]}]
"#,
        ));
        let sl = loaded.flows.find(FlowKind::SignupLogin, "default").unwrap();
        assert_eq!(sl.steps[0].branches.len(), 1);
        let b = &sl.steps[0].branches[0];
        assert_eq!(
            b.option,
            BranchOption::Identification(Identification::Phone)
        );
        assert_eq!(b.signup_flow.as_deref(), Some("default"));
    }
}

// ---------------------------------------------------------------------------------------
// The examples of the spec
// ---------------------------------------------------------------------------------------

mod examples {
    use super::*;
    use authflow_core::config::{AuthMethod, OtpChannel, RateLimit};
    use authflow_core::flow::def::FlowKind;
    use std::time::Duration;

    const SEED_002_1: &str =
        include_str!("../../../docs/examples/seed-002-signup-email-and-phone.yaml");
    const SEED_002_2: &str =
        include_str!("../../../docs/examples/seed-002-signup-login-both-identifiers.yaml");

    #[test]
    fn seed_002_examples_load_cleanly() {
        for example in [SEED_002_1, SEED_002_2] {
            let loaded = load(example);
            assert!(warnings(&loaded).is_empty(), "{:?}", warnings(&loaded));
            let signup = loaded.flows.find(FlowKind::Signup, "default").unwrap();
            assert_eq!(signup.steps.len(), 2);
        }
        // Example 1: returning users get the generated login flow with either identifier.
        let loaded = load(SEED_002_1);
        let login = loaded.flows.find(FlowKind::Login, "default").unwrap();
        assert_eq!(login.steps[0].branches.len(), 2);
    }

    const FULL_8_2: &str = r#"server:
  listen: 0.0.0.0:3000
  public_origin: https://auth.example.com
  trusted_proxies: [10.0.0.0/8]
  allowed_origins: [https://app.example.com]
database:
  url: postgres://authflow:${DB_PASSWORD}@db.internal:5432/authflow?sslmode=require
  max_connections: 20
state_store:
  url: redis://redis.internal:6379/0
messaging:
  smtp:
    host: smtp.example.com
    username: authflow
    password: ${SMTP_PASSWORD}
    sender: "Example <no-reply@example.com>"
  sms:
    webhook: {url: "https://sms.internal/send", secret: "${SMS_WEBHOOK_SECRET}", timeout: 5s}
  dev_outbox: {enabled: false}
  rate_limits:
    sms_per_target: {period: 1h, burst: 5}
secrets:
  encryption_key: ${AUTHFLOW_ENCRYPTION_KEY}
session:
  idle_timeout_seconds: 86400
hanko_api:
  enabled: true
  allowed_origins: [https://app.example.com]
  session: {auth_token_header: true}
identity:
  login_id:
    keys: [{type: email}, {type: phone}, {type: username, max_length: 32}]
    types:
      email: {block_plus_sign: true}
authentication:
  identities: [login_id]
  primary_authenticators: [password, oob_otp_email, oob_otp_sms]
  secondary_authenticators: [totp, oob_otp_sms]
  device_token: {expire_in_days: 14}
  lockout:
    max_attempts: 10
    history_duration: 15m
    minimum_duration: 1m
    maximum_duration: 1h
    backoff_factor: 2
    lockout_type: per_user_per_ip
    password: {enabled: true}
    totp: {enabled: true}
authenticator:
  password:
    policy: {min_length: 10, digit_required: true, minimum_guessable_level: 3, history_size: 5}
    expiry:
      force_change: {enabled: true, duration_since_last_update: 4320h}
  oob_otp:
    email: {email_otp_mode: login_link}
    sms: {phone_otp_mode: whatsapp_sms}
verification:
  claims:
    phone_number: {required: false}
  rate_limits:
    email: {trigger_cooldown: 2m}
ui:
  forgot_password:
    email: [{channel: email, otp_form: link}, {channel: email, otp_form: code}]
oauth:
  clients:
  - client_id: web
    name: Example web app
    x_application_type: spa
    redirect_uris: [https://app.example.com/auth/callback]
    post_logout_redirect_uris: [https://app.example.com/]
    x_custom_ui_uri: https://app.example.com/login
  - client_id: backend
    name: Example backend
    client_secret: ${BACKEND_CLIENT_SECRET}
    x_application_type: confidential
    redirect_uris: [https://api.example.com/oidc/callback]
    grant_types: [authorization_code, refresh_token, client_credentials]
authentication_flow:
  login_flows:
  - name: staff
    steps:
    - type: identify
      one_of:
      - identification: username
        steps:
        - name: staff_password
          type: authenticate
          one_of: [{authentication: primary_password}]
        - type: authenticate
          one_of: [{authentication: secondary_totp}, {authentication: recovery_code}]
        - {type: change_password, target_step: staff_password}   # earlier item, same list
    - type: check_account_status
"#;

    fn env_8_2(name: &str) -> Option<String> {
        match name {
            "DB_PASSWORD" => Some("db-secret".into()),
            "SMTP_PASSWORD" => Some("smtp-secret".into()),
            "SMS_WEBHOOK_SECRET" => Some("hook-secret".into()),
            "AUTHFLOW_ENCRYPTION_KEY" => Some("ab".repeat(32)),
            "BACKEND_CLIENT_SECRET" => Some("backend-secret".into()),
            _ => None,
        }
    }

    #[test]
    fn full_example_8_2_loads_cleanly() {
        let loaded = load_with_env(FULL_8_2, &env_8_2);
        assert!(warnings(&loaded).is_empty(), "{:?}", warnings(&loaded));
        let c = &loaded.config;
        assert_eq!(c.server.public_origin, "https://auth.example.com");
        assert!(!c.server.public_origin_defaulted);
        assert_eq!(
            c.database.url,
            "postgres://authflow:db-secret@db.internal:5432/authflow?sslmode=require"
        );
        assert_eq!(c.database.max_connections, 20);
        assert_eq!(c.state_store.as_ref().unwrap().key_prefix, "authflow:");
        let smtp = c.messaging.smtp.as_ref().unwrap();
        assert_eq!(smtp.port, 587);
        assert_eq!(smtp.password.as_ref().unwrap().expose(), "smtp-secret");
        assert_eq!(c.messaging.app_name, "auth.example.com");
        assert_eq!(
            c.messaging.sms.webhook.as_ref().unwrap().timeout,
            Duration::from_secs(5)
        );
        assert_eq!(
            c.messaging.rate_limits.sms_per_target(),
            Some(RateLimit::on(Duration::from_secs(3600), 5))
        );
        assert_eq!(c.secrets.encryption_key_bytes(), Some([0xab; 32]));
        assert_eq!(c.session.idle_timeout(), Some(Duration::from_secs(86_400)));
        assert_eq!(c.hanko_api.session.audience, ["https://auth.example.com"]);
        assert_eq!(c.identity.login_id.keys[2].max_length, 32);
        assert_eq!(c.identity.login_id.keys[0].max_length, 320);
        assert!(
            c.authentication
                .lockout
                .counts(authflow_core::config::LockoutKind::Password)
        );
        assert!(
            !c.authentication
                .lockout
                .counts(authflow_core::config::LockoutKind::OobOtp)
        );
        assert_eq!(
            c.authentication.lockout.duration_of(1),
            Duration::from_secs(60)
        );
        assert_eq!(
            c.authentication.lockout.duration_of(3),
            Duration::from_secs(240)
        );
        assert_eq!(
            c.authentication.lockout.duration_of(20),
            Duration::from_secs(3600)
        );
        assert_eq!(c.authenticator.password.policy.min_length, 10);
        assert_eq!(
            c.authenticator.password.expiry(),
            Some(Duration::from_secs(4320 * 3600))
        );
        assert_eq!(
            c.verification
                .rate_limits
                .channel(OtpChannel::Email)
                .trigger_cooldown,
            Duration::from_secs(120)
        );
        assert!(!c.oauth.clients[0].is_confidential());
        assert!(c.oauth.clients[1].is_confidential());
        assert_eq!(
            c.oauth.clients[1].refresh_token_lifetime_seconds,
            31_449_600
        );
        assert_eq!(
            c.cors_origins(),
            [
                "https://auth.example.com",
                "https://app.example.com",
                "https://api.example.com"
            ]
        );
        assert_eq!(
            c.authentication.rate_limits.per_ip(AuthMethod::Totp),
            c.authentication.rate_limits.general_per_ip()
        );
        // Declared `staff`, and the generated defaults of every kind.
        assert!(loaded.flows.find(FlowKind::Login, "staff").is_some());
        for kind in [
            FlowKind::Signup,
            FlowKind::Login,
            FlowKind::SignupLogin,
            FlowKind::Reauth,
            FlowKind::AccountRecovery,
        ] {
            assert!(loaded.flows.find(kind, "default").is_some(), "{kind:?}");
        }
        let ar = loaded
            .flows
            .find(FlowKind::AccountRecovery, "default")
            .unwrap();
        assert_eq!(ar.steps[0].branches.len(), 2);
        assert_eq!(ar.steps[0].branches[0].steps[0].allowed_channels.len(), 2);
    }

    #[test]
    fn minimal_example_8_1() {
        let loaded = load(
            "server:\n  public_origin: https://auth.example.com\ndatabase:\n  url: sqlite://./authflow.db\n",
        );
        assert_eq!(loaded.config.server.listen, "127.0.0.1:3000");
        assert!(loaded.config.server.is_https());
        assert_eq!(
            loaded.config.database.url,
            "sqlite:///etc/authflow/authflow.db"
        );
        assert!(loaded.config.state_store.is_none());
        assert!(loaded.config.messaging.dev_outbox.enabled);
    }
}

// ---------------------------------------------------------------------------------------
// Defaults, resolution, `authflow check`
// ---------------------------------------------------------------------------------------

mod defaults_and_check {
    use super::*;
    use authflow_core::config::{CheckOutcome, Config, RateLimit, check_file};
    use std::time::Duration;

    #[test]
    fn builtin_defaults() {
        let c = Config::builtin_defaults();
        assert_eq!(c.database.url, "sqlite://./authflow.db");
        assert_eq!(c.server.public_origin, "http://127.0.0.1:3000");
        assert_eq!(c.messaging.app_name, "127.0.0.1");
        assert_eq!(c.session.lifetime(), Duration::from_secs(31_449_600));
        assert_eq!(c.auth_api.password_policy.max_length, Some(32));
        assert_eq!(c.authenticator.password.policy.max_length, None);
        assert_eq!(
            c.authenticator.oob_otp.email.valid_periods.code,
            Duration::from_secs(300)
        );
        assert_eq!(
            c.forgot_password.valid_periods.link,
            Duration::from_secs(1200)
        );
        assert_eq!(
            c.authentication_flow.rate_limits.per_ip(),
            Some(RateLimit::on(Duration::from_secs(60), 1200))
        );
        assert_eq!(
            c.authentication.rate_limits.signup_per_ip(),
            Some(RateLimit::on(Duration::from_secs(60), 200))
        );
        // A file with only the database gives the same configuration.
        let loaded = load("database: {url: 'sqlite:///var/lib/authflow/authflow.db'}\n");
        let mut expected = Config::builtin_defaults();
        expected.database.url = "sqlite:///var/lib/authflow/authflow.db".into();
        assert_eq!(loaded.config, expected);
    }

    #[test]
    fn public_origin_from_listen() {
        let loaded = load(&with_db("server: {listen: '0.0.0.0:8080'}\n"));
        assert_eq!(loaded.config.server.public_origin, "http://127.0.0.1:8080");
        assert!(loaded.config.server.should_warn_defaulted_origin());
        let loaded = load(&with_db("server: {listen: '[::]:3000'}\n"));
        assert_eq!(loaded.config.server.public_origin, "http://[::1]:3000");
        let loaded = load(&with_db(
            "server: {public_origin: 'https://Auth.Example.com/'}\n",
        ));
        assert_eq!(
            loaded.config.server.public_origin,
            "https://auth.example.com"
        );
    }

    #[test]
    fn deprecated_keys_fill_their_successors() {
        let loaded = load(&with_db(
            "session: {cookie_non_persistent: true}\nverification: {code_expiry_seconds: 120}\nforgot_password: {reset_code_expiry_seconds: 600}\nauthenticator: {oob_otp: {email: {email_otp_mode: login_link, code_valid_period: 10m}, sms: {code_valid_period: 2m}}}\nidentity: {login_id: {keys: [{type: phone, modify_disabled: true}]}}\n",
        ));
        let c = &loaded.config;
        assert!(c.session.use_session_cookie);
        assert_eq!(c.verification.code_valid_period, Duration::from_secs(120));
        assert_eq!(
            c.forgot_password.valid_periods.link,
            Duration::from_secs(600)
        );
        assert_eq!(
            c.authenticator.oob_otp.email.valid_periods.link,
            Duration::from_secs(600)
        );
        assert_eq!(
            c.authenticator.oob_otp.email.valid_periods.code,
            Duration::from_secs(300)
        );
        assert_eq!(
            c.authenticator.oob_otp.sms.valid_periods.code,
            Duration::from_secs(120)
        );
        let key = &c.identity.login_id.keys[0];
        assert!(key.create_disabled && key.update_disabled && key.delete_disabled);
        assert_eq!(key.key, "phone");
        assert_eq!(key.max_length, 40);
    }

    fn temp_dir(name: &str) -> std::path::PathBuf {
        let dir =
            std::env::temp_dir().join(format!("authflow-config-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn check_file_prints_ok_problems_and_warnings() {
        let dir = temp_dir("check");
        let good = dir.join("good.yaml");
        std::fs::write(
            &good,
            "database: {url: sqlite://./a.db}\nbot_protection: {enabled: true}\n",
        )
        .unwrap();
        assert_eq!(
            check_file(&good),
            CheckOutcome {
                stdout: vec!["ok".into()],
                stderr: vec![
                    "warning: bot_protection.enabled: \"true\" is not implemented yet; ignored"
                        .into()
                ],
            }
        );
        assert_eq!(check_file(&good).exit_code(), 0);

        let bad = dir.join("bad.yaml");
        std::fs::write(&bad, "database: {url: sqlite://./a.db}\nserver: {x: 1}\n").unwrap();
        let out = check_file(&bad);
        assert_eq!(out.stdout, ["server.x: unknown key"]);
        assert_eq!(out.exit_code(), 1);

        let syntax = dir.join("syntax.yaml");
        std::fs::write(&syntax, "database:\n  url: [x\n").unwrap();
        let out = check_file(&syntax);
        assert_eq!(
            out.stdout,
            [format!("{}:2:8: unclosed bracket '['", syntax.display())]
        );

        let missing = dir.join("missing.yaml");
        let out = check_file(&missing);
        assert_eq!(out.stdout.len(), 1);
        assert!(
            out.stdout[0].starts_with(&format!("{}: cannot read: ", missing.display())),
            "{:?}",
            out.stdout
        );
        assert_eq!(out.exit_code(), 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn relative_paths_are_resolved_against_the_config_dir() {
        let dir = temp_dir("paths");
        std::fs::create_dir_all(dir.join("templates")).unwrap();
        std::fs::write(
            dir.join("templates/verification.email.txt"),
            "Code {{code}} for {{app_name}}",
        )
        .unwrap();
        let file = dir.join("authflow.yaml");
        std::fs::write(
            &file,
            "database: {url: sqlite://./data/a.db}\nmessaging: {templates_dir: templates}\n",
        )
        .unwrap();
        let loaded = authflow_core::config::load_file(&file).unwrap();
        let canonical = std::fs::canonicalize(&dir).unwrap();
        assert_eq!(
            loaded.config.database.url,
            format!("sqlite://{}/data/a.db", canonical.display())
        );
        assert_eq!(
            loaded.config.messaging.templates_dir,
            Some(canonical.join("templates"))
        );

        std::fs::write(dir.join("templates/welcome.email.txt"), "hi").unwrap();
        std::fs::write(
            dir.join("templates/account_recovery_code.sms.txt"),
            "{{link}}",
        )
        .unwrap();
        let out = check_file(&file);
        assert_eq!(
            out.stdout,
            [
                "messaging.templates_dir: unknown variable {{link}} in \"account_recovery_code.sms.txt\"",
                "messaging.templates_dir: unknown template file \"welcome.email.txt\"",
            ]
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

mod hanko_flows {
    use super::*;

    #[test]
    fn named_flows_must_resolve_and_unshowable_steps_warn() {
        let loaded = load(&with_db(
            r#"hanko_api:
  enabled: true
  flows: {registration: onboarding}
authentication_flow:
  signup_flows:
  - name: onboarding
    steps:
    - {name: i, type: identify, one_of: [{identification: email}]}
    - {type: prompt_create_passkey}
"#,
        ));
        assert_eq!(
            warnings(&loaded),
            [
                "authentication_flow.signup_flows[0].steps[1].type: \"prompt_create_passkey\" is not implemented yet; ignored",
                "authentication_flow.signup_flows[0].steps[1].type: \"prompt_create_passkey\" cannot be shown by the Hanko dialect (hanko_api.flows.registration)",
            ]
        );
        // An explicit reference is checked even while the dialect is disabled.
        assert_eq!(
            problems(&with_db("hanko_api: {flows: {account_recovery: lost}}\n")),
            ["hanko_api.flows.account_recovery: no account_recovery flow named \"lost\""]
        );
    }

    #[test]
    fn unknown_sections_are_not_interpolated() {
        assert_eq!(
            problems(&with_db("extra: '${NOPE}'\n")),
            ["extra: unknown key"]
        );
    }
}

#[test]
fn json_files_work_as_is() {
    let loaded = load(
        r#"{"database": {"url": "sqlite:///var/lib/authflow.db"}, "session": {"cookie_name": "sid"}}"#,
    );
    assert_eq!(loaded.config.session.cookie_name, "sid");
    assert_eq!(loaded.config.database.url, "sqlite:///var/lib/authflow.db");
}
