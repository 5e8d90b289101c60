//! Token verification with pinned algorithms.
//!
//! HS256 tokens are checked against the configured secret; RS256 and ES256 tokens against
//! the JWKS key their `kid` names, and only with the algorithm that key is for. A token can
//! therefore never pick its own algorithm: an HS256 token "signed" with an RSA public key,
//! or an `alg: none` token, is refused before any signature is looked at.
//!
//! A token that passed is remembered, by its exact text, for at most [`RECHECK_AFTER`]: a
//! client sends the same token with every request until it expires, and looking it up costs
//! a fraction of checking its signature again. The remembered claims still expire at their
//! `exp`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode, decode_header};
use serde::Deserialize;

use super::AuthError;
use super::jwks::JwksCache;

/// How tokens are verified. At least one of the two key sources must be configured.
#[derive(Clone, Debug, Default)]
pub struct JwtConfig {
    /// HS256 shared secret, for local development and tests.
    pub hs256_secret: Option<String>,
    /// JWKS endpoint for RS256/ES256 tokens (Cognito, Auth0) in production.
    pub jwks_url: Option<String>,
    pub issuer: Option<String>,
    pub audience: Option<String>,
}

/// The claims Herald reads. `exp` and `sub` are required.
#[derive(Debug, Clone, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub exp: u64,
    /// The tenant a token may name for itself; still checked against `tenant_members`.
    #[serde(default)]
    pub tenant_id: Option<String>,
}

/// How long a verified token is taken on trust before its signature is checked again; it
/// bounds how long a token signed with a key since withdrawn from the JWKS still passes.
pub const RECHECK_AFTER: Duration = Duration::from_secs(60);
/// Tokens remembered at most; a flood of distinct tokens only empties the memory.
const REMEMBERED: usize = 1024;
/// Seconds of clock skew allowed on `exp`.
const LEEWAY: u64 = 30;

pub struct Verifier {
    hs256: Option<DecodingKey>,
    jwks: Option<JwksCache>,
    issuer: Option<String>,
    audience: Option<String>,
    verified: Mutex<HashMap<Box<str>, (Claims, Instant)>>,
}

impl Verifier {
    pub fn new(config: &JwtConfig) -> Self {
        Verifier {
            hs256: config
                .hs256_secret
                .as_ref()
                .map(|s| DecodingKey::from_secret(s.as_bytes())),
            jwks: config.jwks_url.clone().map(JwksCache::new),
            issuer: config.issuer.clone(),
            audience: config.audience.clone(),
            verified: Mutex::new(HashMap::new()),
        }
    }

    pub async fn verify(&self, token: &str) -> Result<Claims, AuthError> {
        self.verify_at(token, Instant::now(), unix_now()).await
    }

    /// [`Verifier::verify`] at a given moment (`now` for the memory, `unix_now` for `exp`).
    async fn verify_at(
        &self,
        token: &str,
        now: Instant,
        unix_now: u64,
    ) -> Result<Claims, AuthError> {
        if let Some(claims) = self.remembered(token, now, unix_now)? {
            return Ok(claims);
        }
        let claims = self.check(token).await?;
        let mut verified = self.verified.lock().expect("verified tokens");
        if verified.len() >= REMEMBERED {
            verified.retain(|_, (_, at)| now.duration_since(*at) < RECHECK_AFTER);
            if verified.len() >= REMEMBERED {
                verified.clear();
            }
        }
        verified.insert(token.into(), (claims.clone(), now));
        Ok(claims)
    }

    /// The claims of `token` if it passed lately; `Expired` once its `exp` has passed.
    fn remembered(
        &self,
        token: &str,
        now: Instant,
        unix_now: u64,
    ) -> Result<Option<Claims>, AuthError> {
        let verified = self.verified.lock().expect("verified tokens");
        match verified.get(token) {
            Some((claims, at)) if now.duration_since(*at) < RECHECK_AFTER => {
                if claims.exp.saturating_add(LEEWAY) <= unix_now {
                    return Err(AuthError::Expired);
                }
                Ok(Some(claims.clone()))
            }
            _ => Ok(None),
        }
    }

