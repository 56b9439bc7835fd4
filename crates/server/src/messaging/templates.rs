//! Message texts: built-in templates, each replaceable by a file `<message>.<part>` in
//! `messaging.templates_dir` (flow-config.md 4.4).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use authflow_core::config::TEMPLATE_MESSAGES;
use authflow_core::credentials::mask::{mask_email, mask_phone};
use authflow_core::flow::def::Channel;
use authflow_core::flow::otp::{OutgoingMessage, Purpose};

#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// One part of a message (`<part>` of a template file name).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Part {
    EmailSubject,
    EmailText,
    EmailHtml,
    Sms,
}

impl Part {
    fn file_suffix(self) -> &'static str {
        match self {
            Part::EmailSubject => "email_subject.txt",
            Part::EmailText => "email.txt",
            Part::EmailHtml => "email.html",
            Part::Sms => "sms.txt",
        }
    }

    fn from_suffix(suffix: &str) -> Option<Part> {
        [
            Part::EmailSubject,
            Part::EmailText,
            Part::EmailHtml,
            Part::Sms,
        ]
        .into_iter()
        .find(|p| p.file_suffix() == suffix)
    }
}

/// The values a template may use (`{{code}}`, `{{link}}`, ...).
#[derive(Clone)]
pub struct Vars {
    pub code: String,
    pub link: Option<String>,
    pub valid_minutes: u64,
    pub app_name: String,
    pub masked_target: String,
}

impl Vars {
    fn get(&self, name: &str) -> Option<String> {
        match name {
            "code" => Some(self.code.clone()),
            "link" => self.link.clone(),
            "valid_minutes" => Some(self.valid_minutes.to_string()),
            "app_name" => Some(self.app_name.clone()),
            "masked_target" => Some(self.masked_target.clone()),
            _ => None,
        }
    }
}

/// A rendered email.
pub struct Email {
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// Built-in templates with the operator's overrides.
pub struct Templates {
    app_name: String,
    overrides: HashMap<(String, Part), String>,
}

impl Templates {
    pub fn builtin(app_name: String) -> Self {
        Templates {
            app_name,
            overrides: HashMap::new(),
        }
    }

    /// Reads the overrides of `dir` (file names that are no template are left to `check`).
    pub fn load(app_name: String, dir: Option<&Path>) -> Result<Self, TemplateError> {
        let mut templates = Self::builtin(app_name);
        let Some(dir) = dir else {
            return Ok(templates);
        };
        let read_error = |path: &Path, source| TemplateError::Read {
            path: path.to_path_buf(),
            source,
        };
        for entry in std::fs::read_dir(dir).map_err(|e| read_error(dir, e))? {
            let path = entry.map_err(|e| read_error(dir, e))?.path();
            let Some(key) = override_key(&path) else {
                continue;
            };
            let text = std::fs::read_to_string(&path).map_err(|e| read_error(&path, e))?;
            templates.overrides.insert(key, text);
        }
        Ok(templates)
    }

    /// The variables of a message.
    pub fn vars(&self, message: &OutgoingMessage) -> Vars {
        Vars {
            code: message.code.clone(),
            link: message.link.clone(),
            valid_minutes: message.valid_minutes,
            app_name: self.app_name.clone(),
            masked_target: masked_target(message.channel, &message.to),
        }
    }

    pub fn email(&self, message: &OutgoingMessage) -> Email {
        let vars = self.vars(message);
        let name = message_name(message);
        Email {
            subject: self
                .render(name, Part::EmailSubject, &vars, plain)
                .trim()
                .to_string(),
            text: self.render(name, Part::EmailText, &vars, plain),
            html: self.render(name, Part::EmailHtml, &vars, crate::html::escape),
        }
    }

    pub fn sms(&self, message: &OutgoingMessage) -> String {
        let vars = self.vars(message);
        let text = self.render(message_name(message), Part::Sms, &vars, plain);
        text.trim_end().to_string()
    }

    fn render(&self, message: &str, part: Part, vars: &Vars, escape: fn(&str) -> String) -> String {
        let template = self
            .overrides
            .get(&(message.to_string(), part))
            .map(String::as_str)
            .unwrap_or_else(|| builtin(message, part));
        substitute(template, vars, escape)
    }
}

fn plain(s: &str) -> String {
    s.to_string()
}

/// Replaces each `{{name}}` (spaces inside the braces allowed) by its escaped value; an
/// unknown name is left as it is.
fn substitute(template: &str, vars: &Vars, escape: fn(&str) -> String) -> String {
    let mut out = String::with_capacity(template.len() + 32);
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            rest = &rest[start..];
            break;
        };
        let name = after[..end].trim();
        match vars.get(name) {
            Some(value) => out.push_str(&escape(&value)),
            None => out.push_str(&rest[start..start + 2 + end + 2]),
        }
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    out
}

fn override_key(path: &Path) -> Option<(String, Part)> {
    let file_name = path.file_name()?.to_str()?;
    let (message, suffix) = file_name.split_once('.')?;
    let known_message = TEMPLATE_MESSAGES.iter().any(|(m, _)| *m == message);
    let part = Part::from_suffix(suffix)?;
    (known_message && path.is_file()).then(|| (message.to_string(), part))
}

