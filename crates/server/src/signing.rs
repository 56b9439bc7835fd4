//! Token signing keys (RS256 and ES256), kept in the database so replicas agree.
//!
//! Rotation scheme: time is cut into periods of `oauth.signing_keys.rotation_period`
//! (period `p` = `floor(unix_time / rotation_period)`). Each algorithm has one key per
//! period, stored as PKCS#8 PEM under the server secret `oauth_signing_key:<ALG>:<p>`
//! (inserted only if absent, so concurrent starts agree). Tokens are signed with the key
//! of the current period; the JWKS publishes the keys of `p - 1` (tokens it signed are
//! still valid: every token lifetime is far below a period), `p` and `p + 1` (published
//! before use, so clients caching the JWKS know it when the period turns). A background
//! task reloads the set from time to time; `kid` = `<alg>-<p>-<hash of public key>`.

use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use p256::pkcs8::{DecodePrivateKey as _, EncodePrivateKey as _};
use rsa::traits::PublicKeyParts as _;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use authflow_core::store::{Database, StoreError};

/// The default `oauth.signing_keys.rotation_period` (90 days).
pub const DEFAULT_ROTATION_PERIOD: Duration = Duration::from_secs(2160 * 3600);

const ALGORITHMS: [Algorithm; 2] = [Algorithm::RS256, Algorithm::ES256];

#[derive(Debug, thiserror::Error)]
pub enum SigningError {
    #[error("signing keys: {0}")]
    Store(#[from] StoreError),
    #[error("unsupported signing algorithm {0:?} (RS256 or ES256)")]
    Algorithm(String),
    #[error("signing key generation failed: {0}")]
    KeyGen(String),
    #[error("stored signing key {0} is unreadable")]
    BadKey(String),
    #[error("no signing key for the current period")]
    NoKey,
    #[error("cannot sign: {0}")]
    Sign(String),
    #[error("token signature or format is invalid")]
    Invalid,
    #[error("token has expired")]
    Expired,
}

struct KeyPair {
    kid: String,
    alg: Algorithm,
    period: u64,
    encoding: EncodingKey,
    decoding: DecodingKey,
    jwk: Value,
}

/// The published key set and the configured signing algorithm.
pub struct SigningKeys {
    algorithm: Algorithm,
    rotation_secs: u64,
    keys: RwLock<Arc<Vec<KeyPair>>>,
}

impl SigningKeys {
    /// Load (creating when absent) the keys with the default rotation period.
    pub async fn load_or_create(
        db: &dyn Database,
        algorithm: &str,
    ) -> Result<SigningKeys, SigningError> {
        Self::load_with_rotation(db, algorithm, DEFAULT_ROTATION_PERIOD).await
    }

    /// Load (creating when absent) the keys of the periods around now.
    pub async fn load_with_rotation(
        db: &dyn Database,
        algorithm: &str,
        rotation_period: Duration,
    ) -> Result<SigningKeys, SigningError> {
        let algorithm = parse_algorithm(algorithm)?;
        let keys = SigningKeys {
            algorithm,
            rotation_secs: rotation_period.as_secs().max(1),
            keys: RwLock::new(Arc::new(Vec::new())),
        };
        keys.refresh(db).await?;
        Ok(keys)
    }

    /// The configured signing algorithm (`RS256` or `ES256`), for discovery.
    pub fn algorithm(&self) -> &'static str {
        alg_name(self.algorithm)
    }

    /// Reload the key set for the periods around now (creating missing keys).
    pub async fn refresh(&self, db: &dyn Database) -> Result<(), SigningError> {
        let current = self.current_period();
        let periods = [current.saturating_sub(1), current, current + 1];
        let mut loaded = Vec::new();
        for alg in ALGORITHMS {
            loaded.extend(load_algorithm(db, alg, &periods).await?);
        }
        *self.keys.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(loaded);
        Ok(())
    }

