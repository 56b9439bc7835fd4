//! The generated `default` flows (flow-config.md 7.8), built from the configuration for
//! each kind without a declared `default`. [later] parts (OAuth, passkeys,
//! `select_account`, `prompt_create_passkey`, promote flows) are omitted until built.

use crate::config::types::{
    Config, IdentityType, PrimaryAuthenticatorType as Primary, SecondaryAuthenticationMode as Mode,
    SecondaryAuthenticatorType as Secondary,
};
use crate::flow::def::{
    Authentication, BranchDef, BranchOption, Destination, FlowDef, FlowKind, Identification,
    OnFailure, StepDef, StepType,
};
use crate::model::LoginIdType;

pub(crate) const DEFAULT: &str = "default";

/// Generated flows for every kind in `missing` (kinds without a declared `default`).
/// `declared` are the declared flows: the generated `signup_login` flow routes to the
/// declared `default` login/signup flows when there are some.
pub(crate) fn generate_defaults(
    config: &Config,
    declared: &[FlowDef],
    missing: &[FlowKind],
) -> Vec<FlowDef> {
    let g = Generator { config };
    let mut out: Vec<FlowDef> = Vec::new();
    for kind in [FlowKind::Signup, FlowKind::Login] {
        if missing.contains(&kind) {
            out.extend(g.build(kind, &[]));
        }
    }
    if missing.contains(&FlowKind::SignupLogin) {
        let defaults: Vec<FlowDef> = declared.iter().chain(&out).cloned().collect();
        out.extend(g.build(FlowKind::SignupLogin, &defaults));
    }
    for kind in [FlowKind::Reauth, FlowKind::AccountRecovery] {
        if missing.contains(&kind) {
            out.extend(g.build(kind, &[]));
        }
    }
    out
}

struct Generator<'a> {
    config: &'a Config,
}

fn login_id_identification(t: LoginIdType) -> Identification {
    match t {
        LoginIdType::Email => Identification::Email,
        LoginIdType::Phone => Identification::Phone,
        LoginIdType::Username => Identification::Username,
    }
}

fn primary_authentication(a: Primary) -> Authentication {
    match a {
        Primary::Password => Authentication::PrimaryPassword,
        Primary::OobOtpEmail => Authentication::PrimaryOobOtpEmail,
        Primary::OobOtpSms => Authentication::PrimaryOobOtpSms,
        Primary::Passkey => Authentication::PrimaryPasskey,
    }
}

fn secondary_authentication(s: Secondary) -> Authentication {
    match s {
        Secondary::Totp => Authentication::SecondaryTotp,
        Secondary::OobOtpEmail => Authentication::SecondaryOobOtpEmail,
        Secondary::OobOtpSms => Authentication::SecondaryOobOtpSms,
        Secondary::Password => Authentication::SecondaryPassword,
    }
}

/// Primary authenticators usable with a login ID type (passkeys are [later]).
fn fits(t: LoginIdType, a: Primary) -> bool {
    matches!(
        (t, a),
        (_, Primary::Password)
            | (LoginIdType::Email, Primary::OobOtpEmail)
            | (LoginIdType::Phone, Primary::OobOtpSms)
    )
}

fn named(name: String, step_type: StepType) -> StepDef {
    StepDef {
        name: Some(name),
        ..StepDef::new(step_type)
    }
}

fn branch(option: BranchOption, steps: Vec<StepDef>) -> BranchDef {
    BranchDef {
        steps,
        ..BranchDef::new(option)
    }
}

fn auth_branch(a: Authentication) -> BranchDef {
    BranchDef::new(BranchOption::Authentication(a))
}

/// The flow, unless its first step would have no branch (then it is not built).
fn flow(kind: FlowKind, steps: Vec<StepDef>) -> Option<FlowDef> {
    if steps.first().is_none_or(|s| s.branches.is_empty()) {
        return None;
    }
    Some(FlowDef {
        kind,
        name: DEFAULT.into(),
        steps,
    })
}

