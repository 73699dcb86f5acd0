//! The instance a call runs for, its log, and the native `interpose:host`
//! module the built-in SDK modules are written on.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use rquickjs::module::{Declarations, Exports, ModuleDef};
use rquickjs::{Ctx, Function, TypedArray};

use crate::ops::HostIo;
use crate::project::PluginCode;

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
            slots: std::sync::OnceLock::new(),
        })
    }

    /// The permits for this instance's calls in flight (`n` of them, fixed
    /// by the first caller: each instance belongs to one gateway).
    pub(crate) fn pool_slots(&self, n: usize) -> Arc<tokio::sync::Semaphore> {
        self.slots.get_or_init(|| Arc::new(tokio::sync::Semaphore::new(n))).clone()
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
    pub fn record_failure(&self, function: &str, error: &crate::HookError, request_id: Option<String>) {
        self.record_log(LogLevel::Error, format!("{function}() {error}"), request_id);
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

/// What the current call on this thread is for; read by host functions.
#[derive(Clone)]
pub(crate) struct CallScope {
    pub instance: Arc<Instance>,
    pub request_id: Option<String>,
    /// Outbound calls (`@ones-op/fetch`); none in tools and tests without a gateway.
    pub io: Option<Arc<dyn HostIo>>,
    /// When the call must be over; outbound calls get the time that is left.
    pub deadline: std::time::Instant,
}

thread_local! {
    static CURRENT: RefCell<Option<CallScope>> = const { RefCell::new(None) };
}

/// Run `f` with `scope` as the current call of this thread.
pub(crate) fn with_scope<R>(scope: CallScope, f: impl FnOnce() -> R) -> R {
    let prev = CURRENT.with(|c| c.replace(Some(scope)));
    let out = f();
    CURRENT.with(|c| *c.borrow_mut() = prev);
    out
}

pub(crate) fn current() -> Option<CallScope> {
    CURRENT.with(|c| c.borrow().clone())
}

/// `interpose:host`: the primitives the `@ones-op/*` modules are built on.
pub(crate) struct HostModule;

impl ModuleDef for HostModule {
    fn declare<'js>(decl: &Declarations<'js>) -> rquickjs::Result<()> {
        decl.declare("log")?;
        decl.declare("fetch")?;
        decl.declare("file")?;
        decl.declare("config")?;
        decl.declare("sleep")?;
        decl.declare("timerError")?;
        decl.declare("generation")?;
        decl.declare("randomBytes")?;
        decl.declare("webGlobals")?;
        decl.declare("url")?;
        decl.declare("fromBase64")?;
        Ok(())
    }

    fn evaluate<'js>(ctx: &Ctx<'js>, exports: &Exports<'js>) -> rquickjs::Result<()> {
        let log = Function::new(ctx.clone(), |level: String, message: String| {
            let level = match level.as_str() {
                "debug" => LogLevel::Debug,
                "warn" => LogLevel::Warn,
                "error" => LogLevel::Error,
                _ => LogLevel::Info,
            };
            if let Some(scope) = current() {
                scope.instance.push_log(level, message, scope.request_id);
            }
        })?;
        exports.export("log", log)?;
        exports.export("fetch", Function::new(ctx.clone(), crate::ops::host_fetch)?)?;
        exports.export("file", Function::new(ctx.clone(), crate::files::host_file)?)?;
        let config = Function::new(ctx.clone(), |ctx: Ctx<'js>| -> rquickjs::Result<rquickjs::Value<'js>> {
            let config = current().map(|scope| scope.instance.config());
            match config {
                Some(c) => crate::convert::json_to_js(&ctx, &c),
                None => Ok(rquickjs::Array::new(ctx.clone())?.into_value()),
            }
        })?;
        exports.export("config", config)?;
        exports.export("sleep", Function::new(ctx.clone(), crate::ops::host_sleep)?)?;
        let timer_error = Function::new(ctx.clone(), |message: String, stack: String| {
            if let Some(scope) = current() {
                let at =
                    crate::runtime::locate(&scope.instance, &stack).map(|l| format!(" at {l}")).unwrap_or_default();
                let line = format!("uncaught in a timer callback: {message}{at}");
                scope.instance.push_log(LogLevel::Error, line, scope.request_id);
            }
        })?;
        exports.export("timerError", timer_error)?;
        exports.export("generation", Function::new(ctx.clone(), crate::ops::generation)?)?;
        // From the operating system's generator (for `crypto`): n bytes, n ≤ 65536.
        let random_bytes =
            Function::new(ctx.clone(), |ctx: Ctx<'js>, n: usize| -> rquickjs::Result<TypedArray<'js, u8>> {
                if n > 65_536 {
                    return Err(rquickjs::Exception::throw_range(&ctx, "at most 65536 random bytes at a time"));
                }
                let mut bytes = vec![0u8; n];
                getrandom::fill(&mut bytes)
                    .map_err(|e| rquickjs::Exception::throw_internal(&ctx, &format!("no random bytes: {e}")))?;
                TypedArray::new(ctx.clone(), bytes)
            })?;
        exports.export("randomBytes", random_bytes)?;
        // `builtins/web.js`, compiled only in the runtimes whose plugin uses one of them.
        let web = Function::new(ctx.clone(), |ctx: Ctx<'js>| -> rquickjs::Result<rquickjs::Value<'js>> {
            ctx.eval(include_str!("builtins/web.js"))
        })?;
        exports.export("webGlobals", web)?;
        exports.export("url", Function::new(ctx.clone(), host_url)?)?;
        // Base64 (standard or URL-safe alphabet, padding optional, other
        // characters skipped, as Node's `Buffer.from(s, 'base64')`) to bytes.
        let from_base64 = Function::new(ctx.clone(), |ctx: Ctx<'js>, text: String| {
            use base64::Engine as _;
            let clean: Vec<u8> = text
                .bytes()
                .filter_map(|b| match b {
                    b'-' => Some(b'+'),
                    b'_' => Some(b'/'),
                    b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'+' | b'/' => Some(b),
                    _ => None,
                })
                .collect();
            let usable = clean.len() - usize::from(clean.len() % 4 == 1);
            let bytes = base64::engine::general_purpose::STANDARD_NO_PAD.decode(&clean[..usable]).unwrap_or_default();
            TypedArray::<u8>::new(ctx.clone(), bytes)
        })?;
        exports.export("fromBase64", from_base64)?;
        Ok(())
    }
}

