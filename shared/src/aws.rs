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
/// `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`/`AWS_SESSION_TOKEN`).
pub async fn from_env() -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .http_client(http_client())
        .load()
        .await
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
