//! Accepting connections: HTTP/1.1 with keep-alive, a header read timeout,
//! lingering close (see [`crate::linger`]) and graceful shutdown (stop
//! accepting, let in-flight requests finish within
//! `server.shutdown_grace_ms`).

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

use crate::linger::Lingering;
use crate::pipeline;
use crate::state::Gateway;

/// Serve until `shutdown` resolves, then drain.
pub async fn serve(gw: Arc<Gateway>, listener: TcpListener, shutdown: impl Future<Output = ()>) {
    // Graceful shutdown: each connection task watches `draining`; once all
    // have ended the receivers are gone and `closed()` resolves.
    let (draining, drain_rx) = watch::channel(false);
    let header_timeout = Duration::from_millis(gw.config.limits.header_read_timeout_ms);
    // Room for the longest request line hyper accepts (64 KiB, 414 beyond)
    // and the header fields (431 beyond, checked exactly by the pipeline).
    let read_buf = gw.config.limits.max_header_bytes + (80 << 10);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, remote) = match accepted {
                    Ok(x) => x,
                    Err(e) => {
                        // Out of file descriptors and the like: back off, keep serving.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let gw = gw.clone();
                let svc = service_fn(move |req| {
                    let gw = gw.clone();
                    async move { Ok::<_, Infallible>(pipeline::handle(&gw, req, remote).await) }
                });
                let conn = http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(header_timeout)
                    .max_buf_size(read_buf)
                    .keep_alive(true)
                    // Copy head and body into one buffer and write once:
                    // measured ~3 % less CPU per proxied request than writev
                    // of separate buffers (docs/benchmarks-history.md).
                    .writev(false)
                    .serve_connection(TokioIo::new(Lingering::new(stream)), svc)
                    // A WebSocket handshake answered
                    // `101` by the upstream takes the connection over.
                    .with_upgrades();
                let mut drain = drain_rx.clone();
                tokio::spawn(flushing(async move {
                    tokio::pin!(conn);
                    let ended = tokio::select! {
                        ended = conn.as_mut() => ended,
                        _ = drain.changed() => {
                            conn.as_mut().graceful_shutdown();
                            conn.await
                        }
                    };
                    if let Err(e) = ended {
                        tracing::debug!(error = %e, %remote, "connection ended with an error");
                    }
                    drop(drain);
                }));
            }
            _ = &mut shutdown => break,
        }
    }
    drop(listener);
    let grace = Duration::from_millis(gw.config.server.shutdown_grace_ms);
    drop(drain_rx);
    let _ = draining.send(true);
    tokio::select! {
        _ = draining.closed() => tracing::info!("all connections drained"),
        _ = tokio::time::sleep(grace) => tracing::warn!(grace_ms = grace.as_millis() as u64, "shutdown grace period over; closing remaining connections"),
    }
}

/// `fut`, handing the thread the replies of JS workers whenever it is
/// polled (see [`interpose_js::WakeBatch`]): a thread busy with its
/// connections never leaves a reply waiting for it to park.
async fn flushing<F: Future>(fut: F) -> F::Output {
    let mut fut = std::pin::pin!(fut);
    std::future::poll_fn(move |cx| {
        interpose_js::flush_here();
        fut.as_mut().poll(cx)
    })
    .await
}

/// A single-threaded runtime for a serving thread, and the batch of JS
/// replies it hands itself ([`interpose_js::WakeBatch`]: `install` it on the
/// thread that runs the runtime).
pub fn serving_runtime() -> std::io::Result<(tokio::runtime::Runtime, interpose_js::WakeBatch)> {
    let batch = interpose_js::WakeBatch::new();
    let rt = batch.attach(tokio::runtime::Builder::new_current_thread().enable_all()).build()?;
    Ok((rt, batch))
}

/// Serve on `workers` threads, thread per core: the calling task is one, and
/// `workers - 1` more threads each run a single-threaded runtime accepting
/// from the same listening socket. A connection stays on the thread that
/// accepted it, with that thread's own upstream connections, so a plain
/// proxied request never crosses threads. Returns once `stop` is set and
/// every thread has drained.
pub async fn serve_threads(
    gw: Arc<Gateway>,
    listener: std::net::TcpListener,
    workers: usize,
    stop: watch::Receiver<bool>,
) -> std::io::Result<()> {
    listener.set_nonblocking(true)?;
    let mut threads = Vec::new();
    for n in 1..workers.max(1) {
        let listener = listener.try_clone()?;
        let (gw, stop) = (gw.clone(), stop.clone());
        let (rt, batch) = serving_runtime()?;
        let thread = std::thread::Builder::new().name(format!("interpose-serve-{n}")).spawn(move || {
            batch.install();
            rt.block_on(async move {
                match TcpListener::from_std(listener) {
                    Ok(l) => serve(gw, l, stopped(stop)).await,
                    Err(e) => tracing::error!(error = %e, "serving thread {n} cannot use the listener"),
                }
            })
        })?;
        threads.push(thread);
    }
    serve(gw, TcpListener::from_std(listener)?, stopped(stop)).await;
    let _ = tokio::task::spawn_blocking(move || threads.into_iter().for_each(|t| drop(t.join()))).await;
    Ok(())
}

/// Resolves once the flag is set.
pub async fn stopped(mut rx: watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await;
}

/// A gateway serving in the background (tests, `demo`, `invoke run`).
#[derive(Debug)]
pub struct Listening {
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl Listening {
    /// Bind `addr` (port 0 for any) and serve on the current runtime.
    pub async fn start(gw: Arc<Gateway>, addr: SocketAddr) -> std::io::Result<Listening> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(serve(gw, listener, async move {
            let _ = stopped.await;
        }));
        Ok(Listening { addr, stop: Some(stop), task })
    }

    /// Stop accepting and wait for in-flight requests.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = (&mut self.task).await;
    }
}