    /// Refresh every `interval` (a tenth of the rotation period, at most an hour).
    pub fn spawn_refresh(self: &Arc<Self>, db: Arc<dyn Database>) -> tokio::task::JoinHandle<()> {
        let keys = Arc::clone(self);
        let interval = Duration::from_secs((keys.rotation_secs / 10).clamp(1, 3600));
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(interval).await;
                if let Err(e) = keys.refresh(db.as_ref()).await {
                    tracing::warn!(error = %e, "reloading signing keys failed");
                }
            }
        })
    }

    /// Sign `claims` with the current key of the configured algorithm (`typ: JWT`).
    pub fn sign(&self, claims: &Value) -> Result<String, SigningError> {
        self.sign_typed("JWT", claims)
    }

    /// Sign with an explicit `typ` header (`at+jwt` for access tokens, RFC 9068).
    pub fn sign_typed(&self, typ: &str, claims: &Value) -> Result<String, SigningError> {
        let keys = self.snapshot();
        let key = self.current_key(&keys).ok_or(SigningError::NoKey)?;
        let mut header = Header::new(key.alg);
        header.typ = Some(typ.to_string());
        header.kid = Some(key.kid.clone());
        jsonwebtoken::encode(&header, claims, &key.encoding)
            .map_err(|e| SigningError::Sign(e.to_string()))
    }

    /// Check the signature against any published key and `exp`; return the claims.
    pub fn verify(&self, token: &str) -> Result<Value, SigningError> {
        self.verify_with(token, true)
    }

    /// Check only the signature (an expired `id_token_hint` still names its user).
    pub fn verify_signature(&self, token: &str) -> Result<Value, SigningError> {
        self.verify_with(token, false)
    }

    fn verify_with(&self, token: &str, check_exp: bool) -> Result<Value, SigningError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| SigningError::Invalid)?;
        let keys = self.snapshot();
        let key = keys
            .iter()
            .find(|k| header.kid.as_deref() == Some(k.kid.as_str()) && k.alg == header.alg)
            .ok_or(SigningError::Invalid)?;
        let mut validation = Validation::new(key.alg);
        validation.validate_aud = false;
        validation.leeway = 0;
        validation.validate_exp = check_exp;
        validation.set_required_spec_claims(if check_exp { &["exp"] } else { &[] });
        match jsonwebtoken::decode::<Value>(token, &key.decoding, &validation) {
            Ok(data) => Ok(data.claims),
            Err(e) if matches!(e.kind(), jsonwebtoken::errors::ErrorKind::ExpiredSignature) => {
                Err(SigningError::Expired)
            }
            Err(_) => Err(SigningError::Invalid),
        }
    }

    /// The published public keys as a JWK Set (RFC 7517).
    pub fn jwks(&self) -> Value {
        let keys: Vec<Value> = self.snapshot().iter().map(|k| k.jwk.clone()).collect();
        json!({ "keys": keys })
    }

    fn snapshot(&self) -> Arc<Vec<KeyPair>> {
        self.keys.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn current_period(&self) -> u64 {
        unix_now() / self.rotation_secs
    }

    /// The key of the current period, else the newest one not in the future.
    fn current_key<'a>(&self, keys: &'a [KeyPair]) -> Option<&'a KeyPair> {
        let current = self.current_period();
        keys.iter()
            .filter(|k| k.alg == self.algorithm && k.period <= current)
            .max_by_key(|k| k.period)
    }
}

fn parse_algorithm(name: &str) -> Result<Algorithm, SigningError> {
    match name {
        "RS256" => Ok(Algorithm::RS256),
        "ES256" => Ok(Algorithm::ES256),
        other => Err(SigningError::Algorithm(other.to_string())),
    }
}

