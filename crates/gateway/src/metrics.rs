//! Prometheus metrics on plain atomics. The request path only touches
//! counters it already holds (a hook's stats travel with the hook in the
//! route table; a scope's with its mount), so counting costs no locks.
//! Rendered in the Prometheus text format by [`Metrics::render`].

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use interpose_js::{CallOutcome, FailureKind, HookError};
use interpose_manifest::HookKind;
use interpose_routing::{Interface, RouteTable};

/// Upper bounds of the latency buckets, in microseconds.
const BUCKETS_US: [u64; 14] = [
    250, 500, 1_000, 2_000, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000, 2_500_000, 10_000_000,
];

#[derive(Debug, Default)]
pub struct Histogram {
    buckets: [AtomicU64; 14],
    count: AtomicU64,
    sum_us: AtomicU64,
}

impl Histogram {
    pub fn observe(&self, d: Duration) {
        let us = d.as_micros() as u64;
        if let Some(i) = BUCKETS_US.iter().position(|b| us <= *b) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_us.fetch_add(us, Ordering::Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let mut cumulative = 0;
        for (i, b) in BUCKETS_US.iter().enumerate() {
            cumulative += self.buckets[i].load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{{labels}{}le=\"{}\"}} {cumulative}", sep(labels), *b as f64 / 1e6);
        }
        let count = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{{labels}{}le=\"+Inf\"}} {count}", sep(labels));
        let _ = writeln!(out, "{name}_sum{{{labels}}} {}", self.sum_us.load(Ordering::Relaxed) as f64 / 1e6);
        let _ = writeln!(out, "{name}_count{{{labels}}} {count}");
    }
}

/// `pattern` with parameter names erased (`/team/:teamUUID/x` → `/team/:/x`).
fn shape(pattern: &str) -> String {
    pattern.split('/').map(|seg| if seg.starts_with(':') { ":" } else { seg }).collect::<Vec<_>>().join("/")
}

/// A Prometheus label value: backslash, quote and newline escaped.
fn label_value(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

fn sep(labels: &str) -> &'static str {
    if labels.is_empty() {
        ""
    } else {
        ","
    }
}

/// Counts of one hook (plugin instance, function, type).
#[derive(Debug)]
pub struct HookStats {
    pub plugin: String,
    pub instance: String,
    pub function: String,
    pub kind: HookKind,
    pub calls: AtomicU64,
    pub rejects: AtomicU64,
    /// By [`FailureKind`] (its index).
    pub failures: [AtomicU64; 4],
    pub latency: Histogram,
    /// Suffix/subscribe events for this hook waiting in the in-memory
    /// queue (those waiting in the store are counted there).
    pub queued: AtomicU64,
    /// Suffix/subscribe events this hook never got: the queue or the store
    /// writer was full, or the store failed.
    pub dropped: AtomicU64,
}

impl HookStats {
    /// Count one call that took `took` and ended with `outcome`.
    pub fn record(&self, took: Duration, outcome: &Result<CallOutcome, HookError>) {
        self.calls.fetch_add(1, Ordering::Relaxed);
        self.latency.observe(took);
        match outcome {
            Ok(CallOutcome::Rejected(_)) => {
                self.rejects.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => self.failed(e.failure()),
            Ok(CallOutcome::Returned(_)) => {}
        }
    }

    pub fn failed(&self, kind: FailureKind) {
        self.failures[kind as usize].fetch_add(1, Ordering::Relaxed);
    }
}

/// Requests of one scope by status class, and the upstream's latency.
#[derive(Debug, Default)]
pub struct ScopeStats {
    /// Hooked / unhooked × 1xx..5xx.
    pub statuses: [[AtomicU64; 5]; 2],
    pub upstream: Histogram,
    pub upstream_errors: AtomicU64,
}

impl ScopeStats {
    pub fn count(&self, hooked: bool, status: u16) {
        self.statuses[usize::from(hooked)][status_class(status)].fetch_add(1, Ordering::Relaxed);
    }
}

/// The index of a status' class in a `[_; 5]` of 1xx..5xx counters.
fn status_class(status: u16) -> usize {
    (status / 100).clamp(1, 5) as usize - 1
}

/// Requests to one hooked route (scope, method, pattern) by status class.
#[derive(Debug)]
pub struct RouteStats {
    pub scope: String,
    pub method: String,
    /// The pattern as declared when the route first appeared.
    pub pattern: String,
    pub statuses: [AtomicU64; 5],
}

impl RouteStats {
    pub fn count(&self, status: u16) {
        self.statuses[status_class(status)].fetch_add(1, Ordering::Relaxed);
    }
}

/// The stats of each route of a route table, by interface index (addition
/// routes by instance); built with the table, used on the request path.
#[derive(Debug, Default)]
pub struct RouteStatsIndex {
    main: Vec<Arc<RouteStats>>,
    additions: HashMap<String, Vec<Arc<RouteStats>>>,
}

impl RouteStatsIndex {
    /// The stats of `iface`, from the main table or (with `addition`) from that instance's.
    pub fn get<H>(&self, addition: Option<&str>, iface: &Interface<H>) -> Option<&Arc<RouteStats>> {
        match addition {
            Some(id) => self.additions.get(id)?.get(iface.index),
            None => self.main.get(iface.index),
        }
    }
}

/// Routes are the same series when scope, method and shape (the pattern
/// with parameter names erased) are.
type RouteKey = (String, String, String);

type HookKey = (String, String, String, HookKind);
/// (plugin, instance, timer) → (runs that succeeded, runs that failed).
type TimerRuns = BTreeMap<(String, String, String), (u64, u64)>;

#[derive(Debug, Default)]
pub struct Metrics {
    pub scopes: BTreeMap<String, Arc<ScopeStats>>,
    pub unmatched: AtomicU64,
    hooks: Mutex<BTreeMap<HookKey, Weak<HookStats>>>,
    routes: Mutex<BTreeMap<RouteKey, Weak<RouteStats>>>,
    /// Timer runs by (plugin, instance, timer): (succeeded, failed).
    timers: Mutex<TimerRuns>,
}

impl Metrics {
    pub fn new(scopes: impl Iterator<Item = String>) -> Metrics {
        Metrics { scopes: scopes.map(|s| (s, Arc::default())).collect(), ..Default::default() }
    }

