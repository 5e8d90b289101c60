//! Token verification with pinned algorithms.
//!
//! HS256 tokens are checked against the configured secret; RS256 and ES256 tokens against
//! the JWKS key their `kid` names, and only with the algorithm that key is for. A token can
//! therefore never pick its own algorithm: an HS256 token "signed" with an RSA public key,
//! or an `alg: none` token, is refused before any signature is looked at.

use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode, decode_header};
use serde::Deserialize;

use super::AuthError;
use super::jwks::JwksCache;
use crate::config::JwtConfig;

/// The claims Herald reads. `exp` and `sub` are required.
#[derive(Debug, Clone, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub exp: u64,
    /// The tenant a token may name for itself; still checked against `tenant_members`.
    #[serde(default)]
    pub tenant_id: Option<String>,
}

pub struct Verifier {
    hs256: Option<DecodingKey>,
    jwks: Option<JwksCache>,
    issuer: Option<String>,
    audience: Option<String>,
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
        }
    }

    pub async fn verify(&self, token: &str) -> Result<Claims, AuthError> {
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
        validation.leeway = 30;
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
