//! Building a [`RouteTable`] from the enabled hooks, refusing conflicts.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use interpose_manifest::{HookKind, PluginLevel, Segment};

use crate::conflict::{Conflict, Rule};
use crate::table::{Group, Hook, HookInput, Interface, Plan, RouteTable};
use crate::trie::Trie;

/// Hooks collected for one interface before plans are made.
struct Pending<H> {
    scope: String,
    method: String,
    pattern: String,
    segments: Vec<Segment>,
    hooks: Vec<Arc<Hook<H>>>,
}

/// Hooks of one type from one instance, keyed for install order.
type Groups<H> = BTreeMap<(u64, String, HookKind), Vec<Arc<Hook<H>>>>;

impl<H> RouteTable<H> {
    /// Build a table from every enabled hook; all conflicts are returned at once.
    pub fn build(inputs: Vec<HookInput<H>>) -> Result<RouteTable<H>, Vec<Conflict>>
    where
        H: Clone,
    {
        let mut conflicts = Vec::new();
        let (main, additions): (Vec<_>, Vec<_>) = inputs.into_iter().partition(|h| h.api.kind != HookKind::Addition);

        let mut table = build_interfaces(main, &mut conflicts);

        let mut by_instance: BTreeMap<String, Vec<HookInput<H>>> = BTreeMap::new();
        for h in additions {
            by_instance.entry(h.instance.id.clone()).or_default().push(h);
        }
        for (id, hooks) in by_instance {
            let sub = build_interfaces(hooks, &mut conflicts);
            table.hook_count += sub.hook_count;
            table.additions.insert(id, sub);
        }
        // The same pair shows up in every team's context; report it once.
        // A clash on GET is one on HEAD too (see `methods`): the GET one says it.
        let key = |c: &Conflict, method: &str| {
            let (first, second) = (c.first.0.id.clone(), c.second.0.id.clone());
            (first, second, method.to_string(), c.scope.clone(), c.pattern.clone(), c.rule.to_string())
        };
        let on_get: BTreeSet<_> = conflicts.iter().filter(|c| c.method == "GET").map(|c| key(c, "HEAD")).collect();
        let mut seen = BTreeSet::new();
        conflicts.retain(|c| {
            let k = key(c, &c.method);
            !(c.method == "HEAD" && on_get.contains(&k)) && seen.insert(k)
        });
        if conflicts.is_empty() {
            Ok(table)
        } else {
            Err(conflicts)
        }
    }
}

/// The methods a hook applies to, each with whether it is only implied:
/// those its manifest lists, and HEAD with GET unless it lists HEAD too.
/// HEAD is GET without the content (RFC 9110 §9.3.2), and upstreams answer
/// it as a GET, so a house rule on a GET is not walked past with a HEAD
/// (nginx's `limit_except GET` covers HEAD the same way).
fn methods(listed: &[String]) -> impl Iterator<Item = (&str, bool)> {
    let head = listed.iter().any(|m| m == "GET") && !listed.iter().any(|m| m == "HEAD");
    listed.iter().map(|m| (m.as_str(), false)).chain(head.then_some(("HEAD", true)))
}

fn build_interfaces<H: Clone>(inputs: Vec<HookInput<H>>, conflicts: &mut Vec<Conflict>) -> RouteTable<H> {
    let mut tries: HashMap<(String, String), Trie> = HashMap::new();
    let mut pending: Vec<Pending<H>> = Vec::new();
    let mut hook_count = 0;
    for input in inputs {
        let hook = Arc::new(Hook { instance: input.instance, api: input.api, payload: input.payload });
        for (method, implied) in methods(&hook.api.methods) {
            let key = (hook.api.scope.clone(), method.to_string());
            let trie = tries.entry(key).or_insert_with(Trie::new);
            let idx = trie.insert(hook.api.url.segments(), pending.len());
            if idx == pending.len() {
                pending.push(Pending {
                    scope: hook.api.scope.clone(),
                    method: method.to_string(),
                    pattern: hook.api.url.as_str().to_string(),
                    segments: hook.api.url.segments().to_vec(),
                    hooks: Vec::new(),
                });
            }
            pending[idx].hooks.push(hook.clone());
            hook_count += usize::from(!implied);
        }
    }

    let interfaces = pending
        .into_iter()
        .enumerate()
        .map(|(index, p)| {
            let team_param = team_value_index(&p.segments);
            let mut iface = Interface {
                scope: p.scope,
                method: p.method,
                pattern: p.pattern,
                team_param,
                index,
                default_plan: Arc::new(Plan::default()),
                team_plans: HashMap::new(),
            };
            if team_param.is_none() {
                let hooks = once_per_plugin(p.hooks);
                iface.default_plan = Arc::new(make_plan(&iface, hooks, "organization", conflicts));
            } else {
                let (org, team): (Vec<_>, Vec<_>) = p
                    .hooks
                    .into_iter()
                    .partition(|h| h.instance.level == PluginLevel::Organization || h.instance.team.is_none());
                let mut teams: BTreeMap<String, Vec<Arc<Hook<H>>>> = BTreeMap::new();
                for h in team {
                    if let Some(t) = &h.instance.team {
                        teams.entry(t.clone()).or_default().push(h);
                    }
                }
                for (t, hooks) in teams {
                    let all: Vec<_> = org.iter().cloned().chain(hooks).collect();
                    let plan = make_plan(&iface, all, &format!("team {t}"), conflicts);
                    iface.team_plans.insert(t, Arc::new(plan));
                }
                iface.default_plan = Arc::new(make_plan(&iface, org, "every team", conflicts));
            }
            iface
        })
        .collect();
    RouteTable { tries, interfaces, additions: HashMap::new(), hook_count }
}

