//! `gate.toml`: read, checked and compiled once at start, so a mistake stops the start with a
//! message naming its line instead of surfacing on some later request (Aperture's habit).
//!
//! Must not: accept a key it does not know, a route twice, or a hold that could expire before
//! the upstream has answered.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use axum::http::{Method, Uri};
use serde::Deserialize;
use toml::Spanned;

use super::path::{Normalised, Pattern};

/// `hold_ttl_secs` when the file does not say.
pub const HOLD_TTL_SECS_DEFAULT: u64 = 60;
/// The longest hold the mint grants (GATE.md: `ttl_secs` is 1–300), named once in the rules.
pub use crate::rules::HOLD_TTL_SECS_MAX;
/// `upstream_timeout_secs` when the file does not say.
pub const UPSTREAM_TIMEOUT_SECS_DEFAULT: u64 = 30;
/// `max_body_bytes` when the file does not say: 1 MiB.
pub const MAX_BODY_BYTES_DEFAULT: u64 = 1 << 20;
/// The largest `max_body_bytes` a file may set: priced bodies are held in memory.
pub const MAX_BODY_BYTES_LIMIT: u64 = 64 << 20;
/// The most stamps one route may cost (the mint's limit of stamps per request).
pub const STAMPS_PER_ROUTE_MAX: u64 = 100;
/// The most `[[price]]` routes one file may list.
pub const ROUTES_MAX: usize = 1000;

/// When a priced request's stamps are captured rather than released.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Capture {
    /// Capture on 2xx or 3xx (forms answer 303 on success); the default.
    SuccessOrRedirect,
    /// Capture on 2xx only.
    Success,
}

impl Capture {
    /// Whether an upstream answer of `status` spends the stamps.
    pub fn captures(self, status: u16) -> bool {
        match self {
            Capture::SuccessOrRedirect => (200..400).contains(&status),
            Capture::Success => (200..300).contains(&status),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Capture::SuccessOrRedirect => "2xx-3xx",
            Capture::Success => "2xx",
        }
    }
}

/// One priced route, compiled.
#[derive(Debug, Clone)]
pub struct Route {
    pub method: Method,
    /// As written in the file (shown by `/.pennypost/routes`, and the metrics' `rule` label).
    pub path: String,
    pub pattern: Pattern,
    pub stamps: u64,
    pub capture: Capture,
    /// `METHOD path`, the route's label in the metrics.
    pub label: String,
}

/// The gate's whole configuration, checked.
#[derive(Debug, Clone)]
pub struct GateConfig {
    pub listen: SocketAddr,
    /// `http://host:port` of the site.
    pub upstream: Uri,
    /// `http://host:port` of the mint, as the gate reaches it.
    pub mint: Uri,
    /// The mint as members reach it (shown in 402 answers).
    pub mint_public_url: String,
    pub wallet_url: String,
    pub hold_ttl: Duration,
    pub upstream_timeout: Duration,
    pub max_body_bytes: u64,
    pub metrics_listen: Option<SocketAddr>,
    pub routes: Vec<Route>,
}

impl GateConfig {
    /// The first route (in file order) that the request's method and any reading of its path
    /// match; `None` passes free. Methods match without case: HTTP says `post` is another
    /// method than `POST`, but frameworks such as Werkzeug (Flask, Isso) upper-case the method
    /// they are given, so an unpriced `post` would be a free POST there.
    pub fn price(&self, method: &Method, path: &Normalised) -> Option<(usize, &Route)> {
        self.routes.iter().enumerate().find(|(_, route)| {
            route.method.as_str().eq_ignore_ascii_case(method.as_str())
                && path.readings.iter().any(|r| route.pattern.matches(r))
        })
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    listen: Spanned<String>,
    upstream: Spanned<String>,
    mint: Spanned<String>,
    wallet_url: Spanned<String>,
    mint_public_url: Option<Spanned<String>>,
    hold_ttl_secs: Option<Spanned<u64>>,
    upstream_timeout_secs: Option<Spanned<u64>>,
    max_body_bytes: Option<Spanned<u64>>,
    metrics_listen: Option<Spanned<String>>,
    #[serde(default)]
    price: Vec<RawPrice>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPrice {
    method: Spanned<String>,
    path: Spanned<String>,
    stamps: Spanned<u64>,
    capture: Option<Spanned<String>>,
}

/// Reads and checks the file at `path`.
pub fn load(path: &Path) -> Result<GateConfig, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("config file {}: {e}", path.display()))?;
    parse(&text).map_err(|e| format!("config file {}: {e}", path.display()))
}

