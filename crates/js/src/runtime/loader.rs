//! Module resolution: the plugin's own files, the `@ones-op/*` built-ins, and
//! `interpose:host` for the built-ins only. Nothing else resolves.

use std::sync::Arc;

use rquickjs::loader::{ImportAttributes, Loader, Resolver};
use rquickjs::module::Declared;
use rquickjs::{Ctx, Error, Module, Result};

use crate::code::builtins::{builtin, unavailable_core_source, BUILTINS, CJS_ENTER, CJS_STATE, GLOBALS};
use crate::code::project::PluginCode;
use crate::sdk::HostModule;

const HOST: &str = "interpose:host";

/// The transpiler's helpers for TypeScript's `experimentalDecorators`
/// (imported from `code::builtins::HELPERS_PREFIX`); each module's default export is one
/// helper, with tsc's semantics.
const HELPERS: &[(&str, &str)] = &[
    (
        "interpose:runtime/helpers/decorate",
        // Decorators apply last to first; a member's descriptor is read
        // when `desc` is null, and what a decorator returns replaces it.
        "export default function decorate(decorators, target, key, desc) {\n\
           const member = arguments.length > 2;\n\
           let r = !member ? target : desc === null ? Object.getOwnPropertyDescriptor(target, key) : desc;\n\
           for (let i = decorators.length - 1; i >= 0; i--) {\n\
             const d = decorators[i];\n\
             if (d) r = (member ? d(target, key, r) : d(r)) || r;\n\
           }\n\
           if (member && r) Object.defineProperty(target, key, r);\n\
           return r;\n\
         }\n",
    ),
    (
        "interpose:runtime/helpers/decorateParam",
        "export default function decorateParam(index, decorator) {\n\
           return (target, key) => decorator(target, key, index);\n\
         }\n",
    ),
    (
        "interpose:runtime/helpers/decorateMetadata",
        // `emitDecoratorMetadata` without a `Reflect.metadata` polyfill records nothing.
        "export default function decorateMetadata(key, value) {\n\
           if (typeof Reflect === 'object' && typeof Reflect.metadata === 'function') return Reflect.metadata(key, value);\n\
         }\n",
    ),
];

/// What the CommonJS files' shared count starts as (see [`CJS_STATE`]).
const CJS_STATE_SOURCE: &str = "export const state = { pending: 0 };\n";

/// Resolver and loader in one; it keeps its table, so any number of contexts
/// can import the same modules.
pub(crate) struct PluginLoader {
    pub code: Arc<PluginCode>,
}

impl Resolver for PluginLoader {
    fn resolve<'js>(
        &mut self,
        _ctx: &Ctx<'js>,
        base: &str,
        name: &str,
        _: Option<ImportAttributes<'js>>,
    ) -> Result<String> {
        if name == HOST {
            // Only the built-ins' own sources may use the host's primitives.
            return if BUILTINS.iter().any(|(n, _)| *n == base) || base == GLOBALS {
                Ok(HOST.to_string())
            } else {
                Err(Error::new_resolving_message(base, name, "this module is internal to interpose"))
            };
        }
        if let Some(name) = builtin(name) {
            return Ok(name.to_string());
        }
        if HELPERS.iter().any(|(n, _)| *n == name) {
            return Ok(name.to_string());
        }
        if name == CJS_STATE || name.starts_with(CJS_ENTER) {
            let wrapped = base.starts_with(CJS_ENTER) || self.code.module(base).is_some_and(|m| m.commonjs.is_some());
            return if wrapped {
                Ok(name.to_string())
            } else {
                Err(Error::new_resolving_message(base, name, "this module is internal to interpose"))
            };
        }
        if name.starts_with("./") || name.starts_with("../") {
            if let Some(found) = self.code.resolve(base, name) {
                return Ok(found);
            }
            return Err(Error::new_resolving_message(base, name, "no such file in the plugin's backend"));
        }
        Err(Error::new_resolving_message(
            base,
            name,
            "only relative imports, the @ones-op/* built-ins and Node's core modules resolve; bundle npm packages into backend/dist",
        ))
    }
}

impl Loader for PluginLoader {
    fn load<'js>(
        &mut self,
        ctx: &Ctx<'js>,
        name: &str,
        _: Option<ImportAttributes<'js>>,
    ) -> Result<Module<'js, Declared>> {
        if name == HOST {
            return Module::declare_def::<HostModule, _>(ctx.clone(), HOST);
        }
        if let Some((_, src)) = BUILTINS.iter().chain(HELPERS).find(|(n, _)| *n == name) {
            return Module::declare(ctx.clone(), name, *src);
        }
        if let Some(src) = unavailable_core_source(name) {
            return Module::declare(ctx.clone(), name, src);
        }
        if name == CJS_STATE {
            return Module::declare(ctx.clone(), name, CJS_STATE_SOURCE);
        }
        if name.starts_with(CJS_ENTER) {
            let src = format!("import {{ state }} from {CJS_STATE:?}; state.pending++;\n");
            return Module::declare(ctx.clone(), name, src);
        }
        match self.code.module(name) {
            Some(m) => Module::declare(ctx.clone(), name, m.code.as_str()),
            None => Err(Error::new_loading_message(name, "module not found")),
        }
    }
}
