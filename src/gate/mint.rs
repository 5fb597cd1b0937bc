//! The gate's calls to its mint: hold, capture, release (GATE.md, "Holds"), each timed into
//! the metrics. The proxy's loop never builds a mint request itself.
//!
//! Must not: send a hold id anywhere but the mint, or treat an answer it does not understand as
//! success.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::telemetry;

/// How long one call to the mint may take before it counts as unanswered.
pub const MINT_CALL_TIMEOUT: Duration = Duration::from_secs(5);
/// How long to wait for a connection to the mint.
pub const MINT_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// The longest accepted answer of the mint (a problem or a hold).
const ANSWER_BYTES_MAX: usize = 64 * 1024;
/// The longest hold id the gate accepts from the mint (it goes into a URL path).
const HOLD_ID_BYTES_MAX: usize = 128;

/// A hold the mint granted.
#[derive(Debug, Clone)]
pub struct Hold {
    pub id: String,
    pub count: u64,
}

/// What went wrong with a call to the mint.
#[derive(Debug)]
pub enum MintError {
    /// The mint answered a refusal (4xx) with its own problem: passed to the member as it is.
    Refused {
        status: StatusCode,
        body: Bytes,
        retry_after: Option<axum::http::HeaderValue>,
        code: String,
    },
    /// No usable answer: unreachable, timed out, 5xx, or an answer that does not parse.
    Unavailable(String),
}

#[derive(Serialize)]
struct HoldRequest<'a> {
    stamps: &'a [String],
    context: &'a str,
    ttl_secs: u64,
}

#[derive(Deserialize)]
struct HoldAnswer {
    hold_id: String,
    count: u64,
}

#[derive(Deserialize)]
struct ProblemCode {
    code: String,
}

/// A client of one mint.
#[derive(Clone)]
pub struct MintClient {
    http: reqwest::Client,
    base: String,
}

impl MintClient {
    /// A client of the mint at `base` (`http://host:port`).
    pub fn new(base: &str) -> Result<MintClient, String> {
        let http = reqwest::Client::builder()
            .timeout(MINT_CALL_TIMEOUT)
            .connect_timeout(MINT_CONNECT_TIMEOUT)
            .build()
            .map_err(|e| format!("cannot build the mint's client: {e}"))?;
        Ok(MintClient {
            http,
            base: base.trim_end_matches('/').to_string(),
        })
    }

    /// `POST /v1/stamps/hold`.
    pub async fn hold(
        &self,
        stamps: &[String],
        context: &str,
        ttl_secs: u64,
        member: IpAddr,
    ) -> Result<Hold, MintError> {
        let started = Instant::now();
        let request = self
            .http
            .post(format!("{}/v1/stamps/hold", self.base))
            .header("x-forwarded-for", member.to_string())
            .json(&HoldRequest {
                stamps,
                context,
                ttl_secs,
            });
        let result = match call(request).await {
            Ok(Answer {
                status: StatusCode::CREATED,
                body,
                ..
            }) => serde_json::from_slice::<HoldAnswer>(&body)
                .map_err(|e| {
                    MintError::Unavailable(format!("a hold answer that does not parse: {e}"))
                })
                .and_then(|answer| {
                    let safe = !answer.hold_id.is_empty()
                        && answer.hold_id.len() <= HOLD_ID_BYTES_MAX
                        && answer
                            .hold_id
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
                    if safe {
                        Ok(Hold {
                            id: answer.hold_id,
                            count: answer.count,
                        })
                    } else {
                        Err(MintError::Unavailable(
                            "a hold id that is not a plain token".into(),
                        ))
                    }
                }),
            // A mint without holds (an older pennypost) answers 404 or 405: it cannot serve
            // the gate, which is the operator's problem, not the member's.
            Ok(Answer {
                status: status @ (StatusCode::NOT_FOUND | StatusCode::METHOD_NOT_ALLOWED),
                ..
            }) => Err(MintError::Unavailable(format!(
                "the mint answers POST /v1/stamps/hold with {status}: is it a pennypost with \
                     holds?"
            ))),
            Ok(answer) => Err(refusal(answer)),
            Err(e) => Err(e),
        };
        record(telemetry::GATE_MINT_HOLD, started, &result);
        result
    }

    /// `POST /v1/holds/{id}/capture`.
    pub async fn capture(&self, hold_id: &str, member: IpAddr) -> Result<(), MintError> {
        self.end(hold_id, "capture", telemetry::GATE_MINT_CAPTURE, member)
            .await
    }

    /// `POST /v1/holds/{id}/release`.
    pub async fn release(&self, hold_id: &str, member: IpAddr) -> Result<(), MintError> {
        self.end(hold_id, "release", telemetry::GATE_MINT_RELEASE, member)
            .await
    }

    async fn end(
        &self,
        hold_id: &str,
        what: &str,
        series: &'static str,
        member: IpAddr,
    ) -> Result<(), MintError> {
        let started = Instant::now();
        let request = self
            .http
            .post(format!("{}/v1/holds/{hold_id}/{what}", self.base))
            .header("x-forwarded-for", member.to_string());
        let result = match call(request).await {
            Ok(answer) if answer.status.is_success() => Ok(()),
            Ok(answer) => Err(refusal(answer)),
            Err(e) => Err(e),
        };
        record(series, started, &result);
        result
    }
}

/// Sends `request` and reads its answer (bounded); 5xx and transport failures are
/// `Unavailable`.
async fn call(request: reqwest::RequestBuilder) -> Result<Answer, MintError> {
    let mut response = request
        .send()
        .await
        .map_err(|e| MintError::Unavailable(format!("the mint did not answer: {e}")))?;
    let status = StatusCode::from_u16(response.status().as_u16())
        .map_err(|e| MintError::Unavailable(e.to_string()))?;
    if status.is_server_error() {
        return Err(MintError::Unavailable(format!(
            "the mint answered {status}"
        )));
    }
    let retry_after = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .cloned();
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| MintError::Unavailable(format!("the mint's answer broke off: {e}")))?
    {
        if body.len() + chunk.len() > ANSWER_BYTES_MAX {
            return Err(MintError::Unavailable(
                "the mint's answer is too long".into(),
            ));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Answer {
        status,
        retry_after,
        body: Bytes::from(body),
    })
}

/// A mint's answer below 500.
struct Answer {
    status: StatusCode,
    retry_after: Option<axum::http::HeaderValue>,
    body: Bytes,
}

/// A 4xx of the mint: its problem, when it is one (a refusal without a code is no answer).
fn refusal(answer: Answer) -> MintError {
    match serde_json::from_slice::<ProblemCode>(&answer.body) {
        Ok(problem) if answer.status.is_client_error() => MintError::Refused {
            status: answer.status,
            body: answer.body,
            retry_after: answer.retry_after,
            code: problem.code,
        },
        _ => MintError::Unavailable(format!(
            "the mint answered {} without a problem",
            answer.status
        )),
    }
}

fn record<T>(series: &'static str, started: Instant, result: &Result<T, MintError>) {
    let outcome = match result {
        Ok(_) => "ok",
        Err(MintError::Refused { .. }) => "refused",
        Err(MintError::Unavailable(_)) => "unavailable",
    };
    metrics::histogram!(series, "outcome" => outcome).record(started.elapsed().as_secs_f64());
}
