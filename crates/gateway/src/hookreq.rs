//! The Rust `HookRequest` from an HTTP request: headers, query, body.

use std::borrow::Cow;

use bytes::Bytes;
use http::HeaderMap;
use interpose_js::{Body, Headers};

use crate::coding;
use crate::error::GatewayError;

/// Headers as hooks see them: lower-case names, repeated headers joined
/// with ", " under their first place.
pub(crate) fn header_pairs(headers: &HeaderMap) -> Headers {
    let bytes = headers.iter().map(|(k, v)| k.as_str().len() + v.len()).sum();
    let mut out = Headers::builder(headers.keys_len(), bytes);
    // A name's values come one after another, the first with its name.
    for (name, v) in headers.iter() {
        // `to_str` (visible ASCII, a plain loop) is most values and several
        // times cheaper than `from_utf8_lossy`'s chunked decoding.
        let v = match v.to_str() {
            Ok(ascii) => Cow::Borrowed(ascii),
            Err(_) => String::from_utf8_lossy(v.as_bytes()),
        };
        if out.last_name() == Some(name.as_str()) {
            out.join(&v);
        } else {
            out.push(name.as_str(), &v);
        }
    }
    out.build()
}

pub(crate) fn query_pairs(query: Option<&str>) -> Vec<(String, String)> {
    match query {
        Some(q) => form_urlencoded::parse(q.as_bytes()).map(|(k, v)| (k.into_owned(), v.into_owned())).collect(),
        None => Vec::new(),
    }
}

fn is_json(content_type: Option<&str>) -> bool {
    content_type
        .map(|ct| {
            let essence = ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
            essence == "application/json" || essence.ends_with("+json")
        })
        .unwrap_or(false)
}

/// A body as hooks see it: JSON when it says (or, without a content type,
/// looks like) JSON; text when it is UTF-8; bytes otherwise (an upload, an
/// image: a `Buffer` in JS, and the upstream gets them unchanged unless a
/// prefix returns another body). A JSON content type with a body that is
/// not JSON is refused: the upstream would refuse it too, and a hook could
/// not see what it says.
pub(crate) fn parse_body(headers: &HeaderMap, bytes: &Bytes) -> Result<Body, GatewayError> {
    if bytes.is_empty() {
        return Ok(Body::Empty);
    }
    let ct = headers.get(http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
    let Ok(text) = std::str::from_utf8(bytes) else {
        if is_json(ct) {
            return Err(GatewayError::BadRequest("the request body is not valid JSON: it is not UTF-8 text".into()));
        }
        return Ok(Body::Bytes(bytes.to_vec()));
    };
    let looks_json = ct.is_none() && matches!(text.trim_start().as_bytes().first(), Some(b'{' | b'['));
    if is_json(ct) || looks_json {
        return match serde_json::from_str(text) {
            Ok(v) => Ok(Body::Json(v)),
            Err(e) if is_json(ct) => Err(GatewayError::BadRequest(format!("the request body is not valid JSON: {e}"))),
            Err(_) => Ok(Body::Text(text.to_string())),
        };
    }
    Ok(Body::Text(text.to_string()))
}

/// Serialise a body for the wire, with the content type it implies.
pub(crate) fn body_bytes(body: &serde_json::Value) -> (Bytes, Option<&'static str>) {
    match body {
        serde_json::Value::Null => (Bytes::new(), None),
        serde_json::Value::String(s) => (Bytes::from(s.clone()), Some("text/plain; charset=utf-8")),
        serde_json::Value::Object(m) if m.len() == 1 && m.contains_key(interpose_js::BINARY_BODY_KEY) => {
            use base64::Engine as _;
            let encoded = m[interpose_js::BINARY_BODY_KEY].as_str().unwrap_or_default();
            let bytes = base64::engine::general_purpose::STANDARD.decode(encoded).unwrap_or_default();
            (Bytes::from(bytes), Some("application/octet-stream"))
        }
        // `to_vec` writes straight into the buffer (`to_string` goes through `fmt`).
        other => (Bytes::from(serde_json::to_vec(other).unwrap_or_default()), Some("application/json")),
    }
}

/// The client's body as hooks see it: its content coding undone (at most
/// `limit` bytes once decoded), then [`parse_body`].
pub(crate) fn request_body(headers: &HeaderMap, bytes: &Bytes, limit: usize) -> Result<Body, GatewayError> {
    let decoded = coding::decode(headers, bytes, limit).map_err(GatewayError::BodyEncoding)?;
    parse_body(headers, &decoded)
}

/// A body a plugin produced (a prefix hook's) or the upstream sent, as later
/// hooks see it: like [`request_body`], but one that says JSON and is not is
/// given as it is (text, or bytes) rather than refused — the client did not
/// send it. A coding that cannot be undone leaves the bytes as they are;
/// one larger than `limit` once decoded is not given at all (as a body
/// larger than `limit` on the wire is not).
pub(crate) fn view_body(headers: &HeaderMap, bytes: &Bytes, limit: usize) -> Body {
    let bytes = match coding::decode(headers, bytes, limit) {
        Ok(decoded) => decoded,
        Err(coding::DecodeError::TooLarge { .. }) => return Body::Empty,
        Err(_) => std::borrow::Cow::Borrowed(bytes),
    };
    parse_body(headers, &bytes).unwrap_or_else(|_| match std::str::from_utf8(&bytes) {
        Ok(text) => Body::Text(text.to_string()),
        Err(_) => Body::Bytes(bytes.to_vec()),
    })
}

#[cfg(test)]
mod tests {
    use http::{HeaderMap, HeaderValue};

    use super::header_pairs;

    #[test]
    fn repeated_headers_are_joined_in_order_under_their_first_place() {
        let mut h = HeaderMap::new();
        for (k, v) in [("accept", "a/b"), ("x-tag", "1"), ("Accept", "c/d"), ("x-bin", "caf\u{e9}"), ("x-tag", "2")] {
            h.append(http::HeaderName::from_bytes(k.as_bytes()).expect("name"), HeaderValue::from_str(v).expect("v"));
        }
        h.append("x-raw", HeaderValue::from_bytes(b"\xff").expect("bytes"));
        assert_eq!(
            header_pairs(&h).iter().collect::<Vec<_>>(),
            [("accept", "a/b, c/d"), ("x-tag", "1, 2"), ("x-bin", "caf\u{e9}"), ("x-raw", "\u{fffd}")]
        );
    }
}
