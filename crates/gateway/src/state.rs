//! The gateway's shared state: config, mounts, the JS host, the upstream
//! client, and the route table snapshot that changes swap atomically.

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use interpose_config::{Config, Upstream};
use interpose_js::{HostIo, HostOptions, JsHost};
use interpose_routing::{Conflict, RouteTable};

use crate::io::GatewayIo;
use crate::metrics::{Metrics, RouteStatsIndex};
use crate::plugins::{build_routes, declared_instances, HookTarget, InstalledInstance};
use crate::post::PostQueue;
use crate::proxy::Client;

/// Why the gateway refused to start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot install the configured plugins:\n{}", .0.join("\n"))]
    Plugins(Vec<String>),
    #[error("the configured plugins conflict:\n{}", .0.iter().map(|c| format!("  - {c}")).collect::<Vec<_>>().join("\n"))]
    Conflicts(Vec<Conflict>),
    /// `[sandbox] ca_file` holds no usable certificate.
    #[error("sandbox.ca_file: {0}")]
    CaFile(String),
    #[error("the config's [[events]] are wrong:\n{}", .0.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
    Events(Vec<String>),
}

/// A route table together with the instances it was built from.
#[derive(Debug)]
pub struct Snapshot {
    pub routes: RouteTable<HookTarget>,
    /// Request counters of each route in `routes`.
    pub route_stats: RouteStatsIndex,
    pub instances: Vec<InstalledInstance>,
}

pub struct Gateway {
    pub config: Arc<Config>,
    /// JS workers for every hook: the request path's calls are taken first,
    /// and suffix/subscribe calls use at most `max(workers, 4)` of them at
    /// once, so they never hold up requests.
    pub host: JsHost,
    pub posts: Arc<PostQueue>,
    pub client: Client,
    pub metrics: Arc<Metrics>,
    /// What plugins' outbound calls go through (also for lifecycle functions).
    pub io: Option<Arc<dyn HostIo>>,
    /// The store plugins keep their data in (see [`Gateway::use_store`]).
    store: crate::io::StoreSlot,
    /// Plugins' SQL databases (see [`Gateway::use_databases`]).
    databases: crate::io::DbSlot,
    /// `[[events]]`: the events the proxied traffic emits.
    pub emitter: crate::events::Emitter,
    /// Itself, for work that outlives a request (emitting events).
    me: std::sync::Weak<Gateway>,
    /// Longest mount first, so `/a/b` wins over `/a`.
    mounts: Vec<Upstream>,
    snapshot: ArcSwap<Snapshot>,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway").field("listen", &self.config.server.listen).finish()
    }
}

impl Gateway {
    /// Load the configured plugins and build the first route table. Nothing
    /// starts if any plugin is bad or two of them conflict. Call it inside a
    /// tokio runtime (plugins' outbound calls and post hooks run on it).
    pub fn new(config: Config) -> Result<Arc<Gateway>, StartError> {
        let instances = declared_instances(&config).map_err(StartError::Plugins)?;
        let emitter = crate::events::Emitter::new(&config).map_err(StartError::Events)?;
        let metrics = Arc::new(Metrics::new(config.upstreams.iter().map(|u| u.scope.clone())));
        let routes = build_routes(&instances, &metrics).map_err(StartError::Conflicts)?;
        let route_stats = metrics.routes(&routes);
        let mut mounts = config.upstreams.clone();
        mounts.sort_by_key(|u| std::cmp::Reverse(u.mount.len()));
        let client = Client::new(Duration::from_millis(config.limits.upstream_connect_timeout_ms));
        let tls = crate::io::tls_config(&config).map_err(StartError::CaFile)?;
        let store = crate::io::StoreSlot::default();
        let databases = crate::io::DbSlot::default();
        if config.plugin_db.url.is_none() {
            let _ = databases.set(Arc::new(interpose_plugindb::PluginDb::sqlite(config.plugin_db.dir.clone())));
        }
        let io = GatewayIo::new(&config, client.clone(), tls, store.clone(), databases.clone())
            .map(|io| io as Arc<dyn HostIo>);
        // One pool for every call of a plugin, so its module state is the
        // same for its hooks and its subscribers (as in the platform's one
        // Node process): `workers` threads for the request path, and up to
        // `post_threads` more that suffix/subscribe calls may use at once.
        let post_threads = post_threads(&config);
        let options = HostOptions {
            foreground: config.server.workers,
            background: post_threads,
            ..HostOptions::new(config.server.workers + post_threads)
        };
        let host = JsHost::new(options, io.clone());
        let posts =
            PostQueue::start(host.clone(), config.limits.post_queue_size, post_threads, config.limits.hook_timeout_ms);
        Ok(Arc::new_cyclic(|me| Gateway {
            emitter,
            me: me.clone(),
            config: Arc::new(config),
            host,
            posts,
            client,
            metrics,
            io,
            store,
            databases,
            mounts,
            snapshot: ArcSwap::from_pointee(Snapshot { routes, route_stats, instances }),
        }))
    }

    /// Keep plugins' data (entity storage) in `store` from now on; set once,
    /// before any plugin function runs.
    pub fn use_store(&self, store: interpose_registry::Store) {
        let _ = self.store.set(store);
    }

    /// Plugins' SQL databases on a MySQL/MariaDB server from now on (the
    /// embedded SQLite ones are there from the start); set once.
    pub fn use_databases(&self, db: interpose_plugindb::PluginDb) {
        let _ = self.databases.set(Arc::new(db));
    }

