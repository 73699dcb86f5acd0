//! Node's globals every runtime has (`globals.js`: `console`, timers): a
//! timer is a host sleep on the call's event loop; an exception thrown in a
//! timer's callback goes to the instance's log.

use rquickjs::module::{Declarations, Exports};
use rquickjs::{Ctx, Function};

use crate::engine::event_loop;
use crate::engine::scope::current;
use crate::model::instance::LogLevel;

pub(super) fn declare(decl: &Declarations<'_>) -> rquickjs::Result<()> {
    decl.declare("sleep")?;
    decl.declare("timerError")?;
    decl.declare("generation")?;
    Ok(())
}

pub(super) fn export<'js>(ctx: &Ctx<'js>, exports: &Exports<'js>) -> rquickjs::Result<()> {
    exports.export("sleep", Function::new(ctx.clone(), event_loop::host_sleep)?)?;
    let timer_error = Function::new(ctx.clone(), |message: String, stack: String| {
        if let Some(scope) = current() {
            let at = scope.instance.code.locate(&stack).map(|l| format!(" at {l}")).unwrap_or_default();
            let line = format!("uncaught in a timer callback: {message}{at}");
            scope.instance.push_log(LogLevel::Error, line, scope.request_id);
        }
    })?;
    exports.export("timerError", timer_error)?;
    exports.export("generation", Function::new(ctx.clone(), event_loop::generation)?)?;
    Ok(())
}
