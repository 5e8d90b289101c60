//! Token verification with pinned algorithms.
//!
//! HS256 tokens are checked against the configured secret; RS256 and ES256 tokens against
//! the JWKS key their `kid` names, and only with the algorithm that key is for. A token can
//! therefore never pick its own algorithm: an HS256 token "signed" with an RSA public key,
//! or an `alg: none` token, is refused before any signature is looked at.
//!
//! Before anything else a token is measured ([`MAX_TOKEN_BYTES`]) and its `typ`, when it has
//! one, must say it is a JWT or an OAuth access token (RFC 9068): a token minted for another
//! purpose (a DPoP proof, a logout or security event token) is not a credential here.
//!
//! A token's times (`exp`, `nbf`, `iat`, RFC 7519 §4.1.4 to 4.1.6, each with [`LEEWAY`] of
//! clock skew) are checked in one place, [`check_times`], against the verifier's [`Clock`],
//! and are not left to jsonwebtoken's `validate_exp`/`validate_nbf`: those read the system
//! clock inside `decode` and cannot be given another, so a verifier with an adjusted clock
//! would judge a token's times by two clocks.
//!
//! A token that passed is remembered, by its exact text, for at most [`RECHECK_AFTER`]: a
//! client sends the same token with every request until it expires, and looking it up costs
//! a fraction of checking its signature again. The memory only saves the signature, key,
//! issuer and audience checks, which do not change with time: [`check_times`] is applied to
//! remembered claims on every use, so a remembered token is refused once past its `exp`.
//! Only tokens that passed are remembered: a token refused for its `nbf` is checked afresh
//! each time it is sent, and accepted once its `nbf` has come.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode, decode_header};
use serde::{Deserialize, Deserializer};

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

/// The claims Herald reads. `exp` and `sub` are required; `nbf` and `iat` are checked when
/// present. Times are NumericDates (seconds since the epoch, whole or not; a fraction is
/// dropped).
#[derive(Debug, Clone, Deserialize)]
pub struct Claims {
    pub sub: String,
    #[serde(deserialize_with = "numeric_date")]
    pub exp: u64,
    /// Not before: the token is refused until then.
    #[serde(default, deserialize_with = "optional_numeric_date")]
    pub nbf: Option<u64>,
    /// Issued at: a token issued later than now is refused.
    #[serde(default, deserialize_with = "optional_numeric_date")]
    pub iat: Option<u64>,
    /// The tenant a token may name for itself; still checked against `tenant_members`.
    #[serde(default)]
    pub tenant_id: Option<String>,
}

/// How long a verified token is taken on trust before its signature is checked again; it
/// bounds how long a token signed with a key since withdrawn from the JWKS still passes.
pub const RECHECK_AFTER: Duration = Duration::from_secs(60);
/// Tokens remembered at most; a flood of distinct tokens only empties the memory.
const REMEMBERED: usize = 1024;
/// Seconds of clock skew allowed on `exp`, `nbf` and `iat` alike.
pub const LEEWAY: u64 = 30;
/// The longest token looked at, in bytes. Identity providers' tokens are a few KiB at most
/// (Cognito's and Auth0's access tokens about 1 KiB, ID tokens with many groups a few), and
/// 8 KiB is also the longest header line common proxies pass by default (nginx's
/// `large_client_header_buffers`). Anything longer is refused before it is decoded, looked
/// up or sent for a key, and the memory of verified tokens, keyed by their text, stays
/// within `REMEMBERED` × 8 KiB (8 MiB).
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// The verifier's clock: the system's, or for tests the system's moved ahead on demand, so
/// that a token's `exp` or `nbf` can be passed without waiting for it.
#[derive(Clone, Debug, Default)]
pub struct Clock {
    /// Seconds this clock is ahead of the system's; `None` for the system clock itself.
    ahead: Option<Arc<AtomicU64>>,
}

impl Clock {
    pub fn system() -> Clock {
        Clock::default()
    }

    /// The system clock, moved ahead by every [`Clock::advance`] of it or of its clones.
    pub fn adjustable() -> Clock {
        Clock {
            ahead: Some(Arc::new(AtomicU64::new(0))),
        }
    }

    /// Moves an adjustable clock ahead by `by` (whole seconds).
    ///
    /// # Panics
    /// On the system clock, which is not to be moved.
    pub fn advance(&self, by: Duration) {
        self.ahead
            .as_ref()
            .expect("only an adjustable clock is advanced")
            .fetch_add(by.as_secs(), Ordering::SeqCst);
    }

