//! Loading `authflow.yaml`: parse (YAML 1.2), interpolate `${ENV}`, deserialize each
//! section, run the cross-field rules and the flow checks, generate the default flows.
//! Every problem found is reported, in file order (flow-config.md 2).

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

use super::de::deserialize_at;
use super::env::{EnvLookup, interpolate_tree};
use super::flows::check::{self, FlowCheckInput, Resolved, Resolver};
use super::flows::generate::generate_defaults;
use super::flows::parse::{PFlow, parse_flows};
use super::later::later_warnings;
use super::node::{Node, parse_yaml};
use super::problem::{Located, Problem, Report, YamlPath};
use super::types::*;
use super::validate::{self, RuleInput};
use crate::flow::def::{FlowCatalog, FlowDef, FlowKind};
use crate::model::LoginIdType;

/// A valid configuration with its flows.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub config: Config,
    /// Declared flows (except [later] promote flows) plus the generated defaults.
    pub flows: FlowCatalog,
    /// `path: message`; printed as `warning: path: message`.
    pub warnings: Vec<Problem>,
}

/// Everything one load found; `loaded` is `Some` iff there are no problems.
#[derive(Debug)]
pub(crate) struct Outcome {
    pub loaded: Option<Loaded>,
    pub problems: Vec<Problem>,
    pub warnings: Vec<Problem>,
}

impl Outcome {
    fn failed(problem: Problem) -> Self {
        Outcome {
            loaded: None,
            problems: vec![problem],
            warnings: Vec::new(),
        }
    }

    fn into_result(self) -> Result<Loaded, Vec<Problem>> {
        self.loaded.ok_or(self.problems)
    }
}

/// Loads a config file with the process environment; relative paths in it are
/// resolved against its directory.
pub fn load_file(path: &Path) -> Result<Loaded, Vec<Problem>> {
    load_file_outcome(path).into_result()
}

/// Loads config text; `base_dir` resolves relative paths, `env` looks up variables.
/// YAML syntax errors are reported as `<input>:LINE:COLUMN: message`.
pub fn load_str(
    yaml: &str,
    base_dir: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Loaded, Vec<Problem>> {
    load_source(yaml, "<input>", base_dir, env).into_result()
}

pub(crate) fn load_file_outcome(path: &Path) -> Outcome {
    let name = path.display().to_string();
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => return Outcome::failed(Problem::new(&name, format!("cannot read: {e}"))),
    };
    let env = |n: &str| std::env::var(n).ok();
    load_source(&text, &name, &config_dir(path), &env)
}

/// The directory of the config file, absolute when possible.
fn config_dir(path: &Path) -> PathBuf {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::canonicalize(&dir).unwrap_or(dir)
}

/// The top-level keys of 1.
const SECTIONS: [&str; 18] = [
    "server",
    "database",
    "state_store",
    "messaging",
    "secrets",
    "session",
    "auth_api",
    "hanko_api",
    "identity",
    "authentication",
    "authenticator",
    "verification",
    "forgot_password",
    "oauth",
    "ui",
    "bot_protection",
    "test_mode",
    "authentication_flow",
];

pub(crate) fn load_source(
    text: &str,
    source_name: &str,
    base_dir: &Path,
    env: EnvLookup<'_>,
) -> Outcome {
    let mut root = match parse_yaml(text, source_name) {
        Ok(root) => root,
        Err(problem) => return Outcome::failed(problem),
    };
    root.strip_null_entries();
    let mut report = Report::default();
    interpolate_tree(&mut root, &SECTIONS, env, &mut report);
    for (key, _) in root.as_map().unwrap_or_default() {
        if !SECTIONS.contains(&key.as_str()) {
            report.error(YamlPath::root().key(key), "unknown key");
        }
    }
    let mut reader = Reader {
        root: &root,
        report: &mut report,
        malformed: Vec::new(),
        client_positions: Vec::new(),
    };
    let mut config = reader.config();
    let (malformed, client_positions) = (reader.malformed, reader.client_positions);
    let ok = |section: &str| !malformed.contains(&section);
    resolve_paths(&mut config, base_dir, ok("database"));
    let input = RuleInput {
        root: &root,
        base_dir,
        client_positions: &client_positions,
    };
    section_rules(&config, &input, &ok, &mut report);
    let catalog = flows(&config, &root, &ok, &mut report);
    later_warnings(&root, &mut report);
    finish(&root, config, catalog, report)
}