    /// Count one run of a timer task.
    pub fn timer_ran(&self, plugin: &str, instance: &str, timer: &str, ok: bool) {
        let mut timers = self.timers.lock().unwrap_or_else(|e| e.into_inner());
        let n = timers.entry((plugin.to_string(), instance.to_string(), timer.to_string())).or_default();
        if ok {
            n.0 += 1;
        } else {
            n.1 += 1;
        }
    }

    /// Stats for a hook of a new route table. A hook that was in the
    /// previous table (same plugin, instance, function and type) keeps its
    /// counters; they go when no table holds the hook any more.
    pub fn hook(&self, plugin: &str, instance: &str, function: &str, kind: HookKind) -> Arc<HookStats> {
        let key = (plugin.to_string(), instance.to_string(), function.to_string(), kind);
        let mut hooks = self.hooks.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(s) = hooks.get(&key).and_then(Weak::upgrade) {
            return s;
        }
        hooks.retain(|_, w| w.strong_count() > 0);
        let s = Arc::new(HookStats {
            plugin: plugin.into(),
            instance: instance.into(),
            function: function.into(),
            kind,
            calls: AtomicU64::new(0),
            rejects: AtomicU64::new(0),
            failures: Default::default(),
            latency: Histogram::default(),
            queued: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
        });
        hooks.insert(key, Arc::downgrade(&s));
        s
    }

    /// Stats for every route of a new table. A route that was in the
    /// previous table keeps its counters; one that left drops its series.
    pub fn routes<H>(&self, table: &RouteTable<H>) -> RouteStatsIndex {
        let mut routes = self.routes.lock().unwrap_or_else(|e| e.into_inner());
        let mut stats = |iface: &Interface<H>| {
            let key = (iface.scope.clone(), iface.method.clone(), shape(&iface.pattern));
            if let Some(s) = routes.get(&key).and_then(Weak::upgrade) {
                return s;
            }
            let s = Arc::new(RouteStats {
                scope: iface.scope.clone(),
                method: iface.method.clone(),
                pattern: iface.pattern.clone(),
                statuses: Default::default(),
            });
            routes.insert(key, Arc::downgrade(&s));
            s
        };
        let main = table.interfaces().iter().map(&mut stats).collect();
        let additions = table
            .additions()
            .map(|(id, t)| (id.to_string(), t.interfaces().iter().map(&mut stats).collect()))
            .collect();
        routes.retain(|_, w| w.strong_count() > 0);
        RouteStatsIndex { main, additions }
    }