/// Whether `flow` starts with an `identify` step offering `x`.
pub(crate) fn first_step_offers(flow: &FlowDef, x: Identification) -> bool {
    flow.steps.first().is_some_and(|s| {
        s.step_type == StepType::Identify
            && s.branches
                .iter()
                .any(|b| b.option == BranchOption::Identification(x))
    })
}

impl Generator<'_> {
    fn build(&self, kind: FlowKind, defaults: &[FlowDef]) -> Option<FlowDef> {
        match kind {
            FlowKind::Signup => flow(kind, vec![self.signup_identify()]),
            FlowKind::Login => flow(kind, self.login_steps()),
            FlowKind::SignupLogin => flow(kind, vec![self.signup_login_identify(defaults)]),
            FlowKind::Reauth => flow(kind, vec![self.reauthenticate()]),
            FlowKind::AccountRecovery => flow(kind, self.account_recovery_steps()),
            FlowKind::Promote => None,
        }
    }

    fn mode(&self) -> Mode {
        self.config.authentication.secondary_authentication_mode
    }

    /// `K` when `login_id` is in `I`, else nothing (OAuth and passkeys are [later]).
    fn login_id_types(&self) -> Vec<LoginIdType> {
        let a = &self.config.authentication;
        if a.identities.contains(&IdentityType::LoginId) {
            self.config.identity.login_id_types()
        } else {
            Vec::new()
        }
    }

    /// `P(t)`.
    fn primaries(&self, t: LoginIdType) -> Vec<Primary> {
        self.config
            .authentication
            .primary_authenticators
            .iter()
            .copied()
            .filter(|a| fits(t, *a))
            .collect()
    }

    fn secondaries(&self) -> Vec<Authentication> {
        self.config
            .authentication
            .secondary_authenticators
            .iter()
            .map(|s| secondary_authentication(*s))
            .collect()
    }

    fn verified_at_signup(&self, t: LoginIdType) -> bool {
        let claims = &self.config.verification.claims;
        match t {
            LoginIdType::Email => claims.email.verified_at_signup(),
            LoginIdType::Phone => claims.phone_number.verified_at_signup(),
            LoginIdType::Username => false,
        }
    }

    fn signup_identify(&self) -> StepDef {
        let mut step = named("signup_identify".into(), StepType::Identify);
        for t in self.login_id_types() {
            let primaries = self.primaries(t);
            if primaries.is_empty() {
                continue;
            }
            let mut steps = Vec::new();
            if self.verified_at_signup(t) {
                steps.push(StepDef {
                    target_step: Some("signup_identify".into()),
                    ..StepDef::new(StepType::Verify)
                });
            }
            let mut create = named(
                format!("authenticate_primary_{}", t.as_str()),
                StepType::CreateAuthenticator,
            );
            create.branches = primaries
                .iter()
                .map(|a| {
                    let mut b = auth_branch(primary_authentication(*a));
                    if *a != Primary::Password {
                        b.target_step = Some("signup_identify".into());
                    }
                    b
                })
                .collect();
            steps.push(create);
            if self.mode() == Mode::Required {
                steps.push(self.signup_secondary(t));
            }
            step.branches.push(branch(
                BranchOption::Identification(login_id_identification(t)),
                steps,
            ));
        }
        step
    }

    fn signup_secondary(&self, t: LoginIdType) -> StepDef {
        let mut step = named(
            format!("authenticate_secondary_{}", t.as_str()),
            StepType::CreateAuthenticator,
        );
        let recovery = !self.config.authentication.recovery_code.disabled;
        step.branches = self
            .secondaries()
            .into_iter()
            .map(|s| {
                let steps = if recovery {
                    vec![StepDef::new(StepType::ViewRecoveryCode)]
                } else {
                    Vec::new()
                };
                branch(BranchOption::Authentication(s), steps)
            })
            .collect();
        step
    }

    fn login_steps(&self) -> Vec<StepDef> {
        let mut identify = named("login_identify".into(), StepType::Identify);
        for t in self.login_id_types() {
            let primaries = self.primaries(t);
            if primaries.is_empty() {
                continue;
            }
            let primary_name = format!("authenticate_primary_{}", t.as_str());
            let mut authenticate = named(primary_name.clone(), StepType::Authenticate);
            authenticate.branches = primaries
                .iter()
                .map(|a| self.login_primary_branch(t, *a, &primary_name))
                .collect();
            identify.branches.push(branch(
                BranchOption::Identification(login_id_identification(t)),
                vec![authenticate],
            ));
        }
        vec![
            identify,
            StepDef::new(StepType::CheckAccountStatus),
            StepDef::new(StepType::TerminateOtherSessions),
        ]
    }

    fn login_primary_branch(&self, t: LoginIdType, a: Primary, primary_name: &str) -> BranchDef {
        let mut b = auth_branch(primary_authentication(a));
        b.steps.extend(self.second(t));
        if a == Primary::Password {
            b.steps.push(StepDef {
                target_step: Some(primary_name.to_string()),
                ..StepDef::new(StepType::ChangePassword)
            });
        } else {
            b.target_step = Some("login_identify".into());
        }
        b
    }

    /// `SECOND(t)`: absent if the mode is `disabled`.
    fn second(&self, t: LoginIdType) -> Option<StepDef> {
        if self.mode() == Mode::Disabled {
            return None;
        }
        let auth = &self.config.authentication;
        let mut step = named(
            format!("authenticate_secondary_{}", t.as_str()),
            StepType::Authenticate,
        );
        step.optional = self.mode() != Mode::Required;
        let mut options = self.secondaries();
        if !auth.recovery_code.disabled {
            options.push(Authentication::RecoveryCode);
        }
        if !auth.device_token.disabled {
            options.push(Authentication::DeviceToken);
        }
        step.branches = options.into_iter().map(auth_branch).collect();
        Some(step)
    }

    fn signup_login_identify(&self, defaults: &[FlowDef]) -> StepDef {
        let find = |kind| {
            defaults
                .iter()
                .find(|f| f.kind == kind && f.name == DEFAULT)
        };
        let (login, signup) = (find(FlowKind::Login), find(FlowKind::Signup));
        let mut step = named("signup_login_identify".into(), StepType::Identify);
        for t in self.login_id_types() {
            let x = login_id_identification(t);
            if !login.is_some_and(|f| first_step_offers(f, x)) {
                continue;
            }
            let mut b = BranchDef::new(BranchOption::Identification(x));
            b.login_flow = Some(DEFAULT.into());
            if signup.is_some_and(|f| first_step_offers(f, x)) {
                b.signup_flow = Some(DEFAULT.into());
            }
            step.branches.push(b);
        }
        step
    }

    fn reauthenticate(&self) -> StepDef {
        let mut step = named("reauthenticate".into(), StepType::Authenticate);
        let primaries = self
            .config
            .authentication
            .primary_authenticators
            .iter()
            .filter(|a| **a != Primary::Passkey)
            .map(|a| primary_authentication(*a));
        step.branches = primaries.map(auth_branch).collect();
        if self.mode() != Mode::Disabled {
            step.branches
                .extend(self.secondaries().into_iter().map(auth_branch));
        }
        step
    }

    fn account_recovery_steps(&self) -> Vec<StepDef> {
        // "if email in K": the login ID keys, whatever `authentication.identities` says.
        let types = self.config.identity.login_id_types();
        let ui = &self.config.ui.forgot_password;
        let mut identify = StepDef::new(StepType::Identify);
        let pairs: [(LoginIdType, &Vec<Destination>); 2] = [
            (LoginIdType::Email, &ui.email),
            (LoginIdType::Phone, &ui.phone),
        ];
        for (t, destinations) in pairs {
            if !types.contains(&t) {
                continue;
            }
            let select = StepDef {
                allowed_channels: destinations.clone(),
                ..StepDef::new(StepType::SelectDestination)
            };
            let mut b = branch(
                BranchOption::Identification(login_id_identification(t)),
                vec![select],
            );
            b.on_failure = OnFailure::Ignore;
            identify.branches.push(b);
        }
        vec![
            identify,
            StepDef::new(StepType::VerifyAccountRecoveryCode),
            StepDef::new(StepType::ResetPassword),
        ]
    }
}
