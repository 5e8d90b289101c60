//! RFC 9457 problem details: every error Herald answers with.
//!
//! Each [`Kind`] has a stable `type` URI that clients may match on, and a title in every
//! [`Locale`]. The `detail` says what was wrong with this request, in English.

use http::{HeaderValue, StatusCode, header};
use serde::Serialize;

use super::{Body, Locale, Response};
use crate::db::StoreError;
use crate::domain::FieldError;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    MalformedRequest,
    Validation,
    Unauthenticated,
    Forbidden,
    TenantRequired,
    NotFound,
    RouteNotFound,
    /// A route (a tRPC procedure) called with a method it does not take.
    MethodNotAllowed,
    Conflict,
    PayloadTooLarge,
    UnsupportedMediaType,
    Internal,
    Unavailable,
    TooManyRequests,
    /// An `Idempotency-Key` reused with a different request.
    IdempotencyKeyReused,
    /// An `Idempotency-Key` whose first request is still running (or finished unrecorded).
    IdempotencyKeyInUse,
}

impl Kind {
    pub fn status(self) -> StatusCode {
        match self {
            Kind::MalformedRequest | Kind::TenantRequired => StatusCode::BAD_REQUEST,
            Kind::Validation | Kind::IdempotencyKeyReused => StatusCode::UNPROCESSABLE_ENTITY,
            Kind::Unauthenticated => StatusCode::UNAUTHORIZED,
            Kind::Forbidden => StatusCode::FORBIDDEN,
            Kind::NotFound | Kind::RouteNotFound => StatusCode::NOT_FOUND,
            Kind::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Kind::Conflict | Kind::IdempotencyKeyInUse => StatusCode::CONFLICT,
            Kind::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Kind::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Kind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            Kind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Kind::TooManyRequests => StatusCode::TOO_MANY_REQUESTS,
        }
    }

    pub fn slug(self) -> &'static str {
        match self {
            Kind::MalformedRequest => "malformed-request",
            Kind::Validation => "validation-failed",
            Kind::Unauthenticated => "unauthenticated",
            Kind::Forbidden => "forbidden",
            Kind::TenantRequired => "tenant-required",
            Kind::NotFound => "not-found",
            Kind::RouteNotFound => "route-not-found",
            Kind::MethodNotAllowed => "method-not-allowed",
            Kind::Conflict => "conflict",
            Kind::PayloadTooLarge => "payload-too-large",
            Kind::UnsupportedMediaType => "unsupported-media-type",
            Kind::Internal => "internal-error",
            Kind::Unavailable => "service-unavailable",
            Kind::TooManyRequests => "too-many-requests",
            Kind::IdempotencyKeyReused => "idempotency-key-reused",
            Kind::IdempotencyKeyInUse => "idempotency-key-in-use",
        }
    }

    pub fn type_uri(self) -> String {
        format!("https://herald.dev/problems/{}", self.slug())
    }

    pub fn title(self, locale: Locale) -> &'static str {
        match (self, locale) {
            (Kind::MalformedRequest, Locale::En) => "Malformed request",
            (Kind::MalformedRequest, Locale::Es) => "Solicitud mal formada",
            (Kind::Validation, Locale::En) => "Validation failed",
            (Kind::Validation, Locale::Es) => "La validación falló",
            (Kind::Unauthenticated, Locale::En) => "Authentication required",
            (Kind::Unauthenticated, Locale::Es) => "Se requiere autenticación",
            (Kind::Forbidden, Locale::En) => "Forbidden",
            (Kind::Forbidden, Locale::Es) => "Prohibido",
            (Kind::TenantRequired, Locale::En) => "Tenant required",
            (Kind::TenantRequired, Locale::Es) => "Se requiere un inquilino",
            (Kind::NotFound, Locale::En) => "Not found",
            (Kind::NotFound, Locale::Es) => "No encontrado",
            (Kind::RouteNotFound, Locale::En) => "No such route",
            (Kind::RouteNotFound, Locale::Es) => "Ruta inexistente",
            (Kind::MethodNotAllowed, Locale::En) => "Method not allowed",
            (Kind::MethodNotAllowed, Locale::Es) => "Método no permitido",
            (Kind::Conflict, Locale::En) => "Conflict",
            (Kind::Conflict, Locale::Es) => "Conflicto",
            (Kind::PayloadTooLarge, Locale::En) => "Payload too large",
            (Kind::PayloadTooLarge, Locale::Es) => "Carga demasiado grande",
            (Kind::UnsupportedMediaType, Locale::En) => "Unsupported media type",
            (Kind::UnsupportedMediaType, Locale::Es) => "Tipo de contenido no admitido",
            (Kind::Internal, Locale::En) => "Internal error",
            (Kind::Internal, Locale::Es) => "Error interno",
            (Kind::Unavailable, Locale::En) => "Service unavailable",
            (Kind::Unavailable, Locale::Es) => "Servicio no disponible",
            (Kind::TooManyRequests, Locale::En) => "Too many requests",
            (Kind::TooManyRequests, Locale::Es) => "Demasiadas solicitudes",
            (Kind::IdempotencyKeyReused, Locale::En) => "Idempotency key reused",
            (Kind::IdempotencyKeyReused, Locale::Es) => "Clave de idempotencia reutilizada",
            (Kind::IdempotencyKeyInUse, Locale::En) => "Idempotency key in use",
            (Kind::IdempotencyKeyInUse, Locale::Es) => "Clave de idempotencia en uso",
        }
    }
}