    /// The Prometheus text exposition; `extra` adds gauges read elsewhere;
    /// `stored` is the events waiting in the store, by (instance, function,
    /// type) of their hook.
    pub fn render(&self, extra: &[(&str, &str, f64)], stored: &HashMap<(String, String, String), u64>) -> String {
        let mut out = String::new();
        out.push_str("# HELP interpose_requests_total Requests by scope, whether a hook applied, and status class.\n# TYPE interpose_requests_total counter\n");
        for (scope, s) in &self.scopes {
            for (hooked, row) in s.statuses.iter().enumerate() {
                for (class, n) in row.iter().enumerate() {
                    let _ = writeln!(
                        out,
                        "interpose_requests_total{{scope=\"{scope}\",hooked=\"{}\",status=\"{}xx\"}} {}",
                        hooked == 1,
                        class + 1,
                        n.load(Ordering::Relaxed)
                    );
                }
            }
        }
        out.push_str("# HELP interpose_route_requests_total Requests a hook applied to, by route (scope, method, pattern as declared) and status class.\n# TYPE interpose_route_requests_total counter\n");
        let routes: Vec<Arc<RouteStats>> =
            self.routes.lock().unwrap_or_else(|e| e.into_inner()).values().filter_map(Weak::upgrade).collect();
        for r in &routes {
            for (class, n) in r.statuses.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "interpose_route_requests_total{{scope=\"{}\",method=\"{}\",route=\"{}\",status=\"{}xx\"}} {}",
                    r.scope,
                    r.method,
                    label_value(&r.pattern),
                    class + 1,
                    n.load(Ordering::Relaxed)
                );
            }
        }
        let _ = writeln!(out, "# HELP interpose_unmatched_requests_total Requests under no mount (404).\n# TYPE interpose_unmatched_requests_total counter\ninterpose_unmatched_requests_total {}", self.unmatched.load(Ordering::Relaxed));
        out.push_str("# HELP interpose_upstream_duration_seconds Time to the upstream's response head.\n# TYPE interpose_upstream_duration_seconds histogram\n");
        for (scope, s) in &self.scopes {
            s.upstream.render(&mut out, "interpose_upstream_duration_seconds", &format!("scope=\"{scope}\""));
        }
        out.push_str("# HELP interpose_upstream_errors_total Upstream connection failures and timeouts.\n# TYPE interpose_upstream_errors_total counter\n");
        for (scope, s) in &self.scopes {
            let _ = writeln!(
                out,
                "interpose_upstream_errors_total{{scope=\"{scope}\"}} {}",
                s.upstream_errors.load(Ordering::Relaxed)
            );
        }
        let hooks: Vec<Arc<HookStats>> =
            self.hooks.lock().unwrap_or_else(|e| e.into_inner()).values().filter_map(Weak::upgrade).collect();
        out.push_str("# HELP interpose_hook_calls_total Hook calls.\n# TYPE interpose_hook_calls_total counter\n");
        let label = |h: &HookStats| {
            format!(
                "plugin=\"{}\",instance=\"{}\",function=\"{}\",type=\"{}\"",
                label_value(&h.plugin),
                label_value(&h.instance),
                label_value(&h.function),
                h.kind
            )
        };
        for h in &hooks {
            let _ = writeln!(out, "interpose_hook_calls_total{{{}}} {}", label(h), h.calls.load(Ordering::Relaxed));
        }
        out.push_str("# HELP interpose_hook_rejects_total Requests a hook rejected.\n# TYPE interpose_hook_rejects_total counter\n");
        for h in &hooks {
            let _ = writeln!(out, "interpose_hook_rejects_total{{{}}} {}", label(h), h.rejects.load(Ordering::Relaxed));
        }
        out.push_str("# HELP interpose_hook_failures_total Hook failures by kind.\n# TYPE interpose_hook_failures_total counter\n");
        for h in &hooks {
            for kind in FailureKind::ALL {
                let _ = writeln!(
                    out,
                    "interpose_hook_failures_total{{{},kind=\"{}\"}} {}",
                    label(h),
                    kind.as_str(),
                    h.failures[kind as usize].load(Ordering::Relaxed)
                );
            }
        }
        out.push_str("# HELP interpose_hook_duration_seconds Hook call latency, queueing included.\n# TYPE interpose_hook_duration_seconds histogram\n");
        for h in &hooks {
            h.latency.render(&mut out, "interpose_hook_duration_seconds", &label(h));
        }
        let post: Vec<&Arc<HookStats>> = hooks.iter().filter(|h| h.kind.runs_after_the_response()).collect();
        out.push_str("# HELP interpose_hook_queue_depth Suffix/subscribe events waiting for this hook, in the queue or the store.\n# TYPE interpose_hook_queue_depth gauge\n");
        for h in &post {
            let key = (h.instance.clone(), h.function.clone(), h.kind.as_str().to_string());
            let depth = h.queued.load(Ordering::Relaxed) + stored.get(&key).copied().unwrap_or(0);
            let _ = writeln!(out, "interpose_hook_queue_depth{{{}}} {depth}", label(h));
        }
        out.push_str("# HELP interpose_hook_dropped_total Suffix/subscribe events this hook never got: the queue or the store writer was full, or the store failed.\n# TYPE interpose_hook_dropped_total counter\n");
        for h in &post {
            let _ = writeln!(out, "interpose_hook_dropped_total{{{}}} {}", label(h), h.dropped.load(Ordering::Relaxed));
        }
        out.push_str("# HELP interpose_timer_runs_total Runs of timer tasks (TimerTask abilities) on this node, by outcome.\n# TYPE interpose_timer_runs_total counter\n");
        for ((plugin, instance, timer), (ok, failed)) in self.timers.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            for (outcome, n) in [("ok", ok), ("failed", failed)] {
                let _ = writeln!(
                    out,
                    "interpose_timer_runs_total{{plugin=\"{}\",instance=\"{}\",timer=\"{}\",outcome=\"{outcome}\"}} {n}",
                    label_value(plugin),
                    label_value(instance),
                    label_value(timer)
                );
            }
        }
        for (name, help, value) in extra {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}");
        }
        out
    }
}