/// Reads the sections one by one, so that problems of all of them are reported.
struct Reader<'a> {
    root: &'a Node,
    report: &'a mut Report,
    malformed: Vec<&'static str>,
    /// Positions in `oauth.clients` of the clients that deserialized.
    client_positions: Vec<usize>,
}

impl Reader<'_> {
    fn optional<T: DeserializeOwned>(&mut self, name: &'static str) -> Option<T> {
        let node = self.root.get(name)?;
        let value = deserialize_at(node, &YamlPath::of(name), self.report);
        if value.is_none() {
            self.malformed.push(name);
        }
        value
    }

    fn section<T: DeserializeOwned + Default>(&mut self, name: &'static str) -> T {
        self.optional(name).unwrap_or_default()
    }

    fn database(&mut self) -> DatabaseConfig {
        if self.root.get("database").is_none() {
            self.report.error(YamlPath::of("database"), "required");
            self.malformed.push("database");
        }
        self.optional("database")
            .unwrap_or_else(DatabaseConfig::builtin)
    }

    /// Only `rate_limits` of `authentication_flow` is typed; the flow lists are parsed
    /// by the flow grammar.
    fn authentication_flow(&mut self) -> AuthenticationFlowConfig {
        let Some(limits) = self
            .root
            .get("authentication_flow")
            .and_then(|n| n.get("rate_limits"))
        else {
            return AuthenticationFlowConfig::default();
        };
        let node = Node::Map(vec![("rate_limits".into(), limits.clone())]);
        deserialize_at(&node, &YamlPath::of("authentication_flow"), self.report).unwrap_or_else(
            || {
                self.malformed.push("authentication_flow");
                AuthenticationFlowConfig::default()
            },
        )
    }

    /// Each client on its own, so that one bad client does not hide the rules of the
    /// others.
    fn oauth(&mut self) -> OAuthConfig {
        let Some(node) = self.root.get("oauth") else {
            return OAuthConfig::default();
        };
        let base = YamlPath::of("oauth");
        let Some(entries) = node.as_map() else {
            return self.section("oauth");
        };
        let rest = Node::Map(
            entries
                .iter()
                .filter(|(k, _)| k != "clients")
                .cloned()
                .collect(),
        );
        let mut config: OAuthConfig =
            deserialize_at(&rest, &base, self.report).unwrap_or_else(|| {
                self.malformed.push("oauth");
                OAuthConfig::default()
            });
        let clients_path = base.key("clients");
        match node.get("clients") {
            None => {}
            Some(Node::Seq(items)) => {
                for (i, item) in items.iter().enumerate() {
                    match deserialize_at(item, &clients_path.index(i), self.report) {
                        Some(client) => {
                            config.clients.push(client);
                            self.client_positions.push(i);
                        }
                        None => self.malformed.push("oauth"),
                    }
                }
            }
            Some(other) => {
                let _: Option<Vec<OAuthClientConfig>> =
                    deserialize_at(other, &clients_path, self.report);
                self.malformed.push("oauth");
            }
        }
        config
    }

    fn config(&mut self) -> Config {
        let mut config = Config {
            server: self.section("server"),
            database: self.database(),
            state_store: self.optional("state_store"),
            messaging: self.section("messaging"),
            secrets: self.section("secrets"),
            session: self.section("session"),
            auth_api: self.section("auth_api"),
            hanko_api: self.section("hanko_api"),
            identity: self.section("identity"),
            authentication: self.section("authentication"),
            authenticator: self.section("authenticator"),
            verification: self.section("verification"),
            forgot_password: self.section("forgot_password"),
            oauth: self.oauth(),
            ui: self.section("ui"),
            bot_protection: self.section("bot_protection"),
            test_mode: self.section("test_mode"),
            authentication_flow: self.authentication_flow(),
        };
        config.resolve_derived_defaults();
        config
    }
}

/// Relative paths of the file are relative to its directory (2.1).
fn resolve_paths(config: &mut Config, base_dir: &Path, database_ok: bool) {
    if database_ok {
        config.database.resolve_relative(base_dir);
    }
    if let Some(dir) = &mut config.messaging.templates_dir
        && dir.is_relative()
    {
        *dir = base_dir.join(&*dir);
    }
}

