//! Test helpers shared by every crate's tests: a recording upstream on port
//! 0, an HTTP client, and plugin projects in temporary folders.
#![allow(clippy::unwrap_used)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

pub type TestBody = http_body_util::combinators::BoxBody<Bytes, Infallible>;

/// What the upstream received.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    /// Path and query as received.
    pub uri: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// A real HTTP upstream that records every request.
///
/// Paths: `/status/:code` answers that status; `/slow/:ms` waits first;
/// `/big/:mb` streams that many MiB; `/count` reads the body as a stream and
/// answers its length (without keeping it); `/gzip` answers `{"zipped":true}`
/// gzip-encoded (`Content-Encoding: gzip`); anything else answers 200 with
/// `{"upstream":"ok","path":…}` and header `x-upstream: yes`.
#[derive(Debug)]
pub struct Upstream {
    pub addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    connections: Arc<std::sync::atomic::AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
    /// Dropping the upstream closes its open connections too.
    stop: tokio::sync::watch::Sender<bool>,
}

impl Drop for Upstream {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        self.task.abort();
    }
}

impl Upstream {
    pub async fn start() -> Upstream {
        Upstream::start_on("127.0.0.1:0".parse().unwrap()).await
    }

    /// Start on a given address (to bring an upstream back on its old port).
    pub async fn start_on(addr: SocketAddr) -> Upstream {
        let listener = TcpListener::bind(addr).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let rec = seen.clone();
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let connections: Arc<std::sync::atomic::AtomicUsize> = Arc::default();
        let accepted = connections.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { continue };
                accepted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let rec = rec.clone();
                let mut stopped = stopped.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req| {
                        let rec = rec.clone();
                        async move { Ok::<_, Infallible>(answer(req, &rec).await) }
                    });
                    let conn = http1::Builder::new().serve_connection(TokioIo::new(stream), svc);
                    tokio::select! {
                        _ = conn => {}
                        _ = stopped.wait_for(|s| *s) => {}
                    }
                });
            }
        });
        Upstream { addr, seen, connections, task, stop }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    pub fn last(&self) -> Seen {
        self.seen.lock().unwrap().last().cloned().expect("the upstream saw no request")
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.connections.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub fn count(&self) -> usize {
        self.seen.lock().unwrap().len()
    }
}

