//! Value formats of flow-config.md 3 and small value types of the config: secrets,
//! origins, URLs, IP ranges, regular expressions, encryption keys.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use base64::Engine as _;
use serde::de::{Deserializer, Error};
use serde::{Deserialize, Serialize};

use super::problem::quote;

/// A secret from the config (passwords, client secrets, keys): `Debug` never shows it.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// `http(s)://host[:port]` without path, query or fragment, one trailing `/` removed;
/// returned in canonical form (lowercase host, default port dropped).
pub fn parse_origin(text: &str) -> Result<String, String> {
    let bad = || {
        format!(
            "must be an origin such as https://auth.example.com (got {})",
            quote(text)
        )
    };
    let url = url::Url::parse(text).map_err(|_| bad())?;
    let trimmed = text.strip_suffix('/').unwrap_or(text);
    let plain = matches!(url.scheme(), "http" | "https")
        && url.host_str().is_some()
        && url.username().is_empty()
        && url.password().is_none()
        && url.path() == "/"
        && url.query().is_none()
        && url.fragment().is_none()
        && !trimmed.ends_with('/');
    if !plain {
        return Err(bad());
    }
    Ok(url.origin().ascii_serialization())
}

/// An absolute URL with scheme and host; `schemes` empty = any scheme.
pub fn parse_url(text: &str, schemes: &[&str]) -> Result<url::Url, String> {
    let url = url::Url::parse(text)
        .map_err(|_| format!("must be an absolute URL (got {})", quote(text)))?;
    if !schemes.is_empty() && !schemes.contains(&url.scheme()) {
        return Err(format!(
            "must be a {} URL (got {})",
            schemes.join(" or "),
            quote(text)
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(format!(
            "must be an absolute URL with a host (got {})",
            quote(text)
        ));
    }
    Ok(url)
}

/// An absolute URI, custom schemes allowed (`com.example.app:/callback`).
pub fn parse_absolute_uri(text: &str) -> Result<url::Url, String> {
    url::Url::parse(text).map_err(|_| format!("must be an absolute URI (got {})", quote(text)))
}

/// `host:port`: an IP socket address (`127.0.0.1:3000`, `[::1]:3000`) or a host name
/// with a port (`localhost:3000`).
pub fn parse_listen(text: &str) -> Result<String, String> {
    let bad = || {
        format!(
            "must be host:port such as 127.0.0.1:3000 or [::1]:3000 (got {})",
            quote(text)
        )
    };
    if SocketAddr::from_str(text).is_ok() {
        return Ok(text.to_string());
    }
    let (host, port) = text.rsplit_once(':').ok_or_else(bad)?;
    let host_ok = !host.is_empty()
        && host
            .split('.')
            .all(|l| !l.is_empty() && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'));
    if !host_ok || port.parse::<u16>().is_err() {
        return Err(bad());
    }
    Ok(text.to_string())
}

/// The default `public_origin` of a listen address (4.1).
pub fn origin_of_listen(listen: &str) -> String {
    let host_port = match SocketAddr::from_str(listen) {
        Ok(SocketAddr::V4(a)) if a.ip().is_unspecified() => format!("127.0.0.1:{}", a.port()),
        Ok(SocketAddr::V6(a)) if a.ip().is_unspecified() => format!("[::1]:{}", a.port()),
        _ => listen.to_string(),
    };
    format!("http://{host_port}")
}

/// Whether a listen address binds only loopback (`serve` warns otherwise when
/// `public_origin` is defaulted).
pub fn listen_is_loopback(listen: &str) -> bool {
    match SocketAddr::from_str(listen) {
        Ok(a) => a.ip().is_loopback(),
        Err(_) => listen
            .rsplit_once(':')
            .is_some_and(|(h, _)| h == "localhost"),
    }
}

/// An IP address or CIDR range of `server.trusted_proxies`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNet {
    pub addr: IpAddr,
    pub prefix_len: u8,
}

impl IpNet {
    pub fn contains(&self, ip: &IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix_len))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(*ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix_len))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(*ip) & mask
            }
            _ => false,
        }
    }
}

impl FromStr for IpNet {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let bad = || format!("must be an IP address or CIDR range (got {})", quote(text));
        let (addr, prefix) = match text.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text, None),
        };
        let addr = IpAddr::from_str(addr).map_err(|_| bad())?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix_len = match prefix {
            Some(p) => p.parse::<u8>().ok().filter(|p| *p <= max).ok_or_else(bad)?,
            None => max,
        };
        Ok(IpNet { addr, prefix_len })
    }
}

impl<'de> Deserialize<'de> for IpNet {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(D::Error::custom)
    }
}

/// A regular expression (RE2 syntax, unanchored) of `test_mode`.
#[derive(Debug, Clone)]
pub struct Pattern(pub regex::Regex);

impl Pattern {
    pub fn is_match(&self, text: &str) -> bool {
        self.0.is_match(text)
    }
}

impl PartialEq for Pattern {
    fn eq(&self, other: &Self) -> bool {
        self.0.as_str() == other.0.as_str()
    }
}

impl<'de> Deserialize<'de> for Pattern {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        regex::Regex::new(&s).map(Pattern).map_err(|e| {
            let reason = e.to_string();
            let last = reason.lines().last().unwrap_or("").trim().to_string();
            D::Error::custom(format!("invalid regular expression {}: {last}", quote(&s)))
        })
    }
}