    /// Checks the token's algorithm, signature and claims.
    async fn check(&self, token: &str) -> Result<Claims, AuthError> {
        let header = decode_header(token).map_err(|_| AuthError::Malformed)?;
        let key = match header.alg {
            Algorithm::HS256 => self.hs256.clone().ok_or(AuthError::Algorithm)?,
            Algorithm::RS256 | Algorithm::ES256 => {
                let jwks = self.jwks.as_ref().ok_or(AuthError::Algorithm)?;
                let kid = header.kid.as_deref().ok_or(AuthError::UnknownKey)?;
                jwks.key(kid, header.alg).await?
            }
            _ => return Err(AuthError::Algorithm),
        };

        let mut validation = Validation::new(header.alg);
        // jsonwebtoken checks `iss` and `aud` only when present; a configured one must be
        // present too, or a token could pass by leaving it out.
        let mut required = vec!["exp", "sub"];
        required.extend(self.issuer.as_ref().map(|_| "iss"));
        required.extend(self.audience.as_ref().map(|_| "aud"));
        validation.set_required_spec_claims(&required);
        validation.leeway = LEEWAY;
        match &self.issuer {
            Some(iss) => validation.set_issuer(&[iss]),
            None => validation.iss = None,
        }
        match &self.audience {
            Some(aud) => validation.set_audience(&[aud]),
            None => validation.validate_aud = false,
        }

        let claims = decode::<Claims>(token, &key, &validation)
            .map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => AuthError::Expired,
                jsonwebtoken::errors::ErrorKind::InvalidAlgorithm => AuthError::Algorithm,
                _ => AuthError::Invalid(e.to_string()),
            })?
            .claims;
        if claims.sub.trim().is_empty() || claims.sub.len() > 255 {
            return Err(AuthError::Invalid("sub must be 1 to 255 characters".into()));
        }
        Ok(claims)
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{EncodingKey, Header, encode};

    const SECRET: &str = "jwt-unit-test-secret";

    fn verifier() -> Verifier {
        Verifier::new(&JwtConfig {
            hs256_secret: Some(SECRET.to_owned()),
            ..JwtConfig::default()
        })
    }

    fn token(secret: &str, exp: u64) -> String {
        let claims = serde_json::json!({ "sub": "user-1", "exp": exp });
        let key = EncodingKey::from_secret(secret.as_bytes());
        encode(&Header::new(Algorithm::HS256), &claims, &key).unwrap()
    }

    #[tokio::test]
    async fn a_verified_token_is_remembered_until_its_exp() {
        let v = verifier();
        let (now, unix) = (Instant::now(), unix_now());
        let exp = unix + 100;
        let good = token(SECRET, exp);
        assert_eq!(v.verify_at(&good, now, unix).await.unwrap().sub, "user-1");
        assert!(v.remembered(&good, now, unix).unwrap().is_some());
        // Past exp and the leeway, the remembered token is refused without a new check.
        let later = now + Duration::from_secs(1);
        assert!(matches!(
            v.verify_at(&good, later, exp + LEEWAY).await,
            Err(AuthError::Expired)
        ));
    }

    #[tokio::test]
    async fn only_tokens_that_passed_are_remembered_and_only_for_a_while() {
        let v = verifier();
        let (now, unix) = (Instant::now(), unix_now());
        let forged = token("another-secret", unix + 100);
        assert!(v.verify_at(&forged, now, unix).await.is_err());
        assert!(v.remembered(&forged, now, unix).unwrap().is_none());
        assert!(v.verify_at(&forged, now, unix).await.is_err());

        let good = token(SECRET, unix + 1000);
        v.verify_at(&good, now, unix).await.unwrap();
        let after = now + RECHECK_AFTER;
        assert!(v.remembered(&good, after, unix).unwrap().is_none());
        // Checked again, and remembered afresh.
        v.verify_at(&good, after, unix).await.unwrap();
        assert!(v.remembered(&good, after, unix).unwrap().is_some());
    }

    #[tokio::test]
    async fn the_memory_stays_bounded() {
        let v = verifier();
        let (now, unix) = (Instant::now(), unix_now());
        for i in 0..(REMEMBERED as u64 + 10) {
            v.verify_at(&token(SECRET, unix + 1000 + i), now, unix)
                .await
                .unwrap();
        }
        assert!(v.verified.lock().unwrap().len() <= REMEMBERED);
    }
}
