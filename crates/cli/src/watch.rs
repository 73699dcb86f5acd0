//! Noticing that a plugin project changed on disk: `invoke run` reloads its
//! debug instance, `serve` the config file's `[[plugins]]`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use interpose_control::Manager;

/// A cheap fingerprint of the files a reload depends on: the manifest and
/// everything under `backend/` (but `node_modules`), by size and mtime.
pub type Fingerprint = Vec<(PathBuf, u64, Option<SystemTime>)>;

pub fn fingerprint(dir: &Path) -> Fingerprint {
    let mut out = Vec::new();
    let mut stack = vec![dir.join("config/plugin.yaml"), dir.join("backend")];
    while let Some(p) = stack.pop() {
        let Ok(meta) = std::fs::metadata(&p) else { continue };
        if meta.is_dir() {
            if p.file_name().is_some_and(|n| n == "node_modules") {
                continue;
            }
            if let Ok(rd) = std::fs::read_dir(&p) {
                stack.extend(rd.filter_map(Result::ok).map(|e| e.path()));
            }
        } else {
            out.push((p, meta.len(), meta.modified().ok()));
        }
    }
    out.sort();
    out
}

/// Whether `dir`'s files differ from `last`; if so, `last` becomes their
/// fingerprint once a writer has had a moment to finish.
pub async fn changed(dir: &Path, last: &mut Fingerprint) -> bool {
    if fingerprint(dir) == *last {
        return false;
    }
    // Let an editor finish writing.
    tokio::time::sleep(Duration::from_millis(100)).await;
    *last = fingerprint(dir);
    true
}

/// `serve`: reload a `[[plugins]]` project when its files change, checked
/// every `every`. A project that no longer loads, or conflicts, is logged
/// with what is wrong and the last good version keeps serving.
pub fn declared_plugins(manager: Arc<Manager>, every: Duration) {
    let mut dirs: Vec<(PathBuf, Fingerprint)> =
        manager.gateway().config.plugins.iter().map(|d| (d.path.clone(), fingerprint(&d.path))).collect();
    dirs.sort_by(|a, b| a.0.cmp(&b.0));
    dirs.dedup_by(|a, b| a.0 == b.0);
    if dirs.is_empty() {
        return;
    }
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(every).await;
            for (dir, last) in &mut dirs {
                if !changed(dir, last).await {
                    continue;
                }
                match manager.reload_declared(dir).await {
                    Ok(instances) => {
                        for i in instances {
                            tracing::info!(instance = %i.id, "reloaded {} {} from {}", i.name, i.version, dir.display());
                        }
                    }
                    Err(e) => {
                        tracing::error!("not reloaded, still serving the last good version of {}:\n{e}", dir.display())
                    }
                }
            }
        }
    });
}