async fn answer(req: Request<Incoming>, rec: &Mutex<Vec<Seen>>) -> Response<TestBody> {
    let (parts, body) = req.into_parts();
    let path = parts.uri.path().to_string();
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let tail: Vec<&str> = segs.iter().rev().take(2).rev().copied().collect();
    if let ["count", ..] | [_, "count"] = tail.as_slice() {
        let mut n = 0u64;
        let mut body = body;
        while let Some(Ok(frame)) = body.frame().await {
            if let Some(d) = frame.data_ref() {
                n += d.len() as u64;
            }
        }
        rec.lock().unwrap().push(Seen {
            method: parts.method.to_string(),
            uri: parts.uri.to_string(),
            headers: parts.headers,
            body: Bytes::new(),
        });
        return text(StatusCode::OK, format!("{{\"bytes\":{n}}}"));
    }
    let body = body.collect().await.map(|c| c.to_bytes()).unwrap_or_default();
    rec.lock().unwrap().push(Seen {
        method: parts.method.to_string(),
        uri: parts.uri.to_string(),
        headers: parts.headers,
        body,
    });
    match tail.as_slice() {
        ["status", code] => {
            let status = code.parse().ok().and_then(|c| StatusCode::from_u16(c).ok()).unwrap_or(StatusCode::OK);
            text(status, format!("{{\"status\":{}}}", status.as_u16()))
        }
        ["slow", ms] => {
            tokio::time::sleep(Duration::from_millis(ms.parse().unwrap_or(1000))).await;
            text(StatusCode::OK, "{\"slow\":true}".into())
        }
        [.., "gzip"] => {
            use std::io::Write as _;
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            e.write_all(br#"{"zipped":true}"#).unwrap();
            let mut r = text(StatusCode::OK, String::new());
            *r.body_mut() = Full::new(Bytes::from(e.finish().unwrap())).boxed();
            r.headers_mut().insert("content-encoding", "gzip".parse().unwrap());
            r
        }
        ["big", mb] => {
            let mb: usize = mb.parse().unwrap_or(1);
            let chunk = Bytes::from(vec![b'x'; 1 << 20]);
            let stream =
                futures_util::stream::iter((0..mb).map(move |_| Ok::<_, Infallible>(Frame::data(chunk.clone()))));
            let mut r = Response::new(StreamBody::new(stream).boxed());
            r.headers_mut().insert("content-type", "application/octet-stream".parse().unwrap());
            r
        }
        _ => {
            let mut r = text(StatusCode::OK, serde_json::json!({"upstream": "ok", "path": path}).to_string());
            r.headers_mut().insert("x-upstream", "yes".parse().unwrap());
            r
        }
    }
}

fn text(status: StatusCode, body: String) -> Response<TestBody> {
    let mut r = Response::new(Full::new(Bytes::from(body)).boxed());
    *r.status_mut() = status;
    r.headers_mut().insert("content-type", "application/json".parse().unwrap());
    r
}

/// A response as a test reads it.
#[derive(Debug)]
pub struct Got {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Got {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Send a request over a fresh connection and read the whole response.
pub async fn send(req: Request<TestBody>) -> Got {
    let client =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build_http::<TestBody>();
    let resp = tokio::time::timeout(Duration::from_secs(30), client.request(req))
        .await
        .expect("response in time")
        .expect("request");
    let (parts, body) = resp.into_parts();
    let body = body.collect().await.expect("body").to_bytes();
    Got { status: parts.status, headers: parts.headers, body }
}

pub fn body(b: impl Into<Bytes>) -> TestBody {
    Full::new(b.into()).boxed()
}

/// `GET url` with headers.
pub async fn get(url: &str, headers: &[(&str, &str)]) -> Got {
    let mut b = Request::get(url);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    send(b.body(body(Bytes::new())).unwrap()).await
}

/// `method url` with a JSON body and headers.
pub async fn send_json(method: &str, url: &str, json: &serde_json::Value, headers: &[(&str, &str)]) -> Got {
    let mut b = Request::builder().method(method).uri(url).header("content-type", "application/json");
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    send(b.body(body(json.to_string())).unwrap()).await
}

/// Write a plugin project into a temporary folder.
pub fn project(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    write_files(dir.path(), files);
    dir
}

pub fn write_files(root: &Path, files: &[(&str, &str)]) {
    for (path, text) in files {
        let p = root.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
}

/// A one-file plugin: manifest text plus `backend/src/index.ts`.
pub fn plugin(manifest: &str, code: &str) -> tempfile::TempDir {
    project(&[("config/plugin.yaml", manifest), ("backend/src/index.ts", code)])
}

/// Send raw bytes on a new connection and return the status line (empty if
/// the server closed without answering within `wait`).
pub async fn raw(addr: SocketAddr, data: &[u8], wait: Duration) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let _ = s.write_all(data).await;
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let _ = tokio::time::timeout(wait, async {
        while let Ok(n) = s.read(&mut buf).await {
            if n == 0 {
                break;
            }
            out.extend_from_slice(&buf[..n]);
            if out.windows(4).any(|w| w == b"\r\n\r\n") {
                break;
            }
        }
    })
    .await;
    String::from_utf8_lossy(&out).lines().next().unwrap_or("").to_string()
}

/// A TCP server on port 0 that answers every connection with `reply` (raw
/// bytes; empty closes at once) and then keeps it open, sending nothing
/// more, until the other side closes: for upstreams that misbehave.
pub async fn bad_upstream(reply: &'static [u8]) -> (SocketAddr, tokio::task::JoinHandle<()>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else { continue };
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf).await;
                if reply.is_empty() {
                    return;
                }
                let _ = s.write_all(reply).await;
                while matches!(s.read(&mut buf).await, Ok(n) if n > 0) {}
            });
        }
    });
    (addr, task)
}

pub mod mariadb;
pub mod postgres;
mod supervised;

/// Config text to append, split into the keys of a `[table]` at its start
/// (to go inside that table of the config it joins) and the rest.
pub fn split_table<'a>(extra: &'a str, table: &str) -> (&'a str, String) {
    match extra.strip_prefix(&format!("[{table}]\n")) {
        Some(rest) => rest.split_once("\n[").map(|(s, e)| (s, format!("[{e}"))).unwrap_or((rest, String::new())),
        None => ("", extra.to_string()),
    }
}

/// An https server on 127.0.0.1 with a certificate made here for
/// `localhost` (self-signed: trusted only by who is given its PEM). Every
/// request answers 200 `{"tls":true,"path":…}`. Returns its port and the
/// certificate's PEM.
pub async fn https_upstream() -> (u16, String, tokio::task::JoinHandle<()>) {
    use tokio_rustls::rustls;
    let made = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let pem = made.cert.pem();
    let key = rustls::pki_types::PrivateKeyDer::try_from(made.signing_key.serialize_der()).unwrap();
    let config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(vec![made.cert.der().clone()], key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { continue };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                // A client that refuses the certificate ends the handshake: nothing to serve.
                let Ok(tls) = acceptor.accept(stream).await else { return };
                let svc = service_fn(|req: Request<Incoming>| async move {
                    let body = format!("{{\"tls\":true,\"path\":{:?}}}", req.uri().path());
                    Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(body))))
                });
                let _ = http1::Builder::new().serve_connection(TokioIo::new(tls), svc).await;
            });
        }
    });
    (port, pem, task)
}
