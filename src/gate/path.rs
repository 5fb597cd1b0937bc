//! Request paths as the gate prices them: normalisation, and route patterns compiled once at
//! start and matched against every normalised form of a path.
//!
//! A site and the gate must never disagree on which route a request hits, or a member could
//! reach a priced route by a spelling the gate does not price. So the gate normalises what
//! upstreams commonly treat as the same path, and where upstreams differ it either refuses the
//! request or prices every reading of it:
//!
//! - Percent-encoded unreserved characters (`%63` for `c`) are decoded; other escapes keep
//!   their meaning (their hex is upper-cased). A `%` not followed by two hex digits is refused.
//! - Empty segments (`//`, a trailing `/`) are dropped.
//! - Dot segments (`.`, `..`, also spelt `%2E`) are refused (400 `bad_request`): servers resolve them
//!   differently (some before routing, some never), and no browser sends them (it resolves
//!   them before sending).
//! - An encoded slash or backslash (`%2F`, `%5C`) or a raw backslash is one segment to some
//!   servers and a separator to others (nginx with `merge_slashes`, Windows servers): the path
//!   is matched both ways. Matrix parameters (`;jsessionid=…`) are ignored by Java servers when
//!   routing: a path with `;` is matched with and without them. The first route that any
//!   reading matches prices the request.
//! - A last segment's format suffix (`/posts.json`, Rails' formats; a trailing `.`, which
//!   some servers drop) is matched with and without it.
//! - Literal segments match without regard to ASCII case, since some servers route that way.
//!
//! Must not: allocate more than a few strings per request, or be anything but pure.

use std::fmt;

/// Why a path is refused before matching.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathError {
    /// Not an origin-form path (`*`, or not starting with `/`).
    NotAbsolute,
    /// A `%` not followed by two hex digits.
    BadEscape,
    /// A `.` or `..` segment, however spelt.
    DotSegment,
}

impl fmt::Display for PathError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PathError::NotAbsolute => "the path does not start with `/`",
            PathError::BadEscape => "the path has a `%` that is not followed by two hex digits",
            PathError::DotSegment => {
                "the path has a `.` or `..` segment; send the path the browser resolved"
            }
        })
    }
}

/// A path's segments after normalisation, in every reading the gate prices (see the module
/// comment): at most eight, the plain reading first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Normalised {
    pub readings: Vec<Vec<String>>,
}

impl Normalised {
    /// The plain reading (escapes other than unreserved characters kept, `;` kept).
    pub fn plain(&self) -> &[String] {
        &self.readings[0]
    }

    /// Whether the path is under `/.pennypost/` (the gate's own) in any reading.
    pub fn is_gate_own(&self) -> bool {
        self.readings.iter().any(|segments| {
            segments
                .first()
                .is_some_and(|first| first.eq_ignore_ascii_case(GATE_PREFIX_SEGMENT))
        })
    }
}

/// The first segment of the gate's own paths.
pub const GATE_PREFIX_SEGMENT: &str = ".pennypost";

fn is_unreserved(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~')
}

fn hex_value(byte: u8) -> Option<u8> {
    match byte {
        b'0'..=b'9' => Some(byte - b'0'),
        b'a'..=b'f' => Some(byte - b'a' + 10),
        b'A'..=b'F' => Some(byte - b'A' + 10),
        _ => None,
    }
}

/// Decodes percent-encoded unreserved characters and upper-cases the hex of every other
/// escape.
fn decode_unreserved(path: &str) -> Result<String, PathError> {
    let bytes = path.as_bytes();
    let mut out = String::with_capacity(path.len());
    let mut i = 0;
    while i < bytes.len() {
        let byte = bytes[i];
        if byte != b'%' {
            // `path` is a str and we only split at ASCII bytes, so this stays UTF-8.
            let next = path[i..]
                .char_indices()
                .nth(1)
                .map_or(bytes.len(), |(n, _)| i + n);
            out.push_str(&path[i..next]);
            i = next;
            continue;
        }
        let (Some(high), Some(low)) = (
            bytes.get(i + 1).copied().and_then(hex_value),
            bytes.get(i + 2).copied().and_then(hex_value),
        ) else {
            return Err(PathError::BadEscape);
        };
        let value = high * 16 + low;
        if is_unreserved(value) {
            out.push(char::from(value));
        } else {
            out.push('%');
            out.push_str(&format!("{value:02X}"));
        }
        i += 3;
    }
    Ok(out)
}

fn segments(path: &str) -> Result<Vec<String>, PathError> {
    let mut out = Vec::new();
    for segment in path.split('/') {
        match segment {
            "" => continue,
            "." | ".." => return Err(PathError::DotSegment),
            other => out.push(other.to_string()),
        }
    }
    Ok(out)
}

