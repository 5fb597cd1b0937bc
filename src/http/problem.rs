//! Errors as `application/problem+json` (RFC 9457), and extractors whose rejections are our
//! own errors, so malformed JSON, a bad path id or an oversized body answer in the same shape
//! as everything else.

use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::{header, request::Parts, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use bytes::Bytes;
use serde::de::DeserializeOwned;

use crate::api::{ErrorCode, Problem};
use crate::error::Error;

/// The HTTP status of each error.
pub fn status(error: &Error) -> StatusCode {
    match error {
        Error::BadRequest(_) | Error::InvalidWebhookSignature(_) | Error::ReservedReference(_) => {
            StatusCode::BAD_REQUEST
        }
        Error::Unauthorized(_) => StatusCode::UNAUTHORIZED,
        Error::InsufficientFunds { .. } => StatusCode::PAYMENT_REQUIRED,
        Error::NotFound(_) => StatusCode::NOT_FOUND,
        Error::AlreadySpent(_)
        | Error::IdempotencyConflict(_)
        | Error::NameTaken
        | Error::BackupNotSupported
        | Error::StampHeld(_)
        | Error::HoldExpired
        | Error::HoldCaptured => StatusCode::CONFLICT,
        Error::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
        Error::Stamp(_)
        | Error::WrongStampCount { .. }
        | Error::MixedPayers
        | Error::DebitTooLarge(_) => StatusCode::UNPROCESSABLE_ENTITY,
        Error::RateLimited { .. } | Error::AuthFailuresLimited { .. } => {
            StatusCode::TOO_MANY_REQUESTS
        }
        Error::Unavailable(_) | Error::AuditCatchingUp { .. } => StatusCode::SERVICE_UNAVAILABLE,
        Error::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

fn title(code: ErrorCode) -> &'static str {
    match code {
        ErrorCode::BadRequest => "Bad request",
        ErrorCode::Unauthorized => "Unauthorized",
        ErrorCode::InsufficientFunds => "Insufficient funds",
        ErrorCode::NotFound => "Not found",
        ErrorCode::StampAlreadySpent => "Stamp already spent",
        ErrorCode::IdempotencyConflict => "Idempotency conflict",
        ErrorCode::NameTaken => "Name taken",
        ErrorCode::PayloadTooLarge => "Payload too large",
        ErrorCode::InvalidStamp => "Invalid stamp",
        ErrorCode::UnknownKey => "Unknown key",
        ErrorCode::BadSignature => "Bad signature",
        ErrorCode::StampExpired => "Stamp expired",
        ErrorCode::WrongStampCount => "Wrong stamp count",
        ErrorCode::MixedPayers => "Mixed payers",
        ErrorCode::BackupNotSupported => "Backup not supported",
        ErrorCode::RateLimited => "Rate limited",
        ErrorCode::MethodNotAllowed => "Method not allowed",
        ErrorCode::ServiceUnavailable => "Service unavailable",
        ErrorCode::AuditCatchingUp => "Ledger check catching up",
        ErrorCode::RequestTimeout => "Request timeout",
        ErrorCode::InternalError => "Internal error",
        ErrorCode::StampHeld => "Stamp held",
        ErrorCode::HoldExpired => "Hold expired",
        ErrorCode::HoldCaptured => "Hold captured",
        ErrorCode::InvalidWebhookSignature => "Invalid webhook signature",
        ErrorCode::DebitTooLarge => "Debit too large",
    }
}

/// Builds a problem+json response.
pub fn problem(status: StatusCode, code: ErrorCode, detail: &str) -> Response {
    problem_with(status, code, detail, None)
}

/// Builds a problem+json response, with the price a wrong count needed.
fn problem_with(
    status: StatusCode,
    code: ErrorCode,
    detail: &str,
    required: Option<u64>,
) -> Response {
    let body = Problem {
        code,
        detail: detail.to_string(),
        status: status.as_u16(),
        title: title(code).to_string(),
        problem_type: format!("https://pennypost.dev/problems/{code}"),
        required,
    };
    let mut response = (status, Json(body)).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    response
}

/// The challenge of every 401: an API key or the admin token, both sent as bearer tokens.
const BEARER_CHALLENGE: &str = "Bearer realm=\"pennypost\"";

/// Seconds a client is asked to wait after 503 `service_unavailable`.
const UNAVAILABLE_RETRY_AFTER_SECS: &str = "1";

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let status = status(&self);
        let detail = match &self {
            // 5xx hides its cause from the client; the log keeps it.
            Error::Internal(cause) => {
                tracing::error!(cause = %cause, "internal error");
                "the server hit an internal error; it has been logged".to_string()
            }
            other => other.to_string(),
        };
        let required = match self {
            Error::WrongStampCount { required, .. } => Some(required),
            _ => None,
        };
        let unavailable = matches!(self, Error::Unavailable(_));
        let mut response = problem_with(status, self.code(), &detail, required);
        if status == StatusCode::UNAUTHORIZED {
            // RFC 9110, 11.6.1: a 401 names the scheme that would succeed (RFC 6750's Bearer).
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(BEARER_CHALLENGE),
            );
        }
        if unavailable {
            // Storage or the database is away for now: a short wait, then try again.
            response.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from_static(UNAVAILABLE_RETRY_AFTER_SECS),
            );
        }
        if let Error::RateLimited { retry_after_secs }
        | Error::AuthFailuresLimited {
            retry_after_secs, ..
        }
        | Error::AuditCatchingUp {
            retry_after_secs, ..
        } = self
        {
            if let Ok(value) = HeaderValue::from_str(&retry_after_secs.to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, value);
            }
        }
        response
    }
}

