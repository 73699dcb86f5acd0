//! Forwarding to the standard system: the request as the client sent it
//! (minus hop-by-hop headers, plus `X-Forwarded-*`), the response as the
//! upstream sent it. Bodies stream unless a hook needed them buffered.

use std::cell::RefCell;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::uri::{Authority, PathAndQuery};
use http::{Request, Response, Uri};
use http_body::{Frame, SizeHint};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use interpose_config::Upstream;
use tokio::net::TcpStream;

use crate::body::{Body, BoxError};
use crate::error::GatewayError;

/// The upstream client: keep-alive HTTP/1.1 connections pooled per thread.
/// A serving thread's upstream connections live on its own runtime, so a
/// proxied request never crosses threads, and the pool needs no lock.
#[derive(Debug, Clone)]
pub struct Client {
    connect_timeout: Duration,
}

/// Idle connections kept per upstream and thread.
const MAX_IDLE: usize = 1024;
/// An idle connection older than this is closed rather than reused.
const IDLE_TIMEOUT: Duration = Duration::from_secs(90);
/// A connection not ready this long after its response was read to the end
/// is closed (it is still sending a request body the upstream did not wait for).
const BUSY_LIMIT: Duration = Duration::from_secs(1);

/// Longest pause before retrying a refused connect (5, 10, 20 ms: three retries).
const CONNECT_RETRY_PAUSE_MAX: Duration = Duration::from_millis(20);

/// Idle connections by upstream, each with the time it went idle. A list
/// searched in order rather than a hash map: a gateway has a handful of
/// upstreams, and `Authority` hashes byte by byte (case-insensitively), which
/// cost more per request than the comparisons.
type Idle = Vec<(Authority, Vec<(SendRequest<Body>, Instant)>)>;

thread_local! {
    static IDLE: RefCell<Idle> = const { RefCell::new(Vec::new()) };
}

/// The idle list of `authority`, if it has one.
fn idle_list<'a>(idle: &'a mut Idle, authority: &Authority) -> Option<&'a mut Vec<(SendRequest<Body>, Instant)>> {
    idle.iter_mut().find(|(a, _)| a == authority).map(|(_, list)| list)
}

impl Client {
    pub fn new(connect_timeout: Duration) -> Client {
        Client { connect_timeout }
    }

    /// Send `req` (an absolute `http://` URI) on an idle connection to its
    /// upstream, or on a new one. A request that could not be written on a
    /// reused connection (the upstream had just closed it) is sent again.
    /// The response body fails when the upstream sends nothing for `idle`.
    pub async fn request(&self, mut req: Request<Body>, idle: Duration) -> Result<Response<Body>, BoxError> {
        let authority = origin_form(&mut req)?;
        while let Some(mut sender) = checkout(&authority).await {
            match sender.try_send_request(req).await {
                Ok(resp) => return Ok(pooled(resp, sender, authority, idle)),
                Err(mut e) => match e.take_message() {
                    Some(r) => req = r,
                    None => return Err(e.into_error().into()),
                },
            }
        }
        let mut sender = self.connect(&authority, false).await?;
        let resp = sender.send_request(req).await?;
        Ok(pooled(resp, sender, authority, idle))
    }

    /// Send an upgrade request (`Connection: upgrade`) on a connection of
    /// its own, never pooled: after a `101` it belongs to the tunnel.
    async fn request_upgrade(&self, mut req: Request<Body>) -> Result<Response<Incoming>, BoxError> {
        let authority = origin_form(&mut req)?;
        let mut sender = self.connect(&authority, true).await?;
        Ok(sender.send_request(req).await?)
    }

    async fn connect(&self, authority: &Authority, upgrades: bool) -> Result<SendRequest<Body>, BoxError> {
        let addr = (authority.host(), authority.port_u16().unwrap_or(80));
        let deadline = tokio::time::Instant::now() + self.connect_timeout;
        // A refused connect is retried a few times, briefly: an upstream
        // whose accept queue overflowed in a burst of new connections
        // refuses some and takes them a moment later. Nothing was sent, so
        // trying again is safe; an upstream that is down costs 35 ms more.
        let mut pause = Duration::from_millis(5);
        let stream = loop {
            match tokio::time::timeout_at(deadline, TcpStream::connect(addr)).await {
                Ok(Ok(s)) => break s,
                Ok(Err(e))
                    if e.kind() == std::io::ErrorKind::ConnectionRefused
                        && pause <= CONNECT_RETRY_PAUSE_MAX
                        && tokio::time::Instant::now() + pause < deadline =>
                {
                    tokio::time::sleep(pause).await;
                    pause *= 2;
                }
                Ok(Err(e)) => return Err(e.into()),
                Err(_) => return Err(format!("connect timed out after {} ms", self.connect_timeout.as_millis()).into()),
            }
        };
        stream.set_nodelay(true)?;
        let keepalive = socket2::TcpKeepalive::new().with_time(Duration::from_secs(60));
        socket2::SockRef::from(&stream).set_tcp_keepalive(&keepalive)?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            let ended = if upgrades { conn.with_upgrades().await } else { conn.await };
            if let Err(e) = ended {
                tracing::debug!(error = %e, "upstream connection ended with an error");
            }
        });
        Ok(sender)
    }
}

