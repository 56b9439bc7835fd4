//! The tables of the flow grammar (flow-config.md 7.2, 7.3): which steps each flow kind
//! has, which keys each step and branch takes, which selector values are allowed.

use crate::flow::def::{Authentication, BranchOption, FlowKind, Identification, StepType};

pub(crate) const ALL_STEP_TYPES: [StepType; 13] = [
    StepType::Identify,
    StepType::Authenticate,
    StepType::CreateAuthenticator,
    StepType::Verify,
    StepType::ViewRecoveryCode,
    StepType::FillInUserProfile,
    StepType::PromptCreatePasskey,
    StepType::CheckAccountStatus,
    StepType::TerminateOtherSessions,
    StepType::ChangePassword,
    StepType::SelectDestination,
    StepType::VerifyAccountRecoveryCode,
    StepType::ResetPassword,
];

pub(crate) fn parse_step_type(s: &str) -> Option<StepType> {
    ALL_STEP_TYPES.into_iter().find(|t| t.as_str() == s)
}

pub(crate) fn option_text(o: BranchOption) -> &'static str {
    match o {
        BranchOption::Identification(i) => i.as_str(),
        BranchOption::Authentication(a) => a.as_str(),
    }
}

/// The YAML key of a flow kind's list.
pub(crate) fn list_key(kind: FlowKind) -> &'static str {
    match kind {
        FlowKind::Signup => "signup_flows",
        FlowKind::Promote => "promote_flows",
        FlowKind::Login => "login_flows",
        FlowKind::SignupLogin => "signup_login_flows",
        FlowKind::Reauth => "reauth_flows",
        FlowKind::AccountRecovery => "account_recovery_flows",
    }
}

pub(crate) fn kind_of_list_key(key: &str) -> Option<FlowKind> {
    FlowKind::ALL.into_iter().find(|k| list_key(*k) == key)
}

/// Step types per flow kind, in the order the spec lists them (used in messages).
pub(crate) fn step_types(kind: FlowKind) -> &'static [StepType] {
    use StepType::*;
    match kind {
        FlowKind::Signup | FlowKind::Promote => &[
            Identify,
            CreateAuthenticator,
            Verify,
            ViewRecoveryCode,
            FillInUserProfile,
            PromptCreatePasskey,
        ],
        FlowKind::Login => &[
            Identify,
            Authenticate,
            CheckAccountStatus,
            TerminateOtherSessions,
            ChangePassword,
            PromptCreatePasskey,
        ],
        FlowKind::SignupLogin => &[Identify],
        FlowKind::Reauth => &[Identify, Authenticate],
        FlowKind::AccountRecovery => &[
            Identify,
            SelectDestination,
            VerifyAccountRecoveryCode,
            ResetPassword,
        ],
    }
}

/// Steps that are validated but not run yet (2.6): the engine skips them.
pub fn is_later_step(t: StepType) -> bool {
    matches!(
        t,
        StepType::FillInUserProfile | StepType::PromptCreatePasskey
    )
}

/// Keys of a step besides `type`, `name` and `one_of`.
pub(crate) fn step_keys(kind: FlowKind, t: StepType) -> &'static [&'static str] {
    match (kind, t) {
        (FlowKind::Signup | FlowKind::Promote, StepType::Verify) => &["target_step"],
        (FlowKind::Signup | FlowKind::Promote, StepType::FillInUserProfile) => &["user_profile"],
        (FlowKind::Login, StepType::ChangePassword) => &["target_step"],
        (FlowKind::Login, StepType::Authenticate) => &["optional"],
        (FlowKind::AccountRecovery, StepType::SelectDestination) => {
            &["enumerate_destinations", "allowed_channels"]
        }
        _ => &[],
    }
}

/// The kinds of branches (7.3); a step has `one_of` iff it has a branch kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BranchKind {
    SignupIdentify,
    SignupCreate,
    LoginIdentify,
    LoginAuthenticate,
    SignupLoginIdentify,
    ReauthIdentify,
    ReauthAuthenticate,
    RecoveryIdentify,
}

pub(crate) fn branch_kind(kind: FlowKind, t: StepType) -> Option<BranchKind> {
    use BranchKind::*;
    Some(match (kind, t) {
        (FlowKind::Signup | FlowKind::Promote, StepType::Identify) => SignupIdentify,
        (FlowKind::Signup | FlowKind::Promote, StepType::CreateAuthenticator) => SignupCreate,
        (FlowKind::Login, StepType::Identify) => LoginIdentify,
        (FlowKind::Login, StepType::Authenticate) => LoginAuthenticate,
        (FlowKind::SignupLogin, StepType::Identify) => SignupLoginIdentify,
        (FlowKind::Reauth, StepType::Identify) => ReauthIdentify,
        (FlowKind::Reauth, StepType::Authenticate) => ReauthAuthenticate,
        (FlowKind::AccountRecovery, StepType::Identify) => RecoveryIdentify,
        _ => return None,
    })
}