fn masked_target(channel: Channel, to: &str) -> String {
    match channel {
        Channel::Email => mask_email(to),
        Channel::Sms | Channel::Whatsapp => mask_phone(to),
    }
}

/// The template a message uses (`<message>` of flow-config.md 4.4).
pub fn message_name(message: &OutgoingMessage) -> &'static str {
    match (message.purpose, message.link.is_some()) {
        (Purpose::Verification, _) => "verification",
        (Purpose::Authentication, false) => "authentication_code",
        (Purpose::Authentication, true) => "login_link",
        (Purpose::AccountRecovery, false) => "account_recovery_code",
        (Purpose::AccountRecovery, true) => "account_recovery_link",
    }
}

/// The built-in text of `part` of `message`.
fn builtin(message: &str, part: Part) -> &'static str {
    match (message, part) {
        ("verification", Part::EmailSubject) => "Your {{app_name}} verification code",
        ("verification", Part::EmailText) => VERIFICATION_TEXT,
        ("verification", Part::EmailHtml) => VERIFICATION_HTML,
        ("verification", Part::Sms) => {
            "{{code}} is your {{app_name}} verification code. It is valid for {{valid_minutes}} minutes."
        }
        ("authentication_code", Part::EmailSubject) => "Your {{app_name}} login code",
        ("authentication_code", Part::EmailText) => LOGIN_CODE_TEXT,
        ("authentication_code", Part::EmailHtml) => LOGIN_CODE_HTML,
        ("authentication_code", Part::Sms) => {
            "{{code}} is your {{app_name}} login code. It is valid for {{valid_minutes}} minutes."
        }
        ("login_link", Part::EmailSubject) => "Your {{app_name}} login link",
        ("login_link", Part::EmailText) => LOGIN_LINK_TEXT,
        ("login_link", Part::EmailHtml) => LOGIN_LINK_HTML,
        ("login_link", Part::Sms) => {
            "Log in to {{app_name}}: {{link}} (valid for {{valid_minutes}} minutes)"
        }
        ("account_recovery_code", Part::EmailSubject) => "Your {{app_name}} account recovery code",
        ("account_recovery_code", Part::EmailText) => RECOVERY_CODE_TEXT,
        ("account_recovery_code", Part::EmailHtml) => RECOVERY_CODE_HTML,
        ("account_recovery_code", Part::Sms) => {
            "{{code}} is your {{app_name}} account recovery code. It is valid for {{valid_minutes}} minutes."
        }
        ("account_recovery_link", Part::EmailSubject) => "Reset your {{app_name}} password",
        ("account_recovery_link", Part::EmailText) => RECOVERY_LINK_TEXT,
        ("account_recovery_link", Part::EmailHtml) => RECOVERY_LINK_HTML,
        ("account_recovery_link", Part::Sms) => {
            "Reset your {{app_name}} password: {{link}} (valid for {{valid_minutes}} minutes)"
        }
        ("login_attempted", Part::EmailSubject) => "Login attempt at {{app_name}}",
        ("login_attempted", Part::Sms) => {
            "Someone tried to log in to {{app_name}} with {{masked_target}}, which has no account."
        }
        ("login_attempted", _) => LOGIN_ATTEMPTED_TEXT,
        ("registration_attempted", Part::EmailSubject) => "Sign-up attempt at {{app_name}}",
        ("registration_attempted", Part::Sms) => {
            "Someone tried to sign up to {{app_name}} with {{masked_target}}, which already has an account."
        }
        (_, _) => REGISTRATION_ATTEMPTED_TEXT,
    }
}

const VERIFICATION_TEXT: &str = "Your {{app_name}} verification code is {{code}}.\n\n\
Enter it to verify {{masked_target}}. It is valid for {{valid_minutes}} minutes.\n\n\
If you did not ask for this, you can ignore this message.\n";

const VERIFICATION_HTML: &str = "<!DOCTYPE html>\n<html><body>\n\
<p>Your {{app_name}} verification code is <strong>{{code}}</strong>.</p>\n\
<p>Enter it to verify {{masked_target}}. It is valid for {{valid_minutes}} minutes.</p>\n\
<p>If you did not ask for this, you can ignore this message.</p>\n</body></html>\n";

const LOGIN_CODE_TEXT: &str = "Your {{app_name}} login code is {{code}}.\n\n\
Enter it to log in as {{masked_target}}. It is valid for {{valid_minutes}} minutes.\n\n\
If you did not try to log in, you can ignore this message.\n";

const LOGIN_CODE_HTML: &str = "<!DOCTYPE html>\n<html><body>\n\
<p>Your {{app_name}} login code is <strong>{{code}}</strong>.</p>\n\
<p>Enter it to log in as {{masked_target}}. It is valid for {{valid_minutes}} minutes.</p>\n\
<p>If you did not try to log in, you can ignore this message.</p>\n</body></html>\n";

