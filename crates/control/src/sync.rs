//! Keeping a running gateway in line with what changed elsewhere: other
//! gateway nodes' changes to a shared store (heard of as they commit on
//! PostgreSQL, polled every `storage.poll_ms` in case an announcement was
//! lost, and caught up with before every change made here), and the config
//! file's `[[plugins]]` folders (`serve` reloads one when its files change).

use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};

use interpose_gateway::{InstalledInstance, LoadedPlugin};
use interpose_registry::{Heard, InstanceRow, State};

use crate::lifecycle::{self, Step};
use crate::manager::{
    clone_entry, info, materialize, prepare, registry_entry, registry_instance, version_dir, Entry, InstanceInfo,
    Manager,
};
use crate::ControlError;

impl Manager {
    /// The registry version this node runs: the version a write made here
    /// expects the store to be at.
    pub fn registry_version(&self) -> i64 {
        self.version.load(Ordering::Relaxed)
    }

    /// Catch up with changes other gateway nodes sharing the store made;
    /// whether anything changed. Runs every `storage.poll_ms`, and before
    /// every change made here.
    pub async fn sync(&self) -> Result<bool, ControlError> {
        let mut entries = self.entries.lock().await;
        self.catch_up(&mut entries).await
    }

    /// Note the version a successful write moved the store to.
    pub(crate) fn record(&self, written: Result<i64, interpose_registry::StoreError>) -> Result<i64, ControlError> {
        let v = written?;
        self.version.store(v, Ordering::Relaxed);
        Ok(v)
    }

    /// Rebuild from the store's instances when its version moved. Only what
    /// changed is reloaded (an instance whose code is unchanged keeps its JS
    /// runtimes). The new table is validated before it goes live; if it
    /// cannot be (code that does not load here, a conflict), this node keeps
    /// serving what it had and says so, and tries again at the next poll.
    /// This node runs `Start` for instances it newly runs enabled and `Stop`
    /// for those it no longer does; `Install`, `Enable`, `Upgrade` and the
    /// rest ran once, on the node that made the change.
    pub(crate) async fn catch_up(&self, entries: &mut Vec<Entry>) -> Result<bool, ControlError> {
        let version = self.store.registry_version().await?;
        if version == self.registry_version() {
            return Ok(false);
        }
        let rows = self.store.instances().await?;
        let mut next: Vec<Entry> = entries.iter().filter(|e| e.declarative).map(clone_entry).collect();
        for row in &rows {
            let current = entries.iter().find(|e| !e.declarative && e.inst.meta.id == row.id);
            next.push(match current {
                Some(e) if e.rev == row.rev => clone_entry(e),
                _ => self.load_row(row, current).await.map_err(|why| {
                    ControlError::Internal(format!(
                        "registry version {version}: cannot load instance {} ({} {}): {why}; this node keeps registry version {}",
                        row.id,
                        row.app_id,
                        row.version,
                        self.registry_version()
                    ))
                })?,
            });
        }
        let snapshot = prepare(&self.gw, &next, None)?;
        // By id: new code for a running instance (an upgrade elsewhere) is
        // neither a start nor a stop, as on the node that upgraded it.
        let runs = |list: &[Entry], id: &str| {
            list.iter().any(|o| !o.declarative && o.state == State::Enabled && o.inst.meta.id == id)
        };
        let newly = |from: &[Entry], to: &[Entry]| -> Vec<InstalledInstance> {
            to.iter()
                .filter(|e| !e.declarative && e.state == State::Enabled && !runs(from, &e.inst.meta.id))
                .map(|e| e.inst.clone())
                .collect()
        };
        let started = newly(entries, &next);
        let stopped = newly(&next, entries);
        self.gw.swap(snapshot);
        let old = std::mem::replace(entries, next);
        self.version.store(version, Ordering::Relaxed);
        tracing::info!(registry_version = version, "caught up with the registry ({} instances)", rows.len());
        for inst in &stopped {
            if let Err(err) = lifecycle::run(&self.gw, inst, Step::Stop).await {
                tracing::warn!(instance = %inst.meta.id, "{err}");
            }
        }
        for inst in &started {
            if let Err(err) = lifecycle::run(&self.gw, inst, Step::Start).await {
                tracing::error!(instance = %inst.meta.id, "{err}");
            }
        }
        for e in &old {
            self.forget_dir(entries, &e.inst.plugin.dir);
        }
        Ok(true)
    }

    /// An entry for a row another node wrote, reusing `current`'s code and
    /// runtimes when the row still runs the same code.
    async fn load_row(&self, row: &InstanceRow, current: Option<&Entry>) -> Result<Entry, String> {
        let version = self
            .store
            .plugin_version(&row.app_id, &row.version)
            .await
            .map_err(|e| e.to_string())?
            .ok_or_else(|| "the registry has no code for it".to_string())?;
        let dir = version_dir(&self.gw.config.storage.plugins, &version);
        let inst = match current {
            Some(e) if e.inst.plugin.dir == dir => e.inst.clone(),
            _ => {
                let inst = registry_instance(&self.gw, Arc::new(materialize(&self.gw, &version)?), row);
                if let Some(e) = current {
                    inst.js.adopt_log(&e.inst.js);
                }
                inst
            }
        };
        Ok(registry_entry(inst, row))
    }

