//! A server's base URL as people type it (`--server`), for the auditor and for every client
//! command of `pennypost`: `127.0.0.1:8080` gets `http://`, a trailing `/` goes, and anything
//! that is not an `http://` or `https://` URL of a host is refused in words instead of the
//! HTTP library's `builder error`.
//!
//! Pure: it parses, it does not resolve or connect.

/// The scheme added to an address typed without one.
pub const DEFAULT_SCHEME: &str = "http";

/// `text` as a base URL (`http://host:port` or `https://host:port[/prefix]`, no trailing `/`),
/// or why it is not one. Usable as a clap `value_parser`.
pub fn base_url(text: &str) -> Result<String, String> {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err("the server's URL is empty: give http://HOST:PORT".into());
    }
    let with_scheme = match trimmed.split_once("://") {
        Some((scheme, _)) if scheme.eq_ignore_ascii_case("http") => trimmed.to_string(),
        Some((scheme, _)) if scheme.eq_ignore_ascii_case("https") => trimmed.to_string(),
        Some((scheme, _)) => {
            return Err(format!(
                "{trimmed:?}: the scheme {scheme:?} is not http:// or https://"
            ))
        }
        None => format!("{DEFAULT_SCHEME}://{trimmed}"),
    };
    let url = reqwest::Url::parse(&with_scheme)
        .map_err(|e| format!("{trimmed:?} is not a server URL ({e}): give http://HOST:PORT"))?;
    if url.host_str().is_none_or(str::is_empty) {
        return Err(format!("{trimmed:?} names no host: give http://HOST:PORT"));
    }
    if url.query().is_some() || url.fragment().is_some() || !url.username().is_empty() {
        return Err(format!(
            "{trimmed:?}: a server's base URL has no user, query or fragment"
        ));
    }
    Ok(url.as_str().trim_end_matches('/').to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_scheme_is_added_and_a_trailing_slash_dropped() {
        for (typed, url) in [
            ("127.0.0.1:18080", "http://127.0.0.1:18080"),
            ("localhost:8080/", "http://localhost:8080"),
            ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
            ("HTTPS://board.example.org/", "https://board.example.org"),
            (
                "https://example.org/pennypost/",
                "https://example.org/pennypost",
            ),
            ("[::1]:8080", "http://[::1]:8080"),
            (" http://h:1 ", "http://h:1"),
        ] {
            assert_eq!(base_url(typed).as_deref(), Ok(url), "{typed}");
        }
    }

    #[test]
    fn what_is_not_a_server_url_is_said_in_words() {
        for (typed, words) in [
            ("", "empty"),
            ("ftp://example.org", "not http:// or https://"),
            ("http://", "not a server URL"),
            ("http://127.0.0.1:99999", "not a server URL"),
            ("http://h:1/?x=1", "no user, query or fragment"),
            ("http://me@h:1", "no user, query or fragment"),
        ] {
            let error = base_url(typed).expect_err(typed);
            assert!(error.contains(words), "{typed}: {error}");
        }
    }
}
