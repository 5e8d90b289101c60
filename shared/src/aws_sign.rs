//! AWS API calls as single SigV4-signed requests (aws-sigv4, the SDKs' own signer) through
//! reqwest, instead of SDK clients: Herald makes two kinds of call, Lambda `Invoke`
//! (kick.rs) and Secrets Manager's `GetSecretValue` (secrets.rs), and each SDK client added
//! one to one and a half megabytes to every bootstrap.
//!
//! Credentials, region and endpoints come from the environment as the SDKs read them in
//! Lambda: the execution role's `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`/
//! `AWS_SESSION_TOKEN`, which Lambda sets for the life of the execution environment.

use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;

pub type Error = Box<dyn std::error::Error + Send + Sync>;

/// Signs requests to one AWS service in one region as one identity.
#[derive(Clone)]
pub struct Signer {
    service: &'static str,
    region: String,
    credentials: Credentials,
}

/// Names the service and region only: the credentials stay out of logs.
impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("service", &self.service)
            .field("region", &self.region)
            .finish_non_exhaustive()
    }
}

impl Signer {
    /// `service` is the signing name (`lambda`, `secretsmanager`).
    pub fn new(service: &'static str, region: impl Into<String>, credentials: Credentials) -> Self {
        Signer {
            service,
            region: region.into(),
            credentials,
        }
    }

    pub fn region(&self) -> &str {
        &self.region
    }

    /// `request` with its SigV4 headers (`authorization`, `x-amz-date`, and
    /// `x-amz-security-token` with a session token), ready for [`client`].
    pub fn sign(&self, mut request: http::Request<Vec<u8>>) -> Result<reqwest::Request, Error> {
        let identity = self.credentials.clone().into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name(self.service)
            .time(SystemTime::now())
            .settings(SigningSettings::default())
            .build()?
            .into();
        let uri = request.uri().to_string();
        let headers = request
            .headers()
            .iter()
            .filter_map(|(k, v)| Some((k.as_str(), v.to_str().ok()?)));
        let signable = SignableRequest::new(
            request.method().as_str(),
            &uri,
            headers,
            SignableBody::Bytes(request.body()),
        )?;
        let (instructions, _signature) = sign(signable, &params)?.into_parts();
        instructions.apply_to_request_http1x(&mut request);
        Ok(reqwest::Request::try_from(request)?)
    }
}

/// `AWS_REGION` (Lambda's), else `AWS_DEFAULT_REGION`.
pub fn region_from_env() -> Option<String> {
    env("AWS_REGION").or_else(|| env("AWS_DEFAULT_REGION"))
}

/// The execution role's credentials; `None` unless both the key id and the secret are set.
pub fn credentials_from_env() -> Option<Credentials> {
    let key = env("AWS_ACCESS_KEY_ID")?;
    let secret = env("AWS_SECRET_ACCESS_KEY")?;
    Some(Credentials::new(
        key,
        secret,
        env("AWS_SESSION_TOKEN"),
        None,
        "env",
    ))
}

/// `service_variable` (`AWS_ENDPOINT_URL_LAMBDA`, …), else `AWS_ENDPOINT_URL`: where the
/// SDKs let the environment move a service's endpoint (to a stand-in, in tests).
pub fn endpoint_from_env(service_variable: &str) -> Option<String> {
    env(service_variable).or_else(|| env("AWS_ENDPOINT_URL"))
}

/// One client for every AWS call of the process, built on the first call, so that a cold
/// start makes no TLS client for calls it may never make. Its 5 s timeout is a default that
/// a request may shorten.
pub fn client() -> &'static reqwest::Client {
    static CLIENT: OnceLock<reqwest::Client> = OnceLock::new();
    CLIENT.get_or_init(|| crate::net::client::outbound(Duration::from_secs(5)))
}

/// An environment variable that is set and not blank.
pub(crate) fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}
