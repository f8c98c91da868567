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
    #[error("payload too large: {0}")]
    PayloadTooLarge(String),
    #[error("database: {0}")]
    Database(#[from] sea_orm::DbErr),
    #[error("kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    #[error("index: {0}")]
    Index(#[from] tantivy::TantivyError),
    #[error("archive: {0}")]
    Archive(#[from] object_store::Error),
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
            Error::Database(e) if text_refused_by_database(e) => {
                (StatusCode::BAD_REQUEST, "bad_request")
            }
            Error::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            Error::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            Error::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "unauthenticated"),
            Error::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            Error::PayloadTooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            Error::Config(_)
            | Error::Database(_)
            | Error::Kafka(_)
            | Error::Index(_)
            | Error::Archive(_)
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
            | Error::Forbidden(reason)
            | Error::PayloadTooLarge(reason) => reason.clone(),
            Error::Database(e) if text_refused_by_database(e) => NUL_REFUSED.to_owned(),
            _ => "see the server log".to_owned(),
        };
        HttpResponse::build(status).json(serde_json::json!({ "error": kind, "detail": detail }))
    }
}

const NUL_REFUSED: &str =
    "text must not contain NUL characters (\\0): the database cannot store them";

/// PostgreSQL refuses text holding a NUL character (SQLSTATE 22021, "invalid byte sequence
/// for encoding UTF8: 0x00") in any parameter: that is the client's input, not a fault of
/// the server, whichever input it came through.
fn text_refused_by_database(error: &sea_orm::DbErr) -> bool {
    use sea_orm::{DbErr, RuntimeErr};
    match error {
        DbErr::Exec(RuntimeErr::SqlxError(e))
        | DbErr::Query(RuntimeErr::SqlxError(e))
        | DbErr::Conn(RuntimeErr::SqlxError(e)) => e
            .as_database_error()
            .and_then(|d| d.code())
            .is_some_and(|code| code == "22021"),
        _ => false,
    }
}

/// Turns the 413 of any body extractor (JSON, form, bytes; announced by `Content-Length`
/// or found while reading a chunked body) into the JSON error every other refusal has.
pub fn payload_too_large<B>(
    response: actix_web::dev::ServiceResponse<B>,
) -> actix_web::Result<actix_web::middleware::ErrorHandlerResponse<B>> {
    let error = Error::PayloadTooLarge(format!(
        "the request body is larger than allowed: at most {} bytes",
        crate::hardening::MAX_BODY_BYTES
    ));
    let (request, _) = response.into_parts();
    let response = actix_web::dev::ServiceResponse::new(
        request,
        actix_web::ResponseError::error_response(&error),
    );
    Ok(actix_web::middleware::ErrorHandlerResponse::Response(
        response.map_into_right_body(),
    ))
}

/// The body of every error response.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// `bad_request`, `unauthenticated`, `forbidden`, `not_found`, `payload_too_large` or
    /// `internal`.
    pub error: String,
    /// What was wrong, for people.
    pub detail: String,
}
