//! Masking of claim values and destinations shown to a client that has not proven it
//! owns them (authentication-flow-api.md 17.4).

/// Keeps the first ⌊n/2⌋ characters of the local part; each other local character becomes
/// `*`; the domain stays: `user@example.com` → `us**@example.com`. A value without `@`
/// is masked as if it were all local part.
pub fn mask_email(email: &str) -> String {
    match email.rsplit_once('@') {
        Some((local, domain)) => format!("{}@{domain}", mask_tail(local)),
        None => mask_tail(email),
    }
}

/// Keeps `+`, the country calling code and the first ⌊n/2⌋ digits of the national
/// significant number: `+85251001234` → `+8525100****`.
pub fn mask_phone(phone: &str) -> String {
    match split_country_code(phone) {
        Some((code, national)) => format!("+{code}{}", mask_tail(&national)),
        // Not a number we can parse: no country code known, so mask the second half of the
        // whole value rather than reveal it.
        None => mask_tail(phone),
    }
}

/// The calling code and national significant number (with Italian-style leading zeros).
fn split_country_code(phone: &str) -> Option<(u16, String)> {
    let number = phonenumber::parse(None, phone.trim()).ok()?;
    Some((number.code().value(), number.national().to_string()))
}

/// First ⌊n/2⌋ characters kept, the rest replaced by `*` one for one.
fn mask_tail(s: &str) -> String {
    let n = s.chars().count();
    s.chars()
        .enumerate()
        .map(|(i, c)| if i < n / 2 { c } else { '*' })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn email_spec_example() {
        assert_eq!(mask_email("user@example.com"), "us**@example.com");
    }

    #[test]
    fn email_odd_and_short_local_parts() {
        assert_eq!(mask_email("alice@example.com"), "al***@example.com");
        assert_eq!(mask_email("a@example.com"), "*@example.com");
        assert_eq!(mask_email("ab@example.com"), "a*@example.com");
        // Characters, not bytes.
        assert_eq!(mask_email("äöüß@example.de"), "äö**@example.de");
    }

    #[test]
    fn email_without_at() {
        assert_eq!(mask_email("jdoe"), "jd**");
        assert_eq!(mask_email(""), "");
    }

    #[test]
    fn phone_spec_example() {
        assert_eq!(mask_phone("+85251001234"), "+8525100****");
    }

    #[test]
    fn phone_other_countries() {
        // US: code 1, NSN 4155552671 (10) → keep 5.
        assert_eq!(mask_phone("+14155552671"), "+141555*****");
        // UK: code 44, NSN 7400123456 (10).
        assert_eq!(mask_phone("+447400123456"), "+4474001*****");
        // Italy: the leading 0 belongs to the NSN 0612345678 (10).
        assert_eq!(mask_phone("+390612345678"), "+3906123*****");
    }

    #[test]
    fn phone_fallback_when_unparsable() {
        assert_eq!(mask_phone("12345678"), "1234****");
        assert_eq!(mask_phone(""), "");
    }
}
