//! Waking a worker function without waiting for it: Lambda `Invoke` with `InvocationType`
//! `Event`. The writer's response does not wait on the worker; the worker's own schedule is
//! the safety net if a kick is lost.
//!
//! Which function is kicked comes from an environment variable (`HERALD_DISPATCHER_FUNCTION`
//! for the dispatcher); without it (locally, in tests) kicking does nothing, because
//! `herald-local` runs its workers continuously.
//!
//! One SigV4-signed POST (aws-sigv4, the SDK's own signer) through reqwest rather than
//! aws-sdk-lambda: every HTTP function kicks, and the SDK client with its HTTP/2-capable
//! stack was about a megabyte of each bootstrap, for one call.

use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;

/// A worker function that can be woken.
#[derive(Clone)]
pub struct Kick {
    /// `…/2015-03-31/functions/{name}/invocations`
    url: String,
    region: String,
    credentials: Credentials,
    function: String,
}

impl Kick {
    /// The worker named by `variable`, if it is set, invoked with the execution role's
    /// credentials from the environment. `AWS_ENDPOINT_URL_LAMBDA` (or `AWS_ENDPOINT_URL`)
    /// moves the Lambda endpoint, as it does for the AWS SDKs.
    pub fn from_env(variable: &str) -> Option<Kick> {
        let function = env(variable)?;
        let region = env("AWS_REGION").or_else(|| env("AWS_DEFAULT_REGION"))?;
        let (Some(key), Some(secret)) = (env("AWS_ACCESS_KEY_ID"), env("AWS_SECRET_ACCESS_KEY"))
        else {
            tracing::warn!(%function, "no AWS credentials in the environment: kicks are off");
            return None;
        };
        let credentials = Credentials::new(key, secret, env("AWS_SESSION_TOKEN"), None, "env");
        let endpoint = env("AWS_ENDPOINT_URL_LAMBDA").or_else(|| env("AWS_ENDPOINT_URL"));
        Kick::new(function, region, credentials, endpoint)
    }

    /// Invokes `function` in `region` with `credentials`, at `endpoint` (Lambda's regional
    /// endpoint when `None`).
    pub fn new(
        function: String,
        region: String,
        credentials: Credentials,
        endpoint: Option<String>,
    ) -> Option<Kick> {
        let endpoint = endpoint.unwrap_or_else(|| format!("https://lambda.{region}.amazonaws.com"));
        let name: String = form_urlencoded::byte_serialize(function.as_bytes()).collect();
        Some(Kick {
            url: format!(
                "{}/2015-03-31/functions/{name}/invocations",
                endpoint.trim_end_matches('/')
            ),
            region,
            credentials,
            function,
        })
    }

    /// Queues one asynchronous invocation. Failures are logged, not returned: the change
    /// is committed already and the schedule will pick its events up.
    pub async fn kick(&self) {
        match self.invoke().await {
            // Lambda answers 202 Accepted to an Event invocation.
            Ok(status) if status.is_success() => {}
            Ok(status) => tracing::warn!(function = %self.function, %status, "kick refused"),
            Err(error) => tracing::warn!(function = %self.function, %error, "kick failed"),
        }
    }

    async fn invoke(
        &self,
    ) -> Result<reqwest::StatusCode, Box<dyn std::error::Error + Send + Sync>> {
        const BODY: &[u8] = b"{}";
        let mut request = http::Request::builder()
            .method("POST")
            .uri(&self.url)
            .header("x-amz-invocation-type", "Event")
            .header("content-type", "application/json")
            .body(BODY.to_vec())?;
        let identity = self.credentials.clone().into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name("lambda")
            .time(SystemTime::now())
            .settings(SigningSettings::default())
            .build()?
            .into();
        let headers = request
            .headers()
            .iter()
            .filter_map(|(k, v)| Some((k.as_str(), v.to_str().ok()?)));
        let signable = SignableRequest::new("POST", &self.url, headers, SignableBody::Bytes(BODY))?;
        let (instructions, _signature) = sign(signable, &params)?.into_parts();
        instructions.apply_to_request_http1x(&mut request);
        let request = reqwest::Request::try_from(request)?;
        Ok(client().execute(request).await?.status())
    }
}

/// One client for every kick of the process, built on the first kick: a function's init
/// (its cold start) builds no TLS client for kicks it may never make.
fn client() -> &'static reqwest::Client {
    static CLIENT: OnceLock<reqwest::Client> = OnceLock::new();
    CLIENT.get_or_init(|| crate::http::client::outbound(Duration::from_secs(5)))
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}