/// Whether a branch of a `step_type` step of a `kind` flow selected by `option` is
/// [later] (2.6): accepted in declared flows but never offered.
pub fn is_later_branch(kind: FlowKind, step_type: StepType, option: BranchOption) -> bool {
    branch_kind(kind, step_type)
        .and_then(|bk| bk.values().iter().find(|(o, _)| *o == option))
        .is_some_and(|(_, later)| *later)
}

const fn ident(i: Identification, later: bool) -> (BranchOption, bool) {
    (BranchOption::Identification(i), later)
}

const fn auth(a: Authentication, later: bool) -> (BranchOption, bool) {
    (BranchOption::Authentication(a), later)
}

const LOGIN_IDENTIFICATIONS: [(BranchOption, bool); 8] = [
    ident(Identification::Email, false),
    ident(Identification::Phone, false),
    ident(Identification::Username, false),
    ident(Identification::Oauth, true),
    ident(Identification::Passkey, true),
    ident(Identification::Ldap, true),
    ident(Identification::IdToken, true),
    ident(Identification::SelectAccount, true),
];

const CREATE_AUTHENTICATIONS: [(BranchOption, bool); 7] = [
    auth(Authentication::PrimaryPassword, false),
    auth(Authentication::PrimaryOobOtpEmail, false),
    auth(Authentication::PrimaryOobOtpSms, false),
    auth(Authentication::SecondaryPassword, false),
    auth(Authentication::SecondaryTotp, false),
    auth(Authentication::SecondaryOobOtpEmail, false),
    auth(Authentication::SecondaryOobOtpSms, false),
];

const LOGIN_AUTHENTICATIONS: [(BranchOption, bool); 10] = [
    auth(Authentication::PrimaryPassword, false),
    auth(Authentication::PrimaryOobOtpEmail, false),
    auth(Authentication::PrimaryOobOtpSms, false),
    auth(Authentication::SecondaryPassword, false),
    auth(Authentication::SecondaryTotp, false),
    auth(Authentication::SecondaryOobOtpEmail, false),
    auth(Authentication::SecondaryOobOtpSms, false),
    auth(Authentication::RecoveryCode, false),
    auth(Authentication::DeviceToken, false),
    auth(Authentication::PrimaryPasskey, true),
];

const REAUTH_AUTHENTICATIONS: [(BranchOption, bool); 8] = [
    auth(Authentication::PrimaryPassword, false),
    auth(Authentication::PrimaryOobOtpEmail, false),
    auth(Authentication::PrimaryOobOtpSms, false),
    auth(Authentication::SecondaryPassword, false),
    auth(Authentication::SecondaryTotp, false),
    auth(Authentication::SecondaryOobOtpEmail, false),
    auth(Authentication::SecondaryOobOtpSms, false),
    auth(Authentication::PrimaryPasskey, true),
];

fn is_oob(o: Option<BranchOption>) -> bool {
    use Authentication::*;
    matches!(
        o,
        Some(BranchOption::Authentication(
            PrimaryOobOtpEmail | PrimaryOobOtpSms | SecondaryOobOtpEmail | SecondaryOobOtpSms
        ))
    )
}

fn is_primary_oob(o: Option<BranchOption>) -> bool {
    use Authentication::*;
    matches!(
        o,
        Some(BranchOption::Authentication(
            PrimaryOobOtpEmail | PrimaryOobOtpSms
        ))
    )
}

