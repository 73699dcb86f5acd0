//! The effective route table as rows: each interface and level context with
//! its hooks in execution order (`interpose routes`, `GET /api/routes`).

use interpose_gateway::HookTarget;
use interpose_routing::{Plan, RouteTable};
use serde_json::json;

/// One row per interface and level context.
pub fn describe(table: &RouteTable<HookTarget>) -> Vec<serde_json::Value> {
    let mut rows = Vec::new();
    let mut push = |scope: &str, method: &str, pattern: &str, context: String, plan: &Plan<HookTarget>| {
        if plan.is_empty() {
            return;
        }
        let hooks: Vec<String> = plan
            .groups()
            .flat_map(|g| g.variants().iter())
            .map(|h| {
                let q = if h.api.query.is_empty() {
                    String::new()
                } else {
                    format!(" ?{}", h.api.query.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("&"))
                };
                format!(
                    "{:<9} {}() of {} [instance {}, priority {}]{q}",
                    h.api.kind.as_str(),
                    h.api.function,
                    h.instance.name,
                    h.instance.id,
                    h.api.priority
                )
            })
            .collect();
        rows.push(json!({"scope": scope, "method": method, "pattern": pattern, "context": context, "hooks": hooks}));
    };
    for iface in table.interfaces() {
        let default_ctx =
            if iface.team_param.is_some() { "every team".to_string() } else { "organization".to_string() };
        push(&iface.scope, &iface.method, &iface.pattern, default_ctx, iface.default_plan());
        let mut teams: Vec<_> = iface.team_plans().collect();
        teams.sort_by_key(|(t, _)| t.to_string());
        for (team, plan) in teams {
            push(&iface.scope, &iface.method, &iface.pattern, format!("team {team}"), plan);
        }
    }
    for (instance, sub) in table.additions() {
        for iface in sub.interfaces() {
            push(
                &iface.scope,
                &iface.method,
                &iface.pattern,
                format!("addition (Ones-Plugin-Id: {instance})"),
                iface.default_plan(),
            );
        }
    }
    rows.sort_by_key(|r| {
        (r["scope"].to_string(), r["pattern"].to_string(), r["method"].to_string(), r["context"].to_string())
    });
    rows
}
