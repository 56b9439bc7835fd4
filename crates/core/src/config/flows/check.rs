//! The flow checks of flow-config.md 7.7 that look across steps and flows: names,
//! step positions, `target_step`, flow references, and what the rest of the
//! configuration allows. Generated flows are valid by construction and not checked.

use std::collections::HashMap;

use super::generate::{DEFAULT, first_step_offers};
use super::grammar::option_text;
use super::parse::{PBranch, PFlow, PStep};
use crate::config::problem::{Report, YamlPath, quote};
use crate::config::types::{AuthenticationConfig, IdentityConfig};
use crate::flow::def::{Authentication, BranchOption, FlowDef, FlowKind, Identification, StepType};
use crate::model::LoginIdType;

/// The parts of the configuration the checks use; `None` when that section is
/// malformed, so that checks depending on it are skipped.
pub(crate) struct FlowCheckInput<'a> {
    pub identity: Option<&'a IdentityConfig>,
    pub authentication: Option<&'a AuthenticationConfig>,
}

pub(crate) fn check_flows(flows: &[PFlow], input: &FlowCheckInput<'_>, r: &mut Report) {
    unique_flow_names(flows, r);
    for flow in flows {
        unique_step_names(flow, r);
        step_positions(flow, r);
        let names = named_steps(&flow.steps);
        targets(flow.kind, &flow.steps, &mut Vec::new(), &names, r);
        for_each_step(&flow.steps, &mut |step| {
            configuration_rules(step, input, r);
        });
    }
}

fn for_each_step<'a>(steps: &'a [PStep], f: &mut dyn FnMut(&'a PStep)) {
    for step in steps {
        f(step);
        for b in &step.branches {
            for_each_step(&b.steps, f);
        }
    }
}

fn unique_flow_names(flows: &[PFlow], r: &mut Report) {
    let mut first: HashMap<(FlowKind, &str), &YamlPath> = HashMap::new();
    for flow in flows {
        let Some(name) = &flow.name else { continue };
        match first.get(&(flow.kind, name.as_str())) {
            Some(at) => r.error(
                flow.path.key("name"),
                format!(
                    "duplicate flow name {} (first at {})",
                    quote(name),
                    at.key("name")
                ),
            ),
            None => {
                first.insert((flow.kind, name), &flow.path);
            }
        }
    }
}

fn unique_step_names(flow: &PFlow, r: &mut Report) {
    let mut first: HashMap<&str, &YamlPath> = HashMap::new();
    for_each_step(&flow.steps, &mut |step| {
        let Some(name) = &step.name else { return };
        match first.get(name.as_str()) {
            Some(at) => r.error(
                step.path.key("name"),
                format!(
                    "duplicate step name {} (first at {})",
                    quote(name),
                    at.key("name")
                ),
            ),
            None => {
                first.insert(name, &step.path);
            }
        }
    });
}

/// One step in `signup_login`; a reauth `identify` only as the first step.
fn step_positions(flow: &PFlow, r: &mut Report) {
    if flow.kind == FlowKind::SignupLogin && flow.steps.len() > 1 {
        r.error(
            flow.path.key("steps"),
            format!(
                "a signup_login flow must have exactly one step (got {})",
                flow.steps.len()
            ),
        );
    }
    if flow.kind == FlowKind::Reauth {
        let mut index = 0;
        for_each_step(&flow.steps, &mut |step| {
            if step.step_type == Some(StepType::Identify) && index > 0 {
                r.error(
                    step.path.key("type"),
                    "\"identify\" is only allowed as the first step of a reauth flow",
                );
            }
            index += 1;
        });
    }
}

/// First step of each name, with its type.
fn named_steps(steps: &[PStep]) -> HashMap<&str, Option<StepType>> {
    let mut out = HashMap::new();
    for_each_step(steps, &mut |step| {
        if let Some(name) = &step.name {
            out.entry(name.as_str()).or_insert(step.step_type);
        }
    });
    out
}

