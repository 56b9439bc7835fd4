//! The one place where the configuration becomes the engine's settings, the CORS policy
//! and the messaging defaults.

use std::time::Duration;

use authflow_core::config::{
    AuthMethod, Config, EmailOtpMode, OtpChannel, PhoneValidationMethod, RateLimit,
};
use authflow_core::credentials::login_id::{EmailRules, LoginIdRules, PhoneRules, UsernameRules};
use authflow_core::flow::EngineSettings;
use authflow_core::flow::def::OtpForm;
use authflow_core::flow::otp::OtpSettings;
use authflow_core::flow::settings::{
    Limit, LoginIdKey, MessagingLimits, OtpLimits, RateLimits, SessionSettings,
};
use authflow_core::model::LoginIdType;

use crate::CorsPolicy;

fn limit(l: Option<RateLimit>) -> Option<Limit> {
    l.filter(|l| l.enabled && !l.period.is_zero())
        .map(|l| Limit {
            period: l.period,
            burst: l.burst.max(1),
        })
}

fn login_id_keys(config: &Config) -> Vec<LoginIdKey> {
    let types = &config.identity.login_id.types;
    let phone = &config.ui.phone_input;
    config
        .identity
        .login_id
        .keys
        .iter()
        .map(|k| {
            let max_length = k.max_length as usize;
            let login_id_type: LoginIdType = k.r#type;
            let rules = match login_id_type {
                LoginIdType::Email => LoginIdRules::Email(EmailRules {
                    case_sensitive: types.email.case_sensitive,
                    block_plus_sign: types.email.block_plus_sign,
                    ignore_dot_sign: types.email.ignore_dot_sign,
                    max_length,
                }),
                LoginIdType::Phone => LoginIdRules::Phone(PhoneRules {
                    allowlist: phone.allowlist.clone(),
                    possible_only: phone.validation.libphonenumber.validation_method
                        == PhoneValidationMethod::IsPossibleNumber,
                    max_length,
                }),
                LoginIdType::Username => LoginIdRules::Username(UsernameRules {
                    block_reserved_usernames: types.username.block_reserved_usernames,
                    ascii_only: types.username.ascii_only,
                    case_sensitive: types.username.case_sensitive,
                    max_length,
                }),
            };
            LoginIdKey {
                key: k.key.clone(),
                login_id_type,
                rules,
            }
        })
        .collect()
}

fn verification_otp(config: &Config, channel: OtpChannel) -> OtpSettings {
    let limits = config.verification.rate_limits.channel(channel);
    OtpSettings {
        code_valid: config.verification.code_valid_period,
        cooldown: limits.trigger_cooldown,
        max_failures: limits.max_failed_attempts_revoke_otp,
    }
}

fn authentication_otp(config: &Config, channel: OtpChannel) -> OtpSettings {
    let limits = config.authentication.rate_limits.oob_otp.channel(channel);
    let oob = &config.authenticator.oob_otp;
    let periods = match channel {
        OtpChannel::Email => oob.email.valid_periods,
        OtpChannel::Sms => oob.sms.valid_periods,
    };
    OtpSettings {
        code_valid: periods.code,
        cooldown: limits.trigger_cooldown,
        max_failures: limits.max_failed_attempts_revoke_otp,
    }
}

fn recovery_settings(config: &Config) -> authflow_core::flow::recovery::RecoverySettings {
    let f = &config.forgot_password;
    let otp = |c: OtpChannel| {
        let limits = f.rate_limits.channel(c);
        OtpSettings {
            code_valid: f.valid_periods.code,
            cooldown: limits.trigger_cooldown,
            max_failures: limits.max_failed_attempts_revoke_otp,
        }
    };
    authflow_core::flow::recovery::RecoverySettings {
        enabled: f.enabled,
        email: otp(OtpChannel::Email),
        sms: otp(OtpChannel::Sms),
        link_valid: f.valid_periods.link,
        email_limits: recovery_limits(config, OtpChannel::Email),
        sms_limits: recovery_limits(config, OtpChannel::Sms),
    }
}

fn recovery_limits(config: &Config, c: OtpChannel) -> OtpLimits {
    let r = &config.forgot_password.rate_limits;
    OtpLimits {
        trigger_per_ip: limit(r.trigger_per_ip(c)),
        validate_per_ip: limit(r.validate_per_ip(c)),
        ..OtpLimits::default()
    }
}

fn oob_limits(config: &Config, c: OtpChannel) -> OtpLimits {
    let r = &config.authentication.rate_limits;
    OtpLimits {
        trigger_per_ip: limit(r.oob_otp_trigger_per_ip(c)),
        trigger_per_user: limit(r.oob_otp_trigger_per_user(c)),
        validate_per_ip: limit(r.oob_otp_validate_per_ip(c)),
        validate_per_user_per_ip: limit(r.oob_otp_validate_per_user_per_ip(c)),
    }
}

fn verification_limits(config: &Config, c: OtpChannel) -> OtpLimits {
    let r = &config.verification.rate_limits;
    OtpLimits {
        trigger_per_ip: limit(r.trigger_per_ip(c)),
        trigger_per_user: limit(r.trigger_per_user(c)),
        validate_per_ip: limit(r.validate_per_ip(c)),
        validate_per_user_per_ip: None,
    }
}

