//! The one error shape of the API: `{"error": {"code", "message"}}`, plus `request_id` on 5xx
//! (added by the observing middleware, which knows the request id), and the status of each
//! [`ProfileError`].

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use facebook_connector_core::error::display_chain;
use facebook_connector_core::profiles::ProfileError;

use crate::dto::{ErrorBody, ErrorDetail};

/// An error answer.
#[derive(Clone, Debug)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// snake_case code.
    pub code: &'static str,
    /// For people; never a token.
    pub message: String,
    /// The cause, for the access log only (never in the response).
    pub detail: Option<String>,
}

/// What the middleware needs of an error response: its code and message (to add the request
/// id on 5xx) and the cause (to log it).
#[derive(Clone, Debug)]
pub(crate) struct ErrorInfo {
    pub(crate) code: &'static str,
    pub(crate) message: String,
    pub(crate) detail: Option<String>,
}

impl ApiError {
    /// An error with this status, code and message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            detail: None,
        }
    }

    /// 404 `not_found`: no such profile for the caller (same body for every reason).
    pub fn profile_not_found() -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", "profile not found")
    }

    /// 401 `unauthorized`.
    pub fn unauthorized(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    /// 400 `invalid_request`.
    pub fn invalid_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", message)
    }

    /// 413 `payload_too_large`.
    pub fn payload_too_large(limit: usize) -> ApiError {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("the request body is larger than {} KiB", limit / 1024),
        )
    }

    /// 500 `internal_error`, with the cause for the log.
    pub fn internal(detail: impl Into<String>) -> ApiError {
        ApiError {
            detail: Some(detail.into()),
            ..ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal_error",
                "internal failure; the request id identifies it in the service's logs",
            )
        }
    }

    /// 504 `timeout`.
    pub fn timeout() -> ApiError {
        ApiError::new(
            StatusCode::GATEWAY_TIMEOUT,
            "timeout",
            "the request took too long; try again",
        )
    }
}

impl From<ProfileError> for ApiError {
    fn from(error: ProfileError) -> Self {
        let status = match &error {
            ProfileError::Unauthorized { .. } => StatusCode::UNAUTHORIZED,
            ProfileError::Forbidden { .. } => StatusCode::FORBIDDEN,
            ProfileError::NotFound => return ApiError::profile_not_found(),
            ProfileError::InvalidRequest { .. }
            | ProfileError::InvalidToken { .. }
            | ProfileError::MissingScopes { .. }
            | ProfileError::AdAccount { .. }
            | ProfileError::DifferentUser => StatusCode::BAD_REQUEST,
            ProfileError::NeedsReauth { .. } | ProfileError::InvalidState { .. } => {
                StatusCode::CONFLICT
            }
            ProfileError::Upstream { .. } => StatusCode::BAD_GATEWAY,
            ProfileError::Internal { .. } => StatusCode::INTERNAL_SERVER_ERROR,
            // a variant added later: a bug until it is mapped
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        let message = match &error {
            ProfileError::Internal { .. } => {
                "internal failure; the request id identifies it in the service's logs".to_owned()
            }
            ProfileError::Unauthorized { .. } => {
                "the marketplace refused the bearer token".to_owned()
            }
            ProfileError::Upstream { message, .. } => message.clone(),
            other => other.to_string(),
        };
        let detail = (status.is_server_error()
            || matches!(
                error,
                ProfileError::Unauthorized { .. } | ProfileError::Forbidden { .. }
            ))
        .then(|| display_chain(&error));
        ApiError {
            status,
            code: error.code(),
            message,
            detail,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code.to_owned(),
                message: self.message.clone(),
                request_id: None,
            },
            request_id: None,
        };
        let mut response = (self.status, Json(body)).into_response();
        response.extensions_mut().insert(ErrorInfo {
            code: self.code,
            message: self.message,
            detail: self.detail,
        });
        response
    }
}
