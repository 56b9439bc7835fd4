//! The flow definition tree: what a declared (YAML) or generated flow says, after
//! parsing and validation. The engine compiles nothing further: it walks this tree.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FlowKind {
    Signup,
    Promote,
    Login,
    SignupLogin,
    Reauth,
    AccountRecovery,
}

impl FlowKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FlowKind::Signup => "signup",
            FlowKind::Promote => "promote",
            FlowKind::Login => "login",
            FlowKind::SignupLogin => "signup_login",
            FlowKind::Reauth => "reauth",
            FlowKind::AccountRecovery => "account_recovery",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "signup" => FlowKind::Signup,
            "promote" => FlowKind::Promote,
            "login" => FlowKind::Login,
            "signup_login" => FlowKind::SignupLogin,
            "reauth" => FlowKind::Reauth,
            "account_recovery" => FlowKind::AccountRecovery,
            _ => return None,
        })
    }

    pub const ALL: [FlowKind; 6] = [
        FlowKind::Signup,
        FlowKind::Promote,
        FlowKind::Login,
        FlowKind::SignupLogin,
        FlowKind::Reauth,
        FlowKind::AccountRecovery,
    ];
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepType {
    Identify,
    Authenticate,
    CreateAuthenticator,
    Verify,
    ViewRecoveryCode,
    FillInUserProfile,
    PromptCreatePasskey,
    CheckAccountStatus,
    TerminateOtherSessions,
    ChangePassword,
    SelectDestination,
    VerifyAccountRecoveryCode,
    ResetPassword,
}

impl StepType {
    pub fn as_str(self) -> &'static str {
        match self {
            StepType::Identify => "identify",
            StepType::Authenticate => "authenticate",
            StepType::CreateAuthenticator => "create_authenticator",
            StepType::Verify => "verify",
            StepType::ViewRecoveryCode => "view_recovery_code",
            StepType::FillInUserProfile => "fill_in_user_profile",
            StepType::PromptCreatePasskey => "prompt_create_passkey",
            StepType::CheckAccountStatus => "check_account_status",
            StepType::TerminateOtherSessions => "terminate_other_sessions",
            StepType::ChangePassword => "change_password",
            StepType::SelectDestination => "select_destination",
            StepType::VerifyAccountRecoveryCode => "verify_account_recovery_code",
            StepType::ResetPassword => "reset_password",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Identification {
    Email,
    Phone,
    Username,
    Oauth,
    Passkey,
    Ldap,
    IdToken,
    SelectAccount,
}

impl Identification {
    pub fn as_str(self) -> &'static str {
        match self {
            Identification::Email => "email",
            Identification::Phone => "phone",
            Identification::Username => "username",
            Identification::Oauth => "oauth",
            Identification::Passkey => "passkey",
            Identification::Ldap => "ldap",
            Identification::IdToken => "id_token",
            Identification::SelectAccount => "select_account",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Authentication {
    PrimaryPassword,
    PrimaryOobOtpEmail,
    PrimaryOobOtpSms,
    PrimaryPasskey,
    SecondaryPassword,
    SecondaryTotp,
    SecondaryOobOtpEmail,
    SecondaryOobOtpSms,
    RecoveryCode,
    DeviceToken,
}

impl Authentication {
    pub fn as_str(self) -> &'static str {
        match self {
            Authentication::PrimaryPassword => "primary_password",
            Authentication::PrimaryOobOtpEmail => "primary_oob_otp_email",
            Authentication::PrimaryOobOtpSms => "primary_oob_otp_sms",
            Authentication::PrimaryPasskey => "primary_passkey",
            Authentication::SecondaryPassword => "secondary_password",
            Authentication::SecondaryTotp => "secondary_totp",
            Authentication::SecondaryOobOtpEmail => "secondary_oob_otp_email",
            Authentication::SecondaryOobOtpSms => "secondary_oob_otp_sms",
            Authentication::RecoveryCode => "recovery_code",
            Authentication::DeviceToken => "device_token",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "primary_password" => Authentication::PrimaryPassword,
            "primary_oob_otp_email" => Authentication::PrimaryOobOtpEmail,
            "primary_oob_otp_sms" => Authentication::PrimaryOobOtpSms,
            "primary_passkey" => Authentication::PrimaryPasskey,
            "secondary_password" => Authentication::SecondaryPassword,
            "secondary_totp" => Authentication::SecondaryTotp,
            "secondary_oob_otp_email" => Authentication::SecondaryOobOtpEmail,
            "secondary_oob_otp_sms" => Authentication::SecondaryOobOtpSms,
            "recovery_code" => Authentication::RecoveryCode,
            "device_token" => Authentication::DeviceToken,
            _ => return None,
        })
    }
}

/// What a branch is selected by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum BranchOption {
    Identification(Identification),
    Authentication(Authentication),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnFailure {
    #[default]
    Ignore,
    Error,
}

/// `{channel, otp_form}` pair of account recovery destinations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Destination {
    pub channel: Channel,
    pub otp_form: OtpForm,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    Email,
    Sms,
    Whatsapp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OtpForm {
    Code,
    Link,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepDef {
    pub name: Option<String>,
    pub step_type: StepType,
    /// `verify`, `change_password`.
    pub target_step: Option<String>,
    /// `authenticate`: skip when the user has nothing usable.
    pub optional: bool,
    /// `select_destination`.
    pub enumerate_destinations: bool,
    /// `select_destination`; empty = all pairs in canonical order.
    pub allowed_channels: Vec<Destination>,
    /// `one_of`, in config order; empty for steps without branches.
    pub branches: Vec<BranchDef>,
}

impl StepDef {
    pub fn new(step_type: StepType) -> Self {
        StepDef {
            name: None,
            step_type,
            target_step: None,
            optional: false,
            enumerate_destinations: false,
            allowed_channels: Vec::new(),
            branches: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BranchDef {
    pub option: BranchOption,
    /// Nested steps, run before the next step of the enclosing list.
    pub steps: Vec<StepDef>,
    /// OOB authentications: the `identify` step whose login ID receives the OTP.
    pub target_step: Option<String>,
    /// OOB `create_authenticator`: `false` = target not verified on creation.
    pub verification_required: bool,
    /// `signup_login` identify branches.
    pub login_flow: Option<String>,
    pub signup_flow: Option<String>,
    /// `account_recovery` identify branches.
    pub on_failure: OnFailure,
}

impl BranchDef {
    pub fn new(option: BranchOption) -> Self {
        BranchDef {
            option,
            steps: Vec::new(),
            target_step: None,
            verification_required: true,
            login_flow: None,
            signup_flow: None,
            on_failure: OnFailure::Ignore,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FlowDef {
    pub kind: FlowKind,
    pub name: String,
    pub steps: Vec<StepDef>,
}

/// Every runnable flow: declared ones plus the generated `default` of each kind that
/// has no declared `default` (and whose generated flow is not empty).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FlowCatalog {
    pub flows: Vec<FlowDef>,
}

impl FlowCatalog {
    pub fn find(&self, kind: FlowKind, name: &str) -> Option<&FlowDef> {
        self.flows.iter().find(|f| f.kind == kind && f.name == name)
    }
}
