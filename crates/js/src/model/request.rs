//! The request handed to a hook, in Rust form; converted to the JS
//! `PluginRequest` on the worker thread (`convert.rs`).

use std::sync::Arc;

/// A request body as hooks see it.
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", content = "value", rename_all = "lowercase")]
pub enum Body {
    /// No body: `undefined` in JS.
    #[default]
    Empty,
    /// A JSON body, parsed.
    Json(serde_json::Value),
    /// Any other body that is UTF-8, as text.
    Text(String),
    /// A body that is not UTF-8 (an upload, an image): a `Buffer` in JS.
    Bytes(#[serde(with = "base64_bytes")] Vec<u8>),
}

/// Bytes as base64 text in stored events.
mod base64_bytes {
    use base64::Engine as _;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        base64::engine::general_purpose::STANDARD.decode(text).map_err(serde::de::Error::custom)
    }
}

/// A request's or response's headers as hooks see them: names in lower
/// case, repeated headers joined with ", ", in the order they came.
///
/// All of them sit in one string (each name, then its value) with a list
/// of where each ends, behind one `Arc`: two allocations for any number of
/// headers rather than two a header, cloned for nothing — the JS side
/// keeps its lookups on this same copy (`convert.rs`), so a headers object
/// a plugin keeps holds these bytes and not the request around them.
/// Stored (post-hook events) as a list of `[name, value]` pairs.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Headers(Arc<Packed>);

#[derive(Default, PartialEq, Eq)]
struct Packed {
    text: String,
    /// Per header: where its name ends and where its value ends.
    ends: Vec<(usize, usize)>,
}

impl Headers {
    /// Headers from a builder (see [`HeadersBuilder`]).
    pub fn builder(count: usize, bytes: usize) -> HeadersBuilder {
        HeadersBuilder(Packed { text: String::with_capacity(bytes), ends: Vec::with_capacity(count) })
    }

    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&str, &str)> + Clone {
        let text = self.0.text.as_str();
        let mut start = 0;
        self.0.ends.iter().map(move |&(name_end, end)| {
            let pair = (&text[start..name_end], &text[name_end..end]);
            start = end;
            pair
        })
    }

    pub fn len(&self) -> usize {
        self.0.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.ends.is_empty()
    }

    /// The value of `name`, in any case.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v)
    }
}

/// Builds [`Headers`] in place: [`push`](HeadersBuilder::push) a header,
/// [`join`](HeadersBuilder::join) another value onto the last one.
pub struct HeadersBuilder(Packed);

impl HeadersBuilder {
    pub fn push(&mut self, name: &str, value: &str) {
        let p = &mut self.0;
        p.text.push_str(name);
        let name_end = p.text.len();
        p.text.push_str(value);
        p.ends.push((name_end, p.text.len()));
    }

    /// The last header's name, if any.
    pub fn last_name(&self) -> Option<&str> {
        let p = &self.0;
        let last = p.ends.len().checked_sub(1)?;
        let start = if last == 0 { 0 } else { p.ends[last - 1].1 };
        Some(&p.text[start..p.ends[last].0])
    }

    /// Add `value` to the last header's, after ", " (a repeated header).
    pub fn join(&mut self, value: &str) {
        let p = &mut self.0;
        if let Some(last) = p.ends.last_mut() {
            p.text.push_str(", ");
            p.text.push_str(value);
            last.1 = p.text.len();
        }
    }

    pub fn build(self) -> Headers {
        Headers(Arc::new(self.0))
    }
}

impl<K: AsRef<str>, V: AsRef<str>> FromIterator<(K, V)> for Headers {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(pairs: I) -> Headers {
        let mut b = Headers::builder(0, 0);
        for (k, v) in pairs {
            b.push(k.as_ref(), v.as_ref());
        }
        b.build()
    }
}

impl std::fmt::Debug for Headers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl serde::Serialize for Headers {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.iter())
    }
}

impl<'de> serde::Deserialize<'de> for Headers {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Headers, D::Error> {
        Ok(Vec::<(String, String)>::deserialize(d)?.into_iter().collect())
    }
}

/// Extra fields of suffix/subscribe calls: the exchange as it happened.
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize, serde::Deserialize)]
pub struct PostHook {
    pub req_headers: Headers,
    pub req_body: Body,
    pub resp_headers: Headers,
    pub resp_body: Body,
    pub status: u16,
}

/// The `PluginRequest` of DESIGN.md (serialisable: post-hook events are
/// stored as JSON until delivered).
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize, serde::Deserialize)]
pub struct HookRequest {
    pub method: String,
    /// Path under the scope's mount, with the query string.
    pub url: String,
    /// Path under the scope's mount.
    pub path: String,
    /// Decoded query pairs in order (a repeated key becomes an array in JS).
    pub query: Vec<(String, String)>,
    /// Pattern parameters of the hook being called.
    pub params: Vec<(String, String)>,
    /// Lower-case names; repeated headers joined with ", ".
    pub headers: Headers,
    pub body: Body,
    pub team_uuid: Option<String>,
    pub user_uuid: Option<String>,
    /// Set for suffix and subscribe calls.
    pub post: Option<Arc<PostHook>>,
    /// For the plugin's log lines.
    pub request_id: Option<String>,
    /// `Ones-Check-Point` / `Ones-Check-Id` of addition calls, passed through as headers.
    pub extra: Vec<(String, serde_json::Value)>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_bodies_are_stored_as_base64_and_read_back() {
        let req = HookRequest { body: Body::Bytes(vec![0, 255, 10]), ..Default::default() };
        let text = serde_json::to_string(&req).expect("serialises");
        assert!(text.contains(r#""body":{"kind":"bytes","value":"AP8K"}"#), "{text}");
        assert_eq!(serde_json::from_str::<HookRequest>(&text).expect("parses"), req);
    }

    #[test]
    fn headers_are_stored_as_pairs_and_read_back() {
        let mut b = Headers::builder(2, 16);
        b.push("accept", "a/b");
        assert_eq!(b.last_name(), Some("accept"));
        b.join("c/d");
        b.push("x-empty", "");
        b.push("x-tag", "1");
        let headers = b.build();
        let pairs: Vec<_> = headers.iter().collect();
        assert_eq!(pairs, [("accept", "a/b, c/d"), ("x-empty", ""), ("x-tag", "1")]);
        assert_eq!((headers.get("X-TAG"), headers.get("x-none"), headers.len()), (Some("1"), None, 3));
        let text = serde_json::to_string(&headers).expect("serialises");
        assert_eq!(text, r#"[["accept","a/b, c/d"],["x-empty",""],["x-tag","1"]]"#);
        assert_eq!(serde_json::from_str::<Headers>(&text).expect("parses"), headers);
        assert_eq!(format!("{headers:?}"), r#"[("accept", "a/b, c/d"), ("x-empty", ""), ("x-tag", "1")]"#);
        assert!(Headers::default().is_empty() && Headers::builder(0, 0).last_name().is_none());
    }
}
