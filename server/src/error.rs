//! The server's one error type, and the one table from error to HTTP status.

use actix_web::http::StatusCode;
use actix_web::HttpResponse;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("config: {0}")]
    Config(String),
    #[error("bad request: {0}")]
    BadRequest(String),
    #[error("not found: {0}")]
    NotFound(String),
    #[error("unauthenticated: {0}")]
    Unauthorized(String),
    #[error("forbidden: {0}")]
    Forbidden(String),
    #[error("database: {0}")]
    Database(#[from] sea_orm::DbErr),
    #[error("kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    #[error("index: {0}")]
    Index(#[from] tantivy::TantivyError),
    #[error("{0}: {1}")]
    Io(String, #[source] std::io::Error),
    #[error("embedded {0}")]
    Embedded(String),
    #[error("internal: {0}")]
    Internal(String),
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// The one place errors meet HTTP: status and the short kind users see.
    fn status_and_kind(&self) -> (StatusCode, &'static str) {
        match self {
            Error::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            Error::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            Error::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "unauthenticated"),
            Error::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            Error::Config(_)
            | Error::Database(_)
            | Error::Kafka(_)
            | Error::Index(_)
            | Error::Io(..)
            | Error::Embedded(_)
            | Error::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }
}

impl actix_web::ResponseError for Error {
    fn status_code(&self) -> StatusCode {
        self.status_and_kind().0
    }

    fn error_response(&self) -> HttpResponse {
        let (status, kind) = self.status_and_kind();
        if status.is_server_error() {
            tracing::error!(error = %self, "request failed");
        }
        let detail = match self {
            Error::BadRequest(reason)
            | Error::NotFound(reason)
            | Error::Unauthorized(reason)
            | Error::Forbidden(reason) => reason.clone(),
            _ => "see the server log".to_owned(),
        };
        HttpResponse::build(status).json(serde_json::json!({ "error": kind, "detail": detail }))
    }
}

/// The body of every error response.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// `bad_request`, `unauthenticated`, `forbidden`, `not_found` or `internal`.
    pub error: String,
    /// What was wrong, for people.
    pub detail: String,
}
