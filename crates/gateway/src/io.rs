//! What plugins may reach outside themselves (`@ones-op/fetch`,
//! `@ones-op/node-fetch`): the standard system's upstreams directly — never
//! back through the gateway's hooks, so a replace hook that calls its own
//! API does not loop — and hosts listed in `[sandbox] http_allow`, over
//! `http://` or `https://` (rustls: the Mozilla roots, plus the private CA
//! of `[sandbox] ca_file`; a certificate that does not verify fails the call
//! and says why).

use std::sync::Arc;
use std::time::Duration;

use http::{HeaderName, HeaderValue, Method, Request};
use interpose_config::{Config, Upstream};
use interpose_js::{
    FetchDone, FetchError, FetchRequest, FetchResponse, FetchTarget, HostIo, SdkDone, SdkRequest, SdkService,
};

use crate::body::{self, Body};
use crate::proxy::{self, Client};

/// Largest response body a plugin's fetch reads.
const MAX_FETCH_BODY: usize = 16 << 20;

/// The client for plugins' `https://` calls.
type HttpsClient = hyper_util::client::legacy::Client<
    hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
    Body,
>;

/// What plugins' https calls trust: the Mozilla roots and `[sandbox] ca_file`.
pub fn tls_config(config: &Config) -> Result<Arc<rustls::ClientConfig>, String> {
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
    if let Some(file) = &config.sandbox.ca_file {
        let certs = rustls_pki_types::CertificateDer::pem_file_iter(file)
            .map_err(|e| format!("cannot read {}: {e}", file.display()))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("{}: not PEM certificates: {e}", file.display()))?;
        if certs.is_empty() {
            return Err(format!("{} holds no PEM certificate (-----BEGIN CERTIFICATE-----)", file.display()));
        }
        for cert in certs {
            roots.add(cert).map_err(|e| format!("{}: a certificate that cannot be used: {e}", file.display()))?;
        }
    }
    // The crypto provider of the one rustls feature built in (ring).
    let config = rustls::ClientConfig::builder().with_root_certificates(roots).with_no_client_auth();
    Ok(Arc::new(config))
}

pub struct GatewayIo {
    client: Client,
    https: HttpsClient,
    upstreams: Vec<Upstream>,
    http_allow: Vec<String>,
    handle: tokio::runtime::Handle,
    /// The gateway's store, once it has one (entity storage).
    store: StoreSlot,
    /// Plugins' SQL databases, once connected.
    databases: DbSlot,
}

/// The store plugins' data lives in, set once the gateway has opened it.
pub type StoreSlot = Arc<std::sync::OnceLock<interpose_registry::Store>>;
/// Plugins' SQL databases, set once the gateway has them.
pub type DbSlot = Arc<std::sync::OnceLock<Arc<interpose_plugindb::PluginDb>>>;

impl GatewayIo {
    /// `None` outside a tokio runtime (tools that only load plugins).
    pub fn new(
        config: &Config,
        client: Client,
        tls: Arc<rustls::ClientConfig>,
        store: StoreSlot,
        databases: DbSlot,
    ) -> Option<Arc<GatewayIo>> {
        let handle = tokio::runtime::Handle::try_current().ok()?;
        let mut http = hyper_util::client::legacy::connect::HttpConnector::new();
        http.enforce_http(false);
        http.set_connect_timeout(Some(Duration::from_millis(config.limits.upstream_connect_timeout_ms)));
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config((*tls).clone())
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let https = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build(connector);
        Some(Arc::new(GatewayIo {
            client,
            https,
            upstreams: config.upstreams.clone(),
            http_allow: config.sandbox.http_allow.clone(),
            handle,
            store,
            databases,
        }))
    }

    /// The URL a request goes to, with the headers it adds.
    fn target(&self, req: &FetchRequest) -> Result<(String, Vec<(String, String)>), FetchError> {
        match &req.target {
            FetchTarget::System { path, scope, root, .. } => {
                let (upstream, rest) = self.system_route(path, scope.as_deref())?;
                let mut extra = Vec::new();
                if *root {
                    for (k, v) in &upstream.root_headers {
                        if !req.headers.iter().any(|(h, _)| h.eq_ignore_ascii_case(k)) {
                            extra.push((k.clone(), v.clone()));
                        }
                    }
                }
                Ok((format!("http://{}{}{}", upstream.authority, upstream.base_path, rest), extra))
            }
            FetchTarget::Http { url } => {
                let rest =
                    url.strip_prefix("http://").or_else(|| url.strip_prefix("https://")).ok_or_else(|| FetchError {
                        errcode: "InvalidParameter".into(),
                        reason: format!("an outside call needs an http:// or https:// URL, got {url:?}"),
                    })?;
                let authority = rest.split(['/', '?']).next().unwrap_or("");
                let host = authority.rsplit_once(':').map(|(h, _)| h).unwrap_or(authority);
                if !self.http_allow.iter().any(|a| a == authority || a == host) {
                    return Err(FetchError {
                        errcode: "Forbidden".into(),
                        reason: format!(
                            "fetchHttp to {authority:?} is not allowed; the gateway config must list it in [sandbox] http_allow"
                        ),
                    });
                }
                Ok((url.clone(), Vec::new()))
            }
        }
    }

