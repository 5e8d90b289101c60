//! `herald-local`: the whole Herald bundle on one port, for development and tests.
//!
//! Each HTTP request is turned into the API Gateway HTTP API (payload 2.0) event the
//! function would receive in AWS, run through the very adapter `lambda_http::run` uses, and
//! the function's API Gateway response turned back into HTTP. A local run therefore
//! exercises the code path that runs in Lambda, not a shortcut around it.

pub mod connections;
pub mod database;
pub mod dispatch;
pub mod engine;
pub mod gateway;
pub mod postgres;
pub mod server;
pub mod tenant;
pub mod token;
pub mod websocket;

/// The HS256 secret `herald-local` signs and accepts tokens with when `HERALD_JWT_SECRET`
/// is not set. For development only: anyone can read it here.
pub const DEV_JWT_SECRET: &str = "herald-local-development-secret-not-for-production";

/// The database `herald-local` uses when `DATABASE_URL` is not set and this server answers
/// (else [`postgres::database_url`] starts one of its own); created if missing.
pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/herald";
