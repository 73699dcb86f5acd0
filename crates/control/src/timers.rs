//! Timer tasks (`TimerTask` abilities): each enabled instance's timer runs
//! its function on schedule — every so many seconds, or by a 6-field cron on
//! the gateway's clock — with the hook limits. The schedule lives in the
//! store ([`Store::claim_timer`]): of the nodes sharing it, the one that
//! claims a due tick runs it, and a node that dies mid-run only holds the
//! timer until its lease runs out. A tick missed while no node ran (the
//! gateway was down) runs once when one is back, not once per missed tick.
//! Runs and failures go to the plugin's log and the metrics; the last run
//! and the next are in the admin API.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use interpose_gateway::{Gateway, InstalledInstance};
use interpose_js::{CallOutcome, LogLevel};
use interpose_manifest::TimerTask;
use interpose_registry::timers::now_ms;
use interpose_registry::{now, Store, TimerRow};
use serde::Serialize;

use crate::manager::Manager;
use crate::ControlError;

/// How often a node looks for due ticks.
const TICK: Duration = Duration::from_millis(250);
/// How long past the hook timeout a node's claim on a running tick lasts.
const LEASE_SLACK_MS: i64 = 5_000;

/// The scheduler's state on this node.
#[derive(Default)]
pub(crate) struct Timers {
    stopped: AtomicBool,
    /// (instance, timer, schedule) rows this node has made sure of.
    planned: Mutex<HashSet<(String, String, String)>>,
}

/// A timer as the admin API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct TimerInfo {
    pub id: String,
    pub function: String,
    pub schedule: String,
    /// Seconds since the epoch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_run: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_run: Option<LastRun>,
    pub runs: i64,
    pub failures: i64,
    /// A node is running it now.
    pub running: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct LastRun {
    pub at: i64,
    pub ms: i64,
    pub ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl TimerInfo {
    pub(crate) fn declared(t: &TimerTask) -> TimerInfo {
        TimerInfo {
            id: t.id.clone(),
            function: t.function.clone(),
            schedule: t.schedule.describe(),
            next_run: None,
            last_run: None,
            runs: 0,
            failures: 0,
            running: false,
        }
    }

    /// With what the store says of its runs.
    pub(crate) fn with(mut self, row: &TimerRow, enabled: bool) -> TimerInfo {
        self.next_run = enabled.then_some(row.next_at);
        self.runs = row.runs;
        self.failures = row.failures;
        self.running = row.lease_until > now_ms();
        self.last_run = row.last_at.map(|at| LastRun {
            at,
            ms: row.last_ms.unwrap_or(0),
            ok: row.last_error.is_none(),
            error: row.last_error.clone(),
        });
        self
    }
}

fn lease_until(gw: &Gateway) -> i64 {
    now_ms() + gw.config.limits.hook_timeout_ms as i64 + LEASE_SLACK_MS
}

/// Run the scheduler until the manager goes or [`stop`] is called.
pub(crate) fn start(manager: Weak<Manager>) {
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(TICK).await;
            let Some(m) = manager.upgrade() else { return };
            if m.timers.stopped.load(Ordering::Relaxed) {
                return;
            }
            if let Err(e) = tick(&m).await {
                tracing::warn!("timer tasks: {e}");
            }
        }
    });
}

/// No tick starts from now on (the gateway is stopping).
pub(crate) fn stop(manager: &Manager) {
    manager.timers.stopped.store(true, Ordering::Relaxed);
}

async fn tick(m: &Arc<Manager>) -> Result<(), ControlError> {
    let snap = m.gw.snapshot();
    let now = now();
    let mut local = Vec::new();
    for inst in &snap.instances {
        for t in &inst.plugin.manifest.timers {
            let key = (inst.meta.id.clone(), t.id.clone(), t.schedule.describe());
            let known = m.timers.planned.lock().unwrap_or_else(|e| e.into_inner()).contains(&key);
            if !known {
                let first = t.schedule.next_after(now).unwrap_or(i64::MAX);
                m.store.plan_timer(&key.0, &key.1, &key.2, first).await?;
                m.timers.planned.lock().unwrap_or_else(|e| e.into_inner()).insert(key);
            }
            local.push((inst, t));
        }
    }
    if local.is_empty() {
        return Ok(());
    }
    let lease_now = now_ms();
    for row in m.store.timers(None).await? {
        if row.next_at > now || row.lease_until >= lease_now {
            continue;
        }
        let Some((inst, t)) = local
            .iter()
            .find(|(i, t)| i.meta.id == row.instance && t.id == row.timer && t.schedule.describe() == row.schedule)
        else {
            continue;
        };
        let next = t.schedule.next_after(now).unwrap_or(i64::MAX);
        if m.store.claim_timer(&row.instance, &row.timer, row.next_at, next, lease_until(&m.gw)).await? {
            let (gw, store, inst, t) = (m.gw.clone(), m.store.clone(), (*inst).clone(), (*t).clone());
            tokio::spawn(async move { run(&gw, &store, &inst, &t).await });
        }
    }
    Ok(())
}

