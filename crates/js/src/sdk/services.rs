//! The SDK modules the gateway serves: `@ones-op/sdk`'s entity storage
//! (`storage`) and `@ones-op/node-database` (`database`). Each call goes to
//! the gateway through [`HostIo::sdk`](crate::HostIo), answered as a promise
//! the event loop settles; it counts against the hook's deadline.

use std::time::Instant;

use rquickjs::{Ctx, Value};

use crate::engine::event_loop;
use crate::engine::scope::current;
use crate::model::io::{SdkRequest, SdkService};

pub(super) fn declare(decl: &rquickjs::module::Declarations<'_>) -> rquickjs::Result<()> {
    decl.declare("storage")?;
    decl.declare("database")?;
    Ok(())
}

pub(super) fn export<'js>(ctx: &rquickjs::Ctx<'js>, exports: &rquickjs::module::Exports<'js>) -> rquickjs::Result<()> {
    exports.export("storage", rquickjs::Function::new(ctx.clone(), |ctx, op| call(ctx, SdkService::Storage, op))?)?;
    exports.export("database", rquickjs::Function::new(ctx.clone(), |ctx, op| call(ctx, SdkService::Database, op))?)?;
    Ok(())
}

/// `interpose:host` `storage(opJson)` / `database(opJson)`: a promise of
/// `{ok: true, value}` or `{ok: false, error: {errcode, reason, status}}`.
fn call<'js>(ctx: Ctx<'js>, service: SdkService, op: String) -> rquickjs::Result<Value<'js>> {
    let (promise, done) = event_loop::pending(&ctx)?;
    let fail = |done: event_loop::Settle, errcode: &str, status: u16, reason: String| {
        done.settle(
            serde_json::json!({"ok": false, "error": {"errcode": errcode, "reason": reason, "status": status}}),
        );
    };
    let Some(scope) = current() else {
        fail(done, "NotAvailable", 501, "only available inside a call".into());
        return Ok(promise);
    };
    let Some(io) = scope.io.clone() else {
        fail(done, "NotAvailable", 501, "this needs the gateway (it is not available here)".into());
        return Ok(promise);
    };
    let op = match serde_json::from_str(&op) {
        Ok(op) => op,
        Err(e) => {
            fail(done, "InvalidParameter", 400, format!("bad call: {e}"));
            return Ok(promise);
        }
    };
    let request = SdkRequest {
        service,
        instance: scope.instance.id.clone(),
        entities: scope.instance.entities(),
        workspace: scope.instance.workspace.clone(),
        op,
        timeout: scope.deadline.saturating_duration_since(Instant::now()),
    };
    io.sdk(
        request,
        Box::new(move |result| {
            done.settle(match result {
                Ok(value) => serde_json::json!({"ok": true, "value": value}),
                Err(e) => serde_json::json!({"ok": false, "error": {"errcode": e.errcode, "reason": e.reason, "status": e.status}}),
            })
        }),
    );
    Ok(promise)
}
