//! `/.pennypost/`: the gate's own paths, never forwarded to the site.
//!
//! - `GET /.pennypost/routes`: the priced routes and the mint's and wallet's URLs.
//! - `GET /.pennypost/gate.js`: the script a site's pages load (one `<script>` tag): the wallet
//!   code shared with the board's page (`src/web/wallet.js`) followed by `gate.js`.
//! - `/.pennypost/mint/…`: the mint's member routes (accounts, stamps, payments), so gate.js
//!   talks only to the site's origin. A fixed allow-list: never the admin routes, holds or
//!   redeem, and never the site's cookies.
//!
//! Anything else under `/.pennypost/` is 404.

use std::net::IpAddr;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::api::ErrorCode;

use super::path::Normalised;
use super::{answer, proxy, Gate};

/// The script a site's pages load: the wallet shared with the board's page, then the gate's.
const GATE_JS: &str = concat!(include_str!("../web/wallet.js"), include_str!("gate.js"));

/// Where the mint's member routes are, under the site's origin.
pub const MINT_PREFIX: &str = "/.pennypost/mint";

/// The mint's routes a member's page may reach through the gate: the path segments after
/// `v1`, `*` for one segment of any value.
const MINT_ROUTES: &[(&str, &[&str])] = &[
    ("POST", &["accounts"]),
    ("GET", &["account"]),
    ("GET", &["keys"]),
    ("GET", &["prices"]),
    ("POST", &["stamps", "purchase"]),
    ("POST", &["stamps", "verify"]),
    ("GET", &["stamps", "*"]),
    ("GET", &["payments", "providers"]),
    ("POST", &["payments"]),
    ("GET", &["payments"]),
    ("GET", &["payments", "*"]),
];

/// Whether `method` and the segments after `/.pennypost/mint/v1` are a member route.
fn mint_route_allowed(method: &Method, rest: &[String]) -> bool {
    MINT_ROUTES.iter().any(|(m, pattern)| {
        method.as_str() == *m
            && pattern.len() == rest.len()
            && pattern.iter().zip(rest).all(|(p, s)| *p == "*" || p == s)
    })
}

fn script(text: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        text,
    )
        .into_response()
}

fn not_found() -> Response {
    answer::plain(
        StatusCode::NOT_FOUND,
        ErrorCode::NotFound.as_str(),
        "no such path under /.pennypost/",
    )
}

/// Answers a request under `/.pennypost/`.
pub async fn handle(gate: &Gate, member: IpAddr, path: &Normalised, request: Request) -> Response {
    let segments = path.plain();
    let rest: Vec<&str> = segments.iter().skip(1).map(|s| s.as_str()).collect();
    let method = request.method().clone();
    match (method.clone(), rest.as_slice()) {
        (Method::GET, ["routes"]) => routes(gate),
        (Method::GET, ["gate.js"]) => script(GATE_JS),
        (_, ["mint", "v1", ..]) => {
            let tail: Vec<String> = segments.iter().skip(3).cloned().collect();
            // Every reading must be the same route: an encoded slash or `;` could otherwise
            // make the mint see another path than the one allowed here.
            if path.readings.len() != 1 || !mint_route_allowed(&method, &tail) {
                return not_found();
            }
            to_mint(gate, member, &tail, request).await
        }
        _ => not_found(),
    }
}

fn routes(gate: &Gate) -> Response {
    let routes: Vec<_> = gate
        .config
        .routes
        .iter()
        .map(|r| {
            json!({
                "method": r.method.as_str(),
                "path": r.path,
                "stamps": r.stamps,
                "capture": r.capture.as_str(),
            })
        })
        .collect();
    let body = json!({
        "routes": routes,
        "mint": gate.config.mint_public_url,
        "mint_proxy": MINT_PREFIX,
        "wallet_url": gate.config.wallet_url,
    });
    ([(header::CACHE_CONTROL, "no-cache")], axum::Json(body)).into_response()
}

/// Passes a member route to the mint: the checked path (never the raw one), the query, the
/// body streaming; no cookies either way.
async fn to_mint(gate: &Gate, member: IpAddr, tail: &[String], mut request: Request) -> Response {
    let query = request
        .uri()
        .query()
        .map(|q| format!("?{q}"))
        .unwrap_or_default();
    let path_and_query = format!("/v1/{}{query}", tail.join("/"));
    let to = match proxy::target(&gate.config.mint, &path_and_query) {
        Ok(to) => to,
        Err(_) => return not_found(),
    };
    proxy::clean_request_headers(request.headers_mut(), member, false);
    request.headers_mut().remove(header::COOKIE);
    if let Some(authority) = gate.config.mint.authority() {
        if let Ok(value) = HeaderValue::from_str(authority.as_str()) {
            request.headers_mut().insert(header::HOST, value);
        }
    }
    proxy::point(&mut request, to);
    let request = request.map(Body::new);
    match gate
        .forwarder
        .send(request, super::mint::MINT_CALL_TIMEOUT)
        .await
    {
        Ok(response) => {
            let mut response = proxy::relay(response);
            response.headers_mut().remove(header::SET_COOKIE);
            response
        }
        Err(_) => answer::mint_unavailable(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segs(path: &str) -> Vec<String> {
        path.split('/').map(str::to_string).collect()
    }

    #[test]
    fn only_member_routes_reach_the_mint() {
        assert!(mint_route_allowed(&Method::POST, &segs("stamps/purchase")));
        assert!(mint_route_allowed(&Method::GET, &segs("stamps/abc")));
        assert!(mint_route_allowed(&Method::GET, &segs("account")));
        for (method, path) in [
            (Method::POST, "stamps/redeem"),
            (Method::POST, "stamps/hold"),
            (Method::POST, "holds/x/release"),
            (Method::POST, "admin/accounts/x/credit"),
            (Method::GET, "audit"),
            (Method::POST, "payments/webhooks/stripe"),
            (Method::DELETE, "account"),
        ] {
            assert!(!mint_route_allowed(&method, &segs(path)), "{method} {path}");
        }
    }
}