    /// Reload a `[[plugins]]` project of the config file from its folder
    /// (`interpose serve` does when its files change): its instances keep
    /// their ids, teams, order and config values and pick up the new
    /// manifest and code. Validated like any change; on any problem nothing
    /// changes and the error says what is wrong. An instance whose version
    /// changed runs `Upgrade(oldPluginInfo)` of the new code first.
    pub async fn reload_declared(&self, dir: &Path) -> Result<Vec<InstanceInfo>, ControlError> {
        let mut entries = self.entries.lock().await;
        let config = &self.gw.config;
        // Every entry of the config file on this folder (the same project
        // may be declared twice, say with other config values for other teams).
        let decls: Vec<_> = config.plugins.iter().filter(|d| d.path == dir).collect();
        if decls.is_empty() {
            return Err(ControlError::NotFound(format!("[[plugins]] entry for {}", dir.display())));
        }
        let current: Vec<usize> =
            (0..entries.len()).filter(|&i| entries[i].declarative && entries[i].inst.plugin.dir == dir).collect();
        let mut keep: Vec<(Option<String>, String, u64)> = current
            .iter()
            .map(|&i| (entries[i].inst.meta.team.clone(), entries[i].inst.meta.id.clone(), entries[i].inst.meta.seq))
            .collect();
        let plugin = Arc::new(LoadedPlugin::load(dir, config).map_err(|e| ControlError::BadPlugin(e.problems))?);
        let seq_before = entries.iter().filter(|e| e.declarative).map(|e| e.inst.meta.seq).max().unwrap_or(0);
        let mut fresh: Vec<InstalledInstance> = Vec::new();
        for decl in decls {
            let seq = seq_before + fresh.len() as u64;
            let made = interpose_gateway::plugins::declared(config, decl, plugin.clone(), seq, &keep)
                .map_err(ControlError::BadPlugin)?;
            // An id kept for one entry is not offered to the next.
            keep.retain(|(_, id, _)| !made.iter().any(|i| &i.meta.id == id));
            fresh.extend(made);
        }
        let mut next: Vec<Entry> =
            entries.iter().enumerate().filter(|(i, _)| !current.contains(i)).map(|(_, e)| clone_entry(e)).collect();
        for inst in fresh {
            if let Some(&i) = current.iter().find(|&&i| entries[i].inst.meta.id == inst.meta.id) {
                inst.js.adopt_log(&entries[i].inst.js);
            }
            next.push(Entry { inst, state: State::Enabled, declarative: true, installed_at: 0, debug: false, rev: 0 });
        }
        next.sort_by_key(|e| (!e.declarative, e.inst.meta.seq));
        let snapshot = prepare(&self.gw, &next, None)?;
        for e in next.iter().filter(|e| e.declarative && e.inst.plugin.dir == dir) {
            crate::declared::arrive(&self.gw, &self.store, &e.inst).await?;
        }
        self.gw.swap(snapshot);
        *entries = next;
        Ok(entries.iter().filter(|e| e.declarative && e.inst.plugin.dir == dir).map(info).collect())
    }
}

/// Catch up with the store every `storage.poll_ms` while the manager lives.
pub(crate) fn poll(manager: Weak<Manager>) {
    let Some(every) = manager.upgrade().map(|m| m.gw.config.storage.poll) else { return };
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        // The same failure every poll is said once, and its end too.
        let mut failing: Option<String> = None;
        loop {
            tick.tick().await;
            let Some(m) = manager.upgrade() else { return };
            match m.sync().await {
                Err(e) if failing.as_deref() != Some(&e.to_string()) => {
                    tracing::error!("{e}");
                    failing = Some(e.to_string());
                }
                Err(_) => {}
                Ok(_) if failing.take().is_some() => {
                    tracing::info!(registry_version = m.registry_version(), "in line with the store again");
                }
                Ok(_) => {}
            }
        }
    });
}

/// Catch up as soon as another node announces a change (PostgreSQL with
/// `storage.listen`). Announcements are a fast path only: one that is lost
/// (the connection dropped, say) costs at most one poll interval, and a
/// reconnect catches up at once in case it missed one.
pub(crate) async fn listen(manager: Weak<Manager>) {
    let Some(m) = manager.upgrade() else { return };
    if !m.gw.config.storage.listen {
        return;
    }
    let mut changes = match m.store.changes().await {
        Ok(Some(c)) => c,
        Ok(None) => return,
        Err(e) => {
            tracing::warn!("cannot listen to registry changes ({e}); other nodes' changes arrive with the poll");
            return;
        }
    };
    drop(m);
    tokio::spawn(async move {
        let mut failing = false;
        loop {
            let heard = changes.next().await;
            let Some(m) = manager.upgrade() else { return };
            match heard {
                Ok(Heard::Version(v)) if v <= m.registry_version() => continue,
                Ok(heard) => {
                    if heard == Heard::Reconnecting {
                        tracing::info!("registry change announcements interrupted: catching up, then listening again");
                    } else if std::mem::take(&mut failing) {
                        tracing::info!("listening to registry changes again");
                    }
                    if let Err(e) = m.sync().await {
                        // The poll says it too, and keeps trying.
                        tracing::debug!("catching up on a registry change: {e}");
                    }
                }
                Err(e) => {
                    if !failing {
                        tracing::warn!("lost the registry change announcements ({e}); the poll goes on, reconnecting");
                        failing = true;
                    }
                    drop(m);
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                }
            }
        }
    });
}