/// The 1-based line of byte `offset` in `text`.
fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// Checks and compiles the text of a config file. Errors start with `line N:`.
pub fn parse(text: &str) -> Result<GateConfig, String> {
    let raw: RawConfig = toml::from_str(text).map_err(|e| {
        let line = e.span().map_or(1, |span| line_of(text, span.start));
        format!("line {line}: {}", e.message())
    })?;
    let at = |span: std::ops::Range<usize>, what: String| -> String {
        format!("line {}: {what}", line_of(text, span.start))
    };
    let listen = raw
        .listen
        .get_ref()
        .parse::<SocketAddr>()
        .map_err(|e| at(raw.listen.span(), format!("listen: {e} (want host:port)")))?;
    let metrics_listen = match &raw.metrics_listen {
        Some(value) => Some(value.get_ref().parse::<SocketAddr>().map_err(|e| {
            at(
                value.span(),
                format!("metrics_listen: {e} (want host:port)"),
            )
        })?),
        None => None,
    };
    let upstream =
        base_uri(&raw.upstream).map_err(|e| at(raw.upstream.span(), format!("upstream: {e}")))?;
    let mint = base_uri(&raw.mint).map_err(|e| at(raw.mint.span(), format!("mint: {e}")))?;
    let wallet_url = shown_url(raw.wallet_url.get_ref())
        .map_err(|e| at(raw.wallet_url.span(), format!("wallet_url: {e}")))?;
    let mint_public_url = match &raw.mint_public_url {
        // A base URL: clients add `/v1/...` to it, so a trailing `/` goes.
        Some(value) => shown_url(value.get_ref())
            .map_err(|e| at(value.span(), format!("mint_public_url: {e}")))?
            .trim_end_matches('/')
            .to_string(),
        None => raw.mint.get_ref().trim_end_matches('/').to_string(),
    };
    let upstream_timeout = match &raw.upstream_timeout_secs {
        Some(value) if *value.get_ref() == 0 => {
            return Err(at(
                value.span(),
                "upstream_timeout_secs must be at least 1".into(),
            ))
        }
        Some(value) => *value.get_ref(),
        None => UPSTREAM_TIMEOUT_SECS_DEFAULT,
    };
    let hold_ttl = match &raw.hold_ttl_secs {
        Some(value) => {
            let ttl = *value.get_ref();
            if ttl > HOLD_TTL_SECS_MAX {
                return Err(at(
                    value.span(),
                    format!("hold_ttl_secs is {ttl}; the mint holds at most {HOLD_TTL_SECS_MAX}"),
                ));
            }
            if ttl <= upstream_timeout {
                return Err(at(
                    value.span(),
                    format!(
                        "hold_ttl_secs ({ttl}) must be longer than upstream_timeout_secs \
                         ({upstream_timeout}), or a hold could expire while the site works"
                    ),
                ));
            }
            ttl
        }
        None if HOLD_TTL_SECS_DEFAULT <= upstream_timeout => {
            let span = raw
                .upstream_timeout_secs
                .as_ref()
                .map_or(0..0, |value| value.span());
            return Err(at(
                span,
                format!(
                    "upstream_timeout_secs ({upstream_timeout}) must be shorter than \
                     hold_ttl_secs ({HOLD_TTL_SECS_DEFAULT} by default)"
                ),
            ));
        }
        None => HOLD_TTL_SECS_DEFAULT,
    };
    let max_body_bytes = match &raw.max_body_bytes {
        Some(value) if *value.get_ref() == 0 || *value.get_ref() > MAX_BODY_BYTES_LIMIT => {
            return Err(at(
                value.span(),
                format!("max_body_bytes must be 1 to {MAX_BODY_BYTES_LIMIT}"),
            ))
        }
        Some(value) => *value.get_ref(),
        None => MAX_BODY_BYTES_DEFAULT,
    };
    if raw.price.len() > ROUTES_MAX {
        return Err(format!(
            "{} [[price]] routes; at most {ROUTES_MAX}",
            raw.price.len()
        ));
    }
    let mut routes: Vec<(Route, usize)> = Vec::new();
    for price in &raw.price {
        let line = line_of(text, price.path.span().start);
        let method_text = price.method.get_ref();
        let method = Method::from_bytes(method_text.as_bytes())
            .ok()
            .filter(|_| {
                !method_text.is_empty() && method_text.bytes().all(|b| b.is_ascii_uppercase())
            })
            .ok_or_else(|| {
                at(
                    price.method.span(),
                    format!("method `{method_text}` is not an upper-case HTTP method (POST)"),
                )
            })?;
        let pattern =
            Pattern::compile(price.path.get_ref()).map_err(|e| at(price.path.span(), e))?;
        let stamps = *price.stamps.get_ref();
        if stamps == 0 || stamps > STAMPS_PER_ROUTE_MAX {
            return Err(at(
                price.stamps.span(),
                format!("stamps must be 1 to {STAMPS_PER_ROUTE_MAX} (a free route needs no entry)"),
            ));
        }
        let capture = match &price.capture {
            None => Capture::SuccessOrRedirect,
            Some(value) => match value.get_ref().as_str() {
                "2xx-3xx" => Capture::SuccessOrRedirect,
                "2xx" => Capture::Success,
                other => {
                    return Err(at(
                        value.span(),
                        format!("capture `{other}` is neither \"2xx-3xx\" nor \"2xx\""),
                    ))
                }
            },
        };
        if let Some((_, first)) = routes
            .iter()
            .find(|(r, _)| r.method == method && r.pattern.canonical() == pattern.canonical())
        {
            return Err(format!(
                "line {line}: the route {method} {} is listed twice (first on line {first})",
                price.path.get_ref()
            ));
        }
        let path = price.path.get_ref().clone();
        routes.push((
            Route {
                label: format!("{method} {path}"),
                method,
                path,
                pattern,
                stamps,
                capture,
            },
            line,
        ));
    }
    Ok(GateConfig {
        listen,
        upstream,
        mint,
        mint_public_url,
        wallet_url,
        hold_ttl: Duration::from_secs(hold_ttl),
        upstream_timeout: Duration::from_secs(upstream_timeout),
        max_body_bytes,
        metrics_listen,
        routes: routes.into_iter().map(|(route, _)| route).collect(),
    })
}

