//! The HTTP client every provider calls its API with: bounded in time and in answer size, no
//! redirects, and every failure a typed [`ProviderError`].
//!
//! Errors carry no URL (a URL could carry credentials an operator wrote into it) and no
//! header: only the provider, the call's name and what went wrong.

use std::time::{Duration, Instant};

use reqwest::{RequestBuilder, Response, StatusCode};
use serde::de::DeserializeOwned;

use super::ProviderError;
use crate::telemetry;

/// Longest wait for a TCP and TLS connection to a provider.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest a whole call may take (connect, send, answer read to its end), by default.
/// Checkout pages and webhooks wait on it, so it stays well under a provider's webhook
/// timeout (Stripe waits about 20 s).
pub const REQUEST_TIMEOUT_DEFAULT: Duration = Duration::from_secs(10);
/// Bounds of the configurable call time (`PaymentsConfig::provider_timeout_secs`).
pub const REQUEST_TIMEOUT_MIN: Duration = Duration::from_secs(1);
pub const REQUEST_TIMEOUT_MAX: Duration = Duration::from_secs(60);
/// Largest answer read from a provider; a longer one is a bad answer. A Checkout Session,
/// charge, dispute or invoice is a few KiB.
pub const ANSWER_BYTES_MAX: usize = 1 << 20;
/// Characters of a provider's error message kept in a [`ProviderError`].
pub const DETAIL_CHARS_MAX: usize = 200;

/// An HTTP client for one provider.
#[derive(Clone, Debug)]
pub struct ApiClient {
    client: reqwest::Client,
    provider: &'static str,
    timeout: Duration,
}

/// An answer read whole: its status and body.
pub struct Answer {
    pub status: StatusCode,
    pub body: Vec<u8>,
}

impl ApiClient {
    /// A client whose every call ends within `timeout`. Fails only when the TLS backend
    /// cannot start (no usable root certificates), which refuses the server's start.
    pub fn new(provider: &'static str, timeout: Duration) -> Result<ApiClient, String> {
        let client = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT.min(timeout))
            .timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("pennypost/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("{provider}: cannot build the HTTP client: {e}"))?;
        Ok(ApiClient {
            client,
            provider,
            timeout,
        })
    }

