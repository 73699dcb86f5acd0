//! Hostile clients and faulty upstreams: each gets the right status, and
//! nothing else changes.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{decl, org_plugin, start};
use interpose_test_util::{bad_upstream, get, raw, send_json, Upstream};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(2);

#[tokio::test]
async fn smuggling_and_oversized_requests_are_refused() {
    let up = Upstream::start().await;
    let p = org_plugin(
        "guard",
        "  - {type: intercept, methods: [POST], url: /x, function: f}\n",
        "export function f() {}\n",
    );
    let gw = start(&up, &[common::decl(p.path(), &[], None)], "").await;
    let addr = gw.listening.addr;
    // CL+TE: processed by Transfer-Encoding alone (RFC 9112 §6.1; hyper drops
    // the Content-Length) and re-framed for the upstream, which therefore
    // can never read the body differently.
    for path in ["x", "y"] {
        let req = format!("POST /project/api/project/{path} HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n");
        let line = raw(addr, req.as_bytes(), WAIT).await;
        assert!(line.starts_with("HTTP/1.1 200"), "{line:?}");
        let seen = up.last();
        assert_eq!(seen.body.len(), 0, "{path}");
        assert!(seen.headers.get("content-length").is_none_or(|v| v == "0"), "{path}: {:?}", seen.headers);
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        up.seen().iter().all(|s| !s.uri.contains("smuggled")),
        "a pipelined request is the client's own, never glued to the body"
    );
    let before = up.count();
    let cases: &[(&str, &[u8], &str)] = &[
        (
            "two Content-Length",
            b"POST /project/api/project/y HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello",
            "400",
        ),
        ("obs-fold", b"GET /project/api/project/y HTTP/1.1\r\nHost: a\r\nX-A: b\r\n c\r\n\r\n", "400"),
        ("no Host on HTTP/1.1", b"GET /project/api/project/y HTTP/1.1\r\n\r\n", "400"),
        ("two Host", b"GET /project/api/project/y HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", "400"),
        ("CONNECT", b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n", "405"),
        (
            "gzip transfer coding",
            b"POST /project/api/project/y HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
            "400",
        ),
        ("bad request line", b"GARBAGE\r\n\r\n", "400"),
    ];
    for (name, data, want) in cases {
        let line = raw(addr, data, WAIT).await;
        assert!(line.starts_with(&format!("HTTP/1.1 {want}")), "{name}: {line:?}");
    }
    let mut big = b"GET /project/api/project/y HTTP/1.1\r\nHost: a\r\nX-A: ".to_vec();
    big.extend(vec![b'a'; 500_000]);
    big.extend(b"\r\n\r\n");
    let line = raw(addr, &big, WAIT).await;
    assert!(line.starts_with("HTTP/1.1 431"), "{line:?}");
    // Past the configured limit but within what one read brings: the exact
    // check answers, with the JSON error body.
    let mut over = b"GET /project/api/project/y HTTP/1.1\r\nHost: a\r\nX-A: ".to_vec();
    over.extend(vec![b'a'; 70_000]);
    over.extend(b"\r\nConnection: close\r\n\r\n");
    let (line, _) = raw_slowly(addr, &over).await;
    assert!(line.starts_with("HTTP/1.1 431"), "{line:?}");
    let mut long = b"GET /project/api/project/".to_vec();
    long.extend(vec![b'a'; 100_000]);
    long.extend(b" HTTP/1.1\r\nHost: a\r\n\r\n");
    let line = raw(addr, &long, WAIT).await;
    assert!(line.starts_with("HTTP/1.1 414"), "{line:?}");
    assert_eq!(up.count(), before, "none of them reached the upstream");
    assert_eq!(get(&gw.url("/project/api/project/y"), &[]).await.status, 200, "the gateway still serves");
    // An absolute-form target's authority is the host; HTTP/1.0 needs no Host.
    let line = raw(addr, b"GET http://app.example/project/api/project/abs HTTP/1.1\r\nHost: other\r\n\r\n", WAIT).await;
    assert!(line.starts_with("HTTP/1.1 200"), "{line:?}");
    let seen = up.last();
    assert_eq!(
        (seen.uri.as_str(), seen.headers["host"].to_str().unwrap()),
        ("/project/api/project/abs", "app.example")
    );
    let line = raw(addr, b"GET /project/api/project/old HTTP/1.0\r\n\r\n", WAIT).await;
    assert!(line.starts_with("HTTP/1.0 200"), "{line:?}");
    gw.stop().await;
}

#[tokio::test]
async fn slow_and_vanishing_clients() {
    let up = Upstream::start().await;
    let p = org_plugin(
        "guard",
        "  - {type: intercept, methods: [POST], url: /x, function: f}\n",
        "export function f() {}\n",
    );
    let gw = start(
        &up,
        &[decl(p.path(), &[], None)],
        "[limits]\nheader_read_timeout_ms = 300\nbody_read_timeout_ms = 300\n",
    )
    .await;
    let addr = gw.listening.addr;
    // Slow-loris headers: cut off, nothing forwarded.
    let line = raw(addr, b"GET /project/api/project/y HTTP/1.1\r\nHost: a\r\n", Duration::from_secs(3)).await;
    assert!(line.is_empty() || line.starts_with("HTTP/1.1 408"), "{line:?}");
    // A hooked route whose body never finishes: 408.
    let line = raw(
        addr,
        b"POST /project/api/project/x HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\nabc",
        Duration::from_secs(3),
    )
    .await;
    assert!(line.starts_with("HTTP/1.1 408"), "{line:?}");
    // A client that vanishes mid-body.
    {
        use tokio::io::AsyncWriteExt;
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(b"POST /project/api/project/x HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\nabc")
            .await
            .unwrap();
        drop(s);
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(up.count(), 0);
    let got = send_json("POST", &gw.url("/project/api/project/x"), &json!({"ok": true}), &[]).await;
    assert_eq!(got.status, 200, "still serving");
    gw.stop().await;
}

#[tokio::test]
async fn upstream_faults_and_recovery() {
    // Resetting and garbage-speaking upstreams: 502, clearly.
    for reply in [&b""[..], &b"garbage, not HTTP\r\n\r\n"[..]] {
        let (addr, task) = bad_upstream(reply).await;
        let fake = Upstream::start().await;
        let text = common::config_text(&fake, &[], "").replace(&fake.url(), &format!("http://{addr}"));
        let dir = tempfile::tempdir().unwrap();
        let config = interpose_config::Config::from_str_with_env(&text, "t.toml", dir.path(), Vec::new()).unwrap();
        let gw = interpose_gateway::Gateway::new(config).unwrap();
        let l = interpose_gateway::Listening::start(gw, "127.0.0.1:0".parse().unwrap()).await.unwrap();
        let got = get(&format!("http://{}/project/api/project/a", l.addr), &[]).await;
        assert_eq!(got.status, 502, "{reply:?}");
        assert_eq!(got.json()["errcode"], "UpstreamUnavailable");
        l.shutdown().await;
        task.abort();
    }

    // The upstream goes away and comes back on the same port: pooled
    // connections are dropped and new ones made; a replace hook keeps
    // answering throughout.
    let up = Upstream::start().await;
    let addr = up.addr;
    let p = org_plugin(
        "rep",
        "  - {type: replace, methods: [GET], url: /own, function: f}\n",
        "export function f() { return { body: { own: true } } }\n",
    );
    let gw = start(&up, &[decl(p.path(), &[], None)], "").await;
    assert_eq!(get(&gw.url("/project/api/project/a"), &[]).await.status, 200);
    drop(up);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(get(&gw.url("/project/api/project/a"), &[]).await.status, 502);
    assert_eq!(get(&gw.url("/project/api/project/own"), &[]).await.json(), json!({"own": true}));
    let listener = tokio::net::TcpListener::bind(addr).await;
    if let Ok(listener) = listener {
        drop(listener);
        let back = Upstream::start_on(addr).await;
        let mut ok = false;
        for _ in 0..5 {
            if get(&gw.url("/project/api/project/a"), &[]).await.status == 200 {
                ok = true;
                break;
            }
        }
        assert!(ok, "the pool recovered");
        assert!(back.count() >= 1);
    }
    gw.stop().await;
}

/// An upstream that sends part of a body and then nothing: the client's
/// connection is cut after `upstream_timeout_ms` of silence, and subscribers
/// are told the exchange happened without a body that never arrived whole.
#[tokio::test]
async fn an_upstream_that_stalls_mid_body_is_cut_off() {
    let (addr, task) = bad_upstream(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\npartial").await;
    let p = org_plugin(
        "stall",
        "  - {type: subscribe, methods: [GET], url: /:x, function: seen}\n",
        "import { writeStrings } from '@ones-op/node-file'\n\
         export async function seen(r) { await writeStrings('seen.json', JSON.stringify({ status: r.statusCode, body: r.respBody ?? null })) }\n",
    );
    let fake = Upstream::start().await;
    let text = common::config_text(&fake, &[decl(p.path(), &[], Some("st1"))], "[limits]\nupstream_timeout_ms = 300\n")
        .replace(&fake.url(), &format!("http://{addr}"));
    let dir = tempfile::tempdir().unwrap();
    let config = interpose_config::Config::from_str_with_env(&text, "t.toml", dir.path(), Vec::new()).unwrap();
    let gw = interpose_gateway::Gateway::new(config).unwrap();
    let l = interpose_gateway::Listening::start(gw, "127.0.0.1:0".parse().unwrap()).await.unwrap();
    for path in ["/project/api/project/hooked", "/wiki/api/wiki/plain"] {
        let t0 = std::time::Instant::now();
        let out = raw_all(l.addr, format!("GET {path} HTTP/1.1\r\nHost: a\r\n\r\n").as_bytes()).await;
        let waited = t0.elapsed();
        assert!(out.starts_with("HTTP/1.1 200") && out.ends_with("\r\n\r\npartial"), "{path}: {out:?}");
        assert!(
            waited >= Duration::from_millis(250) && waited < Duration::from_secs(5),
            "{path}: cut after {waited:?}"
        );
    }
    let seen = dir.path().join("ws/st1/seen.json");
    common::eventually("the subscriber's file", || seen.exists()).await;
    assert_eq!(std::fs::read_to_string(&seen).unwrap(), r#"{"status":200,"body":null}"#);
    l.shutdown().await;
    task.abort();
}

/// Everything the server sends on a new connection until it closes it (at most 10 s).
async fn raw_all(addr: std::net::SocketAddr, data: &[u8]) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(data).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

/// Upstream connections are kept and reused; one whose response was not
/// read to the end is not reused, and the next request still gets through.
#[tokio::test]
async fn upstream_connections_are_reused() {
    let up = Upstream::start().await;
    let gw = start(&up, &[], "").await;
    for _ in 0..20 {
        assert_eq!(get(&gw.url("/project/api/project/a"), &[]).await.status, 200);
    }
    assert_eq!(up.connections(), 1, "twenty requests in a row, one upstream connection");
    // Twenty at a time, fifty times over: the connections opened for the
    // first round serve the others (a connection handed back a moment ago
    // is waited for, not replaced by a new one).
    for _ in 0..50 {
        let round: Vec<_> = (0..20)
            .map(|_| {
                let url = gw.url("/project/api/project/a");
                tokio::spawn(async move { get(&url, &[]).await.status })
            })
            .collect();
        for r in round {
            assert_eq!(r.await.unwrap(), 200);
        }
    }
    assert!(up.connections() <= 25, "{} upstream connections for 20 concurrent clients", up.connections());
    let before = up.connections();
    // A client that leaves in the middle of a streamed 8 MiB response.
    let req = b"GET /project/api/project/big/8 HTTP/1.1\r\nHost: a\r\n\r\n";
    assert!(raw(gw.listening.addr, req, WAIT).await.starts_with("HTTP/1.1 200"));
    for _ in 0..5 {
        assert_eq!(get(&gw.url("/project/api/project/a"), &[]).await.status, 200);
    }
    assert!(up.connections() <= before + 2, "{} connections", up.connections());
    gw.stop().await;
}

/// A refusal sent while the client is still sending (headers past the limit,
/// a body past `max_body_bytes`) reaches the client: the gateway keeps
/// reading and discarding for a bounded time after answering instead of
/// closing with unread input, which the kernel turns into a reset that
/// destroys the answer before the client reads it.
#[tokio::test]
async fn refusals_reach_clients_that_are_still_sending() {
    let up = Upstream::start().await;
    let p = org_plugin(
        "guard",
        "  - {type: intercept, methods: [POST], url: /x, function: f}\n",
        "export function f() {}\n",
    );
    let gw = start(&up, &[common::decl(p.path(), &[], None)], "[limits]\nmax_body_bytes = 1000\n").await;
    let addr = gw.listening.addr;
    let mut headers = b"GET /project/api/project/y HTTP/1.1\r\nHost: a\r\nX-A: ".to_vec();
    headers.extend(vec![b'a'; 4_000_000]);
    headers.extend(b"\r\n\r\n");
    let mut body = b"POST /project/api/project/x HTTP/1.1\r\nHost: a\r\nContent-Length: 4000000\r\n\r\n".to_vec();
    body.extend(vec![b'a'; 4_000_000]);
    for round in 0..10 {
        let (h, b) = tokio::join!(raw_slowly(addr, &headers), raw_slowly(addr, &body));
        assert!(h.0.starts_with("HTTP/1.1 431"), "round {round}: {h:?}");
        assert!(b.0.starts_with("HTTP/1.1 413"), "round {round}: {b:?}");
        assert_eq!((h.1.as_str(), b.1.as_str()), ("sent", "sent"), "round {round}: all sent, never reset");
    }
    gw.stop().await;
}

/// Send `data` in pieces with pauses, so the gateway answers while the rest
/// is still coming; the status line, and whether the connection was reset.
async fn raw_slowly(addr: std::net::SocketAddr, data: &[u8]) -> (String, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut end = "sent".to_string();
    for piece in data.chunks(64 * 1024) {
        if let Err(e) = s.write_all(piece).await {
            end = format!("write: {:?}", e.kind());
            break;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let mut out = Vec::new();
    match tokio::time::timeout(WAIT, s.read_to_end(&mut out)).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => end = format!("read: {:?}", e.kind()),
        Err(_) => end = "still open".to_string(),
    };
    let line = String::from_utf8_lossy(&out).lines().next().unwrap_or("").to_string();
    (line, end)
}
