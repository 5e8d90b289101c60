//! Signing keys from a JWKS URL, cached for the life of the container.
//!
//! Keys are fetched on first use and kept for [`TTL`]. A token naming an unknown `kid`
//! triggers one refetch (key rotation), but never more than once per [`MIN_REFRESH`], so a
//! stream of forged `kid`s cannot turn into a stream of requests to the identity provider.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, JwkSet, KeyAlgorithm};
use jsonwebtoken::{Algorithm, DecodingKey};
use tokio::sync::{Mutex, RwLock};

use super::AuthError;

const TTL: Duration = Duration::from_secs(600);
const MIN_REFRESH: Duration = Duration::from_secs(30);

pub struct JwksCache {
    url: String,
    client: reqwest::Client,
    keys: RwLock<Keys>,
    refreshing: Mutex<()>,
}

#[derive(Default)]
struct Keys {
    by_kid: HashMap<String, (Algorithm, DecodingKey)>,
    fetched_at: Option<Instant>,
}

impl Keys {
    fn fresh(&self) -> bool {
        self.fetched_at.is_some_and(|t| t.elapsed() < TTL)
    }
}

impl JwksCache {
    pub fn new(url: String) -> Self {
        JwksCache {
            url,
            client: crate::net::client::outbound(Duration::from_secs(5)),
            keys: RwLock::new(Keys::default()),
            refreshing: Mutex::new(()),
        }
    }

    /// The key for `kid`, provided it is a key for `alg`.
    pub async fn key(&self, kid: &str, alg: Algorithm) -> Result<DecodingKey, AuthError> {
        {
            let keys = self.keys.read().await;
            if keys.fresh()
                && let Some(found) = keys.by_kid.get(kid)
            {
                return pinned(found, alg);
            }
        }

        let _guard = self.refreshing.lock().await;
        let recently = {
            let keys = self.keys.read().await;
            if keys.fresh()
                && let Some(found) = keys.by_kid.get(kid)
            {
                return pinned(found, alg);
            }
            keys.fetched_at.is_some_and(|t| t.elapsed() < MIN_REFRESH)
        };
        if recently {
            return Err(AuthError::UnknownKey);
        }
        let fetched = self.fetch().await?;
        let mut keys = self.keys.write().await;
        *keys = Keys {
            by_kid: fetched,
            fetched_at: Some(Instant::now()),
        };
        keys.by_kid
            .get(kid)
            .ok_or(AuthError::UnknownKey)
            .and_then(|found| pinned(found, alg))
    }

    async fn fetch(&self) -> Result<HashMap<String, (Algorithm, DecodingKey)>, AuthError> {
        let unavailable = |e: reqwest::Error| AuthError::KeysUnavailable(e.to_string());
        let set: JwkSet = self
            .client
            .get(&self.url)
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .map_err(unavailable)?
            .json()
            .await
            .map_err(unavailable)?;
        Ok(set
            .keys
            .iter()
            .filter_map(|jwk| {
                let kid = jwk.common.key_id.clone()?;
                let alg = match (&jwk.algorithm, jwk.common.key_algorithm) {
                    (AlgorithmParameters::RSA(_), None | Some(KeyAlgorithm::RS256)) => {
                        Algorithm::RS256
                    }
                    (AlgorithmParameters::EllipticCurve(ec), None | Some(KeyAlgorithm::ES256))
                        if ec.curve == EllipticCurve::P256 =>
                    {
                        Algorithm::ES256
                    }
                    // Anything else (symmetric keys above all) is not a key Herald accepts.
                    _ => return None,
                };
                let key = DecodingKey::from_jwk(jwk).ok()?;
                Some((kid, (alg, key)))
            })
            .collect())
    }
}

fn pinned(found: &(Algorithm, DecodingKey), alg: Algorithm) -> Result<DecodingKey, AuthError> {
    if found.0 == alg {
        Ok(found.1.clone())
    } else {
        Err(AuthError::Algorithm)
    }
}