fn messaging_limits(config: &Config) -> MessagingLimits {
    let m = &config.messaging.rate_limits;
    MessagingLimits {
        email: limit(m.email()),
        email_per_ip: limit(m.email_per_ip()),
        email_per_target: limit(m.email_per_target()),
        sms: limit(m.sms()),
        sms_per_ip: limit(m.sms_per_ip()),
        sms_per_target: limit(m.sms_per_target()),
    }
}

pub fn engine_settings(config: &Config) -> EngineSettings {
    let auth = &config.authentication;
    let password = &config.authenticator.password;
    let session = &config.session;
    EngineSettings {
        login_id_keys: login_id_keys(config),
        password_policy: password.policy.clone(),
        force_change_on_policy_violation: password.force_change,
        password_expiry: password
            .expiry
            .force_change
            .enabled
            .then_some(password.expiry.force_change.duration_since_last_update)
            .flatten(),
        hashing: password.hashing.clone(),
        public_signup_disabled: auth.public_signup_disabled,
        rate_limits: RateLimits {
            api_per_ip: limit(config.authentication_flow.rate_limits.per_ip()),
            password_per_ip: limit(auth.rate_limits.password_per_ip()),
            password_per_user_per_ip: limit(auth.rate_limits.password_per_user_per_ip()),
            totp_per_ip: limit(auth.rate_limits.per_ip(AuthMethod::Totp)),
            totp_per_user_per_ip: limit(auth.rate_limits.per_user_per_ip(AuthMethod::Totp)),
            recovery_code_per_ip: limit(auth.rate_limits.per_ip(AuthMethod::RecoveryCode)),
            recovery_code_per_user_per_ip: limit(
                auth.rate_limits.per_user_per_ip(AuthMethod::RecoveryCode),
            ),
            account_enumeration_per_ip: limit(auth.rate_limits.account_enumeration_per_ip()),
            signup_per_ip: limit(auth.rate_limits.signup_per_ip()),
            oob_email: oob_limits(config, OtpChannel::Email),
            oob_sms: oob_limits(config, OtpChannel::Sms),
            verification_email: verification_limits(config, OtpChannel::Email),
            verification_sms: verification_limits(config, OtpChannel::Sms),
            messaging: messaging_limits(config),
        },
        session: SessionSettings {
            lifetime: Duration::from_secs(session.lifetime_seconds),
            idle_timeout: session
                .idle_timeout_enabled
                .then(|| Duration::from_secs(session.idle_timeout_seconds)),
            cookie_name: session.cookie_name.clone(),
            use_session_cookie: session.use_session_cookie,
        },
        state_ttl: Duration::from_secs(20 * 60),
        secure_cookies: config.server.public_origin.starts_with("https://"),
        verification_email: verification_otp(config, OtpChannel::Email),
        verification_sms: verification_otp(config, OtpChannel::Sms),
        authentication_email: authentication_otp(config, OtpChannel::Email),
        authentication_sms: authentication_otp(config, OtpChannel::Sms),
        login_link_valid: config.authenticator.oob_otp.email.valid_periods.link,
        account_recovery: recovery_settings(config),
        device_token: authflow_core::flow::device_token::DeviceTokenSettings {
            disabled: auth.device_token.disabled,
            lifetime: Duration::from_secs(u64::from(auth.device_token.expire_in_days) * 24 * 3600),
        },
        email_otp_form: match config.authenticator.oob_otp.email.email_otp_mode {
            EmailOtpMode::Code => OtpForm::Code,
            EmailOtpMode::LoginLink => OtpForm::Link,
        },
        phone_channels: config
            .authenticator
            .oob_otp
            .sms
            .phone_otp_mode
            .channels()
            .to_vec(),
        public_origin: config.server.public_origin.clone(),
        lockout: auth.lockout.clone(),
        recovery_code_count: usize::try_from(auth.recovery_code.count)
            .unwrap_or(authflow_core::credentials::recovery::DEFAULT_COUNT),
        maximum_totp: config.authenticator.totp.maximum,
        maximum_oob_email: config.authenticator.oob_otp.email.maximum,
        maximum_oob_sms: config.authenticator.oob_otp.sms.maximum,
    }
}

fn is_loopback_origin(origin: &str) -> bool {
    url::Url::parse(origin)
        .ok()
        .and_then(|u| u.host_str().map(str::to_string))
        .is_some_and(|h| h == "localhost" || h == "127.0.0.1" || h == "[::1]")
}

fn origin_of(uri: &str) -> Option<String> {
    let u = url::Url::parse(uri).ok()?;
    matches!(u.scheme(), "http" | "https").then(|| u.origin().ascii_serialization())
}

pub fn cors_policy(config: &Config) -> CorsPolicy {
    let mut origins = vec![config.server.public_origin.clone()];
    origins.extend(config.server.allowed_origins.iter().cloned());
    for client in &config.oauth.clients {
        origins.extend(
            client
                .x_custom_ui_uri
                .iter()
                .filter_map(|u| origin_of(u.as_str())),
        );
        origins.extend(
            client
                .redirect_uris
                .iter()
                .filter_map(|u| origin_of(u.as_str())),
        );
    }
    CorsPolicy {
        allow_any_loopback: is_loopback_origin(&config.server.public_origin),
        origins,
    }
}

pub fn app_name(config: &Config) -> String {
    if !config.messaging.app_name.is_empty() {
        return config.messaging.app_name.clone();
    }
    url::Url::parse(&config.server.public_origin)
        .ok()
        .and_then(|u| u.host_str().map(str::to_string))
        .unwrap_or_else(|| "authflow".into())
}
