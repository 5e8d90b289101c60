//! HTTP glue between API Gateway events (through `lambda_http`) and handlers.

pub mod body;
pub mod client;
pub mod egress;
pub mod locale;
pub mod paging;
pub mod problem;
pub mod request;
pub mod response;

pub use lambda_http::{Body, Request, Response};
pub use locale::Locale;
pub use problem::Problem;
