//! `interpose serve`: load, validate, then serve the data plane and the
//! admin API until SIGTERM / Ctrl-C.

use std::path::Path;
use std::process::ExitCode;

use interpose_control::Manager;
pub use interpose_gateway::stopped;
use interpose_gateway::{serve_threads, Gateway};
use interpose_registry::Store;

use crate::{init_tracing, load_config, EXIT_BAD_INPUT};

pub fn run(config: Option<&Path>) -> anyhow::Result<ExitCode> {
    let config = match load_config(config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(ExitCode::from(EXIT_BAD_INPUT));
        }
    };
    init_tracing(&config.log.level);
    // Thread per core: this thread serves requests too (and runs the admin
    // API and event delivery); `serve_threads` adds `workers - 1` more.
    let (rt, batch) = interpose_gateway::server::serving_runtime()?;
    batch.install();
    rt.block_on(async move {
        let bad = |msg: String| {
            eprintln!("error: {msg}");
            Ok(ExitCode::from(EXIT_BAD_INPUT))
        };
        let (listen, admin_listen) = (config.server.listen, config.server.admin_listen);
        let token = std::env::var("INTERPOSE_ADMIN_TOKEN").ok().filter(|t| !t.is_empty());
        if !admin_listen.ip().is_loopback() && token.is_none() {
            return bad(format!("server.admin_listen {admin_listen} is not a loopback address: set INTERPOSE_ADMIN_TOKEN to protect the admin API"));
        }
        let store = match Store::open(&config.storage.url).await {
            Ok(s) => s,
            Err(e) => return bad(e.to_string()),
        };
        let gw = match Gateway::new(config) {
            Ok(gw) => gw,
            Err(e) => return bad(e.to_string()),
        };
        let manager = match Manager::start(gw.clone(), store).await {
            Ok(m) => m,
            Err(e) => return bad(format!("cannot restore the installed plugins: {e}")),
        };
        crate::watch::declared_plugins(manager.clone(), std::time::Duration::from_secs(1));
        let listener = match std::net::TcpListener::bind(listen) {
            Ok(l) => l,
            Err(e) => return bad(format!("cannot listen on {listen} (server.listen): {e}")),
        };
        let (stop, signal) = stop_on_signal();
        let admin_stop = stopped(stop.clone());
        let admin = match interpose_admin::serve(manager.clone(), admin_listen, token, admin_stop).await {
            Ok((h, _)) => h,
            Err(e) => return bad(e.to_string()),
        };
        let snap = gw.snapshot();
        for inst in &snap.instances {
            let team = inst.meta.team.as_deref().map(|t| format!(" team {t}")).unwrap_or_else(|| " organization".into());
            tracing::info!("installed {} {} as instance {}{team}", inst.meta.name, inst.meta.version, inst.meta.id);
        }
        let n = |count: usize, what: &str| format!("{count} {what}{}", if count == 1 { "" } else { "s" });
        tracing::info!(
            "interpose listening on http://{listen}, admin API on http://{admin_listen} ({} enabled, {}, {})",
            n(snap.instances.len(), "instance"),
            n(snap.routes.hook_count(), "hook"),
            n(gw.config.server.workers, "worker")
        );
        let workers = gw.config.server.workers;
        let served = serve_threads(gw.clone(), listener, workers, stop).await;
        signal.abort();
        if let Some(left) = gw.posts.drain(DRAIN_WITHIN).await {
            say_pending(&left, &gw.config.storage.url);
        }
        manager.shutdown().await;
        let _ = admin.await;
        match served {
            Ok(()) => Ok(ExitCode::SUCCESS),
            Err(e) => {
                eprintln!("error: cannot start the serving threads: {e}");
                Ok(ExitCode::FAILURE)
            }
        }
    })
}

/// How long a stopping gateway lets post-hook deliveries already running
/// finish; those still running are given back to the store's queue.
const DRAIN_WITHIN: std::time::Duration = std::time::Duration::from_secs(5);

/// The last word on the event queue at a clean stop.
fn say_pending(left: &interpose_gateway::post::Drained, url: &str) {
    let cut = match left.given_back {
        0 => String::new(),
        n => format!(" ({n} given back mid-delivery after {} s)", DRAIN_WITHIN.as_secs()),
    };
    match left.pending {
        Some(0) => tracing::info!("stopped delivering post-hook events: none left pending{cut}"),
        Some(n) if url.contains(":memory:") => {
            tracing::warn!(
                "stopped delivering post-hook events: {n} left pending{cut} are lost (storage.url {url} keeps nothing)"
            )
        }
        Some(n) => tracing::info!(
            "stopped delivering post-hook events: {n} left pending in the store{cut}, delivered after the restart"
        ),
        None => {
            tracing::warn!("stopped delivering post-hook events{cut}; the store cannot say how many are left pending")
        }
    }
}

/// A flag set on Ctrl-C / SIGTERM (the task sets it; abort it when done).
pub fn stop_on_signal() -> (tokio::sync::watch::Receiver<bool>, tokio::task::JoinHandle<()>) {
    let (tx, rx) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(async move {
        shutdown_signal().await;
        let _ = tx.send(true);
    });
    (rx, task)
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down: no new connections, finishing in-flight requests");
}
