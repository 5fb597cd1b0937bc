//! Finding a priced request's stamps and taking them out: the `Pennypost-Stamps` header, and
//! the `pennypost_stamps` fields of HTML form bodies, whose other bytes are kept exactly.
//!
//! Multipart bodies are parsed by `multer` (the parser axum's own `Multipart` stands on): it
//! decides which parts exist and what they are called. The gate then cuts the stamps' parts
//! out at their delimiters (RFC 2046 §5.1.1), checking it found exactly the parts multer
//! found, so the rest of the body reaches the site byte for byte.
//!
//! Must not: let a malformed list reach the mint as something else (an empty item, a stamp
//! that does not decode), or change a byte of the body besides the stamps' fields.

use axum::http::HeaderMap;
use bytes::Bytes;

/// The header that carries stamps.
pub const HEADER: &str = "pennypost-stamps";
/// The form field that carries stamps.
pub const FIELD: &str = "pennypost_stamps";
/// The most stamps one request may carry, in all its headers and fields together.
pub const STAMPS_PER_REQUEST_MAX: usize = 100;

/// Why a request's stamps cannot be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StampsError {
    /// 400 `bad_request`: not a comma-separated list of stamp texts.
    Malformed(String),
    /// 400 `bad_request`: a form body that does not parse.
    MalformedBody(String),
    /// 422 with the stamp's own code (`invalid_stamp`): an item that is not a stamp.
    Invalid { code: &'static str, detail: String },
}

/// Splits one header value or field into stamp texts, checking each decodes.
fn push_list(text: &str, out: &mut Vec<String>, from: &str) -> Result<(), StampsError> {
    for item in text.split(',') {
        let item = item.trim_matches(|c| c == ' ' || c == '\t' || c == '\r' || c == '\n');
        if item.is_empty() {
            return Err(StampsError::Malformed(format!(
                "{from} has an empty item: list stamps as `pp1.…, pp1.…`"
            )));
        }
        if out.len() >= STAMPS_PER_REQUEST_MAX {
            return Err(StampsError::Malformed(format!(
                "more than {STAMPS_PER_REQUEST_MAX} stamps in one request"
            )));
        }
        if let Err(e) = crate::stamp::decode(item) {
            return Err(StampsError::Invalid {
                code: crate::api::ErrorCode::from(&e).as_str(),
                detail: format!("{from}: {e}"),
            });
        }
        out.push(item.to_string());
    }
    Ok(())
}

/// The stamps of every `Pennypost-Stamps` header, in order.
pub fn from_headers(headers: &HeaderMap) -> Result<Vec<String>, StampsError> {
    let mut out = Vec::new();
    for value in headers.get_all(HEADER) {
        let text = value.to_str().map_err(|_| {
            StampsError::Malformed("the Pennypost-Stamps header is not visible ASCII".into())
        })?;
        push_list(text, &mut out, "the Pennypost-Stamps header")?;
    }
    Ok(out)
}

/// The kinds of body whose stamps fields the gate reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FormKind {
    UrlEncoded,
    Multipart { boundary: String },
}

/// The form kind of a request's `Content-Type`, if it is a form.
pub fn form_kind(headers: &HeaderMap) -> Result<Option<FormKind>, StampsError> {
    let Some(value) = headers.get(axum::http::header::CONTENT_TYPE) else {
        return Ok(None);
    };
    let Ok(text) = value.to_str() else {
        return Ok(None);
    };
    let essence = text
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    match essence.as_str() {
        "application/x-www-form-urlencoded" => Ok(Some(FormKind::UrlEncoded)),
        "multipart/form-data" => multer::parse_boundary(text)
            .map(|boundary| Some(FormKind::Multipart { boundary }))
            .map_err(|e| StampsError::MalformedBody(format!("multipart/form-data: {e}"))),
        _ => Ok(None),
    }
}