/// Run one tick of `t` (claimed by this node) and record how it went;
/// the error, if it failed.
pub(crate) async fn run(gw: &Gateway, store: &Store, inst: &InstalledInstance, t: &TimerTask) -> Option<String> {
    let (at, started) = (now(), Instant::now());
    let timeout = Duration::from_millis(gw.config.limits.hook_timeout_ms);
    let error = match gw.host.call_json(&inst.js, &t.function, Vec::new(), timeout).await {
        Ok(CallOutcome::Returned(_)) => None,
        Ok(CallOutcome::Rejected(p)) => Some(format!("threw {}: {}", p.errcode, p.reason)),
        Err(e) => Some(e.to_string()),
    };
    let ms = started.elapsed().as_millis() as i64;
    match &error {
        None => inst.js.log(LogLevel::Debug, format!("timer {:?} ran {}() in {ms} ms", t.id, t.function)),
        Some(e) => inst.js.log(LogLevel::Error, format!("timer {:?}: {}() failed: {e}", t.id, t.function)),
    }
    gw.metrics.timer_ran(&inst.meta.name, &inst.meta.id, &t.id, error.is_none());
    if let Err(e) = store.timer_ran(&inst.meta.id, &t.id, at, ms, error.as_deref()).await {
        tracing::warn!(instance = %inst.meta.id, timer = %t.id, "could not record the timer's run: {e}");
    }
    error
}

impl Manager {
    /// The timers of instance `id`, with their runs.
    pub async fn timers(&self, id: &str) -> Result<Vec<TimerInfo>, ControlError> {
        let (declared, enabled) = {
            let entries = self.entries.lock().await;
            let e =
                entries.iter().find(|e| e.inst.meta.id == id).ok_or_else(|| ControlError::NotFound(id.to_string()))?;
            let enabled = e.state == interpose_registry::State::Enabled;
            (e.inst.plugin.manifest.timers.clone(), enabled)
        };
        let rows = self.store.timers(Some(id)).await?;
        Ok(declared
            .iter()
            .map(|t| {
                let info = TimerInfo::declared(t);
                match rows.iter().find(|r| r.timer == t.id) {
                    Some(row) => info.with(row, enabled),
                    None => info,
                }
            })
            .collect())
    }

    /// Every enabled instance's timers, with their runs, as
    /// `{instance, plugin, …TimerInfo}`.
    pub async fn all_timers(&self) -> Result<Vec<serde_json::Value>, ControlError> {
        let snap = self.gw.snapshot();
        let rows = self.store.timers(None).await?;
        let mut out = Vec::new();
        for inst in &snap.instances {
            for t in &inst.plugin.manifest.timers {
                let info = TimerInfo::declared(t);
                let info = match rows.iter().find(|r| r.instance == inst.meta.id && r.timer == t.id) {
                    Some(row) => info.with(row, true),
                    None => info,
                };
                let mut v = serde_json::json!({"instance": inst.meta.id, "plugin": inst.meta.name});
                if let (Some(o), Ok(serde_json::Value::Object(i))) = (v.as_object_mut(), serde_json::to_value(info)) {
                    o.extend(i);
                }
                out.push(v);
            }
        }
        Ok(out)
    }

    /// Run timer `timer` of instance `id` now, out of schedule (`interpose
    /// invoke timer`); the schedule goes on as it was. Refused while a node
    /// runs it.
    pub async fn run_timer(&self, id: &str, timer: &str) -> Result<TimerInfo, ControlError> {
        let inst = {
            let entries = self.entries.lock().await;
            let e =
                entries.iter().find(|e| e.inst.meta.id == id).ok_or_else(|| ControlError::NotFound(id.to_string()))?;
            e.inst.clone()
        };
        let Some(t) = inst.plugin.manifest.timers.iter().find(|t| t.id == timer).cloned() else {
            let known: Vec<&str> = inst.plugin.manifest.timers.iter().map(|t| t.id.as_str()).collect();
            return Err(ControlError::NotFound(format!(
                "timer {timer:?} of instance {id} ({})",
                if known.is_empty() {
                    "it has no TimerTask abilities".to_string()
                } else {
                    format!("its timers: {}", known.join(", "))
                }
            )));
        };
        let first = t.schedule.next_after(now()).unwrap_or(i64::MAX);
        self.store.plan_timer(id, &t.id, &t.schedule.describe(), first).await?;
        if !self.store.claim_timer_now(id, &t.id, lease_until(&self.gw)).await? {
            return Err(ControlError::BadRequest(format!(
                "timer {timer:?} of instance {id} is running now; try again when it is done"
            )));
        }
        run(&self.gw, &self.store, &inst, &t).await;
        let enabled = self.gw.snapshot().instances.iter().any(|i| i.meta.id == id);
        let rows = self.store.timers(Some(id)).await?;
        let row = rows.iter().find(|r| r.timer == t.id);
        Ok(match row {
            Some(row) => TimerInfo::declared(&t).with(row, enabled),
            None => TimerInfo::declared(&t),
        })
    }
}
