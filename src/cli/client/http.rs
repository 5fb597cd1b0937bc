//! Talking to the server: send a request, read the whole answer, and say what went wrong in
//! one line (`<code> (<status>): <detail>`).

use serde::de::DeserializeOwned;

use crate::api::Problem;

/// An HTTP answer: status and body.
pub struct Answer {
    pub status: u16,
    pub body: bytes::Bytes,
}

impl Answer {
    /// The body as the answer type `T`.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, String> {
        serde_json::from_slice(&self.body).map_err(|e| format!("cannot read the answer: {e}"))
    }

    /// The body as an error answer, when it is one.
    pub fn problem(&self) -> Option<Problem> {
        serde_json::from_slice(&self.body).ok()
    }

    pub fn describe(&self) -> String {
        let problem = self.problem();
        format!(
            "{} ({}): {}",
            problem.as_ref().map_or("", |p| p.code.as_str()),
            self.status,
            problem.as_ref().map_or("no detail", |p| p.detail.as_str())
        )
    }
}

/// Sends `request` (to `url`) and reads the whole answer.
pub async fn call(request: reqwest::RequestBuilder, url: &str) -> Result<Answer, String> {
    let response = request
        .send()
        .await
        .map_err(|e| format!("cannot reach {url}: {e}"))?;
    let status = response.status().as_u16();
    let body = response.bytes().await.map_err(|e| e.to_string())?;
    Ok(Answer { status, body })
}