/// An `http://host:port` the gate connects to: plain HTTP (the gate, its site and its mint sit
/// on one private network; TLS ends in front of the gate), no path, query or credentials.
fn base_uri(value: &Spanned<String>) -> Result<Uri, String> {
    let text = value.get_ref().trim_end_matches('/');
    let uri: Uri = text
        .parse()
        .map_err(|e| format!("`{text}` is not a URL: {e}"))?;
    if uri.scheme_str() != Some("http") {
        return Err(format!(
            "`{text}` must be an http:// URL (the gate connects over plain HTTP on a private \
             network)"
        ));
    }
    let Some(authority) = uri.authority() else {
        return Err(format!("`{text}` has no host"));
    };
    if authority.as_str().contains('@') {
        return Err(format!("`{text}` must not carry credentials"));
    }
    if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
        return Err(format!("`{text}` must have no path or query"));
    }
    Ok(uri)
}

/// A URL shown to members (in 402 answers and pages) as the operator wrote it: http or https,
/// and nothing that would break out of a quoted header value or an HTML attribute.
fn shown_url(text: &str) -> Result<String, String> {
    let url = reqwest::Url::parse(text).map_err(|e| format!("`{text}` is not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("`{text}` must be an http:// or https:// URL"));
    }
    if text
        .bytes()
        .any(|b| matches!(b, b'"' | b'<' | b'>' | b'\\') || !b.is_ascii_graphic())
    {
        return Err(format!("`{text}` has characters a URL must escape"));
    }
    Ok(text.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "listen = \"127.0.0.1:0\"\nupstream = \"http://127.0.0.1:3000\"\n\
                        mint = \"http://127.0.0.1:8080\"\nwallet_url = \"https://stamps.example.org/\"\n";

    fn with(more: &str) -> Result<GateConfig, String> {
        parse(&format!("{BASE}{more}"))
    }

    #[test]
    fn the_example_parses_with_its_defaults() {
        let config = with(
            "\n[[price]]\nmethod = \"POST\"\npath = \"/t/*/posts\"\nstamps = 1\n\
             \n[[price]]\nmethod = \"PUT\"\npath = \"/x\"\nstamps = 2\ncapture = \"2xx\"\n",
        )
        .expect("parses");
        assert_eq!(config.hold_ttl, Duration::from_secs(60));
        assert_eq!(config.upstream_timeout, Duration::from_secs(30));
        assert_eq!(config.max_body_bytes, 1 << 20);
        assert_eq!(config.mint_public_url, "http://127.0.0.1:8080");
        // The wallet is a page: its URL is shown as written, trailing `/` included.
        assert_eq!(config.wallet_url, "https://stamps.example.org/");
        assert_eq!(config.routes.len(), 2);
        assert_eq!(config.routes[0].capture, Capture::SuccessOrRedirect);
        assert_eq!(config.routes[1].capture, Capture::Success);
        assert_eq!(config.routes[1].label, "PUT /x");
    }

    fn error_line(more: &str) -> (usize, String) {
        let error = with(more).expect_err("refused");
        let line = error
            .strip_prefix("line ")
            .and_then(|rest| rest.split(':').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no line in {error}"));
        (line, error)
    }

    #[test]
    fn mistakes_name_their_line() {
        let route = |method: &str, path: &str| {
            format!("[[price]]\nmethod = \"{method}\"\npath = \"{path}\"\nstamps = 1\n")
        };
        // Lines 1-4 are BASE; the first route's `path` is on line 7, the second's on line 11.
        let (line, e) = error_line(&format!("{}{}", route("POST", "/a"), route("POST", "/a/")));
        assert_eq!(line, 11, "{e}");
        assert!(e.contains("listed twice") && e.contains("line 7"), "{e}");
        let (line, e) = error_line("colour = \"blue\"\n");
        assert_eq!(line, 5, "{e}");
        assert!(e.contains("colour"), "{e}");
        let (line, e) = error_line(&route("post", "/a"));
        assert_eq!(line, 6, "{e}");
        let (line, e) = error_line(&route("POST", "/a*"));
        assert_eq!(line, 7, "{e}");
        let (line, e) = error_line(&format!("{}capture = \"4xx\"\n", route("POST", "/a")));
        assert_eq!(line, 9, "{e}");
        let (line, e) = error_line(&format!("{}flavour = 1\n", route("POST", "/a")));
        assert_eq!(line, 9, "{e}");
        let (line, e) = error_line("hold_ttl_secs = 20\n");
        assert_eq!(line, 5, "{e}");
        assert!(e.contains("longer than upstream_timeout_secs"), "{e}");
        let (line, e) = error_line("upstream_timeout_secs = 90\n");
        assert_eq!(line, 5, "{e}");
    }

    #[test]
    fn a_different_method_is_a_different_route() {
        let config = with(
            "[[price]]\nmethod = \"POST\"\npath = \"/a\"\nstamps = 1\n\
             [[price]]\nmethod = \"PUT\"\npath = \"/a\"\nstamps = 1\n",
        )
        .expect("parses");
        let path = super::super::path::normalise("/a/").expect("normalises");
        assert_eq!(config.price(&Method::PUT, &path).map(|(i, _)| i), Some(1));
        assert!(config.price(&Method::GET, &path).is_none());
    }

    /// GATE.md: the first matching `[[price]]` wins; `capture` is "2xx-3xx" by default
    /// (forms answer 303 on success) or "2xx".
    #[test]
    fn the_first_matching_route_prices_and_capture_follows_its_rule() {
        let config = with(
            "[[price]]\nmethod = \"POST\"\npath = \"/t/*/posts\"\nstamps = 2\ncapture = \"2xx\"\n\
             [[price]]\nmethod = \"POST\"\npath = \"/t/**\"\nstamps = 5\n",
        )
        .expect("parses");
        let at = |p: &str| super::super::path::normalise(p).expect("normalises");
        let (index, route) = config
            .price(&Method::POST, &at("/t/7/posts"))
            .expect("priced");
        assert_eq!((index, route.stamps), (0, 2));
        let (index, route) = config
            .price(&Method::POST, &at("/t/7/votes"))
            .expect("priced");
        assert_eq!((index, route.stamps), (1, 5));
        assert!(config.price(&Method::POST, &at("/u/7")).is_none());
        for (status, default, success) in [
            (200, true, true),
            (201, true, true),
            (303, true, false),
            (399, true, false),
            (400, false, false),
            (500, false, false),
            (101, false, false),
        ] {
            assert_eq!(
                Capture::SuccessOrRedirect.captures(status),
                default,
                "{status}"
            );
            assert_eq!(Capture::Success.captures(status), success, "{status}");
        }
        assert_eq!(config.routes[1].capture, Capture::SuccessOrRedirect);
    }

    /// GATE.md: `hold_ttl_secs` (default 60) is always longer than `upstream_timeout_secs`
    /// (default 30), or the gate refuses to start.
    #[test]
    fn a_hold_must_outlive_the_upstream_timeout() {
        assert!(with("upstream_timeout_secs = 60\n").is_err());
        let config = with("upstream_timeout_secs = 59\n").expect("parses");
        assert_eq!(config.hold_ttl, Duration::from_secs(60));
        assert!(with("hold_ttl_secs = 30\n").is_err());
        let config = with("hold_ttl_secs = 31\n").expect("parses");
        assert_eq!(config.upstream_timeout, Duration::from_secs(30));
        assert!(with("hold_ttl_secs = 301\nupstream_timeout_secs = 1\n").is_err());
    }

    #[test]
    fn addresses_are_checked() {
        assert!(parse(&BASE.replace("http://127.0.0.1:3000", "https://x")).is_err());
        assert!(parse(&BASE.replace("http://127.0.0.1:3000", "http://x/forum")).is_err());
        assert!(parse(&BASE.replace("https://stamps.example.org/", "https://a\\\"b")).is_err());
        assert!(parse(&BASE.replace("127.0.0.1:0", "nowhere")).is_err());
    }
}