/// Decodes `secrets.encryption_key`: 32 bytes as base64 (standard or URL-safe,
/// padding optional) or 64 hex digits.
pub fn decode_encryption_key(text: &str) -> Result<[u8; 32], String> {
    let bad = || "must be 32 bytes as base64 or 64 hex digits".to_string();
    if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
        let bytes = hex::decode(text).map_err(|_| bad())?;
        return bytes.try_into().map_err(|_| bad());
    }
    let unpadded = text.trim_end_matches('=');
    let engines = [
        base64::engine::general_purpose::STANDARD_NO_PAD,
        base64::engine::general_purpose::URL_SAFE_NO_PAD,
    ];
    engines
        .iter()
        .find_map(|e| e.decode(unpadded).ok())
        .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
        .ok_or_else(bad)
}

/// A secret whose format is an encryption key (checked, kept as given).
pub(crate) fn encryption_key<'de, D: Deserializer<'de>>(d: D) -> Result<Secret, D::Error> {
    let s = Secret::deserialize(d)?;
    decode_encryption_key(s.expose()).map_err(D::Error::custom)?;
    Ok(s)
}

/// `deserialize_with` adapters for the formats above.
pub(crate) mod with {
    use super::*;

    pub fn origin<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
        parse_origin(&String::deserialize(d)?).map_err(D::Error::custom)
    }

    pub fn opt_origin<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
        origin(d).map(Some)
    }

    #[derive(Deserialize)]
    #[serde(transparent)]
    struct Origin(#[serde(deserialize_with = "origin")] String);

    pub fn origins<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
        Ok(Vec::<Origin>::deserialize(d)?
            .into_iter()
            .map(|o| o.0)
            .collect())
    }

    pub fn listen<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
        parse_listen(&String::deserialize(d)?).map_err(D::Error::custom)
    }

    pub fn http_url<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
        let s = String::deserialize(d)?;
        parse_url(&s, &["http", "https"]).map_err(D::Error::custom)?;
        Ok(s)
    }

    pub fn opt_http_url<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
        http_url(d).map(Some)
    }

    pub fn opt_url<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
        let s = String::deserialize(d)?;
        parse_url(&s, &[]).map_err(D::Error::custom)?;
        Ok(Some(s))
    }

    #[derive(Deserialize)]
    #[serde(transparent)]
    struct Uri(#[serde(deserialize_with = "absolute_uri")] String);

    fn absolute_uri<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
        let s = String::deserialize(d)?;
        parse_absolute_uri(&s).map_err(D::Error::custom)?;
        Ok(s)
    }

    pub fn absolute_uris<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
        Ok(Vec::<Uri>::deserialize(d)?
            .into_iter()
            .map(|u| u.0)
            .collect())
    }

    pub fn opt_absolute_uris<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Vec<String>>, D::Error> {
        absolute_uris(d).map(Some)
    }

    pub fn opt_encryption_key<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Secret>, D::Error> {
        encryption_key(d).map(Some)
    }

    #[derive(Deserialize)]
    #[serde(transparent)]
    struct Key(#[serde(deserialize_with = "encryption_key")] Secret);

    pub fn encryption_keys<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Secret>, D::Error> {
        Ok(Vec::<Key>::deserialize(d)?
            .into_iter()
            .map(|k| k.0)
            .collect())
    }
}

/// Names of flows and steps (3): `^[a-zA-Z_][a-zA-Z0-9_]*$`.
pub fn is_valid_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Serialize-only helper so enums can be named in messages.
pub(crate) fn enum_text<T: Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => s,
        Ok(other) => other.to_string(),
        Err(_) => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins() {
        assert_eq!(
            parse_origin("https://auth.example.com/").unwrap(),
            "https://auth.example.com"
        );
        assert_eq!(
            parse_origin("http://127.0.0.1:3000").unwrap(),
            "http://127.0.0.1:3000"
        );
        for bad in [
            "https://a.example.com/x",
            "https://a.example.com?x=1",
            "ftp://a.example.com",
            "a.example.com",
            "https://a.example.com//",
        ] {
            assert!(parse_origin(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn listen_and_default_origin() {
        assert!(parse_listen("0.0.0.0:3000").is_ok());
        assert!(parse_listen("[::1]:3000").is_ok());
        assert!(parse_listen("localhost:8080").is_ok());
        assert!(parse_listen("3000").is_err());
        assert!(parse_listen("::1:3000").is_err());
        assert_eq!(origin_of_listen("0.0.0.0:3000"), "http://127.0.0.1:3000");
        assert_eq!(origin_of_listen("[::]:80"), "http://[::1]:80");
        assert_eq!(origin_of_listen("10.1.2.3:3000"), "http://10.1.2.3:3000");
        assert!(listen_is_loopback("127.0.0.1:3000"));
        assert!(!listen_is_loopback("0.0.0.0:3000"));
    }

    #[test]
    fn ip_nets() {
        let net: IpNet = "10.0.0.0/8".parse().unwrap();
        assert!(net.contains(&"10.9.8.7".parse().unwrap()));
        assert!(!net.contains(&"11.0.0.1".parse().unwrap()));
        let one: IpNet = "::1".parse().unwrap();
        assert!(one.contains(&"::1".parse().unwrap()));
        let all: IpNet = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains(&"1.2.3.4".parse().unwrap()));
        assert!("10.0.0.0/33".parse::<IpNet>().is_err());
    }

    #[test]
    fn encryption_keys() {
        let hex = "00".repeat(32);
        assert_eq!(decode_encryption_key(&hex).unwrap(), [0u8; 32]);
        let b64 = base64::engine::general_purpose::STANDARD.encode([7u8; 32]);
        assert_eq!(decode_encryption_key(&b64).unwrap(), [7u8; 32]);
        let url = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode([255u8; 32]);
        assert_eq!(decode_encryption_key(&url).unwrap(), [255u8; 32]);
        assert!(decode_encryption_key("short").is_err());
    }

    #[test]
    fn secrets_hide_in_debug() {
        assert_eq!(format!("{:?}", Secret::new("pw")), "***");
    }
}
