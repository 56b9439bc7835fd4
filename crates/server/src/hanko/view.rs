//! Engine states as Hanko states (hanko-flow-api.md 7–8): which state name, which actions
//! with which typed inputs, which payload — and for each action how it is executed.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

use authflow_core::flow::action::{AuthenticateOption, OtpPrompt};
use authflow_core::flow::def::{Authentication, Channel, Identification, StepType};
use authflow_core::flow::{Action, StateView};

use super::HankoSettings;
use super::error::{HankoError, InputError};
use super::qr;
use super::record::{FlowPath, FlowRecord, Pretend, Screen};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputType {
    String,
    Email,
    Password,
    Boolean,
}

impl InputType {
    fn as_str(self) -> &'static str {
        match self {
            InputType::String => "string",
            InputType::Email => "email",
            InputType::Password => "password",
            InputType::Boolean => "boolean",
        }
    }
}

/// One typed input of an action, with its validation metadata (spec 4).
#[derive(Debug, Clone)]
pub struct InputSpec {
    pub name: &'static str,
    pub ty: InputType,
    pub required: bool,
    pub hidden: bool,
    pub min_length: Option<u32>,
    pub max_length: Option<u32>,
    /// Identifiers are trimmed before checks (spec 6.3).
    pub trim: bool,
    pub error: Option<InputError>,
}

impl InputSpec {
    fn new(name: &'static str, ty: InputType, required: bool) -> Self {
        InputSpec {
            name,
            ty,
            required,
            hidden: false,
            min_length: None,
            max_length: None,
            trim: false,
            error: None,
        }
    }

    fn max(mut self, n: u32) -> Self {
        self.max_length = Some(n);
        self
    }

    fn min(mut self, n: u32) -> Self {
        self.min_length = Some(n);
        self
    }

    fn hidden(mut self) -> Self {
        self.hidden = true;
        self
    }

    fn trimmed(mut self) -> Self {
        self.trim = true;
        self
    }

    fn to_json(&self) -> Value {
        let mut v = json!({"name": self.name, "type": self.ty.as_str(), "required": self.required});
        if self.hidden {
            v["hidden"] = json!(true);
        }
        if let Some(n) = self.min_length {
            v["min_length"] = json!(n);
        }
        if let Some(n) = self.max_length {
            v["max_length"] = json!(n);
        }
        if let Some(e) = &self.error {
            v["error"] = e.wire();
        }
        v
    }
}

/// How an offered action runs.
#[derive(Debug, Clone, PartialEq)]
pub enum Exec {
    Capabilities,
    RememberMe,
    /// `identify`: input name → identification; `guess` for one `identifier` input.
    Identify {
        options: Vec<(&'static str, Identification)>,
        guess: bool,
    },
    ChoosePassword,
    ChooseOob {
        authentication: Authentication,
        index: usize,
    },
    Password {
        authentication: Authentication,
    },
    /// `create_authenticator` with an authentication, `change_password` without.
    NewPassword {
        authentication: Option<Authentication>,
    },
    Skip {
        authentication: Authentication,
    },
    Code,
    Resend,
    Totp,
    RecoveryCode,
    /// `mfa_method_chooser`: the `secondary_totp` branch of `create_authenticator`.
    ChooseTotp,
    /// `mfa_otp_secret_creation`: the first code from the new authenticator app.
    TotpSetup,
    ConfirmRecoveryCodes,
    /// `login_password`: start the account recovery flow for the given identifier.
    StartRecovery,
    /// `passcode_confirmation` of a recovery flow (`account_recovery_code`).
    RecoveryPasscode,
    Back,
    Pretend(Pretend),
    PretendPassword,
    PretendCode,
    PretendResend,
    SessionDelete,
    /// `password_create` / `password_update` in `profile_init`.
    SetPassword,
}

#[derive(Debug, Clone)]
pub struct Offer {
    pub name: &'static str,
    pub description: &'static str,
    pub inputs: Vec<InputSpec>,
    pub exec: Exec,
}

impl Offer {
    fn new(name: &'static str, description: &'static str, exec: Exec) -> Self {
        Offer {
            name,
            description,
            inputs: Vec::new(),
            exec,
        }
    }

    fn input(mut self, spec: InputSpec) -> Self {
        self.inputs.push(spec);
        self
    }
}

/// A rendered Hanko state.
#[derive(Debug, Clone)]
pub struct Page {
    pub name: &'static str,
    pub payload: Option<Value>,
    pub offers: Vec<Offer>,
}

impl Page {
    fn new(name: &'static str) -> Self {
        Page {
            name,
            payload: None,
            offers: Vec::new(),
        }
    }

