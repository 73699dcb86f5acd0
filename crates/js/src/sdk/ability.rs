//! `@ones-op/node-ability` (`ability.js`): `Plugin.getPluginConfig()`
//! reads the instance's config values.

use rquickjs::module::{Declarations, Exports};
use rquickjs::{Ctx, Function};

use crate::engine::scope::current;

pub(super) fn declare(decl: &Declarations<'_>) -> rquickjs::Result<()> {
    decl.declare("config")?;
    decl.declare("abilityConfig")?;
    Ok(())
}

pub(super) fn export<'js>(ctx: &Ctx<'js>, exports: &Exports<'js>) -> rquickjs::Result<()> {
    let config = Function::new(ctx.clone(), |ctx: Ctx<'js>| -> rquickjs::Result<rquickjs::Value<'js>> {
        let config = current().map(|scope| scope.instance.config());
        match config {
            Some(c) => crate::engine::convert::json_to_js(&ctx, &c),
            None => Ok(rquickjs::Array::new(ctx.clone())?.into_value()),
        }
    })?;
    exports.export("config", config)?;
    let abilities = Function::new(ctx.clone(), |ctx: Ctx<'js>| -> rquickjs::Result<rquickjs::Value<'js>> {
        match current().map(|scope| scope.instance.ability_config()) {
            Some(a) => crate::engine::convert::json_to_js(&ctx, &a),
            None => Ok(rquickjs::Object::new(ctx.clone())?.into_value()),
        }
    })?;
    exports.export("abilityConfig", abilities)?;
    Ok(())
}
