//! The admin API's one error shape: a status and `{"error": {"code", "message"}}`.

use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object};

/// The body of every admin error.
#[derive(Debug, Object)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// What went wrong.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct ErrorDetail {
    /// HTTP status.
    pub code: u16,
    /// What went wrong and what to do, in English words.
    pub message: String,
    /// A stable name of the message, for clients that show it in another
    /// language (the dashboard does), with `args` to fill in.
    pub id: Option<String>,
    /// The message's variable parts, by name.
    pub args: Option<std::collections::BTreeMap<String, String>>,
}

/// Every error an admin endpoint answers.
#[derive(Debug, ApiResponse)]
#[oai(bad_request_handler = "bad_request")]
pub enum ApiError {
    /// The input is not valid.
    #[oai(status = 400)]
    BadRequest(Json<ErrorBody>),
    /// No admin key or session.
    #[oai(status = 401)]
    Unauthorized(Json<ErrorBody>),
    /// Signed in, but the request lacks its CSRF token.
    #[oai(status = 403)]
    Forbidden(Json<ErrorBody>),
    /// No such thing.
    #[oai(status = 404)]
    NotFound(Json<ErrorBody>),
    /// The request conflicts with the current state (a scan is running).
    #[oai(status = 409)]
    Conflict(Json<ErrorBody>),
    /// Too many failed logins.
    #[oai(status = 429)]
    TooManyRequests(Json<ErrorBody>),
    /// The store or the file system failed.
    #[oai(status = 500)]
    Internal(Json<ErrorBody>),
}

fn body(code: u16, message: impl Into<String>) -> Json<ErrorBody> {
    Json(ErrorBody { error: ErrorDetail { code, message: message.into(), id: None, args: None } })
}

fn bad_request(err: poem::Error) -> ApiError {
    let detail = err.to_string();
    ApiError::bad_request(detail.clone()).with_id("bad_input", &[("detail", &detail)])
}

impl ApiError {
    /// 400.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::BadRequest(body(400, message))
    }
    /// 401.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::Unauthorized(body(401, message))
    }
    /// 403.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::Forbidden(body(403, message))
    }
    /// 404.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::NotFound(body(404, message))
    }
    /// 409.
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::Conflict(body(409, message))
    }
    /// 429.
    pub fn too_many(message: impl Into<String>) -> Self {
        Self::TooManyRequests(body(429, message))
    }
    /// Names the message (`id`) and its variable parts, so the dashboard
    /// can show it in the operator's language.
    pub fn with_id(mut self, id: &'static str, args: &[(&str, &str)]) -> Self {
        let (Self::BadRequest(body)
        | Self::Unauthorized(body)
        | Self::Forbidden(body)
        | Self::NotFound(body)
        | Self::Conflict(body)
        | Self::TooManyRequests(body)
        | Self::Internal(body)) = &mut self;
        body.error.id = Some(id.to_string());
        if !args.is_empty() {
            body.error.args = Some(args.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect());
        }
        self
    }
    /// 500, logged.
    pub fn internal(message: impl std::fmt::Display) -> Self {
        tracing::error!("admin: {message}");
        let detail = message.to_string();
        Self::Internal(body(500, detail.clone())).with_id("internal", &[("detail", &detail)])
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(err: crate::store::StoreError) -> Self {
        let detail = err.to_string();
        Self::internal(format!("the store failed: {detail}")).with_id("store_failed", &[("detail", &detail)])
    }
}

/// The result of every admin endpoint.
pub type ApiResult<T> = Result<T, ApiError>;
