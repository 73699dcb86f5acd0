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

/// Extra fields of suffix/subscribe calls: the exchange as it happened.
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize, serde::Deserialize)]
pub struct PostHook {
    pub req_headers: Vec<(String, String)>,
    pub req_body: Body,
    pub resp_headers: Vec<(String, String)>,
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
    pub headers: Vec<(String, String)>,
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
}
