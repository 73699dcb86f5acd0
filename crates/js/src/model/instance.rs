//! One installed instance of a plugin as the JS host sees it: its code,
//! limits, workspace, config values and log.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use crate::code::project::PluginCode;

/// Entries kept per instance; older ones are dropped.
const LOG_CAPACITY: usize = 1000;

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// Limits applied to every runtime of an instance.
#[derive(Debug, Clone, Copy)]
pub struct InstanceLimits {
    pub memory_mb: usize,
    /// JS stack; overflow is a `RangeError` inside the call.
    pub stack_kb: usize,
}

impl Default for InstanceLimits {
    fn default() -> Self {
        InstanceLimits { memory_mb: 32, stack_kb: 1024 }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    Debug,
    Info,
    Warn,
    Error,
}

impl LogLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Warn => "warn",
            LogLevel::Error => "error",
        }
    }
}

/// One line a plugin's `Logger` wrote.
#[derive(Debug, Clone)]
pub struct LogEntry {
    /// Sequence number within the instance (for `logs -f`).
    pub seq: u64,
    pub time: SystemTime,
    pub level: LogLevel,
    pub message: String,
    pub request_id: Option<String>,
}

/// One installed instance of a plugin, as the JS host sees it.
#[derive(Debug)]
pub struct Instance {
    /// Process-unique key of this instance's runtimes (a reinstall gets a new one).
    pub(crate) key: u64,
    /// Instance UUID.
    pub id: String,
    /// Plugin name, for messages.
    pub name: String,
    pub code: Arc<PluginCode>,
    pub limits: InstanceLimits,
    /// The folder `@ones-op/node-file` is confined to (none: file calls fail).
    pub workspace: Option<PathBuf>,
    log: Mutex<VecDeque<LogEntry>>,
    log_seq: AtomicU64,
    /// JS heap of this instance's runtime, as last sampled by a worker.
    heap_bytes: AtomicU64,
    /// What `Plugin.getPluginConfig()` returns: the operator-set values.
    config: Mutex<Arc<serde_json::Value>>,
    /// Where it is installed, as `globalThis.onesEnv` tells its code.
    place: std::sync::OnceLock<Place>,
    /// What `getAbilityConfig()` returns: each ability's config values, by id.
    abilities: std::sync::OnceLock<Arc<serde_json::Value>>,
    /// Its manifest's `storage.entities` (`@ones-op/sdk` storage).
    entities: std::sync::OnceLock<Arc<[interpose_manifest::Entity]>>,
    /// Its calls' share of the JS workers (see [`crate::pool`]), made by
    /// the first pool that runs it.
    slots: std::sync::OnceLock<Arc<tokio::sync::Semaphore>>,
}

impl Instance {
    pub fn new(
        id: &str,
        name: &str,
        code: Arc<PluginCode>,
        limits: InstanceLimits,
        workspace: Option<PathBuf>,
    ) -> Arc<Instance> {
        Arc::new(Instance {
            key: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            id: id.to_string(),
            name: name.to_string(),
            code,
            limits,
            workspace,
            log: Mutex::new(VecDeque::new()),
            log_seq: AtomicU64::new(0),
            heap_bytes: AtomicU64::new(0),
            config: Mutex::new(Arc::new(serde_json::Value::Array(Vec::new()))),
            place: std::sync::OnceLock::new(),
            abilities: std::sync::OnceLock::new(),
            entities: std::sync::OnceLock::new(),
            slots: std::sync::OnceLock::new(),
        })
    }

    /// The permits for this instance's calls in flight (`n` of them, fixed
    /// by the first caller: each instance belongs to one gateway).
    pub(crate) fn pool_slots(&self, n: usize) -> Arc<tokio::sync::Semaphore> {
        self.slots.get_or_init(|| Arc::new(tokio::sync::Semaphore::new(n))).clone()
    }

    /// Say where the instance is installed (its team, none for an
    /// organization-level plugin, and the organization), for
    /// `globalThis.onesEnv`; set once, before its first call.
    pub fn set_place(&self, team_uuid: Option<&str>, organization_uuid: &str) {
        let _ = self.place.set(Place {
            team_uuid: team_uuid.unwrap_or_default().to_string(),
            organization_uuid: organization_uuid.to_string(),
        });
    }

    /// The values of its manifest's `abilities[].config` items, as
    /// `{abilityId: {key: value}}` (`getAbilityConfig()`); set once.
    pub fn set_ability_config(&self, abilities: serde_json::Value) {
        let _ = self.abilities.set(Arc::new(abilities));
    }

