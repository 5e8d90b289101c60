//! HTTP glue between API Gateway events (through `lambda_http`) and handlers.

pub mod body;
pub mod paging;
pub mod problem;
pub mod request;
pub mod response;

pub use crate::domain::Locale;
pub use lambda_http::{Body, Request, Response};
pub use problem::Problem;
