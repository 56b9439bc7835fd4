//! Parses `authentication_flow` from the generic tree (7.1–7.3): keys, types and
//! required keys per flow kind, step type and branch kind. Cross-references are
//! checked afterwards (`check.rs`) on the annotated tree built here.

use serde::Deserialize;

use super::grammar::{self, BranchKind};
use crate::config::de::deserialize_at;
use crate::config::node::Node;
use crate::config::problem::{Report, YamlPath, quote};
use crate::config::types::DestinationItem;
use crate::config::values::is_valid_name;
use crate::flow::def::{
    BranchDef, BranchOption, Destination, FlowDef, FlowKind, OnFailure, StepDef, StepType,
};

/// A declared flow with the paths of its parts.
#[derive(Debug, Clone)]
pub(crate) struct PFlow {
    pub kind: FlowKind,
    pub path: YamlPath,
    /// `None` when missing or malformed (already reported).
    pub name: Option<String>,
    pub steps: Vec<PStep>,
}

#[derive(Debug, Clone)]
pub(crate) struct PStep {
    pub path: YamlPath,
    pub name: Option<String>,
    /// `None` when missing or not allowed here (already reported).
    pub step_type: Option<StepType>,
    pub target_step: Option<String>,
    pub optional: bool,
    pub enumerate_destinations: bool,
    pub allowed_channels: Vec<Destination>,
    pub branches: Vec<PBranch>,
}

#[derive(Debug, Clone)]
pub(crate) struct PBranch {
    pub path: YamlPath,
    pub option: Option<BranchOption>,
    pub steps: Vec<PStep>,
    pub target_step: Option<String>,
    pub verification_required: bool,
    pub login_flow: Option<String>,
    pub signup_flow: Option<String>,
    pub on_failure: OnFailure,
}

/// Typed with the other sections, not by the flow grammar.
const RATE_LIMITS_KEY: &str = "rate_limits";

/// Parses every flow list of `authentication_flow` (absent = no declared flows).
pub(crate) fn parse_flows(node: Option<&Node>, report: &mut Report) -> Vec<PFlow> {
    let base = YamlPath::of("authentication_flow");
    let Some(node) = node else { return Vec::new() };
    let Some(entries) = node.as_map() else {
        report.error(base, format!("must be a mapping (got {})", node.describe()));
        return Vec::new();
    };
    let mut flows = Vec::new();
    for (key, value) in entries {
        let path = base.key(key);
        if key == RATE_LIMITS_KEY {
            continue;
        }
        let Some(kind) = grammar::kind_of_list_key(key) else {
            report.error(path, "unknown key");
            continue;
        };
        if kind == FlowKind::Promote {
            report.later(path.clone(), key);
        }
        let mut parser = Parser { report, kind };
        flows.extend(parser.flow_list(value, &path));
    }
    flows
}

struct Parser<'r> {
    report: &'r mut Report,
    kind: FlowKind,
}