/// Turn `req`'s absolute `http://` URI into the path it is sent with (a
/// `Host` header from the authority unless it has one); the authority.
fn origin_form(req: &mut Request<Body>) -> Result<Authority, BoxError> {
    let uri = std::mem::take(req.uri_mut());
    let authority = match (uri.scheme_str(), uri.authority()) {
        (Some("http"), Some(a)) => a.clone(),
        _ => return Err(format!("{uri} is not an http:// URL").into()),
    };
    *req.uri_mut() = uri.path_and_query().map_or_else(|| Uri::from_static("/"), |pq| Uri::from(pq.clone()));
    if !req.headers().contains_key(header::HOST) {
        req.headers_mut().insert(header::HOST, HeaderValue::from_str(authority.as_str())?);
    }
    Ok(authority)
}

/// A connection to `authority` on this thread for the next request, newest
/// first. One handed back a moment ago may not have taken note yet that its
/// response is complete: if no other is ready, the request waits for it, at
/// most [`BUSY_LIMIT`] (then it is closed and a new one made).
async fn checkout(authority: &Authority) -> Option<SendRequest<Body>> {
    let (mut sender, ready) = std::future::poll_fn(|cx| {
        Poll::Ready(IDLE.with(|idle| {
            let mut idle = idle.borrow_mut();
            let list = idle_list(&mut idle, authority)?;
            let mut pending = None;
            let mut i = list.len();
            while i > 0 {
                i -= 1;
                let (sender, since) = &mut list[i];
                let age = since.elapsed();
                let fresh = age < IDLE_TIMEOUT;
                match sender.poll_ready(cx) {
                    Poll::Ready(Ok(())) if fresh => return Some((list.remove(i).0, true)),
                    Poll::Pending if fresh && age < BUSY_LIMIT => {
                        pending = pending.or(Some(i));
                    }
                    _ => {
                        drop(list.remove(i));
                        // What was at the remembered index moved down by one.
                        if let Some(p) = pending.as_mut() {
                            *p -= 1;
                        }
                    }
                }
            }
            pending.map(|i| (list.remove(i).0, false))
        }))
    })
    .await?;
    if !ready && !matches!(tokio::time::timeout(BUSY_LIMIT, sender.ready()).await, Ok(Ok(()))) {
        return None;
    }
    Some(sender)
}

fn checkin(authority: Authority, sender: SendRequest<Body>) {
    if sender.is_closed() {
        return;
    }
    IDLE.with(|idle| {
        let mut idle = idle.borrow_mut();
        let list = match idle.iter().position(|(a, _)| *a == authority) {
            Some(i) => &mut idle[i].1,
            None => {
                idle.push((authority, Vec::new()));
                &mut idle.last_mut().expect("just pushed").1
            }
        };
        if list.len() < MAX_IDLE {
            list.push((sender, Instant::now()));
        }
    });
}

/// The response, its body handing the connection back once it has been read
/// to the end. A body dropped before its end takes the connection with it
/// (it closes: the rest of that response cannot be told from the next).
/// A body the upstream stops sending for `idle` fails, as nginx's
/// `proxy_read_timeout` does: the client's connection is cut rather than
/// held open for ever.
fn pooled(resp: Response<Incoming>, sender: SendRequest<Body>, authority: Authority, idle: Duration) -> Response<Body> {
    resp.map(|body| {
        PooledBody { body, conn: Some((sender, authority)), idle, stall: None, moved: false }.boxed_unsync()
    })
}

struct PooledBody {
    body: Incoming,
    conn: Option<(SendRequest<Body>, Authority)>,
    idle: Duration,
    /// Armed the first time the body has nothing ready (most bodies arrive
    /// with their head and never need it), pushed back after each frame.
    stall: Option<Pin<Box<tokio::time::Sleep>>>,
    /// A frame arrived since the timer was last set.
    moved: bool,
}

