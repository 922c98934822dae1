//! OpenAI-style error responses: `{"error": {"message", "type", "param",
//! "code"}}` with the matching HTTP status.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

#[derive(Debug, Clone)]
pub(super) struct ApiError {
    pub(super) status: StatusCode,
    pub(super) message: String,
    pub(super) kind: &'static str,
    pub(super) param: Option<String>,
    pub(super) code: Option<&'static str>,
    /// Seconds for `Retry-After` (429 responses).
    pub(super) retry_after: Option<u64>,
}

impl ApiError {
    pub(super) fn invalid(message: impl Into<String>, param: &str) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
            kind: "invalid_request_error",
            param: Some(param.to_owned()),
            code: None,
            retry_after: None,
        }
    }

    pub(super) fn bad_json(message: impl Into<String>) -> Self {
        Self {
            param: None,
            ..Self::invalid(message, "")
        }
    }

    pub(super) fn context_length(prompt: usize, limit: usize) -> Self {
        Self {
            code: Some("context_length_exceeded"),
            ..Self::invalid(
                format!(
                    "this model's maximum context length is {limit} tokens; the prompt has {prompt} tokens, leaving no room for a completion"
                ),
                "messages",
            )
        }
    }

    pub(super) fn model_not_found(model: &str) -> Self {
        Self {
            status: StatusCode::NOT_FOUND,
            code: Some("model_not_found"),
            ..Self::invalid(
                format!("the model {model:?} does not exist on this titan"),
                "model",
            )
        }
    }

    pub(super) fn busy(retry_after: u64) -> Self {
        Self {
            status: StatusCode::TOO_MANY_REQUESTS,
            message: "the titan is serving its maximum number of sessions; retry later".into(),
            kind: "rate_limit_error",
            param: None,
            code: Some("rate_limit_exceeded"),
            retry_after: Some(retry_after),
        }
    }

    pub(super) fn internal(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message: message.into(),
            kind: "server_error",
            param: None,
            code: None,
            retry_after: None,
        }
    }

    pub(super) fn body(&self) -> serde_json::Value {
        json!({ "error": {
            "message": self.message,
            "type": self.kind,
            "param": self.param,
            "code": self.code,
        }})
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, axum::Json(self.body())).into_response();
        if let Some(secs) = self.retry_after
            && let Ok(v) = HeaderValue::from_str(&secs.to_string())
        {
            response.headers_mut().insert(header::RETRY_AFTER, v);
        }
        response
    }
}