    pub fn offer(&self, name: &str) -> Option<&Offer> {
        self.offers.iter().find(|o| o.name == name)
    }

    /// Put `error` on input `input` of action `action` (after a failed execution).
    pub fn mark(&mut self, action: &str, input: &str, error: InputError) {
        if let Some(spec) = self
            .offers
            .iter_mut()
            .filter(|o| o.name == action)
            .flat_map(|o| o.inputs.iter_mut())
            .find(|i| i.name == input)
        {
            spec.error = Some(error);
        }
    }
}

/// What rendering needs besides the screen.
pub struct Ctx<'a> {
    pub settings: &'a HankoSettings,
    pub record: &'a FlowRecord,
    pub now: DateTime<Utc>,
}

impl Ctx<'_> {
    fn with_back(&self, mut page: Page) -> Page {
        if !self.record.history.is_empty() {
            page.offers.push(Offer::new(
                "back",
                "Go back to the previous state.",
                Exec::Back,
            ));
        }
        page
    }

    /// `continue_to_passcode_confirmation_recovery` where the identifier can receive a code.
    fn with_recovery(&self, mut page: Page) -> Page {
        let reachable = match self.record.login_id.as_ref().map(|l| l.identification) {
            Some(Identification::Email) => self.settings.recovery_by_email,
            Some(Identification::Phone) => self.settings.recovery_by_phone,
            _ => false,
        };
        if reachable && self.record.path == FlowPath::Login {
            page.offers.push(Offer::new(
                "continue_to_passcode_confirmation_recovery",
                "Reset the password with a passcode.",
                Exec::StartRecovery,
            ));
        }
        page
    }

    fn with_remember_me(&self, mut page: Page) -> Page {
        if self.settings.prompt_remember_me {
            page.offers.push(
                Offer::new(
                    "remember_me",
                    "Keep the session after the browser closes.",
                    Exec::RememberMe,
                )
                .input(InputSpec::new("remember_me", InputType::Boolean, true)),
            );
        }
        page
    }
}

pub fn preflight() -> Page {
    let mut page = Page::new("preflight");
    page.offers.push(
        Offer::new(
            "register_client_capabilities",
            "Send the client's capabilities.",
            Exec::Capabilities,
        )
        .input(InputSpec::new("webauthn_available", InputType::Boolean, true).hidden())
        .input(
            InputSpec::new(
                "webauthn_conditional_mediation_available",
                InputType::Boolean,
                false,
            )
            .hidden(),
        )
        .input(
            InputSpec::new(
                "webauthn_platform_authenticator_available",
                InputType::Boolean,
                false,
            )
            .hidden(),
        ),
    );
    page
}

pub fn signup_disabled(ctx: &Ctx<'_>) -> Page {
    ctx.with_remember_me(Page::new("registration_init"))
}