    pub(crate) fn ability_config(&self) -> Arc<serde_json::Value> {
        self.abilities.get().cloned().unwrap_or_else(|| Arc::new(serde_json::Value::Object(Default::default())))
    }

    /// The entities its manifest declares (`storage.entities`); set once.
    pub fn set_entities(&self, entities: Vec<interpose_manifest::Entity>) {
        let _ = self.entities.set(entities.into());
    }

    pub(crate) fn entities(&self) -> Arc<[interpose_manifest::Entity]> {
        self.entities.get().cloned().unwrap_or_else(|| Arc::from(Vec::new()))
    }

    /// Where it is installed (empty UUIDs when not said).
    pub fn place(&self) -> Place {
        self.place.get().cloned().unwrap_or_default()
    }

    /// Set what `Plugin.getPluginConfig()` (`@ones-op/node-ability`) returns;
    /// calls from then on see it.
    pub fn set_config(&self, config: serde_json::Value) {
        *self.config.lock().unwrap_or_else(|e| e.into_inner()) = Arc::new(config);
    }

    pub(crate) fn config(&self) -> Arc<serde_json::Value> {
        self.config.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Bytes of JS heap of one of this instance's runtimes, sampled at most every 250 ms while it is in use.
    pub fn heap_bytes(&self) -> u64 {
        self.heap_bytes.load(Ordering::Relaxed)
    }

    pub(crate) fn record_heap(&self, bytes: i64) {
        self.heap_bytes.store(bytes.max(0) as u64, Ordering::Relaxed);
    }

    /// Carry another instance's log over (an upgrade replaces the instance;
    /// its log, and the sequence numbers `logs -f` follows, continue).
    pub fn adopt_log(&self, from: &Instance) {
        let old: Vec<LogEntry> = from.log.lock().unwrap_or_else(|e| e.into_inner()).iter().cloned().collect();
        let mut log = self.log.lock().unwrap_or_else(|e| e.into_inner());
        let mine: Vec<LogEntry> = log.drain(..).collect();
        let base = from.log_seq.load(Ordering::Relaxed);
        log.extend(old);
        for mut e in mine {
            e.seq += base;
            log.push_back(e);
        }
        while log.len() > LOG_CAPACITY {
            log.pop_front();
        }
        self.log_seq.fetch_add(base, Ordering::Relaxed);
    }

    /// Log lines with a sequence number above `after`, oldest first.
    pub fn logs_after(&self, after: u64) -> Vec<LogEntry> {
        let log = self.log.lock().unwrap_or_else(|e| e.into_inner());
        log.iter().filter(|e| e.seq > after).cloned().collect()
    }

    pub(crate) fn push_log(&self, level: LogLevel, message: String, request_id: Option<String>) {
        match level {
            LogLevel::Debug => {
                tracing::debug!(plugin = %self.name, instance = %self.id, request_id = request_id.as_deref(), "{message}")
            }
            LogLevel::Info => {
                tracing::info!(plugin = %self.name, instance = %self.id, request_id = request_id.as_deref(), "{message}")
            }
            LogLevel::Warn => {
                tracing::warn!(plugin = %self.name, instance = %self.id, request_id = request_id.as_deref(), "{message}")
            }
            LogLevel::Error => {
                tracing::error!(plugin = %self.name, instance = %self.id, request_id = request_id.as_deref(), "{message}")
            }
        }
        self.record_log(level, message, request_id);
    }

    /// Say in the instance's log why a call of `function` failed (the
    /// gateway's own log does not repeat it: `interpose plugin logs` shows it
    /// next to what the plugin's Logger wrote).
    pub fn record_failure(&self, function: &str, error: &crate::model::error::HookError, request_id: Option<String>) {
        self.record_log(LogLevel::Error, format!("{function}() {error}"), request_id);
    }

    /// A line in the instance's log from the gateway about it (a timer's
    /// run), written to the gateway's log too.
    pub fn log(&self, level: LogLevel, message: String) {
        self.push_log(level, message, None);
    }

    /// Add a line to the instance's log without writing it to the gateway's.
    pub(crate) fn record_log(&self, level: LogLevel, message: String, request_id: Option<String>) {
        let seq = self.log_seq.fetch_add(1, Ordering::Relaxed) + 1;
        let mut log = self.log.lock().unwrap_or_else(|e| e.into_inner());
        if log.len() == LOG_CAPACITY {
            log.pop_front();
        }
        log.push_back(LogEntry { seq, time: SystemTime::now(), level, message, request_id });
    }
}

/// Where an instance is installed, as the ONES platform tells a plugin
/// (`globalThis.onesEnv`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Place {
    /// Empty for an organization-level plugin.
    pub team_uuid: String,
    pub organization_uuid: String,
}