/// Index among the parameters of the one that follows `team`.
fn team_value_index(segments: &[Segment]) -> Option<usize> {
    let pos = segments
        .windows(2)
        .position(|w| matches!((&w[0], &w[1]), (Segment::Static(t), Segment::Param(_)) if t == "team"))?
        + 1;
    Some(segments[..pos].iter().filter(|s| matches!(s, Segment::Param(_))).count())
}

/// On an org-level interface a plugin installed for several teams runs its
/// hook once per request, as its earliest installed instance.
fn once_per_plugin<H>(hooks: Vec<Arc<Hook<H>>>) -> Vec<Arc<Hook<H>>> {
    let mut first: HashMap<(String, usize), u64> = HashMap::new();
    for h in &hooks {
        let e = first.entry((h.instance.app_id.clone(), h.api.index)).or_insert(h.instance.seq);
        *e = (*e).min(h.instance.seq);
    }
    hooks.into_iter().filter(|h| first[&(h.instance.app_id.clone(), h.api.index)] == h.instance.seq).collect()
}

fn make_plan<H>(
    iface: &Interface<H>,
    hooks: Vec<Arc<Hook<H>>>,
    context: &str,
    conflicts: &mut Vec<Conflict>,
) -> Plan<H> {
    let conflict = |rule: Rule, a: &Arc<Hook<H>>, b: &Arc<Hook<H>>| Conflict {
        rule,
        method: iface.method.clone(),
        scope: iface.scope.clone(),
        pattern: iface.pattern.clone(),
        context: context.to_string(),
        first: (a.instance.clone(), describe(a)),
        second: (b.instance.clone(), describe(b)),
        apis: (a.api.index, b.api.index),
        queried: !a.api.query.is_empty() || !b.api.query.is_empty(),
    };

    // Group by (instance, kind); variants keep declaration order.
    let mut groups: Groups<H> = BTreeMap::new();
    for h in hooks {
        groups.entry((h.instance.seq, h.instance.id.clone(), h.api.kind)).or_default().push(h);
    }
    let mut plan = Plan::default();
    for (_, mut variants) in groups {
        variants.sort_by_key(|h| h.api.index);
        let mut seen: BTreeSet<&BTreeMap<String, String>> = BTreeSet::new();
        for (i, v) in variants.iter().enumerate() {
            if !seen.insert(&v.api.query) {
                if let Some(prev) = variants[..i].iter().find(|p| p.api.query == v.api.query) {
                    conflicts.push(conflict(Rule::SameQuery, prev, v));
                }
            }
        }
        let group = Group { variants };
        let slot = match group.kind() {
            HookKind::Intercept => {
                plan.intercepts.push(group);
                continue;
            }
            // Event handlers are no apis entry: never in a route table.
            HookKind::Subscribe | HookKind::Event => {
                plan.subscribes.push(group);
                continue;
            }
            HookKind::Prefix => &mut plan.prefix,
            HookKind::Replace | HookKind::External | HookKind::Addition => &mut plan.answer,
            HookKind::Suffix => &mut plan.suffix,
        };
        match slot {
            Some(existing) => {
                let kind = match group.kind() {
                    HookKind::External if existing.kind() == HookKind::External => {
                        conflicts.push(conflict(Rule::ExternalTaken, &existing.variants[0], &group.variants[0]));
                        continue;
                    }
                    HookKind::Addition => {
                        conflicts.push(conflict(Rule::AdditionTwice, &existing.variants[0], &group.variants[0]));
                        continue;
                    }
                    HookKind::Replace | HookKind::External => "replace or external",
                    k => k.as_str(),
                };
                conflicts.push(conflict(Rule::OnlyOne(kind), &existing.variants[0], &group.variants[0]));
            }
            None => *slot = Some(group),
        }
    }
    if let Some(answer) = plan.answer.as_ref().filter(|a| a.kind() == HookKind::Replace) {
        for g in &plan.intercepts {
            conflicts.push(conflict(Rule::InterceptWithReplace, &g.variants[0], &answer.variants[0]));
        }
        for g in &plan.subscribes {
            conflicts.push(conflict(Rule::SubscribeWithReplace, &g.variants[0], &answer.variants[0]));
        }
    }
    // Higher priority first; install order breaks ties (the sort is stable and
    // groups were built in install order).
    plan.intercepts.sort_by_key(|g| std::cmp::Reverse(g.priority()));
    plan
}

fn describe<H>(h: &Hook<H>) -> String {
    let query = if h.api.query.is_empty() { String::new() } else { format!(" ?{}", h.api.query_string()) };
    format!("{} hook {}(){query} (apis[{}])", h.api.kind, h.api.function, h.api.index)
}