    /// Now, as an instant (for the memory) and in seconds since the epoch (for the claims).
    fn now(&self) -> (Instant, u64) {
        let ahead = self.ahead.as_ref().map_or(0, |a| a.load(Ordering::SeqCst));
        (
            Instant::now() + Duration::from_secs(ahead),
            unix_now().saturating_add(ahead),
        )
    }
}

pub struct Verifier {
    hs256: Option<DecodingKey>,
    jwks: Option<JwksCache>,
    issuer: Option<String>,
    audience: Option<String>,
    verified: Mutex<HashMap<Box<str>, (Claims, Instant)>>,
    clock: Clock,
}

impl Verifier {
    pub fn new(config: &JwtConfig) -> Self {
        Self::with_clock(config, Clock::system())
    }

    /// A verifier that tells the time by `clock` (tests pass an adjustable one).
    pub fn with_clock(config: &JwtConfig, clock: Clock) -> Self {
        Verifier {
            hs256: config
                .hs256_secret
                .as_ref()
                .map(|s| DecodingKey::from_secret(s.as_bytes())),
            jwks: config.jwks_url.clone().map(JwksCache::new),
            issuer: config.issuer.clone(),
            audience: config.audience.clone(),
            verified: Mutex::new(HashMap::new()),
            clock,
        }
    }

    pub async fn verify(&self, token: &str) -> Result<Claims, AuthError> {
        let (now, unix_now) = self.clock.now();
        self.verify_at(token, now, unix_now).await
    }

    /// [`Verifier::verify`] at a given moment (`now` for the memory, `unix_now` for the
    /// token's times).
    async fn verify_at(
        &self,
        token: &str,
        now: Instant,
        unix_now: u64,
    ) -> Result<Claims, AuthError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(AuthError::TooLarge);
        }
        if let Some(claims) = self.remembered(token, now, unix_now)? {
            return Ok(claims);
        }
        let claims = self.check(token, unix_now).await?;
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

    /// The claims of `token` if it passed lately and its times still pass [`check_times`]
    /// (`Expired` once its `exp` has passed).
    fn remembered(
        &self,
        token: &str,
        now: Instant,
        unix_now: u64,
    ) -> Result<Option<Claims>, AuthError> {
        let verified = self.verified.lock().expect("verified tokens");
        match verified.get(token) {
            Some((claims, at)) if now.duration_since(*at) < RECHECK_AFTER => {
                check_times(claims, unix_now)?;
                Ok(Some(claims.clone()))
            }
            _ => Ok(None),
        }
    }

    /// Checks the token's type, algorithm, signature and claims, its times at `unix_now`.
    async fn check(&self, token: &str, unix_now: u64) -> Result<Claims, AuthError> {
        let header = decode_header(token).map_err(|_| AuthError::Malformed)?;
        if header.typ.as_deref().is_some_and(|typ| !accepted_type(typ)) {
            return Err(AuthError::Type);
        }
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
        // The times are checked by `check_times`, against this verifier's clock (see the
        // module's documentation); `exp` is still required above.
        validation.validate_exp = false;
        validation.validate_nbf = false;
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
                jsonwebtoken::errors::ErrorKind::InvalidAlgorithm => AuthError::Algorithm,
                _ => AuthError::Invalid(e.to_string()),
            })?
            .claims;
        if claims.sub.trim().is_empty() || claims.sub.len() > 255 {
            return Err(AuthError::Invalid("sub must be 1 to 255 characters".into()));
        }
        check_times(&claims, unix_now)?;
        Ok(claims)
    }
}

/// The token's times at `unix_now`, each with [`LEEWAY`]: refused once past its `exp`
/// (RFC 7519 §4.1.4), before its `nbf` (§4.1.5), or when issued (`iat`, §4.1.6) after now.
/// Applied both when a token is first verified and whenever its remembered claims are used.
fn check_times(claims: &Claims, unix_now: u64) -> Result<(), AuthError> {
    if claims.exp.saturating_add(LEEWAY) <= unix_now {
        return Err(AuthError::Expired);
    }
    let ahead = unix_now.saturating_add(LEEWAY);
    if claims.nbf.is_some_and(|nbf| nbf > ahead) {
        return Err(AuthError::NotYetValid);
    }
    if claims.iat.is_some_and(|iat| iat > ahead) {
        return Err(AuthError::IssuedInFuture);
    }
    Ok(())
}