fn alg_name(alg: Algorithm) -> &'static str {
    match alg {
        Algorithm::ES256 => "ES256",
        _ => "RS256",
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn secret_name(alg: Algorithm, period: u64) -> String {
    format!("oauth_signing_key:{}:{period}", alg_name(alg))
}

/// Load the keys of `periods`; a fresh candidate is generated only after the previous
/// one was stored, so a restart with every key present generates one key per algorithm.
async fn load_algorithm(
    db: &dyn Database,
    alg: Algorithm,
    periods: &[u64],
) -> Result<Vec<KeyPair>, SigningError> {
    let mut out = Vec::with_capacity(periods.len());
    let mut candidate = generate(alg).await?;
    for &period in periods {
        let name = secret_name(alg, period);
        let stored = db.get_or_insert_server_secret(&name, &candidate).await?;
        if stored == candidate {
            candidate = generate(alg).await?;
        }
        out.push(parse_key(alg, period, &name, &stored)?);
    }
    Ok(out)
}

/// A new private key as PKCS#8 PEM (RSA 2048 or P-256), generated off the runtime.
async fn generate(alg: Algorithm) -> Result<String, SigningError> {
    tokio::task::spawn_blocking(move || generate_blocking(alg))
        .await
        .map_err(|e| SigningError::KeyGen(e.to_string()))?
}

fn generate_blocking(alg: Algorithm) -> Result<String, SigningError> {
    let mut rng = rsa::rand_core::OsRng;
    let pem = match alg {
        Algorithm::ES256 => p256::SecretKey::random(&mut rng)
            .to_pkcs8_pem(Default::default())
            .map_err(|e| SigningError::KeyGen(e.to_string()))?,
        _ => rsa::RsaPrivateKey::new(&mut rng, 2048)
            .map_err(|e| SigningError::KeyGen(e.to_string()))?
            .to_pkcs8_pem(Default::default())
            .map_err(|e| SigningError::KeyGen(e.to_string()))?,
    };
    Ok(pem.to_string())
}

fn parse_key(alg: Algorithm, period: u64, name: &str, pem: &str) -> Result<KeyPair, SigningError> {
    let bad = || SigningError::BadKey(name.to_string());
    let (encoding, public) = match alg {
        Algorithm::ES256 => (
            EncodingKey::from_ec_pem(pem.as_bytes()).map_err(|_| bad())?,
            ec_public(pem).ok_or_else(bad)?,
        ),
        _ => (
            EncodingKey::from_rsa_pem(pem.as_bytes()).map_err(|_| bad())?,
            rsa_public(pem).ok_or_else(bad)?,
        ),
    };
    let digest = Sha256::digest(public.fingerprint_input().as_bytes());
    let kid = format!(
        "{}-{period}-{}",
        alg_name(alg).to_ascii_lowercase(),
        &hex::encode(digest)[..12]
    );
    let decoding = public.decoding_key().map_err(|_| bad())?;
    let jwk = public.jwk(&kid, alg);
    Ok(KeyPair {
        kid,
        alg,
        period,
        encoding,
        decoding,
        jwk,
    })
}

/// Public key components, base64url (RFC 7518 6.2 and 6.3).
enum PublicKey {
    Rsa { n: String, e: String },
    Ec { x: String, y: String },
}

impl PublicKey {
    fn fingerprint_input(&self) -> String {
        match self {
            PublicKey::Rsa { n, e } => format!("RSA.{n}.{e}"),
            PublicKey::Ec { x, y } => format!("EC.{x}.{y}"),
        }
    }

    fn decoding_key(&self) -> Result<DecodingKey, jsonwebtoken::errors::Error> {
        match self {
            PublicKey::Rsa { n, e } => DecodingKey::from_rsa_components(n, e),
            PublicKey::Ec { x, y } => DecodingKey::from_ec_components(x, y),
        }
    }

    fn jwk(&self, kid: &str, alg: Algorithm) -> Value {
        let alg = alg_name(alg);
        match self {
            PublicKey::Rsa { n, e } => {
                json!({"kty": "RSA", "use": "sig", "alg": alg, "kid": kid, "n": n, "e": e})
            }
            PublicKey::Ec { x, y } => {
                json!({"kty": "EC", "use": "sig", "alg": alg, "kid": kid, "crv": "P-256", "x": x, "y": y})
            }
        }
    }
}

fn rsa_public(pem: &str) -> Option<PublicKey> {
    let key = rsa::RsaPrivateKey::from_pkcs8_pem(pem).ok()?;
    Some(PublicKey::Rsa {
        n: URL_SAFE_NO_PAD.encode(key.n().to_bytes_be()),
        e: URL_SAFE_NO_PAD.encode(key.e().to_bytes_be()),
    })
}

fn ec_public(pem: &str) -> Option<PublicKey> {
    let key = p256::SecretKey::from_pkcs8_pem(pem).ok()?;
    let point =
        p256::elliptic_curve::sec1::ToEncodedPoint::to_encoded_point(&key.public_key(), false);
    Some(PublicKey::Ec {
        x: URL_SAFE_NO_PAD.encode(point.x()?),
        y: URL_SAFE_NO_PAD.encode(point.y()?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_algorithms_sign_and_verify() {
        for alg in ALGORITHMS {
            let pem = generate_blocking(alg).unwrap();
            let key = parse_key(alg, 0, "test", &pem).unwrap();
            let keys = SigningKeys {
                algorithm: alg,
                rotation_secs: u64::MAX,
                keys: RwLock::new(Arc::new(vec![key])),
            };
            let exp = unix_now() + 60;
            let token = keys
                .sign_typed("at+jwt", &json!({"sub": "u", "exp": exp}))
                .unwrap();
            let header = jsonwebtoken::decode_header(&token).unwrap();
            assert_eq!(header.typ.as_deref(), Some("at+jwt"));
            assert_eq!(keys.verify(&token).unwrap()["sub"], "u");
            let expired = keys.sign(&json!({"exp": unix_now() - 10})).unwrap();
            assert!(matches!(keys.verify(&expired), Err(SigningError::Expired)));
            let mut tampered = token.clone();
            tampered.insert(token.find('.').unwrap() + 2, 'x');
            assert!(keys.verify(&tampered).is_err());
            assert_eq!(keys.jwks()["keys"][0]["kid"], header.kid.unwrap());
        }
    }

    #[tokio::test]
    async fn replicas_agree_and_rotation_keeps_the_previous_key_published() {
        let store = authflow_store::SqliteStore::connect("sqlite::memory:", 1)
            .await
            .unwrap();
        let period = Duration::from_secs(3);
        let first = SigningKeys::load_with_rotation(&store, "ES256", period)
            .await
            .unwrap();
        let replica = SigningKeys::load_with_rotation(&store, "ES256", period)
            .await
            .unwrap();
        // A period may have turned between the two loads: compare the keys both publish.
        let keys = |k: &SigningKeys| k.jwks()["keys"].as_array().unwrap().clone();
        let (a, b) = (keys(&first), keys(&replica));
        assert_eq!(a.len(), 6);
        let shared: Vec<_> = a.iter().filter(|k| b.contains(k)).collect();
        assert!(shared.len() >= 4, "replicas publish the same keys");
        for key in &a {
            let twin = b.iter().find(|o| o["kid"] == key["kid"]);
            assert!(twin.is_none_or(|t| t == key), "one key per kid");
        }
        let claims = json!({"sub": "u", "exp": unix_now() + 60});
        let old = first.sign(&claims).unwrap();
        assert!(replica.verify(&old).is_ok());

        let old_kid = jsonwebtoken::decode_header(&old).unwrap().kid;
        let start = first.current_period();
        while first.current_period() == start {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        first.refresh(&store).await.unwrap();
        let new = first.sign(&claims).unwrap();
        assert_ne!(
            jsonwebtoken::decode_header(&new).unwrap().kid,
            old_kid,
            "rotated"
        );
        assert!(
            first.verify(&old).is_ok(),
            "the previous key is still published"
        );
    }
}
