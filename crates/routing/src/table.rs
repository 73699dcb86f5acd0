//! The immutable route table and what a lookup hands out.

use std::collections::HashMap;
use std::sync::Arc;

use interpose_manifest::{Api, HookKind, PluginLevel};

use crate::trie::Trie;

/// An enabled plugin instance, as the route table sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instance {
    /// The instance UUID.
    pub id: String,
    pub app_id: String,
    pub name: String,
    pub version: String,
    pub level: PluginLevel,
    /// The team of a team-level instance.
    pub team: Option<String>,
    /// Install order: earlier instances run first among equal priorities.
    pub seq: u64,
}

impl Instance {
    /// Where it is installed: "team T1", or "the organization".
    pub fn place(&self) -> String {
        match &self.team {
            Some(t) => format!("team {t}"),
            None => "the organization".into(),
        }
    }

    /// The same plugin at the same place (a plugin is installed once per place).
    pub fn same_place(&self, other: &Instance) -> bool {
        self.app_id == other.app_id && self.team == other.team
    }
}

/// One hook handed to [`RouteTable::build`]: an `apis[]` entry of an enabled
/// instance plus whatever the caller needs to run it (`payload`).
#[derive(Debug, Clone)]
pub struct HookInput<H> {
    pub instance: Arc<Instance>,
    pub api: Arc<Api>,
    pub payload: H,
}

/// A hook in the table.
#[derive(Debug)]
pub struct Hook<H> {
    pub instance: Arc<Instance>,
    pub api: Arc<Api>,
    pub payload: H,
}

impl<H> Hook<H> {
    /// Pair this hook's own parameter names with the matched values.
    pub fn params<'v>(&self, values: &[&'v str]) -> Vec<(&str, &'v str)> {
        self.api.url.param_names().zip(values.iter().copied()).collect()
    }

    pub fn kind(&self) -> HookKind {
        self.api.kind
    }
}

/// The hooks of one type that one instance put on one interface: `query`
/// variants in declaration order; the first that matches the request runs.
#[derive(Debug)]
pub struct Group<H> {
    pub(crate) variants: Vec<Arc<Hook<H>>>,
}

impl<H> Group<H> {
    /// The variant that runs for a request with this query, if any.
    pub fn select(&self, query: &[(String, String)]) -> Option<&Arc<Hook<H>>> {
        self.variants.iter().find(|h| h.api.query.iter().all(|(k, v)| query.iter().any(|(qk, qv)| qk == k && qv == v)))
    }

    pub fn variants(&self) -> &[Arc<Hook<H>>] {
        &self.variants
    }

    pub fn instance(&self) -> &Arc<Instance> {
        &self.variants[0].instance
    }

    pub fn kind(&self) -> HookKind {
        self.variants[0].api.kind
    }

    pub(crate) fn priority(&self) -> i32 {
        self.variants.iter().map(|h| h.api.priority).max().unwrap_or(0)
    }
}

/// Everything that runs for requests of one interface in one level context,
/// already in execution order.
#[derive(Debug)]
pub struct Plan<H> {
    /// Priority desc, then install order.
    pub intercepts: Vec<Group<H>>,
    pub prefix: Option<Group<H>>,
    /// `replace`, `external` or `addition`: answers instead of the upstream.
    pub answer: Option<Group<H>>,
    pub suffix: Option<Group<H>>,
    /// Install order.
    pub subscribes: Vec<Group<H>>,
}

impl<H> Default for Plan<H> {
    fn default() -> Self {
        Plan { intercepts: Vec::new(), prefix: None, answer: None, suffix: None, subscribes: Vec::new() }
    }
}

impl<H> Plan<H> {
    pub fn is_empty(&self) -> bool {
        self.intercepts.is_empty()
            && self.prefix.is_none()
            && self.answer.is_none()
            && self.suffix.is_none()
            && self.subscribes.is_empty()
    }

    /// All groups in execution order (for listings).
    /// Whether a hook of the plan reads the request body (then it is
    /// buffered; otherwise it streams to the upstream as if unhooked).
    pub fn needs_body(&self) -> bool {
        self.groups().any(|g| g.variants.iter().any(|h| h.api.body))
    }

