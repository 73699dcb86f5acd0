//! Protocol switches (WebSocket): the upstream's `101` turns the client's
//! connection into a tunnel to the upstream; intercepts still run first.
#![allow(clippy::unwrap_used)]

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use common::{decl, org_plugin, Running};
use interpose_config::Config;
use interpose_gateway::{Gateway, Listening};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

const WAIT: Duration = Duration::from_secs(5);

/// An upstream that speaks raw HTTP/1.1: a request asking for `Upgrade:
/// websocket` (or `h2c`) is answered `101` and then every byte is sent back upper-cased;
/// anything else (or a path with `no-switch`) gets a `400` and a close.
/// Each request head it reads goes to the receiver, lower-cased.
async fn switching_upstream() -> (SocketAddr, mpsc::UnboundedReceiver<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else { continue };
            let tx = tx.clone();
            tokio::spawn(async move {
                let head = read_head(&mut s).await.to_ascii_lowercase();
                let _ = tx.send(head.clone());
                let asks = head.contains("upgrade: websocket") || head.contains("upgrade: h2c");
                if !asks || head.contains("no-switch") {
                    let _ = s
                        .write_all(
                            b"HTTP/1.1 400 Bad Request\r\ncontent-length: 9\r\nconnection: close\r\n\r\nno switch",
                        )
                        .await;
                    return;
                }
                let _ = s
                    .write_all(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nX-Echo: ready\r\n\r\n")
                    .await;
                let mut buf = [0u8; 1024];
                while let Ok(n) = s.read(&mut buf).await {
                    if n == 0 || s.write_all(&buf[..n].to_ascii_uppercase()).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    (addr, rx)
}

/// Bytes up to the end of a message head.
async fn read_head(s: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match tokio::time::timeout(WAIT, s.read(&mut byte)).await {
            Ok(Ok(1)) => head.push(byte[0]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&head).into_owned()
}

async fn read_exact(s: &mut TcpStream, n: usize) -> String {
    let mut buf = vec![0u8; n];
    tokio::time::timeout(WAIT, s.read_exact(&mut buf)).await.expect("in time").expect("read");
    String::from_utf8(buf).unwrap()
}

async fn gateway(up: SocketAddr, plugins: &[String]) -> Running {
    let dir = tempfile::tempdir().unwrap();
    let mut text = format!(
        "[server]\nworkers = 2\n[storage]\nurl = \"sqlite::memory:\"\n\
         [[upstreams]]\nscope = \"project\"\nmount = \"/project/api/project\"\nurl = \"http://{up}/project/api/project\"\n"
    );
    for p in plugins {
        text += p;
    }
    let config = Config::from_str_with_env(&text, "test.toml", dir.path(), Vec::new()).unwrap();
    let gw: Arc<Gateway> = Gateway::new(config).unwrap_or_else(|e| panic!("{e}"));
    let listening = Listening::start(gw.clone(), "127.0.0.1:0".parse().unwrap()).await.unwrap();
    Running { gw, listening, dir }
}

fn switch_request(path: &str, extra: &str) -> String {
    format!("GET /project/api/project{path} HTTP/1.1\r\nHost: app.example\r\nConnection: keep-alive, Upgrade\r\nUpgrade: WebSocket\r\n{extra}\r\n")
}

#[tokio::test]
async fn an_upgrade_becomes_a_tunnel_after_the_intercepts_allow_it() {
    let (up, mut seen) = switching_upstream().await;
    let guard = org_plugin(
        "guard",
        "  - {type: intercept, methods: [GET], url: /hooked, function: guard}\n  \
         - {type: subscribe, methods: [GET], url: /hooked, function: seen}\n",
        "import { Logger } from '@ones-op/node-logger'\n\
         export function guard(r) { if (r.headers['X-Deny']) return { statusCode: 403, body: { denied: true } } }\n\
         export function seen(r) { Logger.info(`seen ${r.statusCode} ${JSON.stringify(r.respBody)}`) }\n",
    );
    let gw = gateway(up, &[decl(guard.path(), &[], Some("g1"))]).await;
    let addr = gw.listening.addr;

    for path in ["/plain", "/hooked"] {
        let mut c = TcpStream::connect(addr).await.unwrap();
        c.write_all(switch_request(path, "").as_bytes()).await.unwrap();
        let head = read_head(&mut c).await.to_ascii_lowercase();
        assert!(head.starts_with("http/1.1 101"), "{path}: {head}");
        assert!(head.contains("upgrade: websocket") && head.contains("x-echo: ready"), "{path}: {head}");
        let upstream_head = seen.recv().await.unwrap();
        assert!(upstream_head.starts_with(&format!("get /project/api/project{path} http/1.1")), "{upstream_head}");
        assert!(upstream_head.contains("connection: upgrade\r\n"), "{upstream_head}");
        assert!(upstream_head.contains("host: app.example") && upstream_head.contains("x-forwarded-for: 127.0.0.1"));
        // The tunnel carries bytes both ways, several times.
        c.write_all(b"hello").await.unwrap();
        assert_eq!(read_exact(&mut c, 5).await, "HELLO");
        c.write_all(b"again!").await.unwrap();
        assert_eq!(read_exact(&mut c, 6).await, "AGAIN!");
    }

    // A rejecting intercept answers; the upstream never sees the request.
    let mut c = TcpStream::connect(addr).await.unwrap();
    c.write_all(switch_request("/hooked", "X-Deny: 1\r\n").as_bytes()).await.unwrap();
    let head = read_head(&mut c).await;
    assert!(head.starts_with("HTTP/1.1 403"), "{head}");
    assert!(tokio::time::timeout(Duration::from_millis(300), seen.recv()).await.is_err(), "the upstream was called");

    // An upstream that does not switch: its answer is relayed as it is.
    let mut c = TcpStream::connect(addr).await.unwrap();
    c.write_all(switch_request("/no-switch", "").as_bytes()).await.unwrap();
    let head = read_head(&mut c).await;
    assert!(head.starts_with("HTTP/1.1 400"), "{head}");
    assert_eq!(read_exact(&mut c, 9).await, "no switch");
    seen.recv().await.unwrap();

    // Without `Connection: upgrade` an `Upgrade` header is hop-by-hop:
    // dropped. So is a switch to anything but WebSocket: an `h2c` tunnel
    // would carry HTTP requests past the hooks.
    for ask in [
        "Upgrade: websocket\r\n",
        "Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAoAAAAAIAAAAA\r\n",
    ] {
        let mut c = TcpStream::connect(addr).await.unwrap();
        c.write_all(format!("GET /project/api/project/plain HTTP/1.1\r\nHost: a\r\n{ask}\r\n").as_bytes())
            .await
            .unwrap();
        assert!(read_head(&mut c).await.starts_with("HTTP/1.1 400"), "{ask}");
        let upstream_head = seen.recv().await.unwrap();
        assert!(!upstream_head.contains("upgrade") && !upstream_head.contains("http2-settings"), "{upstream_head}");
    }
    // The subscriber was told of the switch (not of the rejected request:
    // a reject ends the request path).
    let snap = gw.gw.snapshot();
    let js = snap.instances.iter().find(|i| i.meta.id == "g1").unwrap().js.clone();
    common::eventually("the subscriber's lines", || !js.logs_after(0).is_empty()).await;
    let lines: Vec<String> = js.logs_after(0).into_iter().map(|l| l.message).collect();
    assert_eq!(lines, ["seen 101 undefined"]);
    gw.stop().await;
}