/// The engine's state as a Hanko state.
pub fn engine_page(
    ctx: &Ctx<'_>,
    view: &StateView,
    password_chosen: bool,
) -> Result<Page, HankoError> {
    let page = match &view.action {
        Action::Identify { options } => {
            identify_page(ctx, options.iter().map(|o| o.identification))
        }
        Action::Authenticate { options, .. } => authenticate_page(ctx, options, password_chosen),
        Action::CreateAuthenticator { options }
            if options
                .iter()
                .any(|o| o.authentication == Authentication::SecondaryTotp) =>
        {
            mfa_method_chooser(ctx)
        }
        Action::CreateAuthenticator { options } => {
            let password = options.iter().find(|o| is_password(o.authentication));
            let other = options.iter().find(|o| !is_password(o.authentication));
            let Some(password) = password else {
                return Err(HankoError::FlowDiscontinuity(format!(
                    "create_authenticator without a password option ({})",
                    options
                        .iter()
                        .map(|o| o.authentication.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            };
            let mut page = Page::new("password_creation");
            page.payload = password
                .password_policy
                .as_ref()
                .map(|p| json!({"password_policy": p}));
            page.offers.push(
                Offer::new(
                    "register_password",
                    "Set a new password.",
                    Exec::NewPassword {
                        authentication: Some(password.authentication),
                    },
                )
                .input(
                    InputSpec::new("new_password", InputType::Password, other.is_none())
                        .min(ctx.settings.password_min_length),
                ),
            );
            if let Some(other) = other {
                page.offers.push(Offer::new(
                    "skip",
                    "Continue without a password.",
                    Exec::Skip {
                        authentication: other.authentication,
                    },
                ));
            }
            ctx.with_back(page)
        }
        Action::ChangePassword {
            password_policy,
            force_change_reason,
        } => password_recovery_page(
            ctx,
            json!({
                "password_policy": password_policy,
                "force_change_reason": force_change_reason,
            }),
        ),
        Action::ResetPassword {
            password_policy, ..
        } => password_recovery_page(ctx, json!({"password_policy": password_policy})),
        Action::VerifyAccountRecoveryCode {
            channel,
            code_length,
            can_resend_at,
            ..
        } => passcode_page(
            ctx,
            Passcode {
                channel: *channel,
                code_length: *code_length,
                can_resend_at: *can_resend_at,
                purpose: "recovery",
                code: Exec::RecoveryPasscode,
            },
        ),
        Action::CreateTotp {
            secret,
            otpauth_uri,
        } => {
            let image = qr::png_data_uri(otpauth_uri.reveal())
                .map_err(|e| HankoError::Technical(e.to_string()))?;
            let mut page = Page::new("mfa_otp_secret_creation");
            page.payload = Some(json!({
                "otp_secret": secret.reveal(),
                "otp_image_source": image,
                "otpauth_uri": otpauth_uri.reveal(),
            }));
            page.offers.push(
                Offer::new(
                    "otp_code_verify",
                    "Enter a code from the authenticator app.",
                    Exec::TotpSetup,
                )
                .input(InputSpec::new("otp_code", InputType::String, true)),
            );
            ctx.with_back(page)
        }
        Action::ViewRecoveryCode { recovery_codes } => {
            let mut page = Page::new("mfa_recovery_codes");
            let codes: Vec<&str> = recovery_codes.iter().map(|c| c.reveal()).collect();
            page.payload = Some(json!({"recovery_codes": codes}));
            page.offers.push(Offer::new(
                "recovery_codes_confirm",
                "Confirm that the recovery codes are kept.",
                Exec::ConfirmRecoveryCodes,
            ));
            page
        }
        Action::Verify(prompt) => passcode_page(ctx, Passcode::of(prompt, "verification")),
        Action::OtpEntry {
            step,
            authentication,
            prompt,
        } => {
            let purpose = match (step, is_primary(*authentication)) {
                (StepType::Authenticate, true) => "login",
                (StepType::Authenticate, false) => "mfa",
                _ => "verification",
            };
            passcode_page(ctx, Passcode::of(prompt, purpose))
        }
        // Answered by `automatic_input`; only a config it cannot answer gets here.
        Action::SelectChannel { .. } | Action::SelectDestination { .. } => {
            return Err(HankoError::FlowDiscontinuity(format!(
                "{} has no option this dialect can choose",
                view.action.type_name()
            )));
        }
        Action::Finished => Page::new("success"),
    };
    Ok(page)
}

fn identify_page(ctx: &Ctx<'_>, options: impl Iterator<Item = Identification>) -> Page {
    let options: Vec<Identification> = options
        .filter(|i| {
            matches!(
                i,
                Identification::Email | Identification::Username | Identification::Phone
            )
        })
        .collect();
    let page = match ctx.record.path {
        FlowPath::Registration => {
            let only = options.len() == 1;
            let mut offer = Offer::new(
                "register_login_identifier",
                "Enter an identifier to register.",
                Exec::Identify {
                    options: options.iter().map(|i| (input_of(*i), *i)).collect(),
                    guess: false,
                },
            );
            for i in &options {
                offer = offer.input(identifier_spec(*i, only));
            }
            let mut page = Page::new("registration_init");
            page.offers.push(offer);
            page
        }
        _ => {
            let (spec, guess) = match options.as_slice() {
                [Identification::Email] => (
                    InputSpec::new("email", InputType::Email, true)
                        .min(3)
                        .max(320)
                        .trimmed(),
                    false,
                ),
                [Identification::Username] => (
                    InputSpec::new("username", InputType::String, true)
                        .max(40)
                        .trimmed(),
                    false,
                ),
                [Identification::Phone] => (
                    InputSpec::new("phone", InputType::String, true)
                        .max(40)
                        .trimmed(),
                    false,
                ),
                _ => (
                    InputSpec::new("identifier", InputType::String, true)
                        .max(320)
                        .trimmed(),
                    true,
                ),
            };
            let name = spec.name;
            let mut page = Page::new("login_init");
            page.offers.push(
                Offer::new(
                    "continue_with_login_identifier",
                    "Enter an identifier to log in.",
                    Exec::Identify {
                        options: options
                            .iter()
                            .map(|i| (if guess { name } else { input_of(*i) }, *i))
                            .collect(),
                        guess,
                    },
                )
                .input(spec),
            );
            page
        }
    };
    ctx.with_remember_me(page)
}

fn input_of(i: Identification) -> &'static str {
    match i {
        Identification::Username => "username",
        Identification::Phone => "phone",
        _ => "email",
    }
}

fn identifier_spec(i: Identification, required: bool) -> InputSpec {
    match i {
        Identification::Username => InputSpec::new("username", InputType::String, required)
            .max(40)
            .trimmed(),
        Identification::Phone => InputSpec::new("phone", InputType::String, required)
            .max(40)
            .trimmed(),
        _ => InputSpec::new("email", InputType::Email, required)
            .max(320)
            .trimmed(),
    }
}

fn is_password(a: Authentication) -> bool {
    matches!(
        a,
        Authentication::PrimaryPassword | Authentication::SecondaryPassword
    )
}

fn is_primary(a: Authentication) -> bool {
    matches!(
        a,
        Authentication::PrimaryPassword
            | Authentication::PrimaryOobOtpEmail
            | Authentication::PrimaryOobOtpSms
            | Authentication::PrimaryPasskey
    )
}

fn is_oob(a: Authentication) -> bool {
    matches!(
        a,
        Authentication::PrimaryOobOtpEmail
            | Authentication::PrimaryOobOtpSms
            | Authentication::SecondaryOobOtpEmail
            | Authentication::SecondaryOobOtpSms
    )
}

fn password_login(authentication: Authentication) -> Offer {
    Offer::new(
        "password_login",
        "Log in with a password.",
        Exec::Password { authentication },
    )
    .input(InputSpec::new("password", InputType::Password, true))
}

fn login_password_page(ctx: &Ctx<'_>, authentication: Authentication) -> Page {
    let mut page = Page::new("login_password");
    page.offers.push(password_login(authentication));
    if is_primary(authentication) {
        page = ctx.with_recovery(page);
    }
    ctx.with_back(page)
}

/// `mfa_method_chooser` (spec 7.2): of the engine's second factors, Hanko names TOTP only.
fn mfa_method_chooser(ctx: &Ctx<'_>) -> Page {
    let mut page = Page::new("mfa_method_chooser");
    page.offers.push(Offer::new(
        "continue_to_otp_secret_creation",
        "Set up an authenticator app.",
        Exec::ChooseTotp,
    ));
    ctx.with_back(page)
}

/// `login_password_recovery`: a forced change, or the reset of a recovery flow.
fn password_recovery_page(ctx: &Ctx<'_>, payload: Value) -> Page {
    let mut page = Page::new("login_password_recovery");
    page.payload = Some(payload);
    page.offers.push(
        Offer::new(
            "password_recovery",
            "Set a new password.",
            Exec::NewPassword {
                authentication: None,
            },
        )
        .input(
            InputSpec::new("new_password", InputType::Password, true)
                .min(ctx.settings.password_min_length),
        ),
    );
    page
}

fn authenticate_page(ctx: &Ctx<'_>, options: &[AuthenticateOption], password_chosen: bool) -> Page {
    let password = options.iter().find(|o| is_password(o.authentication));
    let oob = options
        .iter()
        .enumerate()
        .find(|(_, o)| is_oob(o.authentication));
    let totp = options
        .iter()
        .any(|o| o.authentication == Authentication::SecondaryTotp);
    let recovery = options
        .iter()
        .any(|o| o.authentication == Authentication::RecoveryCode);
    if totp || recovery {
        let mut page = Page::new("login_otp");
        if totp {
            page.offers.push(
                Offer::new("otp_code_validate", "Enter a TOTP code.", Exec::Totp)
                    .input(InputSpec::new("otp_code", InputType::String, true)),
            );
        }
        if recovery {
            page.offers.push(
                Offer::new(
                    "recovery_code_validate",
                    "Enter a recovery code.",
                    Exec::RecoveryCode,
                )
                .input(InputSpec::new("recovery_code", InputType::String, true)),
            );
        }
        return page;
    }
    match (password, oob) {
        (Some(p), Some(_)) if password_chosen => login_password_page(ctx, p.authentication),
        (Some(p), None) => login_password_page(ctx, p.authentication),
        (p, oob) => {
            let mut page = Page::new("login_method_chooser");
            if p.is_some() {
                page.offers.push(Offer::new(
                    "continue_to_password_login",
                    "Log in with a password.",
                    Exec::ChoosePassword,
                ));
            }
            if let Some((index, o)) = oob {
                page.offers.push(Offer::new(
                    "continue_to_passcode_confirmation",
                    "Log in with a passcode.",
                    Exec::ChooseOob {
                        authentication: o.authentication,
                        index,
                    },
                ));
            }
            ctx.with_back(page)
        }
    }
}

fn channel_name(c: Channel) -> &'static str {
    match c {
        Channel::Email => "email",
        Channel::Sms => "sms",
        Channel::Whatsapp => "whatsapp",
    }
}

fn passcode_offers(page: &mut Page, code: Exec, resend: Exec) {
    page.offers.push(
        Offer::new("verify_passcode", "Enter a passcode.", code).input(InputSpec::new(
            "code",
            InputType::String,
            true,
        )),
    );
    page.offers.push(Offer::new(
        "resend_passcode",
        "Send the passcode again.",
        resend,
    ));
}

/// What a `passcode_confirmation` state shows and how its code is fed.
struct Passcode {
    channel: Channel,
    code_length: u32,
    can_resend_at: DateTime<Utc>,
    purpose: &'static str,
    code: Exec,
}

impl Passcode {
    fn of(prompt: &OtpPrompt, purpose: &'static str) -> Self {
        Passcode {
            channel: prompt.channel,
            code_length: prompt.code_length,
            can_resend_at: prompt.can_resend_at,
            purpose,
            code: Exec::Code,
        }
    }
}

fn passcode_page(ctx: &Ctx<'_>, passcode: Passcode) -> Page {
    let mut page = Page::new("passcode_confirmation");
    let resend_after = (passcode.can_resend_at - ctx.now).num_seconds().max(0);
    page.payload = Some(json!({
        "resend_after": resend_after,
        "passcode_resent": ctx.record.passcode_resent,
        "code_length": passcode.code_length,
        "channel": channel_name(passcode.channel),
        "purpose": passcode.purpose,
    }));
    passcode_offers(&mut page, passcode.code, Exec::Resend);
    ctx.with_back(page)
}

/// The concealed screens of an unknown identifier or a taken email (spec 6.4).
pub fn concealed_page(ctx: &Ctx<'_>, screen: &Screen) -> Page {
    let Screen::Concealed {
        pretend,
        purpose,
        password,
        passcode,
        sent_at,
    } = screen
    else {
        return Page::new("error");
    };
    let page = match pretend {
        Pretend::MethodChooser => {
            let mut page = Page::new("login_method_chooser");
            if *password {
                page.offers.push(Offer::new(
                    "continue_to_password_login",
                    "Log in with a password.",
                    Exec::Pretend(Pretend::Password),
                ));
            }
            if *passcode {
                page.offers.push(Offer::new(
                    "continue_to_passcode_confirmation",
                    "Log in with a passcode.",
                    Exec::Pretend(Pretend::Passcode),
                ));
            }
            page
        }
        Pretend::Password => {
            let mut page = Page::new("login_password");
            page.offers.push(
                Offer::new(
                    "password_login",
                    "Log in with a password.",
                    Exec::PretendPassword,
                )
                .input(InputSpec::new("password", InputType::Password, true)),
            );
            ctx.with_recovery(page)
        }
        Pretend::Passcode => {
            let mut page = Page::new("passcode_confirmation");
            let elapsed = sent_at.map_or(i64::MAX, |t| (ctx.now - t).num_seconds());
            let cooldown = ctx.settings.passcode_cooldown_secs as i64;
            page.payload = Some(json!({
                "resend_after": (cooldown - elapsed).max(0),
                "passcode_resent": ctx.record.passcode_resent,
                "code_length": 6,
                "channel": "email",
                "purpose": purpose,
            }));
            passcode_offers(&mut page, Exec::PretendCode, Exec::PretendResend);
            page
        }
    };
    ctx.with_back(page)
}

/// Which password action `profile_init` offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PasswordOffer {
    Create,
    Update,
}

pub fn profile_page(
    settings: &HankoSettings,
    user: Value,
    sessions: Value,
    can_delete_session: bool,
    password: Option<PasswordOffer>,
) -> Page {
    let mut page = Page::new("profile_init");
    page.payload = Some(json!({"user": user, "sessions": sessions}));
    if let Some(offer) = password {
        let (name, description) = match offer {
            PasswordOffer::Create => ("password_create", "Set a password."),
            PasswordOffer::Update => ("password_update", "Change the password."),
        };
        page.offers
            .push(
                Offer::new(name, description, Exec::SetPassword).input(
                    InputSpec::new("password", InputType::Password, true)
                        .min(settings.password_min_length),
                ),
            );
    }
    if can_delete_session {
        page.offers.push(
            Offer::new(
                "session_delete",
                "End another session.",
                Exec::SessionDelete,
            )
            .input(InputSpec::new("session_id", InputType::String, true)),
        );
    }
    page
}

/// An engine input this dialect answers by itself, without asking the user (spec 8.1/8.2):
/// a single passcode method is chosen at once, the channel is `sms` when offered.
pub fn automatic_input(view: &StateView) -> Option<Value> {
    match &view.action {
        Action::Authenticate { options, .. } => {
            let asks_user = options.iter().any(|o| {
                is_password(o.authentication)
                    || matches!(
                        o.authentication,
                        Authentication::SecondaryTotp | Authentication::RecoveryCode
                    )
            });
            if asks_user {
                return None;
            }
            let (index, o) = options
                .iter()
                .enumerate()
                .find(|(_, o)| is_oob(o.authentication))?;
            Some(oob_choice(o.authentication, index, o))
        }
        Action::CreateAuthenticator { options } => {
            if options.iter().any(|o| is_password(o.authentication)) {
                return None;
            }
            let o = options.iter().find(|o| is_oob(o.authentication))?;
            Some(json!({"authentication": o.authentication.as_str()}))
        }
        Action::SelectChannel { channels, .. } => {
            let c = channels
                .iter()
                .find(|c| **c == Channel::Sms)
                .or(channels.first())?;
            Some(json!({"channel": channel_name(*c)}))
        }
        // The identifier's own destination; a link one sends a code here (`codes_only`).
        Action::SelectDestination { options } if !options.is_empty() => {
            let index = options
                .iter()
                .position(|o| o.channel != Channel::Whatsapp)
                .unwrap_or(0);
            Some(json!({"index": index}))
        }
        _ => None,
    }
}

/// `{"authentication", "index", "channel"?}` of an OOB option (sms when offered).
pub fn oob_choice(a: Authentication, index: usize, o: &AuthenticateOption) -> Value {
    let mut v = json!({"authentication": a.as_str(), "index": index});
    if let Some(otp) = &o.otp
        && otp.channels.len() > 1
    {
        let c = otp
            .channels
            .iter()
            .find(|c| **c == Channel::Sms)
            .unwrap_or(&otp.channels[0]);
        v["channel"] = json!(channel_name(*c));
    }
    v
}

/// The response object (spec 4).
pub fn envelope(
    page: &Page,
    record: &FlowRecord,
    status: u16,
    error: Option<&HankoError>,
) -> Value {
    let terminal = matches!(page.name, "success" | "error");
    let mut actions = Map::new();
    if !terminal {
        for offer in &page.offers {
            let inputs: Map<String, Value> = offer
                .inputs
                .iter()
                .map(|i| (i.name.to_string(), i.to_json()))
                .collect();
            actions.insert(
                offer.name.to_string(),
                json!({
                    "action": offer.name,
                    "href": format!("/{}?action={}%40{}", record.path.as_str(), offer.name, record.id),
                    "description": offer.description,
                    "inputs": inputs,
                }),
            );
        }
    }
    let mut v = json!({
        "name": page.name,
        "status": status,
        "csrf_token": if terminal { "" } else { record.csrf_token.as_str() },
        "actions": actions,
        "links": [],
    });
    if let Some(p) = &page.payload {
        v["payload"] = p.clone();
    }
    if let Some(e) = error {
        v["error"] = e.wire();
    }
    v
}

/// The `error` state (refusals of checks 1–7, 5xx).
pub fn error_envelope(error: &HankoError) -> Value {
    json!({
        "name": "error",
        "status": error.status().as_u16(),
        "csrf_token": "",
        "actions": {},
        "links": [],
        "error": error.wire(),
    })
}