fn without_params(segments: &[String]) -> Vec<String> {
    segments
        .iter()
        .map(|s| s.split(';').next().unwrap_or_default().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

/// Normalises a request's path (without its query) into the readings the gate prices.
pub fn normalise(path: &str) -> Result<Normalised, PathError> {
    if !path.starts_with('/') {
        return Err(PathError::NotAbsolute);
    }
    let decoded = decode_unreserved(path)?;
    let plain = segments(&decoded)?;
    let mut readings = vec![plain.clone()];
    if decoded.contains("%2F") || decoded.contains("%5C") || decoded.contains('\\') {
        let split = decoded
            .replace("%2F", "/")
            .replace("%5C", "/")
            .replace('\\', "/");
        readings.push(segments(&split)?);
    }
    if decoded.contains(';') {
        let more: Vec<Vec<String>> = readings.iter().map(|r| without_params(r)).collect();
        for reading in more {
            if reading.iter().any(|s| s == "." || s == "..") {
                return Err(PathError::DotSegment);
            }
            readings.push(reading);
        }
    }
    // Rails (Discourse among its sites) routes `/posts.json` as `/posts` with a format, and
    // some servers drop a trailing dot: a last segment's `.suffix` is matched without it too.
    let formats: Vec<Vec<String>> = readings.iter().filter_map(|r| without_format(r)).collect();
    readings.extend(formats);
    readings.dedup();
    Ok(Normalised { readings })
}

/// The reading with its last segment's format suffix (`.json`, or a bare trailing `.`)
/// removed; `None` when the last segment has none (or is all suffix, as `.well-known`).
fn without_format(segments: &[String]) -> Option<Vec<String>> {
    let (last, rest) = segments.split_last()?;
    let stem = last.rsplit_once('.').map(|(stem, _)| stem)?;
    if stem.is_empty() {
        return None;
    }
    let mut reading = rest.to_vec();
    reading.push(stem.to_string());
    Some(reading)
}

/// One segment of a compiled pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    /// Matches this segment, ASCII case ignored.
    Literal(String),
    /// `*`: any one segment.
    One,
    /// `**`: any number of segments, none included.
    Any,
}

/// A route's path pattern, compiled once at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    parts: Vec<Part>,
}

impl Pattern {
    /// Compiles a pattern: `/`-separated segments, each a literal, `*` or `**`. The literals are
    /// normalised like request paths; `*` inside a literal, dot segments and bad escapes are
    /// refused with a sentence saying why.
    pub fn compile(pattern: &str) -> Result<Pattern, String> {
        if !pattern.starts_with('/') {
            return Err(format!("path pattern `{pattern}` does not start with `/`"));
        }
        let decoded =
            decode_unreserved(pattern).map_err(|e| format!("path pattern `{pattern}`: {e}"))?;
        let mut parts = Vec::new();
        for segment in decoded.split('/').filter(|s| !s.is_empty()) {
            let part = match segment {
                "*" => Part::One,
                "**" => Part::Any,
                "." | ".." => {
                    return Err(format!(
                        "path pattern `{pattern}` has a `.` or `..` segment"
                    ))
                }
                literal if literal.contains('*') => {
                    return Err(format!(
                        "path pattern `{pattern}`: `*` and `**` must be whole segments, not \
                         part of `{literal}`"
                    ))
                }
                literal if literal.contains('?') || literal.contains('#') => {
                    return Err(format!(
                        "path pattern `{pattern}`: a pattern is a path, without `?` or `#`"
                    ))
                }
                literal => Part::Literal(literal.to_ascii_lowercase()),
            };
            parts.push(part);
        }
        Ok(Pattern { parts })
    }

    /// The pattern in its normal spelling (literals lower-cased), to find duplicates.
    pub fn canonical(&self) -> String {
        let mut out = String::new();
        for part in &self.parts {
            out.push('/');
            match part {
                Part::Literal(l) => out.push_str(l),
                Part::One => out.push('*'),
                Part::Any => out.push_str("**"),
            }
        }
        if out.is_empty() {
            out.push('/');
        }
        out
    }

    /// Whether the segments of one reading of a path match.
    pub fn matches(&self, segments: &[String]) -> bool {
        match_parts(&self.parts, segments)
    }
}