    /// Plugins' SQL databases, once there.
    pub fn databases(&self) -> Option<&Arc<interpose_plugindb::PluginDb>> {
        self.databases.get()
    }

    /// Why `plugin` cannot run on this gateway: it uses the SQL database,
    /// which is a file of this node's while the store is shared with others.
    pub fn database_refusal(&self, plugin: &crate::LoadedPlugin) -> Option<String> {
        let shared = self.store().is_some_and(|s| s.backend() == "postgres");
        let local = self.databases().is_none_or(|d| d.is_local());
        (shared && local && plugin.code.imports("@ones-op/node-database")).then(|| {
            format!(
                "{} uses @ones-op/node-database, and this gateway shares its store (PostgreSQL) with other nodes while its plugin databases are SQLite files of its own: each node's data would diverge. Set [plugin_db] url to a MySQL or MariaDB server every node uses",
                plugin.manifest.service.name
            )
        })
    }

    /// The store plugins' data is kept in, once set.
    pub fn store(&self) -> Option<&interpose_registry::Store> {
        self.store.get()
    }

    /// Deliver suffix/subscribe events through `store` from now on (durable,
    /// at least once, in order per instance, with retries). `applied` is the
    /// registry version the live route table was built from, set after the
    /// table is swapped in.
    pub fn enable_durable_events(
        self: &Arc<Self>,
        store: interpose_registry::Store,
        applied: Arc<std::sync::atomic::AtomicI64>,
    ) {
        let weak = Arc::downgrade(self);
        let lookup = Arc::new(move |instance: &str, function: &str, kind: interpose_manifest::HookKind| {
            use crate::post::Missing;
            let gw = weak.upgrade().ok_or(Missing::Instance)?;
            let snap = gw.snapshot();
            let inst = snap.instances.iter().find(|i| i.meta.id == instance).ok_or(Missing::Instance)?;
            if kind == interpose_manifest::HookKind::Event {
                let missing = || Missing::Hook { plugin: inst.meta.name.clone(), version: inst.meta.version.clone() };
                let h = inst.plugin.manifest.events.iter().find(|h| h.function == function).ok_or_else(missing)?;
                return Ok(crate::post::LookedUp {
                    js: inst.js.clone(),
                    timeout_ms: gw.config.limits.hook_timeout_ms,
                    route: interpose_manifest::UrlPattern::parse(&format!(
                        "/events/{}",
                        h.event_type.replace(['*', ' '], "_")
                    ))
                    .unwrap_or_else(|_| {
                        inst.plugin
                            .manifest
                            .apis
                            .first()
                            .map(|a| a.url.clone())
                            .unwrap_or_else(|| interpose_manifest::UrlPattern::parse("/").expect("/ parses"))
                    }),
                    stats: gw.metrics.hook(&inst.meta.name, instance, function, kind),
                });
            }
            let api =
                inst.plugin.manifest.apis.iter().find(|a| a.function == function && a.kind == kind).ok_or_else(
                    || Missing::Hook { plugin: inst.meta.name.clone(), version: inst.meta.version.clone() },
                )?;
            Ok(crate::post::LookedUp {
                js: inst.js.clone(),
                timeout_ms: api.timeout_ms.unwrap_or(gw.config.limits.hook_timeout_ms),
                route: api.url.clone(),
                stats: gw.metrics.hook(&inst.meta.name, instance, function, kind),
            })
        });
        let l = &self.config.limits;
        let policy = crate::post::RetryPolicy {
            max_attempts: l.post_max_attempts,
            base: Duration::from_millis(l.post_retry_base_ms),
            in_flight: post_threads(&self.config) * 2,
        };
        self.posts.make_durable(store, self.host.clone(), lookup, policy, applied);
    }

    /// The gateway as shared (`None` while it is being dropped).
    pub fn shared(&self) -> Option<Arc<Gateway>> {
        self.me.upgrade()
    }

    /// The current snapshot; a request keeps the one it started with.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot.load_full()
    }

    /// Validate and swap in a new set of enabled instances; on a conflict
    /// nothing changes.
    pub fn replace_instances(&self, instances: Vec<InstalledInstance>) -> Result<(), Vec<Conflict>> {
        let next = self.prepare(instances)?;
        self.swap(next);
        Ok(())
    }

    /// Build (and so validate) the snapshot for a set of enabled instances.
    pub fn prepare(&self, instances: Vec<InstalledInstance>) -> Result<Snapshot, Vec<Conflict>> {
        let routes = build_routes(&instances, &self.metrics)?;
        Ok(Snapshot { route_stats: self.metrics.routes(&routes), routes, instances })
    }

    /// Make a prepared snapshot live. Requests already running keep theirs.
    pub fn swap(&self, next: Snapshot) {
        self.snapshot.store(Arc::new(next));
    }

    /// The upstream whose mount holds `path`, and the rest of the path
    /// (with its query) under that mount.
    pub fn mount_for<'p>(&self, path_and_query: &'p str) -> Option<(&Upstream, &'p str)> {
        self.mounts.iter().find_map(|u| {
            let rest = path_and_query.strip_prefix(u.mount.as_str())?;
            (rest.is_empty() || rest.starts_with('/') || rest.starts_with('?')).then_some((u, rest))
        })
    }
}

/// JS workers suffix and subscribe calls may use at once.
fn post_threads(config: &Config) -> usize {
    config.server.workers.max(4)
}