/// Cross-field rules of the sections that deserialized cleanly.
fn section_rules(
    config: &Config,
    input: &RuleInput<'_>,
    ok: &dyn Fn(&str) -> bool,
    r: &mut Report,
) {
    if ok("messaging") {
        validate::messaging(&config.messaging, input, r);
    }
    if ok("auth_api") {
        validate::auth_api(&config.auth_api, r);
    }
    if ok("hanko_api") {
        validate::hanko_api(&config.hanko_api, ok("server").then_some(&config.server), r);
    }
    if ok("identity") {
        validate::identity(&config.identity, r);
    }
    if ok("authentication") {
        validate::authentication(&config.authentication, r);
    }
    if ok("authenticator") {
        validate::authenticator(&config.authenticator, input.root, r);
    }
    // Per client: the clients that deserialized are checked even if others did not.
    validate::oauth(&config.oauth, input.client_positions, r);
    if ok("ui") {
        validate::ui(&config.ui, r);
    }
}

/// Parses and checks the declared flows, generates the defaults and checks the flow
/// references; returns the catalog.
fn flows(config: &Config, root: &Node, ok: &dyn Fn(&str) -> bool, r: &mut Report) -> FlowCatalog {
    let declared = parse_flows(root.get("authentication_flow"), r);
    let input = FlowCheckInput {
        identity: ok("identity").then_some(&config.identity),
        authentication: ok("authentication").then_some(&config.authentication),
    };
    check::check_flows(&declared, &input, r);
    let declared_defs: Vec<FlowDef> = declared.iter().map(PFlow::to_def).collect();
    let missing: Vec<FlowKind> = FlowKind::ALL
        .into_iter()
        .filter(|k| *k != FlowKind::Promote)
        .filter(|k| {
            !declared_defs
                .iter()
                .any(|f| f.kind == *k && f.name == "default")
        })
        .collect();
    let generated = generate_defaults(config, &declared_defs, &missing);
    // Which defaults exist is only known when the sections shaping them are sound.
    let known = ["identity", "authentication", "verification", "ui"]
        .into_iter()
        .all(ok);
    let resolver = Resolver {
        declared: &declared,
        declared_defs: &declared_defs,
        generated: known.then_some(generated.as_slice()),
    };
    check::signup_login_references(&resolver, r);
    if ok("hanko_api") {
        hanko_references(config, root, &resolver, r);
    }
    let mut flows: Vec<FlowDef> = declared_defs
        .into_iter()
        .filter(|f| f.kind != FlowKind::Promote)
        .collect();
    flows.extend(generated);
    FlowCatalog { flows }
}

/// `hanko_api.flows.*` resolve like 7.5 (when the dialect is enabled, or when given),
/// and the steps of the named flows that the dialect cannot show are warned about.
fn hanko_references(config: &Config, root: &Node, resolver: &Resolver<'_>, r: &mut Report) {
    let h = &config.hanko_api;
    let refs = [
        ("registration", FlowKind::Signup, &h.flows.registration),
        ("login", FlowKind::Login, &h.flows.login),
        (
            "account_recovery",
            FlowKind::AccountRecovery,
            &h.flows.account_recovery,
        ),
    ];
    for (key, kind, name) in refs {
        let path = YamlPath::of("hanko_api.flows").key(key);
        let explicit = root.at(&path).is_some();
        // Without recovery, or without an email or phone login ID to send a code to, the
        // dialect never runs that flow (hanko-flow-api.md 1, 7.3).
        let reachable = config
            .identity
            .login_id
            .keys
            .iter()
            .any(|k| matches!(k.r#type, LoginIdType::Email | LoginIdType::Phone));
        let unused =
            kind == FlowKind::AccountRecovery && (!config.forgot_password.enabled || !reachable);
        if !explicit && (!h.enabled || unused) {
            continue;
        }
        let found = resolver.reference(kind, name, &path, r);
        if let (true, Some(Resolved::Flow(flow, _))) = (h.enabled, found) {
            check::hanko_unshowable(flow, &path, r);
        }
    }
}

/// Sorts problems and warnings into file order and builds the outcome.
fn finish(root: &Node, config: Config, flows: FlowCatalog, report: Report) -> Outcome {
    let ordered = |mut items: Vec<Located>| -> Vec<Problem> {
        items.sort_by_cached_key(|l| root.position(&l.path));
        items
            .into_iter()
            .map(|l| Problem::new(&l.path, l.message))
            .collect()
    };
    let problems = ordered(report.problems);
    let warnings = ordered(report.warnings);
    let loaded = problems.is_empty().then(|| Loaded {
        config,
        flows,
        warnings: warnings.clone(),
    });
    Outcome {
        loaded,
        problems,
        warnings,
    }
}