    /// A path starting with a scope's name goes to that scope (name
    /// stripped); any other path to `project`; an explicit scope wins.
    fn system_route<'p>(&self, path: &'p str, scope: Option<&str>) -> Result<(&Upstream, &'p str), FetchError> {
        let find = |s: &str| self.upstreams.iter().find(|u| u.scope == s);
        if let Some(s) = scope {
            let u = find(s).ok_or_else(|| FetchError {
                errcode: "InvalidParameter".into(),
                reason: format!("no upstream serves scope {s:?}"),
            })?;
            return Ok((u, path));
        }
        let first = path.trim_start_matches('/').split(['/', '?']).next().unwrap_or("");
        if let Some(u) = find(first).filter(|_| !first.is_empty()) {
            return Ok((u, &path[first.len() + 1..]));
        }
        find("project").map(|u| (u, path)).ok_or_else(|| FetchError {
            errcode: "InvalidParameter".into(),
            reason: "no upstream serves scope \"project\"".into(),
        })
    }
}

impl HostIo for GatewayIo {
    fn fetch(&self, req: FetchRequest, done: FetchDone) {
        let target = self.target(&req);
        let (client, https) = (self.client.clone(), self.https.clone());
        self.handle.spawn(async move {
            let result = match target {
                Ok((url, extra)) if url.starts_with("https://") => send_tls(https, req.clone(), url, extra).await,
                Ok((url, extra)) => send(client, req.clone(), url, extra).await,
                Err(e) => Err(e),
            };
            if let Err(e) = &result {
                tracing::debug!(instance = %req.instance, errcode = %e.errcode, "plugin fetch failed: {}", e.reason);
            }
            done(result);
        });
    }

    fn sdk(&self, req: SdkRequest, done: SdkDone) {
        match req.service {
            SdkService::Storage => {
                // A record this process knows (SQLite) answers at once,
                // without a trip to the store's connections.
                if let Some(known) = self.store.get().and_then(|s| crate::storage::cached(s, &req)) {
                    done(known);
                    return;
                }
                let Some(store) = self.store.get().cloned() else {
                    done(Err(interpose_js::SdkFailure::new(
                        "Storage.NotAvailable",
                        501,
                        "entity storage needs the gateway's store, which this process has not opened",
                    )));
                    return;
                };
                self.handle.spawn(async move { done(crate::storage::serve(&store, req).await) });
            }
            SdkService::Database => {
                let Some(db) = self.databases.get().cloned() else {
                    done(Err(interpose_js::SdkFailure::new(
                        "DB.NotAvailable",
                        501,
                        "the plugin database ([plugin_db]) is not connected in this process",
                    )));
                    return;
                };
                self.handle.spawn(async move { done(crate::storage::database(&db, req).await) });
            }
        }
    }
}

async fn send(
    client: Client,
    req: FetchRequest,
    url: String,
    extra: Vec<(String, String)>,
) -> Result<FetchResponse, FetchError> {
    let r = request(&req, &url, &extra)?;
    let timeout = req.timeout.max(Duration::from_millis(1));
    let resp = proxy::send(&client, r, "fetch", timeout).await.map_err(|e| {
        let errcode = if matches!(e, crate::error::GatewayError::UpstreamTimeout { .. }) {
            "RequestTimeOut"
        } else {
            "NetworkError"
        };
        FetchError { errcode: errcode.into(), reason: e.to_string() }
    })?;
    response(resp).await
}

