//! Herald's outbound HTTP: the plain client for AWS and identity providers, and the
//! SSRF-guarded one for URLs a tenant chose (webhooks, HTTP providers).

pub mod client;
pub mod egress;