fn body_error(rejection: BytesRejection, limit: usize) -> Error {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        Error::PayloadTooLarge(limit)
    } else {
        Error::BadRequest(format!(
            "cannot read the request body: {}",
            rejection.body_text()
        ))
    }
}

/// A whole body as bytes (a webhook's, whose signature is over the exact bytes), within the
/// route's limit: 413 `payload_too_large` over it.
pub struct RawBody(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for RawBody {
    type Rejection = Error;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let limit = req.extensions().get::<BodyLimit>().map_or(65_536, |l| l.0);
        Bytes::from_request(req, state)
            .await
            .map(RawBody)
            .map_err(|r| body_error(r, limit))
    }
}

/// A JSON body, refused with our own errors: 413 `payload_too_large` over the limit, 400
/// `bad_request` for a wrong content type, bad UTF-8, malformed JSON, missing fields or wrong
/// types.
pub struct ApiJson<T>(pub T);

/// The body limit, put in request extensions by the router so extractors can name it.
#[derive(Clone, Copy)]
pub struct BodyLimit(pub usize);

/// Reads a whole body within the limit and checks its content type. `Ok(None)` for an empty
/// body, which only [`ApiOptionalJson`] accepts.
async fn read_json_body<S: Send + Sync>(req: Request, state: &S) -> Result<Option<Bytes>, Error> {
    let limit = req.extensions().get::<BodyLimit>().map_or(65_536, |l| l.0);
    let json_content = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| {
            let v = v.trim().to_ascii_lowercase();
            v == "application/json" || (v.starts_with("application/") && v.ends_with("+json"))
        })
        .unwrap_or(false);
    let bytes = Bytes::from_request(req, state)
        .await
        .map_err(|r| body_error(r, limit))?;
    if bytes.is_empty() {
        return Ok(None);
    }
    if !json_content {
        return Err(Error::BadRequest(
            "Content-Type must be application/json".into(),
        ));
    }
    Ok(Some(bytes))
}

fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Error> {
    serde_json::from_slice(bytes)
        .map_err(|e| Error::BadRequest(format!("malformed JSON body: {e}")))
}

impl<S, T> FromRequest<S> for ApiJson<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = Error;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = read_json_body(req, state)
            .await?
            .ok_or_else(|| Error::BadRequest("a JSON body is required".into()))?;
        Ok(ApiJson(parse_json(&bytes)?))
    }
}

/// Like [`ApiJson`], but an empty body (with any content type, or none) is `None`.
pub struct ApiOptionalJson<T>(pub Option<T>);

impl<S, T> FromRequest<S> for ApiOptionalJson<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = Error;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match read_json_body(req, state).await? {
            Some(bytes) => Ok(ApiOptionalJson(Some(parse_json(&bytes)?))),
            None => Ok(ApiOptionalJson(None)),
        }
    }
}

/// A path parameter, refused as 400 `bad_request` when it does not parse (for example an id
/// that is not a UUID).
pub struct ApiPath<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiPath<T>
where
    S: Send + Sync,
    T: DeserializeOwned + Send,
{
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| ApiPath(p.0))
            .map_err(|e: PathRejection| Error::BadRequest(format!("bad path: {}", e.body_text())))
    }
}

/// Query parameters, refused as 400 `bad_request` when they do not parse.
pub struct ApiQuery<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiQuery<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| ApiQuery(q.0))
            .map_err(|e: QueryRejection| {
                Error::BadRequest(format!("bad query string: {}", e.body_text()))
            })
    }
}