/// Whether a `typ` header names a JWT (RFC 7519 §5.1) or a JWT access token (RFC 9068 §2.1):
/// `JWT` or `at+jwt`, media types compared without regard to case and with or without their
/// `application/` prefix (RFC 7515 §4.1.9).
fn accepted_type(typ: &str) -> bool {
    const PREFIX: &str = "application/";
    let bare = match typ.get(..PREFIX.len()) {
        Some(prefix) if prefix.eq_ignore_ascii_case(PREFIX) => &typ[PREFIX.len()..],
        _ => typ,
    };
    bare.eq_ignore_ascii_case("jwt") || bare.eq_ignore_ascii_case("at+jwt")
}

/// A NumericDate: seconds since the epoch, a whole number or not (RFC 7519 §2); a fraction
/// is dropped, which errs towards refusing for `exp` and by under a second for the others.
fn numeric_date<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
    let seconds = f64::deserialize(deserializer)?;
    if !seconds.is_finite() || seconds < 0.0 {
        return Err(serde::de::Error::custom(
            "a NumericDate is a non-negative number of seconds",
        ));
    }
    // Saturates beyond u64::MAX; whole seconds up to 2^53 are exact.
    Ok(seconds as u64)
}

fn optional_numeric_date<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<u64>, D::Error> {
    #[derive(Deserialize)]
    struct Wrapped(#[serde(deserialize_with = "numeric_date")] u64);
    Ok(Option::<Wrapped>::deserialize(deserializer)?.map(|Wrapped(seconds)| seconds))
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

    /// An HS256 token with the tests' secret over `claims`, its `typ` header `typ`.
    fn typed(typ: Option<&str>, claims: &serde_json::Value) -> String {
        let header = Header {
            typ: typ.map(str::to_owned),
            ..Header::new(Algorithm::HS256)
        };
        encode(
            &header,
            claims,
            &EncodingKey::from_secret(SECRET.as_bytes()),
        )
        .unwrap()
    }

    fn with_claims(claims: serde_json::Value) -> String {
        typed(Some("JWT"), &claims)
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

    #[tokio::test]
    async fn nbf_is_enforced_with_the_leeway_and_a_refusal_is_not_remembered() {
        let v = verifier();
        let (now, unix) = (Instant::now(), unix_now());
        let early = with_claims(
            serde_json::json!({ "sub": "user-1", "exp": unix + 7200, "nbf": unix + 3600 }),
        );
        assert!(matches!(
            v.verify_at(&early, now, unix).await,
            Err(AuthError::NotYetValid)
        ));
        assert!(v.remembered(&early, now, unix).unwrap().is_none());
        // Still refused just before its nbf less the leeway, accepted from then on.
        let before = unix + 3600 - LEEWAY - 1;
        assert!(matches!(
            v.verify_at(&early, now, before).await,
            Err(AuthError::NotYetValid)
        ));
        let then = now + Duration::from_secs(3600 - LEEWAY);
        v.verify_at(&early, then, unix + 3600 - LEEWAY)
            .await
            .unwrap();

        // Within the leeway: accepted at once; one second beyond it: refused.
        let skewed = with_claims(
            serde_json::json!({ "sub": "user-1", "exp": unix + 600, "nbf": unix + LEEWAY }),
        );
        v.verify_at(&skewed, now, unix).await.unwrap();
        let beyond = with_claims(
            serde_json::json!({ "sub": "user-1", "exp": unix + 600, "nbf": unix + LEEWAY + 1 }),
        );
        assert!(matches!(
            v.verify_at(&beyond, now, unix).await,
            Err(AuthError::NotYetValid)
        ));
    }

    #[tokio::test]
    async fn a_token_issued_in_the_future_is_refused() {
        let v = verifier();
        let (now, unix) = (Instant::now(), unix_now());
        let future = with_claims(
            serde_json::json!({ "sub": "user-1", "exp": unix + 7200, "iat": unix + 3600 }),
        );
        assert!(matches!(
            v.verify_at(&future, now, unix).await,
            Err(AuthError::IssuedInFuture)
        ));
        assert!(v.remembered(&future, now, unix).unwrap().is_none());
        let skewed = with_claims(
            serde_json::json!({ "sub": "user-1", "exp": unix + 600, "iat": unix + LEEWAY }),
        );
        v.verify_at(&skewed, now, unix).await.unwrap();
    }

    /// The memory saves the signature check, never the time checks: remembered claims are
    /// judged at the moment they are used.
    #[tokio::test]
    async fn remembered_claims_pass_every_time_check_again() {
        let v = verifier();
        let (now, unix) = (Instant::now(), unix_now());
        let good = with_claims(
            serde_json::json!({ "sub": "user-1", "exp": unix + 600, "nbf": unix, "iat": unix }),
        );
        v.verify_at(&good, now, unix).await.unwrap();
        // A clock stepped back an hour (NTP): before the nbf and the iat, remembered or not.
        assert!(matches!(
            v.remembered(&good, now, unix - 3600),
            Err(AuthError::NotYetValid)
        ));
        assert!(matches!(
            v.remembered(&good, now, unix + 600 + LEEWAY),
            Err(AuthError::Expired)
        ));
    }

    #[tokio::test]
    async fn an_adjustable_clock_expires_a_remembered_token() {
        let clock = Clock::adjustable();
        let v = Verifier::with_clock(
            &JwtConfig {
                hs256_secret: Some(SECRET.to_owned()),
                ..JwtConfig::default()
            },
            clock.clone(),
        );
        let good = token(SECRET, unix_now() + 5);
        v.verify(&good).await.unwrap();
        // Past exp and the leeway, but well within RECHECK_AFTER: the memory refuses it.
        clock.advance(Duration::from_secs(5 + LEEWAY + 1));
        assert!(matches!(v.verify(&good).await, Err(AuthError::Expired)));
    }

    #[tokio::test]
    async fn oversized_tokens_are_refused_before_they_are_decoded() {
        let v = verifier();
        let (now, unix) = (Instant::now(), unix_now());
        let padded = |bytes: usize| {
            with_claims(serde_json::json!({
                "sub": "user-1", "exp": unix + 600, "pad": "x".repeat(bytes)
            }))
        };
        // An otherwise valid token just under the cap passes; one just over it does not.
        let fits = padded(MAX_TOKEN_BYTES * 3 / 4 - 300);
        assert!((MAX_TOKEN_BYTES - 500..=MAX_TOKEN_BYTES).contains(&fits.len()));
        v.verify_at(&fits, now, unix).await.unwrap();
        let too_large = padded(MAX_TOKEN_BYTES * 3 / 4);
        assert!((MAX_TOKEN_BYTES + 1..MAX_TOKEN_BYTES + 1000).contains(&too_large.len()));
        assert!(matches!(
            v.verify_at(&too_large, now, unix).await,
            Err(AuthError::TooLarge)
        ));
        // Not even parsed: garbage of that size is TooLarge, not Malformed.
        let garbage = "x".repeat(MAX_TOKEN_BYTES + 1);
        assert!(matches!(
            v.verify_at(&garbage, now, unix).await,
            Err(AuthError::TooLarge)
        ));
    }

    #[test]
    fn typ_is_a_jwt_or_an_access_token() {
        for ok in [
            "JWT",
            "jwt",
            "application/jwt",
            "at+jwt",
            "AT+JWT",
            "application/at+jwt",
        ] {
            assert!(accepted_type(ok), "{ok}");
        }
        for refused in [
            "",
            "JWE",
            "dpop+jwt",
            "logout+jwt",
            "secevent+jwt",
            "application/",
            "JWT ",
        ] {
            assert!(!accepted_type(refused), "{refused:?}");
        }
    }

    #[tokio::test]
    async fn tokens_of_another_type_are_refused_and_untyped_ones_accepted() {
        let v = verifier();
        let (now, unix) = (Instant::now(), unix_now());
        let claims = serde_json::json!({ "sub": "user-1", "exp": unix + 600 });
        v.verify_at(&typed(None, &claims), now, unix).await.unwrap();
        v.verify_at(&typed(Some("at+jwt"), &claims), now, unix)
            .await
            .unwrap();
        assert!(matches!(
            v.verify_at(&typed(Some("dpop+jwt"), &claims), now, unix)
                .await,
            Err(AuthError::Type)
        ));
    }

    #[tokio::test]
    async fn numeric_dates_may_have_fractions() {
        let v = verifier();
        let (now, unix) = (Instant::now(), unix_now());
        let claims = serde_json::json!({
            "sub": "user-1", "exp": unix as f64 + 600.5, "iat": unix as f64 - 0.25, "nbf": unix as f64
        });
        let claims = v.verify_at(&with_claims(claims), now, unix).await.unwrap();
        assert_eq!(claims.exp, unix + 600);
        let negative = serde_json::json!({ "sub": "user-1", "exp": unix + 600, "nbf": -1 });
        assert!(matches!(
            v.verify_at(&with_claims(negative), now, unix).await,
            Err(AuthError::Invalid(_))
        ));
    }
}
