//! ONES events for plugins' `events` handlers. The standard system behind
//! interpose knows nothing of them, so the gateway makes them: a response
//! to a request that `[[events]]` in the config names (`POST
//! /team/:teamUUID/task/:taskUUID/transit` answered 2xx, say) emits its
//! event type with the exchange as `eventData`; the admin API publishes one
//! a system sends as a webhook. Each enabled instance that handles the type
//! gets ONES's message (`eventID`, `eventType`, `timestamp`,
//! `eventContext`, `eventSubscriber`, `eventData`) as its handler's
//! `request.body`, through the store's post-hook queue: at least once, in
//! order per instance, retried, dead-lettered, replayable.

use std::sync::Arc;

use interpose_config::Config;
use interpose_js::{Body as JsBody, HookRequest};
use interpose_manifest::{HookKind, UrlPattern};
use interpose_registry::NewEvent;
use serde_json::{json, Value};

use crate::Gateway;

/// The compiled `[[events]]` rules.
#[derive(Debug, Default)]
pub struct Emitter {
    rules: Vec<Rule>,
}

#[derive(Debug)]
struct Rule {
    event_type: String,
    methods: Vec<String>,
    scope: String,
    pattern: UrlPattern,
    status: (u16, u16),
}

/// A request some rules emit on, once its response is known.
pub(crate) struct Emission {
    /// (rule, path parameters).
    rules: Vec<(usize, Vec<(String, String)>)>,
}

impl Emitter {
    pub fn new(config: &Config) -> Result<Emitter, Vec<String>> {
        let mut problems = Vec::new();
        let mut rules = Vec::new();
        for r in &config.events {
            let key = format!("events[{}]", r.index);
            if config.upstream(&r.scope).is_none() {
                problems.push(format!("{key}.scope: no upstream serves scope {:?}", r.scope));
            }
            match UrlPattern::parse(&r.url) {
                Ok(pattern) => rules.push(Rule {
                    event_type: r.event_type.clone(),
                    methods: r.methods.clone(),
                    scope: r.scope.clone(),
                    pattern,
                    status: r.status,
                }),
                Err(e) => problems.push(format!("{key}.url {:?}: {e}", r.url)),
            }
        }
        if problems.is_empty() {
            Ok(Emitter { rules })
        } else {
            Err(problems)
        }
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The rules a request to `segs` of `scope` may emit on.
    pub(crate) fn matching(&self, scope: &str, method: &str, segs: &[&str]) -> Option<Emission> {
        let rules: Vec<_> = self
            .rules
            .iter()
            .enumerate()
            .filter(|(_, r)| r.scope == scope && r.methods.iter().any(|m| m == method))
            .filter_map(|(i, r)| r.pattern.captures(segs).map(|p| (i, p)))
            .collect();
        (!rules.is_empty()).then_some(Emission { rules })
    }

    /// The event types a response with `status` emits, with the path's
    /// parameters.
    pub(crate) fn fired(&self, e: &Emission, status: u16) -> Vec<(String, Vec<(String, String)>)> {
        let mut out = Vec::new();
        for (i, params) in &e.rules {
            let r = &self.rules[*i];
            if (r.status.0..=r.status.1).contains(&status) {
                out.push((r.event_type.clone(), params.clone()));
            }
        }
        out
    }
}

/// Where an event happened and who did it.
#[derive(Debug, Clone, Default)]
pub struct EventContext {
    /// Empty for an organization-wide event.
    pub team: String,
    pub user: String,
}

impl Gateway {
    /// Queue `event_type` for every enabled instance that handles it (of
    /// the team, or any team without one, and the organization's); how many
    /// deliveries were queued. Refused without a store (events are durable).
    pub async fn publish(&self, event_type: &str, cx: EventContext, data: Value) -> Result<usize, String> {
        let Some(_) = self.posts.store() else {
            return Err("events are delivered through the store's queue, and this gateway has no store".into());
        };
        let snapshot = self.snapshot();
        let timestamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        let mut rows = Vec::new();
        let mut stats = Vec::new();
        for inst in &snapshot.instances {
            if let (Some(team), false) = (&inst.meta.team, cx.team.is_empty()) {
                if *team != cx.team {
                    continue;
                }
            }
            // One handler per instance and event: the first that takes it.
            if let Some(h) = inst.plugin.manifest.events.iter().find(|h| h.handles(event_type)) {
                let id = uuid::Uuid::new_v4().to_string();
                let message = json!({
                    "eventID": id,
                    "eventType": event_type,
                    "timestamp": timestamp,
                    "eventContext": {
                        "triggerUserID": cx.user,
                        "teamID": cx.team,
                        "organizationID": self.config.server.organization_uuid,
                    },
                    "eventSubscriber": {"subscriberID": inst.meta.id, "clientID": inst.meta.id},
                    "eventData": data,
                });
                let request = HookRequest {
                    method: "POST".into(),
                    url: format!("/events/{event_type}"),
                    path: format!("/events/{event_type}"),
                    body: JsBody::Json(message),
                    team_uuid: (!cx.team.is_empty()).then(|| cx.team.clone()),
                    user_uuid: (!cx.user.is_empty()).then(|| cx.user.clone()),
                    request_id: Some(id),
                    ..Default::default()
                };
                let payload = serde_json::to_string(&request).map_err(|e| e.to_string())?;
                rows.push(NewEvent {
                    instance: inst.meta.id.clone(),
                    function: h.function.clone(),
                    kind: HookKind::Event.as_str().to_string(),
                    payload,
                });
                stats.push(self.metrics.hook(&inst.meta.name, &inst.meta.id, &h.function, HookKind::Event));
            }
        }
        let n = rows.len();
        if n > 0 {
            match self.posts.offer_rows(rows, stats) {
                Some(stored) => {
                    let _ = stored.await;
                }
                None => return Err("the store's event writer is saturated; the event was not queued".into()),
            }
        }
        Ok(n)
    }
}

/// `eventData` of an event emitted from the traffic: the exchange.
pub(crate) fn exchange(
    method: &str,
    path: &str,
    query: &[(String, String)],
    params: &[(String, String)],
    request: &JsBody,
    status: u16,
    response: &JsBody,
) -> Value {
    let body = |b: &JsBody| match b {
        JsBody::Empty => Value::Null,
        JsBody::Json(v) => v.clone(),
        JsBody::Text(t) => Value::String(t.clone()),
        JsBody::Bytes(_) => Value::Null,
    };
    let pairs =
        |p: &[(String, String)]| Value::Object(p.iter().map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect());
    json!({
        "request": {"method": method, "path": path, "params": pairs(params), "query": pairs(query), "body": body(request)},
        "response": {"status": status, "body": body(response)},
    })
}

/// Publish the events a response fired, once its body has been copied
/// (or not, past the size limit).
pub(crate) fn emit(gw: Arc<Gateway>, fired: Vec<(String, Value, EventContext)>) {
    tokio::spawn(async move {
        for (event_type, data, cx) in fired {
            match gw.publish(&event_type, cx, data).await {
                Ok(n) => tracing::debug!(event = %event_type, deliveries = n, "event emitted"),
                Err(e) => tracing::warn!(event = %event_type, "event not emitted: {e}"),
            }
        }
    });
}
