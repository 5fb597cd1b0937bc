//! The gate's own answers: problem+json in the shape of the mint's (`src/http/problem.rs`:
//! `type`, `title`, `status`, `detail`, `code`), the 402 that asks for stamps (JSON, or a short
//! page for a browser), and a refusal of the mint passed on as the mint wrote it.
//!
//! The gate's codes are strings rather than `api::ErrorCode`, because a refusal of the mint is
//! passed on with whatever code the mint wrote, including codes newer than this gate.

use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Map, Value};

use crate::api::ErrorCode;

use super::mint::MintError;

/// The `type` of a problem with `code`, as the mint spells it.
fn problem_type(code: &str) -> String {
    format!("https://pennypost.dev/problems/{code}")
}

fn title(code: &str) -> String {
    let spaced = code.replace('_', " ");
    let mut chars = spaced.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// A problem+json answer with `code` and any `extra` members.
pub fn problem(
    status: StatusCode,
    code: &str,
    detail: &str,
    extra: Map<String, Value>,
) -> Response {
    let mut body = Map::new();
    body.insert("type".into(), Value::String(problem_type(code)));
    body.insert("title".into(), Value::String(title(code)));
    body.insert("status".into(), json!(status.as_u16()));
    body.insert("detail".into(), Value::String(detail.to_string()));
    body.insert("code".into(), Value::String(code.to_string()));
    body.extend(extra);
    let text = Value::Object(body).to_string();
    (
        status,
        [(header::CONTENT_TYPE, "application/problem+json")],
        text,
    )
        .into_response()
}

/// A problem with no members besides the usual ones.
pub fn plain(status: StatusCode, code: &str, detail: &str) -> Response {
    problem(status, code, detail, Map::new())
}

/// 503 `service_unavailable` (the contract's code for 503): a priced request cannot be paid
/// for now, because the mint cannot be used; it was not forwarded.
pub fn mint_unavailable() -> Response {
    let mut response = plain(
        StatusCode::SERVICE_UNAVAILABLE,
        ErrorCode::ServiceUnavailable.as_str(),
        "the stamp service cannot be reached; the request was not sent to the site and no \
         stamp was spent",
    );
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    response
}

/// A refusal of the mint, as the mint wrote it (its status, code and body), or 503 when the
/// mint gave no usable answer.
pub fn from_mint(error: MintError) -> Response {
    match error {
        MintError::Refused {
            status,
            body,
            retry_after,
            ..
        } => {
            let mut response = (
                status,
                [(header::CONTENT_TYPE, "application/problem+json")],
                body,
            )
                .into_response();
            if let Some(value) = retry_after {
                response.headers_mut().insert(header::RETRY_AFTER, value);
            }
            response
        }
        MintError::Unavailable(_) => mint_unavailable(),
    }
}

/// Whether the `Accept` header names `text/html` (with a weight above 0). No `Accept`, or
/// `*/*` alone, is a program, which gets JSON.
pub fn wants_html(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|text| text.split(','))
        .any(|range| {
            let mut parts = range.split(';');
            let media = parts.next().unwrap_or_default().trim();
            let refused = parts.any(|p| {
                let p = p.trim();
                p.strip_prefix("q=")
                    .and_then(|q| q.trim().parse::<f32>().ok())
                    .is_some_and(|q| q <= 0.0)
            });
            media.eq_ignore_ascii_case("text/html") && !refused
        })
}

fn escape_html(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// What a 402 needs to say.
pub struct PaymentRequired<'a> {
    pub required: u64,
    pub given: usize,
    pub mint: &'a str,
    pub wallet_url: &'a str,
    pub html: bool,
}

/// "1 stamp", "2 stamps".
pub fn stamps(n: u64) -> String {
    if n == 1 {
        "1 stamp".to_string()
    } else {
        format!("{n} stamps")
    }
}

/// 402 `payment_required` with `WWW-Authenticate: Pennypost stamps=N, mint="URL"`: JSON for
/// programs, a short page for a browser.
pub fn payment_required(ask: PaymentRequired<'_>) -> Response {
    let stamps = stamps(ask.required);
    let detail = if ask.given == 0 {
        format!("this action costs {stamps}; send them in the Pennypost-Stamps header")
    } else {
        format!(
            "this action costs {stamps} and the request carried {}",
            ask.given
        )
    };
    let mut response = if ask.html {
        let wallet = escape_html(ask.wallet_url);
        let page = format!(
            "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
             <meta name=\"viewport\" content=\"width=device-width\">\
             <title>Stamps needed</title></head>\n<body>\n<h1>This costs {stamps}</h1>\n\
             <p>This site asks for {stamps} to do this, so that posting costs a little. \
             The request was not sent and nothing was spent.</p>\n\
             <p><a href=\"{wallet}\">Get stamps</a>, then go back and send it again.</p>\n\
             </body></html>\n"
        );
        (
            StatusCode::PAYMENT_REQUIRED,
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            page,
        )
            .into_response()
    } else {
        let mut extra = Map::new();
        extra.insert("required".into(), json!(ask.required));
        extra.insert("mint".into(), json!(ask.mint));
        extra.insert("wallet_url".into(), json!(ask.wallet_url));
        problem(
            StatusCode::PAYMENT_REQUIRED,
            "payment_required",
            &detail,
            extra,
        )
    };
    // The URLs were checked at start to hold no `"` or control characters.
    if let Ok(value) = HeaderValue::from_str(&format!(
        "Pennypost stamps={}, mint=\"{}\"",
        ask.required, ask.mint
    )) {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accept(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::ACCEPT, HeaderValue::from_str(value).expect("value"));
        headers
    }

    #[test]
    fn only_a_named_text_html_gets_the_page() {
        assert!(wants_html(&accept(
            "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
        )));
        assert!(wants_html(&accept("TEXT/HTML")));
        assert!(!wants_html(&accept("*/*")));
        assert!(!wants_html(&accept("application/json")));
        assert!(!wants_html(&accept("text/html;q=0, application/json")));
        assert!(!wants_html(&HeaderMap::new()));
    }

    #[test]
    fn titles_read_as_words() {
        assert_eq!(title("payment_required"), "Payment required");
    }
}
