//! `interpose serve`: load, validate, then serve until SIGTERM / Ctrl-C.

use std::path::Path;
use std::process::ExitCode;

use interpose_gateway::{serve, Gateway};

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
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(config.server.workers).enable_all().build()?;
    rt.block_on(async move {
        let listen = config.server.listen;
        let gw = match Gateway::new(config) {
            Ok(gw) => gw,
            Err(e) => {
                eprintln!("error: {e}");
                return Ok(ExitCode::from(EXIT_BAD_INPUT));
            }
        };
        let listener = match tokio::net::TcpListener::bind(listen).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!("error: cannot listen on {listen} (server.listen): {e}");
                return Ok(ExitCode::from(EXIT_BAD_INPUT));
            }
        };
        let snap = gw.snapshot();
        for inst in &snap.instances {
            let team =
                inst.meta.team.as_deref().map(|t| format!(" team {t}")).unwrap_or_else(|| " organization".into());
            tracing::info!("installed {} {} as instance {}{team}", inst.meta.name, inst.meta.version, inst.meta.id);
        }
        tracing::info!(
            "interpose listening on http://{listen} ({} instances, {} hooks, {} workers)",
            snap.instances.len(),
            snap.routes.hook_count(),
            gw.config.server.workers
        );
        serve(gw, listener, shutdown_signal()).await;
        Ok(ExitCode::SUCCESS)
    })
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
