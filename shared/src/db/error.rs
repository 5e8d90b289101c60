//! What a store or a service answers when it cannot do what was asked. The HTTP layer makes
//! each one a problem document, in one place (`impl From<StoreError> for Problem`).

use crate::domain::FieldError;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The input cannot be read at all.
    #[error("{0}")]
    Malformed(String),
    /// Input that breaks a rule, field by field (pointer and what is wrong).
    #[error("{}", FieldError::summary(.0))]
    Invalid(Vec<FieldError>),
    #[error("no such {0}")]
    NotFound(String),
    /// The request contradicts the state of things: a duplicate, an illegal transition
    /// (with the status the resource is in, for clients to act on without parsing words).
    #[error("{detail}")]
    Conflict {
        detail: String,
        current_status: Option<String>,
    },
    /// The caller's role may not do this here.
    #[error("{0}")]
    Forbidden(String),
    /// Stored data that breaks an invariant the schema should have kept.
    #[error("{0}")]
    Corrupt(String),
    #[error("the database failed")]
    Database(#[from] sqlx::Error),
}

impl StoreError {
    pub fn malformed(detail: impl Into<String>) -> StoreError {
        StoreError::Malformed(detail.into())
    }

    pub fn invalid(errors: Vec<FieldError>) -> StoreError {
        StoreError::Invalid(errors)
    }

    pub fn field(pointer: &str, detail: impl Into<String>) -> StoreError {
        StoreError::Invalid(vec![FieldError::new(pointer, detail)])
    }

    pub fn not_found(what: &str) -> StoreError {
        StoreError::NotFound(what.to_owned())
    }

    pub fn conflict(detail: impl Into<String>) -> StoreError {
        StoreError::Conflict {
            detail: detail.into(),
            current_status: None,
        }
    }

    pub fn forbidden(detail: impl Into<String>) -> StoreError {
        StoreError::Forbidden(detail.into())
    }

    /// The error and its causes, outermost first, in one line (for logs and worker reports).
    pub fn report(&self) -> String {
        let mut line = self.to_string();
        let mut cause = std::error::Error::source(self);
        while let Some(err) = cause {
            line.push_str(": ");
            line.push_str(&err.to_string());
            cause = err.source();
        }
        line
    }

    /// Names the status that made a transition illegal (on a conflict; others unchanged).
    pub fn with_current_status(self, status: impl std::fmt::Display) -> StoreError {
        match self {
            StoreError::Conflict { detail, .. } => StoreError::Conflict {
                detail,
                current_status: Some(status.to_string()),
            },
            other => other,
        }
    }
}
