//! Herald's shared library: everything the Lambda functions and `herald-local` have in
//! common. A function's `main.rs` builds an [`App`] once and hands requests to
//! [`App::serve`]; the local gateway does the same, so both run the very same code.

pub mod api;
pub mod apikeys;
pub mod app;
pub mod auth;
pub mod aws;
pub mod aws_sign;
pub mod campaigns;
pub mod config;
pub mod contacts;
pub mod db;
pub mod domain;
pub mod engine;
pub mod events;
pub mod groups;
pub mod http;
pub mod idempotency;
pub mod jsonb;
pub mod kick;
pub mod messages;
pub mod metrics;
pub mod migrate;
pub mod net;
pub mod observer;
pub mod perfstats;
pub mod providers;
pub mod ratelimit;
pub mod realtime;
pub mod rfc3339;
pub mod rollup;
pub mod secrets;
pub mod stats;
pub mod telemetry;
pub mod templates;
pub mod tenants;
pub mod webhooks;

pub use app::App;
pub use config::Config;