    pub fn provider(&self) -> &'static str {
        self.provider
    }

    pub fn http(&self) -> &reqwest::Client {
        &self.client
    }

    /// Sends the request and reads the answer whole, within the time and size bounds. Its
    /// time is recorded ([`telemetry::PAYMENT_PROVIDER_DURATION`]).
    pub async fn send(
        &self,
        call: &'static str,
        request: RequestBuilder,
    ) -> Result<Answer, ProviderError> {
        let started = Instant::now();
        let answer = self.send_unmeasured(call, request).await;
        metrics::histogram!(
            telemetry::PAYMENT_PROVIDER_DURATION,
            "provider" => self.provider,
            "call" => call,
        )
        .record(started.elapsed().as_secs_f64());
        answer
    }

    async fn send_unmeasured(
        &self,
        call: &'static str,
        request: RequestBuilder,
    ) -> Result<Answer, ProviderError> {
        let response = request.send().await.map_err(|e| self.error(call, e))?;
        let status = response.status();
        let body = self.read_bounded(call, response).await?;
        Ok(Answer { status, body })
    }

    /// Sends the request and reads a JSON answer of type `T`. An error status becomes
    /// [`ProviderError::Refused`] with the message `detail` finds in its body.
    pub async fn json<T: DeserializeOwned>(
        &self,
        call: &'static str,
        request: RequestBuilder,
        detail: fn(&[u8]) -> Option<String>,
    ) -> Result<T, ProviderError> {
        let answer = self.send(call, request).await?;
        if !answer.status.is_success() {
            return Err(self.counted(ProviderError::Refused {
                provider: self.provider,
                call,
                status: answer.status.as_u16(),
                detail: detail(&answer.body)
                    .map(|d| clip(&d))
                    .unwrap_or_else(|| "no message".into()),
            }));
        }
        serde_json::from_slice(&answer.body).map_err(|e| self.bad_answer(call, e.to_string()))
    }

    /// A [`ProviderError::BadAnswer`] of this provider (counted).
    pub fn bad_answer(&self, call: &'static str, detail: impl Into<String>) -> ProviderError {
        self.counted(ProviderError::BadAnswer {
            provider: self.provider,
            call,
            detail: clip(&detail.into()),
        })
    }

    /// Counts a failed call ([`telemetry::PAYMENT_PROVIDER_ERRORS`]): every [`ProviderError`]
    /// of a call is made through here once.
    fn counted(&self, error: ProviderError) -> ProviderError {
        let call = match &error {
            ProviderError::Unreachable { call, .. }
            | ProviderError::Timeout { call, .. }
            | ProviderError::BadAnswer { call, .. }
            | ProviderError::Refused { call, .. } => *call,
        };
        metrics::counter!(
            telemetry::PAYMENT_PROVIDER_ERRORS,
            "provider" => self.provider,
            "call" => call,
            "kind" => error.kind(),
        )
        .increment(1);
        error
    }

    async fn read_bounded(
        &self,
        call: &'static str,
        mut response: Response,
    ) -> Result<Vec<u8>, ProviderError> {
        if response
            .content_length()
            .is_some_and(|n| n > ANSWER_BYTES_MAX as u64)
        {
            return Err(self.bad_answer(call, format!("answer over {ANSWER_BYTES_MAX} bytes")));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| self.error(call, e))? {
            if body.len() + chunk.len() > ANSWER_BYTES_MAX {
                return Err(self.bad_answer(call, format!("answer over {ANSWER_BYTES_MAX} bytes")));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }

    fn error(&self, call: &'static str, error: reqwest::Error) -> ProviderError {
        let error = error.without_url();
        if error.is_timeout() {
            self.counted(ProviderError::Timeout {
                provider: self.provider,
                call,
                secs: self.timeout.as_secs(),
            })
        } else if error.is_body() || error.is_decode() {
            self.bad_answer(call, error_chain(&error))
        } else {
            self.counted(ProviderError::Unreachable {
                provider: self.provider,
                call,
                detail: clip(&error_chain(&error)),
            })
        }
    }
}

/// The error and its causes in one line ("error sending request: connection refused").
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// At most [`DETAIL_CHARS_MAX`] characters, control characters replaced, for a log line.
pub fn clip(text: &str) -> String {
    text.chars()
        .take(DETAIL_CHARS_MAX)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_call_is_timed_and_every_failure_counted() {
        let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        let closed = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port");
        metrics::with_local_recorder(&recorder, || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async {
                let api = ApiClient::new("stripe", Duration::from_secs(1)).expect("client");
                let request = api.http().get(format!("http://{closed}/v1/charges/ch_1"));
                let error = api
                    .json::<serde_json::Value>("GET /v1/charges/{id}", request, |_| None)
                    .await
                    .expect_err("nothing listens there");
                assert_eq!(error.kind(), "unreachable", "{error}");
                assert!(!error.to_string().contains("127.0.0.1"), "no URL: {error}");
            });
        });
        let text = handle.render();
        let errors = text
            .lines()
            .find(|l| l.starts_with(telemetry::PAYMENT_PROVIDER_ERRORS))
            .expect("the error counted");
        for part in [
            "provider=\"stripe\"",
            "call=\"GET /v1/charges/{id}\"",
            "kind=\"unreachable\"",
        ] {
            assert!(errors.contains(part), "{errors}");
        }
        assert!(errors.ends_with(" 1"), "{errors}");
        assert!(
            text.contains(&format!("{}_count", telemetry::PAYMENT_PROVIDER_DURATION))
                || text.contains(&format!("{}{{", telemetry::PAYMENT_PROVIDER_DURATION)),
            "{text}"
        );
    }

    #[test]
    fn details_are_short_single_lines() {
        assert_eq!(clip("a\nb\tc"), "a b c");
        assert_eq!(clip(&"x".repeat(1000)).chars().count(), DETAIL_CHARS_MAX);
    }
}