/// An error answer, built by handlers and rendered by [`Problem::into_response`].
#[derive(Debug)]
pub struct Problem {
    pub kind: Kind,
    pub detail: Option<String>,
    pub errors: Vec<FieldError>,
    pub retry_after_secs: Option<u32>,
    /// For a refused state transition: the state the resource is in.
    pub current_status: Option<String>,
}

/// The wire form, also the OpenAPI schema of every error response.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProblemDocument {
    #[serde(rename = "type")]
    pub type_uri: String,
    pub title: String,
    pub status: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    pub instance: String,
    pub request_id: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
    /// For a refused state transition (409): the status the resource is in now.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub current_status: Option<String>,
}

impl Problem {
    pub fn new(kind: Kind, detail: impl Into<String>) -> Problem {
        Problem {
            kind,
            detail: Some(detail.into()),
            errors: Vec::new(),
            retry_after_secs: None,
            current_status: None,
        }
    }

    /// Names the status that made a transition illegal, for clients to act on without
    /// parsing `detail`.
    pub fn with_current_status(self, status: impl std::fmt::Display) -> Problem {
        Problem {
            current_status: Some(status.to_string()),
            ..self
        }
    }

    pub fn status(&self) -> StatusCode {
        self.kind.status()
    }

    pub fn malformed(detail: impl Into<String>) -> Problem {
        Problem::new(Kind::MalformedRequest, detail)
    }

    pub fn invalid(errors: Vec<FieldError>) -> Problem {
        let detail = FieldError::summary(&errors);
        Problem {
            errors,
            ..Problem::new(Kind::Validation, detail)
        }
    }

    pub fn field(pointer: &str, detail: impl Into<String>) -> Problem {
        Problem::invalid(vec![FieldError::new(pointer, detail)])
    }

    pub fn unauthenticated(detail: impl Into<String>) -> Problem {
        Problem::new(Kind::Unauthenticated, detail)
    }

    pub fn forbidden(detail: impl Into<String>) -> Problem {
        Problem::new(Kind::Forbidden, detail)
    }

    pub fn not_found(what: &str) -> Problem {
        Problem::new(Kind::NotFound, format!("no such {what}"))
    }

    pub fn conflict(detail: impl Into<String>) -> Problem {
        Problem::new(Kind::Conflict, detail)
    }

    pub fn too_large(limit: usize) -> Problem {
        Problem::new(
            Kind::PayloadTooLarge,
            format!("the body must be at most {limit} bytes"),
        )
    }