/// Walks the flow keeping the names of the steps that run before the current one:
/// its ancestors and the earlier items of every list containing it or an ancestor
/// (7.4). Nested names are dropped when their list is left.
fn targets<'a>(
    kind: FlowKind,
    steps: &'a [PStep],
    before: &mut Vec<&'a str>,
    names: &HashMap<&str, Option<StepType>>,
    r: &mut Report,
) {
    let outer = before.len();
    for step in steps {
        step_references(kind, step, before, names, r);
        if let Some(name) = &step.name {
            before.push(name);
        }
        for b in &step.branches {
            targets(kind, &b.steps, before, names, r);
        }
    }
    before.truncate(outer);
}

fn step_references(
    kind: FlowKind,
    step: &PStep,
    before: &[&str],
    names: &HashMap<&str, Option<StepType>>,
    r: &mut Report,
) {
    let check = |target: &Option<String>, path: YamlPath, expected: &[StepType], r: &mut Report| {
        if let Some(target) = target {
            target_step(target, path, expected, before, names, r);
        }
    };
    let signup = matches!(kind, FlowKind::Signup | FlowKind::Promote);
    match step.step_type {
        Some(StepType::Verify) if signup => check(
            &step.target_step,
            step.path.key("target_step"),
            &[StepType::Identify, StepType::CreateAuthenticator],
            r,
        ),
        Some(StepType::ChangePassword) if kind == FlowKind::Login => check(
            &step.target_step,
            step.path.key("target_step"),
            &[StepType::Authenticate],
            r,
        ),
        Some(StepType::CreateAuthenticator | StepType::Authenticate) => {
            for b in &step.branches {
                check(
                    &b.target_step,
                    b.path.key("target_step"),
                    &[StepType::Identify],
                    r,
                );
            }
        }
        _ => {}
    }
}

fn target_step(
    target: &str,
    path: YamlPath,
    expected: &[StepType],
    before: &[&str],
    names: &HashMap<&str, Option<StepType>>,
    r: &mut Report,
) {
    let Some(found) = names.get(target) else {
        r.error(path, format!("no step named {}", quote(target)));
        return;
    };
    // A step whose own type is malformed was reported already.
    let Some(found) = found else { return };
    if !expected.contains(found) {
        let expected: Vec<&str> = expected.iter().map(|t| t.as_str()).collect();
        r.error(
            path,
            format!(
                "step {} is a {} step, expected {}",
                quote(target),
                found.as_str(),
                expected.join(" or ")
            ),
        );
        return;
    }
    if !before.contains(&target) {
        r.error(
            path,
            format!("step {} does not run before this step", quote(target)),
        );
    }
}

fn login_id_type(i: Identification) -> Option<LoginIdType> {
    match i {
        Identification::Email => Some(LoginIdType::Email),
        Identification::Phone => Some(LoginIdType::Phone),
        Identification::Username => Some(LoginIdType::Username),
        _ => None,
    }
}

/// Login ID keys for identifications; recovery codes and device tokens not disabled.
fn configuration_rules(step: &PStep, input: &FlowCheckInput<'_>, r: &mut Report) {
    if let Some(auth) = input.authentication
        && auth.recovery_code.disabled
        && step.step_type == Some(StepType::ViewRecoveryCode)
    {
        r.error(
            step.path.key("type"),
            "\"view_recovery_code\" is not allowed while authentication.recovery_code.disabled is true",
        );
    }
    for b in &step.branches {
        branch_rules(b, input, r);
    }
}

fn branch_rules(b: &PBranch, input: &FlowCheckInput<'_>, r: &mut Report) {
    match b.option {
        Some(BranchOption::Identification(i)) => {
            if let (Some(identity), Some(t)) = (input.identity, login_id_type(i))
                && !identity.has_login_id_type(t)
            {
                r.error(
                    b.path.key("identification"),
                    format!(
                        "{} needs a login ID key of type {} in identity.login_id.keys",
                        quote(i.as_str()),
                        t.as_str()
                    ),
                );
            }
        }
        Some(BranchOption::Authentication(a)) => {
            let Some(auth) = input.authentication else {
                return;
            };
            let disabled = match a {
                Authentication::RecoveryCode => auth.recovery_code.disabled,
                Authentication::DeviceToken => auth.device_token.disabled,
                _ => false,
            };
            if disabled {
                r.error(
                    b.path.key("authentication"),
                    format!(
                        "{} is not allowed while authentication.{}.disabled is true",
                        quote(a.as_str()),
                        a.as_str()
                    ),
                );
            }
        }
        None => {}
    }
}

