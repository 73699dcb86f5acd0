//! A small client for the admin API (`plugin …`, `routes --admin`).

use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request};
use http_body_util::{BodyExt, Full};

/// Where the admin API is and how to authenticate.
pub struct Admin {
    pub base: String,
    token: Option<String>,
}

/// A refusal from the server (its JSON `reason`), or a transport failure.
#[derive(Debug)]
pub struct Refused {
    pub status: u16,
    pub message: String,
    pub body: serde_json::Value,
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.status == 0 {
            write!(f, "{}", self.message)
        } else {
            write!(f, "{} ({})", self.message, self.status)
        }
    }
}

impl Admin {
    /// `--admin URL`, else `INTERPOSE_ADMIN`, else the default admin address;
    /// the token comes from `INTERPOSE_ADMIN_TOKEN`.
    pub fn new(url: Option<String>) -> Admin {
        let base = url
            .or_else(|| std::env::var("INTERPOSE_ADMIN").ok())
            .unwrap_or_else(|| "http://127.0.0.1:8081".into())
            .trim_end_matches('/')
            .to_string();
        let token = std::env::var("INTERPOSE_ADMIN_TOKEN").ok().filter(|t| !t.is_empty());
        Admin { base, token }
    }

    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<(Vec<u8>, &str)>,
    ) -> Result<serde_json::Value, Refused> {
        let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build_http::<Full<Bytes>>();
        let mut req = Request::builder().method(method).uri(format!("{}{path}", self.base));
        if let Some(t) = &self.token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let (bytes, ct) = body.unwrap_or((Vec::new(), "application/octet-stream"));
        let req =
            req.header("content-type", ct).body(Full::new(Bytes::from(bytes))).map_err(|e| transport(e.to_string()))?;
        let resp = tokio::time::timeout(Duration::from_secs(120), client.request(req))
            .await
            .map_err(|_| transport(format!("the admin API at {} did not answer in time", self.base)))?
            .map_err(|e| {
                transport(format!(
                    "cannot reach the admin API at {}: {e} (is `interpose serve` running? --admin URL)",
                    self.base
                ))
            })?;
        let status = resp.status().as_u16();
        let body = resp.into_body().collect().await.map_err(|e| transport(e.to_string()))?.to_bytes();
        let json: serde_json::Value = serde_json::from_slice(&body)
            .unwrap_or_else(|_| serde_json::Value::String(String::from_utf8_lossy(&body).into_owned()));
        if (200..300).contains(&status) {
            Ok(json)
        } else {
            let message =
                json.get("reason").and_then(|r| r.as_str()).map(str::to_string).unwrap_or_else(|| json.to_string());
            Err(Refused { status, message, body: json })
        }
    }
}

fn transport(message: String) -> Refused {
    Refused { status: 0, message, body: serde_json::Value::Null }
}