    pub fn unsupported_media_type(expected: &str) -> Problem {
        Problem::new(
            Kind::UnsupportedMediaType,
            format!("the body must be {expected}"),
        )
    }

    pub fn internal() -> Problem {
        Problem::new(Kind::Internal, "the request could not be completed")
    }

    pub fn unavailable(detail: impl Into<String>) -> Problem {
        Problem {
            retry_after_secs: Some(1),
            ..Problem::new(Kind::Unavailable, detail)
        }
    }

    /// The tenant's requests-per-minute limit is spent until the window ends.
    pub fn too_many_requests(limit: u32, retry_after_secs: u32) -> Problem {
        Problem {
            retry_after_secs: Some(retry_after_secs),
            ..Problem::new(
                Kind::TooManyRequests,
                format!(
                    "this tenant may make {limit} requests per minute; retry after {retry_after_secs} s"
                ),
            )
        }
    }

    pub fn into_response(self, locale: Locale, instance: &str, request_id: &str) -> Response<Body> {
        let doc = ProblemDocument {
            type_uri: self.kind.type_uri(),
            title: self.kind.title(locale).to_owned(),
            status: self.status().as_u16(),
            detail: self.detail,
            instance: instance.to_owned(),
            request_id: request_id.to_owned(),
            errors: self.errors,
            current_status: self.current_status,
        };
        let mut response = Response::builder()
            .status(self.kind.status())
            .header(header::CONTENT_TYPE, "application/problem+json")
            .header(header::CONTENT_LANGUAGE, locale.code());
        if self.kind == Kind::Unauthenticated {
            response = response.header(header::WWW_AUTHENTICATE, "Bearer");
        }
        if let Some(secs) = self.retry_after_secs {
            response = response.header(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        let body = serde_json::to_string(&doc).unwrap_or_default();
        response
            .body(Body::Text(body))
            .unwrap_or_else(|_| Response::new(Body::Empty))
    }
}

impl From<StoreError> for Problem {
    /// The one place a store's or a service's error becomes an answer.
    fn from(err: StoreError) -> Problem {
        match err {
            StoreError::Malformed(detail) => Problem::malformed(detail),
            StoreError::Invalid(errors) => Problem::invalid(errors),
            StoreError::NotFound(what) => Problem::not_found(&what),
            StoreError::Conflict {
                detail,
                current_status,
            } => Problem {
                current_status,
                ..Problem::conflict(detail)
            },
            StoreError::Forbidden(detail) => Problem::forbidden(detail),
            StoreError::Corrupt(detail) => {
                tracing::error!(%detail, "stored data breaks an invariant");
                Problem::internal()
            }
            StoreError::Database(err) => Problem::from(err),
        }
    }
}

impl From<sqlx::Error> for Problem {
    /// Database failures the handler did not anticipate. Connection trouble is the caller's
    /// to retry (503); anything else is logged and hidden (500).
    fn from(err: sqlx::Error) -> Problem {
        match &err {
            _ if unavailable(&err) => {
                tracing::warn!(error = %err, "database unavailable");
                Problem::unavailable("the database is unavailable; retry shortly")
            }
            sqlx::Error::Database(db) if db.code().as_deref() == Some("23505") => {
                Problem::conflict("the request conflicts with an existing resource")
            }
            _ => {
                tracing::error!(error = %err, "database error");
                Problem::internal()
            }
        }
    }
}

/// Whether `err` means the database could not be reached or is going away (a restart, a
/// failover, an exhausted pool): a retry may succeed. Whether the request's work committed
/// is unknown only when the connection broke during `COMMIT`; an `Idempotency-Key` makes
/// that retry safe. SQLSTATE classes 08 (connection exception), 53 (insufficient resources, e.g.
/// too many connections) and 57P (shutting down, starting up).
pub fn unavailable(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => db
            .code()
            .is_some_and(|c| c.starts_with("08") || c.starts_with("53") || c.starts_with("57P")),
        _ => false,
    }
}