impl Parser<'_> {
    fn error(&mut self, path: YamlPath, message: impl Into<String>) {
        self.report.error(path, message);
    }

    /// The items of a non-empty list, or `None` (reported).
    fn list<'n>(&mut self, node: &'n Node, path: &YamlPath) -> Option<&'n [Node]> {
        match node {
            Node::Seq(items) if items.is_empty() => {
                self.error(path.clone(), "must have at least one item");
                None
            }
            Node::Seq(items) => Some(items),
            other => {
                self.error(
                    path.clone(),
                    format!("must be a list (got {})", other.describe()),
                );
                None
            }
        }
    }

    fn map<'n>(&mut self, node: &'n Node, path: &YamlPath) -> Option<&'n [(String, Node)]> {
        match node {
            Node::Map(entries) => Some(entries),
            other => {
                self.error(
                    path.clone(),
                    format!("must be a mapping (got {})", other.describe()),
                );
                None
            }
        }
    }

    fn string(&mut self, node: &Node, path: &YamlPath) -> Option<String> {
        match node {
            Node::Str(s) => Some(s.clone()),
            other => {
                self.error(
                    path.clone(),
                    format!("must be a string (got {})", other.describe()),
                );
                None
            }
        }
    }

    fn name(&mut self, node: &Node, path: &YamlPath) -> Option<String> {
        let s = self.string(node, path)?;
        if is_valid_name(&s) {
            Some(s)
        } else {
            self.error(
                path.clone(),
                format!(
                    "{} is not a valid name (must match ^[a-zA-Z_][a-zA-Z0-9_]*$)",
                    quote(&s)
                ),
            );
            None
        }
    }

    fn boolean(&mut self, node: &Node, path: &YamlPath) -> bool {
        match node {
            Node::Bool(b) => *b,
            other => {
                self.error(
                    path.clone(),
                    format!("must be a boolean (got {})", other.describe()),
                );
                false
            }
        }
    }

    fn required(&mut self, entries: &[(String, Node)], path: &YamlPath, key: &str) -> bool {
        let present = entries.iter().any(|(k, _)| k == key);
        if !present {
            self.error(path.key(key), "required");
        }
        present
    }

    fn flow_list(&mut self, node: &Node, path: &YamlPath) -> Vec<PFlow> {
        let Some(items) = self.list(node, path) else {
            return Vec::new();
        };
        items
            .iter()
            .enumerate()
            .filter_map(|(i, item)| self.flow(item, &path.index(i)))
            .collect()
    }

    fn flow(&mut self, node: &Node, path: &YamlPath) -> Option<PFlow> {
        let entries = self.map(node, path)?;
        let mut flow = PFlow {
            kind: self.kind,
            path: path.clone(),
            name: None,
            steps: Vec::new(),
        };
        for (key, value) in entries {
            let p = path.key(key);
            match key.as_str() {
                "name" => flow.name = self.name(value, &p),
                "steps" => flow.steps = self.steps(value, &p),
                _ => self.error(p, "unknown key"),
            }
        }
        self.required(entries, path, "name");
        self.required(entries, path, "steps");
        Some(flow)
    }

    fn steps(&mut self, node: &Node, path: &YamlPath) -> Vec<PStep> {
        let Some(items) = self.list(node, path) else {
            return Vec::new();
        };
        items
            .iter()
            .enumerate()
            .filter_map(|(i, item)| self.step(item, &path.index(i)))
            .collect()
    }

    fn step_type(&mut self, node: &Node, path: &YamlPath) -> Option<StepType> {
        let text = self.string(node, path)?;
        let allowed = grammar::step_types(self.kind);
        match grammar::parse_step_type(&text).filter(|t| allowed.contains(t)) {
            Some(t) => {
                if grammar::is_later_step(t) {
                    self.report.later(path.clone(), &text);
                }
                Some(t)
            }
            None => {
                let names: Vec<&str> = allowed.iter().map(|t| t.as_str()).collect();
                self.error(
                    path.clone(),
                    format!(
                        "{} is not allowed in a {} flow (allowed: {})",
                        quote(&text),
                        self.kind.as_str(),
                        names.join(", ")
                    ),
                );
                None
            }
        }
    }

    fn step(&mut self, node: &Node, path: &YamlPath) -> Option<PStep> {
        let entries = self.map(node, path)?;
        let mut step = PStep {
            path: path.clone(),
            name: None,
            step_type: None,
            target_step: None,
            optional: false,
            enumerate_destinations: false,
            allowed_channels: Vec::new(),
            branches: Vec::new(),
        };
        if let Some((_, v)) = entries.iter().find(|(k, _)| k == "name") {
            step.name = self.name(v, &path.key("name"));
        }
        match entries.iter().find(|(k, _)| k == "type") {
            Some((_, v)) => step.step_type = self.step_type(v, &path.key("type")),
            None => self.error(path.key("type"), "required"),
        }
        // The other keys depend on the type: without a valid one they are not checked,
        // but the step stays so that its name can still be found.
        let Some(t) = step.step_type else {
            return Some(step);
        };
        let branch_kind = grammar::branch_kind(self.kind, t);
        let extra = grammar::step_keys(self.kind, t);
        for (key, value) in entries {
            let p = path.key(key);
            match (key.as_str(), branch_kind) {
                ("name" | "type", _) => {}
                ("one_of", Some(kind)) => step.branches = self.branches(value, &p, kind),
                (k, _) if extra.contains(&k) => self.step_key(&mut step, k, value, &p),
                _ => self.error(p, "unknown key"),
            }
        }
        if branch_kind.is_some() {
            self.required(entries, path, "one_of");
        }
        for key in ["target_step", "user_profile"] {
            if extra.contains(&key) {
                self.required(entries, path, key);
            }
        }
        Some(step)
    }

    fn step_key(&mut self, step: &mut PStep, key: &str, value: &Node, path: &YamlPath) {
        match key {
            "target_step" => step.target_step = self.string(value, path),
            "optional" => step.optional = self.boolean(value, path),
            "enumerate_destinations" => step.enumerate_destinations = self.boolean(value, path),
            "allowed_channels" => {
                let items: Vec<DestinationItem> = self.items(value, path);
                step.allowed_channels = items.into_iter().map(|d| d.0).collect();
            }
            "user_profile" => {
                let _: Vec<UserProfileItem> = self.items(value, path);
            }
            _ => {}
        }
    }

    /// The items of a non-empty list of typed objects, each deserialized on its own so
    /// that the problems of every item are reported.
    fn items<T: serde::de::DeserializeOwned>(&mut self, node: &Node, path: &YamlPath) -> Vec<T> {
        let Some(items) = self.list(node, path) else {
            return Vec::new();
        };
        items
            .iter()
            .enumerate()
            .filter_map(|(i, item)| deserialize_at(item, &path.index(i), self.report))
            .collect()
    }

    fn branches(&mut self, node: &Node, path: &YamlPath, kind: BranchKind) -> Vec<PBranch> {
        let Some(items) = self.list(node, path) else {
            return Vec::new();
        };
        let mut out: Vec<PBranch> = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let Some(branch) = self.branch(item, &path.index(i), kind) else {
                continue;
            };
            // In one step, each selector value appears at most once.
            if let Some(option) = branch.option
                && let Some(first) = out.iter().find(|b| b.option == Some(option))
            {
                let selector = kind.selector();
                self.error(
                    branch.path.key(selector),
                    format!(
                        "duplicate {} (first at {})",
                        quote(grammar::option_text(option)),
                        first.path.key(selector)
                    ),
                );
            }
            out.push(branch);
        }
        out
    }

    fn selector(
        &mut self,
        entries: &[(String, Node)],
        path: &YamlPath,
        kind: BranchKind,
    ) -> Option<BranchOption> {
        let key = kind.selector();
        let Some((_, value)) = entries.iter().find(|(k, _)| k == key) else {
            self.error(path.key(key), "required");
            return None;
        };
        let p = path.key(key);
        let text = self.string(value, &p)?;
        match kind.parse_value(&text) {
            Some((option, later)) => {
                if later {
                    self.report.later(p, &text);
                }
                Some(option)
            }
            None => {
                let names: Vec<&str> = kind
                    .values()
                    .iter()
                    .map(|(o, _)| grammar::option_text(*o))
                    .collect();
                self.error(
                    p,
                    format!(
                        "{} is not allowed in a {} step (allowed: {})",
                        quote(&text),
                        kind.label(),
                        names.join(", ")
                    ),
                );
                None
            }
        }
    }

    fn branch(&mut self, node: &Node, path: &YamlPath, kind: BranchKind) -> Option<PBranch> {
        let entries = self.map(node, path)?;
        let option = self.selector(entries, path, kind);
        let mut branch = PBranch {
            path: path.clone(),
            option,
            steps: Vec::new(),
            target_step: None,
            verification_required: true,
            login_flow: None,
            signup_flow: None,
            on_failure: OnFailure::Ignore,
        };
        let allowed = kind.keys(option);
        let select_account = option
            == Some(BranchOption::Identification(
                crate::flow::def::Identification::SelectAccount,
            ));
        for (key, value) in entries {
            let p = path.key(key);
            if key == kind.selector() {
                continue;
            }
            if !allowed.contains(&key.as_str()) {
                self.error(p, "unknown key");
                continue;
            }
            match key.as_str() {
                "signup_flow" if select_account => {
                    self.error(p, "not allowed with identification \"select_account\"");
                }
                _ => self.branch_key(&mut branch, key, value, &p),
            }
        }
        if kind == BranchKind::SignupLoginIdentify {
            self.required(entries, path, "login_flow");
            if !select_account {
                self.required(entries, path, "signup_flow");
            }
        }
        Some(branch)
    }

    fn branch_key(&mut self, branch: &mut PBranch, key: &str, value: &Node, path: &YamlPath) {
        match key {
            "steps" => branch.steps = self.steps(value, path),
            "target_step" => branch.target_step = self.string(value, path),
            "verification_required" => branch.verification_required = self.boolean(value, path),
            "login_flow" => branch.login_flow = self.string(value, path),
            "signup_flow" => branch.signup_flow = self.string(value, path),
            "on_failure" => {
                if let Some(v) = deserialize_at::<OnFailureValue>(value, path, self.report) {
                    branch.on_failure = v.into();
                }
            }
            "bot_protection" | "account_linking" => {
                let valid = if key == "bot_protection" {
                    deserialize_at::<BotProtection>(value, path, self.report).is_some()
                } else {
                    deserialize_at::<AccountLinking>(value, path, self.report).is_some()
                };
                if valid {
                    self.report.later(path.clone(), key);
                }
            }
            _ => {}
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum OnFailureValue {
    Ignore,
    Error,
}

impl From<OnFailureValue> for OnFailure {
    fn from(v: OnFailureValue) -> Self {
        match v {
            OnFailureValue::Ignore => OnFailure::Ignore,
            OnFailureValue::Error => OnFailure::Error,
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum BotMode {
    Never,
    Always,
}

/// Branch `bot_protection` [later]: `{mode: never|always}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // validated only
struct BotProtection {
    mode: BotMode,
}

#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum LinkAction {
    Error,
    LoginAndLink,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // validated only
struct LinkItem {
    #[serde(deserialize_with = "flow_name")]
    name: String,
    #[serde(default)]
    action: Option<LinkAction>,
    #[serde(default, deserialize_with = "opt_flow_name")]
    login_flow: Option<String>,
}

/// Branch `account_linking` [later].
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // validated only
struct AccountLinking {
    #[serde(default)]
    oauth: Vec<LinkItem>,
    #[serde(default)]
    login_id: Vec<LinkItem>,
}

fn flow_name<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let s = String::deserialize(d)?;
    if is_valid_name(&s) {
        Ok(s)
    } else {
        Err(serde::de::Error::custom(format!(
            "{} is not a valid name (must match ^[a-zA-Z_][a-zA-Z0-9_]*$)",
            quote(&s)
        )))
    }
}

fn opt_flow_name<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    flow_name(d).map(Some)
}

/// `fill_in_user_profile.user_profile[]` [later].
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // validated only
struct UserProfileItem {
    #[serde(deserialize_with = "json_pointer")]
    pointer: String,
    required: bool,
}

fn json_pointer<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let s = String::deserialize(d)?;
    let escapes_ok = s
        .split('~')
        .skip(1)
        .all(|part| part.starts_with('0') || part.starts_with('1'));
    if s.starts_with('/') && s.len() > 1 && escapes_ok {
        Ok(s)
    } else {
        Err(serde::de::Error::custom(format!(
            "must be a JSON pointer such as /given_name (got {})",
            quote(&s)
        )))
    }
}

// ---------------------------------------------------------------------------------------
// To the definition tree
// ---------------------------------------------------------------------------------------

impl PFlow {
    /// The definition of a flow that parsed cleanly.
    pub fn to_def(&self) -> FlowDef {
        FlowDef {
            kind: self.kind,
            name: self.name.clone().unwrap_or_default(),
            steps: steps_to_defs(&self.steps),
        }
    }
}

fn steps_to_defs(steps: &[PStep]) -> Vec<StepDef> {
    steps.iter().filter_map(PStep::to_def).collect()
}

impl PStep {
    fn to_def(&self) -> Option<StepDef> {
        Some(StepDef {
            name: self.name.clone(),
            step_type: self.step_type?,
            target_step: self.target_step.clone(),
            optional: self.optional,
            enumerate_destinations: self.enumerate_destinations,
            allowed_channels: self.allowed_channels.clone(),
            branches: self.branches.iter().filter_map(PBranch::to_def).collect(),
        })
    }
}

impl PBranch {
    fn to_def(&self) -> Option<BranchDef> {
        Some(BranchDef {
            option: self.option?,
            steps: steps_to_defs(&self.steps),
            target_step: self.target_step.clone(),
            verification_required: self.verification_required,
            login_flow: self.login_flow.clone(),
            signup_flow: self.signup_flow.clone(),
            on_failure: self.on_failure,
        })
    }
}