impl PooledBody {
    fn release(&mut self) {
        if let Some((sender, authority)) = self.conn.take() {
            checkin(authority, sender);
        }
    }

    fn upstream(&self) -> String {
        self.conn.as_ref().map_or_else(|| "the upstream".to_string(), |(_, a)| a.to_string())
    }

    /// Nothing is ready: wait, unless the upstream has been silent for `idle`.
    fn stalled(&mut self, cx: &mut Context<'_>) -> Option<BoxError> {
        let deadline = tokio::time::Instant::now() + self.idle;
        match self.stall.as_mut() {
            None => self.stall = Some(Box::pin(tokio::time::sleep_until(deadline))),
            Some(timer) if self.moved => timer.as_mut().reset(deadline),
            Some(_) => {}
        }
        self.moved = false;
        let timer = self.stall.as_mut()?;
        if timer.as_mut().poll(cx).is_pending() {
            return None;
        }
        let reason = format!(
            "{} sent no more of the response body for {} ms; the response is cut off there",
            self.upstream(),
            self.idle.as_millis()
        );
        tracing::warn!("{reason}");
        self.conn = None;
        Some(reason.into())
    }
}

impl http_body::Body for PooledBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let polled = Pin::new(&mut self.body).poll_frame(cx);
        match polled {
            Poll::Ready(None) => {
                self.release();
                Poll::Ready(None)
            }
            Poll::Ready(Some(Err(e))) => {
                tracing::warn!("{} failed in the middle of the response body: {e}", self.upstream());
                // Not reusable.
                self.conn = None;
                Poll::Ready(Some(Err(e.into())))
            }
            Poll::Ready(Some(Ok(frame))) => {
                self.moved = true;
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Pending => match self.stalled(cx) {
                Some(e) => Poll::Ready(Some(Err(e))),
                None => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

impl Drop for PooledBody {
    fn drop(&mut self) {
        if http_body::Body::is_end_stream(&self.body) {
            self.release();
        }
    }
}

/// Headers that belong to one connection, never forwarded (RFC 9110 §7.6.1).
/// Connection first: [`strip_hop_by_hop`]'s fast path relies on it.
static HOP_BY_HOP: [HeaderName; 7] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // Most messages carry none, or only `Connection: keep-alive`: one look
    // at each name tells (cheaper than a lookup per hop-by-hop name), and
    // nothing is allocated then.
    let mut found = [false; HOP_BY_HOP.len()];
    for k in headers.keys() {
        if let Some(i) = HOP_BY_HOP.iter().position(|h| h == k) {
            found[i] = true;
        }
    }
    if !found.contains(&true) {
        return;
    }
    // The usual case: `Connection: keep-alive` (or `close`) alone.
    if found[1..].iter().all(|f| !f)
        && headers
            .get_all(header::CONNECTION)
            .iter()
            .all(|v| v.as_bytes().eq_ignore_ascii_case(b"keep-alive") || v.as_bytes().eq_ignore_ascii_case(b"close"))
    {
        headers.remove(header::CONNECTION);
        return;
    }
    // Headers named in `Connection` are hop-by-hop too (`close` and the
    // names above are no others).
    let named: Vec<HeaderName> = connection_tokens(headers)
        .filter(|t| !t.eq_ignore_ascii_case("close") && !HOP_BY_HOP.iter().any(|h| t.eq_ignore_ascii_case(h.as_str())))
        .filter_map(|t| HeaderName::from_bytes(t.as_bytes()).ok())
        .collect();
    for name in named.iter() {
        headers.remove(name);
    }
    for (name, _) in HOP_BY_HOP.iter().zip(found).filter(|(_, f)| *f) {
        headers.remove(name);
    }
}

/// The options listed in `Connection` (`keep-alive, Upgrade` → two).
fn connection_tokens(headers: &HeaderMap) -> impl Iterator<Item = &str> {
    headers.get_all(header::CONNECTION).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(',')).map(str::trim)
}

/// Add the client's address to `X-Forwarded-For` and set `X-Forwarded-Proto`.
pub fn add_forwarded(headers: &mut HeaderMap, client: IpAddr) {
    match headers.entry(X_FORWARDED_FOR) {
        header::Entry::Occupied(mut e) => {
            // Several fields are one list (RFC 9110 §5.3): keep them all, in order.
            let mut list = String::new();
            for prev in e.iter().filter_map(|v| v.to_str().ok()) {
                list.push_str(prev);
                list.push_str(", ");
            }
            list.push_str(&client.to_string());
            if let Ok(v) = HeaderValue::from_str(&list) {
                e.insert(v);
            }
        }
        header::Entry::Vacant(e) => {
            e.insert(client_value(client));
        }
    }
    headers.entry(X_FORWARDED_PROTO).or_insert_with(|| HeaderValue::from_static("http"));
}

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");

/// `client` as a header value. Requests on a thread mostly come from the
/// address of the one before (a load balancer, a front proxy): that value
/// is kept and shared rather than formatted again.
fn client_value(client: IpAddr) -> HeaderValue {
    thread_local! {
        static LAST: RefCell<Option<(IpAddr, HeaderValue)>> = const { RefCell::new(None) };
    }
    LAST.with(|last| {
        let mut last = last.borrow_mut();
        match &*last {
            Some((ip, v)) if *ip == client => v.clone(),
            _ => {
                let v = HeaderValue::from_maybe_shared(Bytes::from(client.to_string()))
                    .expect("an IP address is a valid header value");
                *last = Some((client, v.clone()));
                v
            }
        }
    })
}

/// The upstream URI for a path (with query) under the mount.
pub fn upstream_uri(upstream: &Upstream, rest: &str) -> Result<Uri, GatewayError> {
    let base = upstream.base_path.as_str();
    let mut path = String::with_capacity(base.len() + rest.len() + 1);
    path.push_str(base);
    if base.is_empty() && (rest.is_empty() || rest.starts_with('?')) {
        path.push('/');
    }
    path.push_str(rest);
    let bad =
        |e: &dyn std::fmt::Display| GatewayError::BadRequest(format!("the request path cannot be forwarded: {e}"));
    let mut parts = http::uri::Parts::default();
    parts.scheme = Some(http::uri::Scheme::HTTP);
    parts.authority = Some(upstream.authority.clone());
    parts.path_and_query = Some(PathAndQuery::from_maybe_shared(Bytes::from(path)).map_err(|e| bad(&e))?);
    Uri::from_parts(parts).map_err(|e| bad(&e))
}

/// Send `req` upstream and return its response with hop-by-hop headers removed.
pub async fn send(
    client: &Client,
    mut req: Request<Body>,
    scope: &str,
    timeout: Duration,
) -> Result<Response<Body>, GatewayError> {
    *req.version_mut() = http::Version::HTTP_11;
    let resp = answer(client.request(req, timeout), scope, timeout).await?;
    let (mut parts, body) = resp.into_parts();
    strip_hop_by_hop(&mut parts.headers);
    Ok(Response::from_parts(parts, body))
}

/// The `Upgrade` value when `headers` ask to switch to WebSocket
/// (`Connection: upgrade`, `Upgrade: websocket`). Only WebSocket is
/// tunnelled: a tunnel to an upstream that speaks HTTP on it (`h2c`, say)
/// would let the client send requests no hook sees.
pub fn upgrade_protocol(headers: &HeaderMap) -> Option<HeaderValue> {
    let protocol = headers.get(header::UPGRADE)?;
    if !protocol.as_bytes().eq_ignore_ascii_case(b"websocket") {
        return None;
    }
    let asked = connection_tokens(headers).any(|t| t.eq_ignore_ascii_case("upgrade"));
    asked.then(|| protocol.clone())
}

/// Send an upgrade request upstream (`req` has its hop-by-hop headers
/// removed; `protocol` goes back in). When the upstream switches
/// protocols, the client gets its `101` and both connections are joined
/// into a tunnel that copies bytes each way until either side closes;
/// any other answer is relayed as a plain response.
pub async fn tunnel(
    client: &Client,
    mut req: Request<Body>,
    protocol: HeaderValue,
    on_client: hyper::upgrade::OnUpgrade,
    scope: &str,
    timeout: Duration,
) -> Result<Response<Body>, GatewayError> {
    *req.version_mut() = http::Version::HTTP_11;
    req.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    req.headers_mut().insert(header::UPGRADE, protocol);
    let mut resp = answer(client.request_upgrade(req), scope, timeout).await?;
    if resp.status() != http::StatusCode::SWITCHING_PROTOCOLS {
        strip_hop_by_hop(resp.headers_mut());
        return Ok(resp.map(|b| b.map_err(Into::into).boxed_unsync()));
    }
    let on_upstream = hyper::upgrade::on(&mut resp);
    tokio::spawn(async move {
        match tokio::try_join!(on_client, on_upstream) {
            Ok((downstream, upstream)) => {
                let (mut down, mut up) = (TokioIo::new(downstream), TokioIo::new(upstream));
                if let Err(e) = tokio::io::copy_bidirectional(&mut down, &mut up).await {
                    tracing::debug!(error = %e, "tunnel ended with an error");
                }
            }
            Err(e) => tracing::debug!(error = %e, "protocol switch not completed"),
        }
    });
    // The 101 keeps its `Connection`/`Upgrade` (they are the answer) and
    // whatever else the upstream said (`Sec-WebSocket-Accept`, …).
    let (mut parts, _) = resp.into_parts();
    parts.headers.remove(header::TRANSFER_ENCODING);
    parts.headers.remove(header::CONTENT_LENGTH);
    Ok(Response::from_parts(parts, crate::body::empty()))
}

/// The upstream's response head within `timeout`, failures as gateway errors.
async fn answer<T>(
    sent: impl std::future::Future<Output = Result<T, BoxError>>,
    scope: &str,
    timeout: Duration,
) -> Result<T, GatewayError> {
    match tokio::time::timeout(timeout, sent).await {
        Err(_) => Err(GatewayError::UpstreamTimeout { scope: scope.to_string(), ms: timeout.as_millis() as u64 }),
        Ok(Err(e)) => {
            Err(GatewayError::UpstreamUnavailable { scope: scope.to_string(), cause: error_chain(e.as_ref()) })
        }
        Ok(Ok(resp)) => Ok(resp),
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        src = inner.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(HeaderName::from_static(k), HeaderValue::from_static(v));
        }
        h
    }

    fn names(h: &HeaderMap) -> Vec<&str> {
        h.keys().map(HeaderName::as_str).collect()
    }

    #[test]
    fn hop_by_hop_headers_are_removed_whatever_the_path() {
        // Nothing to remove: untouched.
        let mut h = map(&[("host", "a"), ("x-a", "1")]);
        strip_hop_by_hop(&mut h);
        assert_eq!(names(&h), ["host", "x-a"]);
        // The usual response: Connection: keep-alive alone, any case.
        for v in ["keep-alive", "Keep-Alive", "close"] {
            let mut h = map(&[("content-type", "text/plain"), ("connection", v)]);
            strip_hop_by_hop(&mut h);
            assert_eq!(names(&h), ["content-type"], "Connection: {v}");
        }
        // Keep-Alive's own header goes too, and so do headers Connection names.
        let mut h = map(&[
            ("connection", "keep-alive, X-Secret"),
            ("keep-alive", "timeout=5"),
            ("x-secret", "s"),
            ("te", "trailers"),
            ("transfer-encoding", "chunked"),
            ("upgrade", "h2c"),
            ("proxy-connection", "keep-alive"),
            ("trailer", "x"),
            ("x-kept", "1"),
        ]);
        strip_hop_by_hop(&mut h);
        assert_eq!(names(&h), ["x-kept"]);
        // Two Connection headers, one naming another header.
        let mut h = map(&[("connection", "keep-alive"), ("connection", "x-b"), ("x-b", "1"), ("x-c", "2")]);
        strip_hop_by_hop(&mut h);
        assert_eq!(names(&h), ["x-c"]);
        // Hop-by-hop without Connection.
        let mut h = map(&[("te", "trailers"), ("x-c", "2")]);
        strip_hop_by_hop(&mut h);
        assert_eq!(names(&h), ["x-c"]);
    }

    #[test]
    fn forwarded_headers_extend_what_came_before() {
        let ip: IpAddr = "10.0.0.7".parse().expect("ip");
        let mut h = HeaderMap::new();
        add_forwarded(&mut h, ip);
        assert_eq!(h["x-forwarded-for"], "10.0.0.7");
        assert_eq!(h["x-forwarded-proto"], "http");
        let mut h =
            map(&[("x-forwarded-for", "1.2.3.4"), ("x-forwarded-for", "5.6.7.8"), ("x-forwarded-proto", "https")]);
        add_forwarded(&mut h, ip);
        assert_eq!(h.get_all("x-forwarded-for").iter().collect::<Vec<_>>(), ["1.2.3.4, 5.6.7.8, 10.0.0.7"]);
        assert_eq!(h["x-forwarded-proto"], "https", "a front proxy's scheme is kept");
    }
}