/// Takes the `pennypost_stamps` fields out of a form body: the stamps they held (appended to
/// `stamps`) and the body without them.
pub async fn take_from_form(
    kind: &FormKind,
    body: Bytes,
    stamps: &mut Vec<String>,
) -> Result<Bytes, StampsError> {
    match kind {
        FormKind::UrlEncoded => take_from_urlencoded(body, stamps),
        FormKind::Multipart { boundary } => take_from_multipart(body, boundary, stamps).await,
    }
}

fn take_from_urlencoded(body: Bytes, stamps: &mut Vec<String>) -> Result<Bytes, StampsError> {
    let mut kept: Vec<&[u8]> = Vec::new();
    let mut removed = false;
    for pair in body.split(|&b| b == b'&') {
        let mut parsed = form_urlencoded::parse(pair);
        match parsed.next() {
            Some((name, value)) if name == FIELD => {
                push_list(&value, stamps, "the pennypost_stamps field")?;
                removed = true;
            }
            _ => kept.push(pair),
        }
    }
    if !removed {
        return Ok(body);
    }
    Ok(Bytes::from(kept.join(&b'&')))
}

/// Where each delimiter line of a multipart body starts (`--boundary`, after the CRLF that
/// belongs to it), the close delimiter last; `None` if the body has no close delimiter.
fn delimiters(body: &[u8], boundary: &str) -> Option<Vec<usize>> {
    let dashed = format!("--{boundary}");
    let mut starts = Vec::new();
    let mut candidates: Vec<usize> = Vec::new();
    if body.starts_with(dashed.as_bytes()) {
        candidates.push(0);
    }
    let needle = format!("\r\n{dashed}");
    candidates.extend(memchr::memmem::find_iter(body, needle.as_bytes()).map(|at| at + 2));
    for start in candidates {
        let after = &body[start + dashed.len()..];
        if after.starts_with(b"--") {
            starts.push(start);
            return Some(starts);
        }
        // A delimiter is followed by optional white space and CRLF; anything else is content
        // that merely starts like one.
        let rest = after
            .iter()
            .position(|&b| b != b' ' && b != b'\t')
            .map(|n| &after[n..]);
        if rest.is_some_and(|r| r.starts_with(b"\r\n")) {
            starts.push(start);
        }
    }
    None
}