const LOGIN_LINK_TEXT: &str = "Open this link to log in to {{app_name}} as {{masked_target}}:\n\n\
{{link}}\n\nIt is valid for {{valid_minutes}} minutes.\n\n\
If you did not try to log in, you can ignore this message.\n";

const LOGIN_LINK_HTML: &str = "<!DOCTYPE html>\n<html><body>\n\
<p><a href=\"{{link}}\">Log in to {{app_name}}</a> as {{masked_target}}.</p>\n\
<p>The link is valid for {{valid_minutes}} minutes.</p>\n\
<p>If you did not try to log in, you can ignore this message.</p>\n</body></html>\n";

const RECOVERY_CODE_TEXT: &str = "Your {{app_name}} account recovery code is {{code}}.\n\n\
Enter it to reset the password of {{masked_target}}. It is valid for {{valid_minutes}} minutes.\n\n\
If you did not ask for this, you can ignore this message.\n";

const RECOVERY_CODE_HTML: &str = "<!DOCTYPE html>\n<html><body>\n\
<p>Your {{app_name}} account recovery code is <strong>{{code}}</strong>.</p>\n\
<p>Enter it to reset the password of {{masked_target}}. It is valid for {{valid_minutes}} minutes.</p>\n\
<p>If you did not ask for this, you can ignore this message.</p>\n</body></html>\n";

const RECOVERY_LINK_TEXT: &str = "Open this link to reset the {{app_name}} password of {{masked_target}}:\n\n\
{{link}}\n\nIt is valid for {{valid_minutes}} minutes.\n\n\
If you did not ask for this, you can ignore this message.\n";

const RECOVERY_LINK_HTML: &str = "<!DOCTYPE html>\n<html><body>\n\
<p><a href=\"{{link}}\">Reset your {{app_name}} password</a> ({{masked_target}}).</p>\n\
<p>The link is valid for {{valid_minutes}} minutes.</p>\n\
<p>If you did not ask for this, you can ignore this message.</p>\n</body></html>\n";

const LOGIN_ATTEMPTED_TEXT: &str = "Someone tried to log in to {{app_name}} with {{masked_target}}, \
which has no account.\n\nIf this was you, sign up instead.\n";

const REGISTRATION_ATTEMPTED_TEXT: &str = "Someone tried to sign up to {{app_name}} with \
{{masked_target}}, which already has an account.\n\nIf this was you, log in instead.\n";

#[cfg(test)]
mod tests {
    use super::*;

    fn message() -> OutgoingMessage {
        OutgoingMessage {
            channel: Channel::Email,
            to: "vera@example.com".into(),
            purpose: Purpose::Verification,
            code: "123456".into(),
            link: None,
            valid_minutes: 5,
            delivery_id: "d1".into(),
        }
    }

    #[test]
    fn a_login_link_email_carries_the_link() {
        let mut m = message();
        m.purpose = Purpose::Authentication;
        m.link = Some("http://127.0.0.1:3000/authflow/v2/verify_login_link?code=ABC".into());
        let email = Templates::builtin("Example".into()).email(&m);
        assert_eq!(email.subject, "Your Example login link");
        assert!(
            email.text.contains("verify_login_link?code=ABC"),
            "{}",
            email.text
        );
        assert!(
            email
                .html
                .contains("href=\"http://127.0.0.1:3000/authflow/v2/verify_login_link?code=ABC\""),
            "{}",
            email.html
        );
    }

    #[test]
    fn builtin_email_says_what_the_code_is_for_and_how_long_it_is_valid() {
        let email = Templates::builtin("Example".into()).email(&message());
        assert_eq!(email.subject, "Your Example verification code");
        assert!(email.text.contains("verification code is 123456"));
        assert!(email.text.contains("valid for 5 minutes"));
        assert!(email.text.contains("ve**@example.com"));
        assert!(email.html.contains("<strong>123456</strong>"));
    }

    #[test]
    fn overrides_replace_builtins_and_html_values_are_escaped() {
        let dir = std::env::temp_dir().join(format!("authflow-tpl-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("verification.sms.txt"),
            "Code {{ code }} {{unknown}}\n",
        )
        .unwrap();
        std::fs::write(dir.join("verification.email.html"), "<b>{{app_name}}</b>").unwrap();
        std::fs::write(dir.join("notes.md"), "ignored").unwrap();
        let templates = Templates::load("A&B <x>".into(), Some(&dir)).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(templates.sms(&message()), "Code 123456 {{unknown}}");
        assert_eq!(templates.email(&message()).html, "<b>A&amp;B &lt;x&gt;</b>");
        assert_eq!(
            templates.email(&message()).subject,
            "Your A&B <x> verification code"
        );
    }

    #[test]
    fn unterminated_braces_are_kept() {
        let vars = Templates::builtin("x".into()).vars(&message());
        assert_eq!(substitute("a {{code", &vars, plain), "a {{code");
        assert_eq!(substitute("{{code}}{{code}}", &vars, plain), "123456123456");
    }
}
