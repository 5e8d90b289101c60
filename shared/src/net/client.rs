//! The HTTP client for outbound calls (JWKS now; webhooks and providers later).

use std::time::Duration;

/// A rustls client on the ring provider (the same one sqlx uses), so no second crypto
/// library is built into the binary.
pub fn outbound(timeout: Duration) -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(Duration::from_secs(3))
        .user_agent(concat!("herald/", env!("CARGO_PKG_VERSION")))
        .build()
        .expect("the HTTP client's configuration is static and valid")
}