impl BranchKind {
    /// The selector key: `identification` or `authentication`.
    pub fn selector(self) -> &'static str {
        match self {
            BranchKind::SignupCreate
            | BranchKind::LoginAuthenticate
            | BranchKind::ReauthAuthenticate => "authentication",
            _ => "identification",
        }
    }

    /// `signup identify`, for messages.
    pub fn label(self) -> &'static str {
        match self {
            BranchKind::SignupIdentify => "signup identify",
            BranchKind::SignupCreate => "signup create_authenticator",
            BranchKind::LoginIdentify => "login identify",
            BranchKind::LoginAuthenticate => "login authenticate",
            BranchKind::SignupLoginIdentify => "signup_login identify",
            BranchKind::ReauthIdentify => "reauth identify",
            BranchKind::ReauthAuthenticate => "reauth authenticate",
            BranchKind::RecoveryIdentify => "account_recovery identify",
        }
    }

    /// Allowed selector values, each with its [later] marker, in spec order.
    pub fn values(self) -> &'static [(BranchOption, bool)] {
        const SIGNUP_IDENTIFY: [(BranchOption, bool); 6] = [
            ident(Identification::Email, false),
            ident(Identification::Phone, false),
            ident(Identification::Username, false),
            ident(Identification::Oauth, true),
            ident(Identification::Passkey, true),
            ident(Identification::Ldap, true),
        ];
        const REAUTH_IDENTIFY: [(BranchOption, bool); 1] = [ident(Identification::IdToken, false)];
        const RECOVERY_IDENTIFY: [(BranchOption, bool); 3] = [
            ident(Identification::Email, false),
            ident(Identification::Phone, false),
            ident(Identification::Username, true),
        ];
        match self {
            BranchKind::SignupIdentify => &SIGNUP_IDENTIFY,
            BranchKind::SignupCreate => &CREATE_AUTHENTICATIONS,
            BranchKind::LoginIdentify | BranchKind::SignupLoginIdentify => &LOGIN_IDENTIFICATIONS,
            BranchKind::LoginAuthenticate => &LOGIN_AUTHENTICATIONS,
            BranchKind::ReauthIdentify => &REAUTH_IDENTIFY,
            BranchKind::ReauthAuthenticate => &REAUTH_AUTHENTICATIONS,
            BranchKind::RecoveryIdentify => &RECOVERY_IDENTIFY,
        }
    }

    pub fn parse_value(self, s: &str) -> Option<(BranchOption, bool)> {
        self.values()
            .iter()
            .copied()
            .find(|(o, _)| option_text(*o) == s)
    }

    /// Keys a branch with selector value `value` takes besides the selector; with
    /// `None` (a malformed selector), every key of the kind.
    pub fn keys(self, value: Option<BranchOption>) -> Vec<&'static str> {
        use Authentication::{DeviceToken, RecoveryCode};
        let mut keys = match self {
            BranchKind::SignupIdentify => vec!["steps", "bot_protection", "account_linking"],
            BranchKind::LoginIdentify
            | BranchKind::LoginAuthenticate
            | BranchKind::ReauthAuthenticate
            | BranchKind::SignupCreate => vec!["steps", "bot_protection"],
            BranchKind::SignupLoginIdentify => vec!["login_flow", "signup_flow", "bot_protection"],
            BranchKind::ReauthIdentify => vec!["steps"],
            BranchKind::RecoveryIdentify => vec!["steps", "on_failure", "bot_protection"],
        };
        match self {
            BranchKind::SignupCreate if value.is_none() || is_oob(value) => {
                keys.extend(["target_step", "verification_required"]);
            }
            BranchKind::LoginAuthenticate if value.is_none() || is_primary_oob(value) => {
                keys.push("target_step");
            }
            _ => {}
        }
        // `recovery_code` and `device_token` branches take no other keys.
        if matches!(
            value,
            Some(BranchOption::Authentication(RecoveryCode | DeviceToken))
        ) {
            keys.clear();
        }
        keys
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_step_type_parses() {
        for t in ALL_STEP_TYPES {
            assert_eq!(parse_step_type(t.as_str()), Some(t));
        }
    }

    #[test]
    fn later_branches_depend_on_the_step() {
        let id_token = BranchOption::Identification(Identification::IdToken);
        assert!(is_later_branch(
            FlowKind::Login,
            StepType::Identify,
            id_token
        ));
        assert!(!is_later_branch(
            FlowKind::Reauth,
            StepType::Identify,
            id_token
        ));
        let username = BranchOption::Identification(Identification::Username);
        assert!(is_later_branch(
            FlowKind::AccountRecovery,
            StepType::Identify,
            username
        ));
        assert!(!is_later_branch(
            FlowKind::Login,
            StepType::Identify,
            username
        ));
    }

    #[test]
    fn recovery_code_branches_take_no_keys() {
        let v = Some(BranchOption::Authentication(Authentication::RecoveryCode));
        assert!(BranchKind::LoginAuthenticate.keys(v).is_empty());
        let oob = Some(BranchOption::Authentication(
            Authentication::PrimaryOobOtpSms,
        ));
        assert!(
            BranchKind::LoginAuthenticate
                .keys(oob)
                .contains(&"target_step")
        );
        let pw = Some(BranchOption::Authentication(
            Authentication::PrimaryPassword,
        ));
        assert!(
            !BranchKind::LoginAuthenticate
                .keys(pw)
                .contains(&"target_step")
        );
    }
}