// ---------------------------------------------------------------------------------------
// Flow references (7.5, hanko_api.flows)
// ---------------------------------------------------------------------------------------

/// Finds flows by kind and name: declared ones, and `default` as the declared or
/// generated one. `generated` is `None` when the configuration is too malformed to
/// know which defaults exist (then `default` is assumed to).
pub(crate) struct Resolver<'a> {
    pub declared: &'a [PFlow],
    pub declared_defs: &'a [FlowDef],
    pub generated: Option<&'a [FlowDef]>,
}

pub(crate) enum Resolved<'a> {
    Flow(&'a PFlow, &'a FlowDef),
    Generated(&'a FlowDef),
    Unknown,
}

impl<'a> Resolver<'a> {
    pub fn resolve(&self, kind: FlowKind, name: &str) -> Option<Resolved<'a>> {
        let declared = self
            .declared
            .iter()
            .zip(self.declared_defs)
            .find(|(p, _)| p.kind == kind && p.name.as_deref() == Some(name));
        if let Some((p, d)) = declared {
            return Some(Resolved::Flow(p, d));
        }
        if name != DEFAULT {
            return None;
        }
        match self.generated {
            None => Some(Resolved::Unknown),
            Some(g) => g
                .iter()
                .find(|f| f.kind == kind && f.name == DEFAULT)
                .map(Resolved::Generated),
        }
    }

    /// Whether the flow starts with an identify step offering `x` (`None`: unknown).
    fn offers(resolved: &Resolved<'_>, x: Identification) -> Option<bool> {
        match resolved {
            Resolved::Flow(_, def) | Resolved::Generated(def) => Some(first_step_offers(def, x)),
            Resolved::Unknown => None,
        }
    }

    /// Reports a reference that does not resolve; returns the flow otherwise.
    pub fn reference(
        &self,
        kind: FlowKind,
        name: &str,
        path: &YamlPath,
        r: &mut Report,
    ) -> Option<Resolved<'a>> {
        let found = self.resolve(kind, name);
        if found.is_none() {
            r.error(
                path.clone(),
                format!("no {} flow named {}", kind.as_str(), quote(name)),
            );
        }
        found
    }
}

/// `login_flow` / `signup_flow` of signup_login branches resolve; a target that does
/// not start with a matching identify step is a warning (7.5).
pub(crate) fn signup_login_references(resolver: &Resolver<'_>, r: &mut Report) {
    for flow in resolver
        .declared
        .iter()
        .filter(|f| f.kind == FlowKind::SignupLogin)
    {
        for step in &flow.steps {
            for b in &step.branches {
                let refs = [
                    (FlowKind::Login, "login_flow", &b.login_flow),
                    (FlowKind::Signup, "signup_flow", &b.signup_flow),
                ];
                for (kind, key, name) in refs {
                    let Some(name) = name else { continue };
                    let path = b.path.key(key);
                    let Some(found) = resolver.reference(kind, name, &path, r) else {
                        continue;
                    };
                    if let Some(BranchOption::Identification(x)) = b.option
                        && Resolver::offers(&found, x) == Some(false)
                    {
                        r.warn(
                            path,
                            format!(
                                "{} flow {} does not start with an identify step offering {}",
                                kind.as_str(),
                                quote(name),
                                quote(x.as_str())
                            ),
                        );
                    }
                }
            }
        }
    }
}

/// Warnings for steps of a declared flow that the Hanko dialect cannot show
/// (hanko-flow-api.md 8.2).
pub(crate) fn hanko_unshowable(flow: &PFlow, via: &YamlPath, r: &mut Report) {
    let message = |what: &str| {
        format!(
            "{} cannot be shown by the Hanko dialect ({via})",
            quote(what)
        )
    };
    for_each_step(&flow.steps, &mut |step| {
        if let Some(t @ (StepType::PromptCreatePasskey | StepType::FillInUserProfile)) =
            step.step_type
        {
            r.warn(step.path.key("type"), message(t.as_str()));
        }
        for b in &step.branches {
            if let Some(
                o @ BranchOption::Identification(Identification::Oauth | Identification::Passkey),
            ) = b.option
            {
                r.warn(b.path.key("identification"), message(option_text(o)));
            }
        }
    });
}