/// `URL` on the `url` crate (the WHATWG URL standard): `url(input, base)`
/// parses and gives the parts; `url(href, undefined, name, value)` sets one
/// part and gives the parts after (an invalid value leaves the URL as it
/// was, as the standard's setters do). Parts: `[href, origin, protocol,
/// username, password, host, hostname, port, pathname, search, hash]`, or
/// `undefined` for an input that is not a URL.
fn host_url(
    input: String,
    base: rquickjs::function::Opt<Option<String>>,
    part: rquickjs::function::Opt<String>,
    value: rquickjs::function::Opt<String>,
) -> Option<Vec<String>> {
    use url::quirks as q;
    let base = match base.0.flatten() {
        Some(b) => Some(url::Url::parse(&b).ok()?),
        None => None,
    };
    let mut u = url::Url::options().base_url(base.as_ref()).parse(&input).ok()?;
    if let (Some(part), Some(v)) = (part.0, value.0) {
        // A value a part cannot take leaves the URL as it was.
        match part.as_str() {
            "href" => drop(q::set_href(&mut u, &v)),
            "protocol" => drop(q::set_protocol(&mut u, &v)),
            "username" => drop(q::set_username(&mut u, &v)),
            "password" => drop(q::set_password(&mut u, &v)),
            "host" => drop(q::set_host(&mut u, &v)),
            "hostname" => drop(q::set_hostname(&mut u, &v)),
            "port" => drop(q::set_port(&mut u, &v)),
            "pathname" => q::set_pathname(&mut u, &v),
            "search" => q::set_search(&mut u, &v),
            "hash" => q::set_hash(&mut u, &v),
            _ => {}
        }
    }
    Some(
        [
            q::href(&u).to_string(),
            q::origin(&u),
            q::protocol(&u).to_string(),
            q::username(&u).to_string(),
            q::password(&u).to_string(),
            q::host(&u).to_string(),
            q::hostname(&u).to_string(),
            q::port(&u).to_string(),
            q::pathname(&u).to_string(),
            q::search(&u).to_string(),
            q::hash(&u).to_string(),
        ]
        .into(),
    )
}