    pub fn groups(&self) -> impl Iterator<Item = &Group<H>> {
        self.intercepts
            .iter()
            .chain(self.prefix.iter())
            .chain(self.answer.iter())
            .chain(self.suffix.iter())
            .chain(self.subscribes.iter())
    }
}

/// One interface: scope + method + pattern shape.
#[derive(Debug)]
pub struct Interface<H> {
    pub scope: String,
    pub method: String,
    /// The pattern as first declared (for messages and listings).
    pub pattern: String,
    /// Index of the team parameter among the matched values, for team-level interfaces.
    pub team_param: Option<usize>,
    /// Position in its table's [`RouteTable::interfaces`] (for per-route data kept alongside).
    pub index: usize,
    /// The plan of an org-level interface, or of teams without team-level hooks here.
    pub(crate) default_plan: Arc<Plan<H>>,
    pub(crate) team_plans: HashMap<String, Arc<Plan<H>>>,
}

impl<H> Interface<H> {
    /// The plan for a request; `values` are the matched parameter values.
    pub fn plan(&self, values: &[&str]) -> &Arc<Plan<H>> {
        match self.team_param.and_then(|i| values.get(i)) {
            Some(team) => self.team_plans.get(*team).unwrap_or(&self.default_plan),
            None => &self.default_plan,
        }
    }

    pub fn default_plan(&self) -> &Arc<Plan<H>> {
        &self.default_plan
    }

    pub fn team_plans(&self) -> impl Iterator<Item = (&str, &Arc<Plan<H>>)> {
        self.team_plans.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// The team UUID a request targets, for team-level interfaces.
    pub fn team<'v>(&self, values: &[&'v str]) -> Option<&'v str> {
        self.team_param.and_then(|i| values.get(i).copied())
    }
}

/// A successful lookup.
#[derive(Debug)]
pub struct Matched<'t, 'p, H> {
    pub interface: &'t Interface<H>,
    /// Parameter values in pattern order.
    pub values: Vec<&'p str>,
}

impl<'t, H> Matched<'t, '_, H> {
    pub fn plan(&self) -> &'t Arc<Plan<H>> {
        self.interface.plan(&self.values)
    }
}

/// The immutable table. Cheap to share (`Arc`), rebuilt on every change.
#[derive(Debug)]
pub struct RouteTable<H> {
    pub(crate) tries: HashMap<(String, String), Trie>,
    pub(crate) interfaces: Vec<Interface<H>>,
    /// Addition routes by instance UUID.
    pub(crate) additions: HashMap<String, RouteTable<H>>,
    pub(crate) hook_count: usize,
}

impl<H> Default for RouteTable<H> {
    fn default() -> Self {
        RouteTable { tries: HashMap::new(), interfaces: Vec::new(), additions: HashMap::new(), hook_count: 0 }
    }
}

impl<H> RouteTable<H> {
    /// Match a request: `scope` from the mount, upper-case `method`, and the
    /// path under the mount split into decoded segments.
    pub fn lookup<'t, 'p>(&'t self, scope: &str, method: &str, segments: &[&'p str]) -> Option<Matched<'t, 'p, H>> {
        // Borrowed tuple keys cannot be looked up without allocating, so scan
        // the (few) tries; there is one per scope and method.
        let trie = self.tries.iter().find(|((s, m), _)| s == scope && m == method).map(|(_, t)| t)?;
        let mut values = Vec::new();
        let idx = trie.find(segments, &mut values)?;
        Some(Matched { interface: &self.interfaces[idx], values })
    }

    /// Match an addition route of the instance named by `Ones-Plugin-Id`.
    pub fn lookup_addition<'t, 'p>(
        &'t self,
        instance: &str,
        scope: &str,
        method: &str,
        segments: &[&'p str],
    ) -> Option<Matched<'t, 'p, H>> {
        self.additions.get(instance)?.lookup(scope, method, segments)
    }

    pub fn interfaces(&self) -> &[Interface<H>] {
        &self.interfaces
    }

    /// Addition routes per instance UUID.
    pub fn additions(&self) -> impl Iterator<Item = (&str, &RouteTable<H>)> {
        self.additions.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// Number of hooks (per method) in the table.
    pub fn hook_count(&self) -> usize {
        self.hook_count
    }
}