fn match_parts(parts: &[Part], segments: &[String]) -> bool {
    match parts.split_first() {
        None => segments.is_empty(),
        Some((Part::Any, rest)) => {
            (0..=segments.len()).any(|skip| match_parts(rest, &segments[skip..]))
        }
        Some((part, rest)) => match segments.split_first() {
            None => false,
            Some((segment, tail)) => {
                let fits = match part {
                    Part::Literal(l) => segment.eq_ignore_ascii_case(l),
                    _ => true,
                };
                fits && match_parts(rest, tail)
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plain(path: &str) -> Vec<String> {
        normalise(path).expect("normalises").plain().to_vec()
    }

    #[test]
    fn spellings_of_one_path_normalise_alike() {
        let want = vec!["comments".to_string()];
        for path in [
            "/comments",
            "/comments/",
            "//comments",
            "/%63omments",
            "/%63%6Fmments//",
        ] {
            assert_eq!(plain(path), want, "{path}");
        }
        assert_eq!(plain("/"), Vec::<String>::new());
    }

    #[test]
    fn other_escapes_keep_their_meaning_with_upper_hex() {
        assert_eq!(plain("/a%20b/%c3%a9"), vec!["a%20b", "%C3%A9"]);
    }

    #[test]
    fn dot_segments_and_bad_escapes_are_refused() {
        for path in [
            "/a/../comments",
            "/./comments",
            "/%2e%2E/comments",
            "/a/%2E",
        ] {
            assert_eq!(normalise(path), Err(PathError::DotSegment), "{path}");
        }
        assert_eq!(normalise("/a%2"), Err(PathError::BadEscape));
        assert_eq!(normalise("/a%zz"), Err(PathError::BadEscape));
        assert_eq!(normalise("*"), Err(PathError::NotAbsolute));
        // A dot segment hidden behind an encoded slash is refused too.
        assert_eq!(normalise("/a%2F..%2Fcomments"), Err(PathError::DotSegment));
    }

    #[test]
    fn encoded_slashes_and_matrix_parameters_are_read_every_way() {
        let pattern = Pattern::compile("/t/*/posts").expect("compiles");
        for path in [
            "/t%2Fx%2Fposts",
            "/t/x/posts;jsessionid=1",
            "/t\\x\\posts",
            "/T/x/POSTS",
        ] {
            let n = normalise(path).expect("normalises");
            assert!(
                n.readings.iter().any(|r| pattern.matches(r)),
                "{path}: {:?}",
                n.readings
            );
        }
    }

    #[test]
    fn a_format_suffix_is_read_with_and_without_it() {
        let pattern = Pattern::compile("/t/*/posts").expect("compiles");
        for path in [
            "/t/x/posts.json",
            "/t/x/posts.",
            "/t/x/posts%2e",
            "/t/x/posts.json;v=1",
            "/t%2Fx%2Fposts.json",
        ] {
            let n = normalise(path).expect("normalises");
            assert!(
                n.readings.iter().any(|r| pattern.matches(r)),
                "{path}: {:?}",
                n.readings
            );
            assert!(n.readings.len() <= 8, "{path}: {:?}", n.readings);
        }
        // Only the last segment's suffix; a segment that is all suffix stays.
        let inner = Pattern::compile("/t/x/comments").expect("compiles");
        let n = normalise("/t/x.json/comments").expect("normalises");
        assert!(!n.readings.iter().any(|r| inner.matches(r)), "{n:?}");
        let n = normalise("/t/x/.posts").expect("normalises");
        assert!(!n.readings.iter().any(|r| pattern.matches(r)), "{n:?}");
        assert_eq!(
            normalise("/.well-known").expect("normalises").readings,
            vec![vec![".well-known".to_string()]]
        );
    }

    #[test]
    fn patterns_match_one_or_any_segments() {
        let one = Pattern::compile("/t/*/posts").expect("compiles");
        assert!(one.matches(&plain("/t/7/posts")));
        assert!(!one.matches(&plain("/t/posts")));
        assert!(!one.matches(&plain("/t/7/8/posts")));
        let any = Pattern::compile("/api/**/vote").expect("compiles");
        assert!(any.matches(&plain("/api/vote")));
        assert!(any.matches(&plain("/api/a/b/c/vote")));
        assert!(!any.matches(&plain("/api/a/b/c")));
        let tail = Pattern::compile("/admin/**").expect("compiles");
        assert!(tail.matches(&plain("/admin")));
        assert!(tail.matches(&plain("/admin/x/y")));
        let root = Pattern::compile("/").expect("compiles");
        assert!(root.matches(&plain("/")));
        assert!(!root.matches(&plain("/x")));
    }

    #[test]
    fn bad_patterns_say_why() {
        for bad in ["comments", "/a*", "/a/../b", "/a?x=1", "/a%g1"] {
            assert!(Pattern::compile(bad).is_err(), "{bad}");
        }
        assert_eq!(
            Pattern::compile("/%63omments/")
                .expect("compiles")
                .canonical(),
            Pattern::compile("/Comments").expect("compiles").canonical()
        );
    }

    #[test]
    fn the_gate_prefix_is_found_in_any_spelling() {
        for path in [
            "/.pennypost/routes",
            "/%2Epennypost/routes",
            "//.pennypost",
            "/.PENNYPOST/x",
        ] {
            assert!(normalise(path).expect("normalises").is_gate_own(), "{path}");
        }
        assert!(!normalise("/pennypost/x").expect("normalises").is_gate_own());
    }
}
