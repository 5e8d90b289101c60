//! AWS SDK configuration shared by every client Herald builds (the `@connections`
//! management API, Lambda): one HTTP client on rustls with the ring provider, so no SDK
//! pulls in aws-lc or OpenSSL.

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::Credentials;
use aws_sdk_apigatewaymanagement::config::{SharedCredentialsProvider, SharedHttpClient};
use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};

/// The HTTPS client every SDK client uses.
pub fn http_client() -> SharedHttpClient {
    aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(CryptoMode::Ring))
        .build_https()
}

/// The Lambda environment's region and credentials (`AWS_REGION`, the execution role's
/// `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`/`AWS_SESSION_TOKEN`), which Lambda sets for
/// the life of the execution environment.
///
/// Only the environment, not the SDK's default chain: that chain (profile files, SSO, STS
/// web identity, the instance metadata service) is never used in Lambda, costs init time
/// and links about a megabyte more into every bootstrap.
pub async fn from_env() -> SdkConfig {
    let region = ["AWS_REGION", "AWS_DEFAULT_REGION"]
        .into_iter()
        .find_map(|name| std::env::var(name).ok().filter(|r| !r.is_empty()))
        .map(Region::new);
    SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(region)
        .credentials_provider(SharedCredentialsProvider::new(
            aws_config::environment::EnvironmentVariableCredentialsProvider::new(),
        ))
        .http_client(http_client())
        .build()
}

/// For `herald-local` and tests: a fixed region and dummy static credentials. Requests are
/// still signed, as in AWS; the local gateway does not check signatures.
pub fn local() -> SdkConfig {
    SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::from_static("us-east-1"))
        .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
            "local",
            "local",
            None,
            None,
            "herald-local",
        )))
        .http_client(http_client())
        .build()
}