/// An `https://` call: rustls, with the roots of [`tls_config`].
async fn send_tls(
    client: HttpsClient,
    req: FetchRequest,
    url: String,
    extra: Vec<(String, String)>,
) -> Result<FetchResponse, FetchError> {
    let r = request(&req, &url, &extra)?;
    let timeout = req.timeout.max(Duration::from_millis(1));
    let resp = match tokio::time::timeout(timeout, client.request(r)).await {
        Err(_) => {
            return Err(FetchError {
                errcode: "RequestTimeOut".into(),
                reason: format!("{url} did not answer within {} ms", timeout.as_millis()),
            })
        }
        Ok(Err(e)) => {
            // The cause chain says what failed: the certificate, say.
            let mut why = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                why.push_str(": ");
                why.push_str(&s.to_string());
                source = s.source();
            }
            return Err(FetchError { errcode: "NetworkError".into(), reason: format!("{url}: {why}") });
        }
        Ok(Ok(resp)) => resp,
    };
    let (mut parts, body) = resp.into_parts();
    proxy::strip_hop_by_hop(&mut parts.headers);
    let body = http_body_util::BodyExt::boxed_unsync(http_body_util::BodyExt::map_err(body, |e| {
        Box::new(e) as crate::body::BoxError
    }));
    response(http::Response::from_parts(parts, body)).await
}

/// A plugin's call as the request to send.
fn request(req: &FetchRequest, url: &str, extra: &[(String, String)]) -> Result<Request<Body>, FetchError> {
    let bad = |reason: String| FetchError { errcode: "InvalidParameter".into(), reason };
    let method =
        Method::from_bytes(req.method.as_bytes()).map_err(|_| bad(format!("invalid method {:?}", req.method)))?;
    let mut r = Request::builder().method(method).uri(url);
    for (k, v) in req.headers.iter().chain(extra.iter()) {
        let name = HeaderName::from_bytes(k.as_bytes()).map_err(|_| bad(format!("invalid header name {k:?}")))?;
        if gateway_frames(&name) {
            continue;
        }
        let value = HeaderValue::from_str(v).map_err(|_| bad(format!("invalid value for header {k:?}")))?;
        r = r.header(name, value);
    }
    let body = match &req.body {
        Some(b) => body::full(b.clone()),
        None => body::empty(),
    };
    r.body(body).map_err(|e| bad(format!("cannot build the request for {url}: {e}")))
}

/// The answer as the plugin gets it: the body read (up to a cap) and decoded.
async fn response(resp: http::Response<Body>) -> Result<FetchResponse, FetchError> {
    let (parts, body) = resp.into_parts();
    let bytes = read_capped(body, MAX_FETCH_BODY)
        .await
        .map_err(|reason| FetchError { errcode: "NetworkError".into(), reason })?;
    // As a browser's fetch: the body comes decoded. The headers then
    // describe it, not the wire: no Content-Encoding, its own length.
    let mut headers = parts.headers;
    let body = match crate::coding::decode(&headers, &bytes, MAX_FETCH_BODY) {
        Ok(std::borrow::Cow::Borrowed(b)) => b.to_vec(),
        Ok(std::borrow::Cow::Owned(decoded)) => {
            headers.remove(http::header::CONTENT_ENCODING);
            headers.insert(http::header::CONTENT_LENGTH, HeaderValue::from(decoded.len()));
            Vec::from(decoded)
        }
        Err(e @ crate::coding::DecodeError::TooLarge { .. }) => {
            return Err(FetchError { errcode: "NetworkError".into(), reason: format!("the response: {e}") })
        }
        // A coding it cannot undo: the bytes as they came, headers saying so.
        Err(_) => bytes.to_vec(),
    };
    let headers = headers
        .iter()
        .map(|(k, v)| (k.as_str().to_string(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
        .collect();
    Ok(FetchResponse { status: parts.status.as_u16(), headers, body })
}

/// Headers a plugin may pass along (`headers: request.headers`, say) but
/// that describe another message's framing or connection: the gateway frames
/// the call itself, as a browser's fetch does (they are its forbidden
/// request headers). A client's `Content-Length: 7` in front of a longer
/// body would otherwise cut it short.
fn gateway_frames(name: &HeaderName) -> bool {
    use http::header;
    matches!(
        *name,
        header::CONTENT_LENGTH
            | header::TRANSFER_ENCODING
            | header::CONNECTION
            | header::TE
            | header::TRAILER
            | header::UPGRADE
            | header::EXPECT
    ) || name.as_str() == "keep-alive"
        || name.as_str() == "proxy-connection"
}

/// Read a whole body of at most `limit` bytes. (Written out rather than
/// through `Limited`: that generic future trips a higher-ranked `Send`
/// inference bug when spawned.)
async fn read_capped(mut body: Body, limit: usize) -> Result<bytes::Bytes, String> {
    use http_body_util::BodyExt;
    let mut out = bytes::BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| e.to_string())?;
        if let Some(d) = frame.data_ref() {
            if out.len() + d.len() > limit {
                return Err(format!("the response is larger than {limit} bytes"));
            }
            out.extend_from_slice(d);
        }
    }
    Ok(out.freeze())
}
