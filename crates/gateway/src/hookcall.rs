//! Calling a hook: its deadline, its counters (calls, latency, rejects,
//! failures by kind), the access log's record of it, and its tracing span
//! with a `hook ran` event inside. Used by the request path and by the
//! post-hook queue (a stored event's delivery builds the same span).

use std::sync::Arc;
use std::time::{Duration, Instant};

use interpose_js::{CallOutcome, HookError, HookRequest};
use interpose_routing::Hook;
use tracing::Instrument;

use crate::access::Tally;
use crate::plugins::HookTarget;
use crate::state::Gateway;

/// Call a hook, counting it (calls, latency, rejects, failures by kind).
pub(crate) async fn call(
    gw: &Gateway,
    hook: &Arc<Hook<HookTarget>>,
    req: Arc<HookRequest>,
    tally: &mut Tally,
) -> Result<CallOutcome, HookError> {
    let ms = hook.api.timeout_ms.unwrap_or(gw.config.limits.hook_timeout_ms);
    let stats = &hook.payload.stats;
    let t0 = Instant::now();
    let call = gw.host.call(&hook.payload.js, &hook.api.function, req, Duration::from_millis(ms));
    let out = traced(hook_span(hook, None), t0, call).await;
    let took = t0.elapsed();
    stats.record(took, &out);
    if gw.config.log.access_log {
        tally.hooks.push((
            hook.instance.name.clone(),
            hook.api.function.clone(),
            hook.api.kind.as_str(),
            took.as_micros() as u64,
        ));
    }
    out
}

/// The span a hook call runs in (debug level, like the request's): its
/// plugin, instance, function, type and route. A post hook runs after its
/// request's span has closed, so it passes the request id here.
pub(crate) fn hook_span(hook: &Hook<HookTarget>, request_id: Option<&str>) -> tracing::Span {
    span_of_hook(&hook.instance.name, &hook.instance.id, &hook.api.function, hook.api.kind, &hook.api.url, request_id)
}

/// [`hook_span`] from the hook's parts, for a stored event's delivery,
/// which finds them in the live plugins rather than the route table (it
/// records the event's id in `event`).
pub(crate) fn span_of_hook(
    plugin: &str,
    instance: &str,
    function: &str,
    kind: interpose_manifest::HookKind,
    route: &dyn std::fmt::Display,
    request_id: Option<&str>,
) -> tracing::Span {
    tracing::debug_span!(
        "hook",
        plugin = %plugin,
        instance = %instance,
        function = %function,
        kind = kind.as_str(),
        route = %route,
        request_id,
        event = tracing::field::Empty,
    )
}

/// Run a hook call (started at `t0`) inside `span`, ending with a debug
/// event of its time and outcome, so the event carries the span's fields.
/// A plain function returning the instrumented future, so the call is not
/// wrapped in one more future of its own.
pub(crate) fn traced(
    span: tracing::Span,
    t0: Instant,
    call: impl std::future::Future<Output = Result<CallOutcome, HookError>>,
) -> impl std::future::Future<Output = Result<CallOutcome, HookError>> {
    async move {
        let out = call.await;
        tracing::debug!(took_us = t0.elapsed().as_micros() as u64, outcome = outcome(&out), "hook ran");
        out
    }
    .instrument(span)
}

fn outcome(r: &Result<CallOutcome, HookError>) -> &'static str {
    match r {
        Ok(CallOutcome::Returned(_)) => "returned",
        Ok(CallOutcome::Rejected(_)) => "rejected",
        Err(e) => e.kind(),
    }
}