async fn take_from_multipart(
    body: Bytes,
    boundary: &str,
    stamps: &mut Vec<String>,
) -> Result<Bytes, StampsError> {
    let malformed = |e: multer::Error| StampsError::MalformedBody(format!("multipart: {e}"));
    let chunk = body.clone();
    let stream = futures_util::stream::once(async move { Ok::<Bytes, std::io::Error>(chunk) });
    let mut multipart = multer::Multipart::new(stream, boundary);
    let mut cut = Vec::new();
    let mut index = 0usize;
    while let Some(field) = multipart.next_field().await.map_err(malformed)? {
        if field.name() == Some(FIELD) {
            let text = field.text().await.map_err(malformed)?;
            push_list(&text, stamps, "a pennypost_stamps field")?;
            cut.push(index);
        }
        index += 1;
    }
    if cut.is_empty() {
        return Ok(body);
    }
    let starts = delimiters(&body, boundary)
        .filter(|starts| starts.len() == index + 1)
        .ok_or_else(|| {
            StampsError::MalformedBody(
                "multipart: the parts could not be told apart by their delimiters".into(),
            )
        })?;
    let mut out = Vec::with_capacity(body.len());
    let mut from = 0;
    for part in cut {
        // Part `i` runs from its delimiter to the next one: cutting that range leaves the
        // previous part's CRLF before the next delimiter, as it was.
        out.extend_from_slice(&body[from..starts[part]]);
        from = starts[part + 1];
    }
    out.extend_from_slice(&body[from..]);
    Ok(Bytes::from(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stamp::{sign, Payload};

    fn stamp(n: u8) -> String {
        let key = ed25519_dalek::SigningKey::from_bytes(&[n; 32]);
        let payload = Payload {
            kid: crate::stamp::Kid::of(&key.verifying_key()),
            stamp_id: uuid::Uuid::from_bytes([n; 16]),
            issued_at: 1_700_000_000,
            expires_at: 1_800_000_000,
            value: crate::stamp::VALUE_V1,
            holder: [0; 32],
        };
        sign(&payload, &key)
    }

    #[test]
    fn urlencoded_fields_are_cut_and_the_rest_kept() {
        let (a, b, c) = (stamp(1), stamp(2), stamp(3));
        let body =
            format!("text=hello+w%C3%B6rld&pennypost_stamps={a}%2C{b}&&x=1&pennypost_stamps={c}");
        let mut found = Vec::new();
        let out = take_from_urlencoded(Bytes::from(body), &mut found).expect("reads");
        assert_eq!(found, vec![a, b, c]);
        assert_eq!(&out[..], b"text=hello+w%C3%B6rld&&x=1");
        let mut none = Vec::new();
        let same = take_from_urlencoded(Bytes::from_static(b"a=1&&b"), &mut none).expect("reads");
        assert_eq!(&same[..], b"a=1&&b");
    }

    #[test]
    fn malformed_lists_are_told_apart_from_invalid_stamps() {
        let mut out = Vec::new();
        let a = stamp(1);
        assert!(matches!(
            push_list(&format!("{a},,{a}"), &mut out, "x"),
            Err(StampsError::Malformed(_))
        ));
        assert!(matches!(
            push_list("pp1.nope", &mut Vec::new(), "x"),
            Err(StampsError::Invalid {
                code: "invalid_stamp",
                ..
            })
        ));
        let many = vec![a; STAMPS_PER_REQUEST_MAX + 1].join(",");
        assert!(matches!(
            push_list(&many, &mut Vec::new(), "x"),
            Err(StampsError::Malformed(_))
        ));
    }

    fn multipart(parts: &[(&str, &str)], boundary: &str) -> Vec<u8> {
        let mut body = Vec::new();
        for (name, value) in parts {
            body.extend_from_slice(
                format!(
                    "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
                )
                .as_bytes(),
            );
        }
        body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
        body
    }

    #[tokio::test]
    async fn multipart_parts_are_cut_at_their_delimiters() {
        let (a, b) = (stamp(1), stamp(2));
        let boundary = "XyZ";
        for (parts, kept) in [
            (
                vec![
                    ("pennypost_stamps", a.as_str()),
                    ("text", "hi --XyZ there"),
                    ("pennypost_stamps", b.as_str()),
                ],
                vec![("text", "hi --XyZ there")],
            ),
            (
                vec![
                    ("text", "one"),
                    ("pennypost_stamps", a.as_str()),
                    ("more", "two"),
                    ("pennypost_stamps", b.as_str()),
                ],
                vec![("text", "one"), ("more", "two")],
            ),
        ] {
            let mut found = Vec::new();
            let out = take_from_multipart(
                Bytes::from(multipart(&parts, boundary)),
                boundary,
                &mut found,
            )
            .await
            .expect("reads");
            assert_eq!(found, vec![a.clone(), b.clone()]);
            assert_eq!(out.to_vec(), multipart(&kept, boundary));
        }
        let untouched = multipart(&[("text", "one")], boundary);
        let out = take_from_multipart(Bytes::from(untouched.clone()), boundary, &mut Vec::new())
            .await
            .expect("reads");
        assert_eq!(out.to_vec(), untouched);
        let broken = take_from_multipart(
            Bytes::from_static(b"--XyZ\r\nnonsense"),
            boundary,
            &mut Vec::new(),
        )
        .await;
        assert!(
            matches!(broken, Err(StampsError::MalformedBody(_))),
            "{broken:?}"
        );
    }
}
