//! `@ones-op/node-logger` (`logger.js`): lines into the instance's log,
//! with the call's request id.

use rquickjs::module::{Declarations, Exports};
use rquickjs::{Ctx, Function};

use crate::engine::scope::current;
use crate::model::instance::LogLevel;

pub(super) fn declare(decl: &Declarations<'_>) -> rquickjs::Result<()> {
    decl.declare("log")?;
    Ok(())
}

pub(super) fn export<'js>(ctx: &Ctx<'js>, exports: &Exports<'js>) -> rquickjs::Result<()> {
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
    Ok(())
}
