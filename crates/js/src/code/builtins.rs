//! The built-in modules plugins import (`@ones-op/*`) by name, with their
//! JS sources (which live beside their native operations in `sdk/`), and
//! the names of the modules only interpose's own code imports. Plain data:
//! loading a plugin checks its imports against it, the runtime loads from it.

/// Node's globals (`console`, timers), evaluated into every runtime before
/// the plugin's code. Plugins cannot import it.
pub(crate) const GLOBALS: &str = "interpose:globals";
pub(crate) const GLOBALS_SOURCE: &str = include_str!("../sdk/globals.js");

/// Built-in modules: name → JS source.
pub(crate) const BUILTINS: &[(&str, &str)] = &[
    ("@ones-op/node-logger", include_str!("../sdk/logger.js")),
    ("@ones-op/node-error", include_str!("../sdk/error.js")),
    ("@ones-op/node-types", include_str!("../sdk/types.js")),
    ("@ones-op/fetch", include_str!("../sdk/fetch.js")),
    ("@ones-op/node-fetch", include_str!("../sdk/node-fetch.js")),
    ("@ones-op/node-file", include_str!("../sdk/file.js")),
    ("@ones-op/node-ability", include_str!("../sdk/ability.js")),
];

/// Where the transpiler's helpers for TypeScript's `experimentalDecorators`
/// are imported from ([`crate::code::transpile`]).
pub(crate) const HELPERS_PREFIX: &str = "interpose:runtime";

/// CommonJS files ([`crate::code::project`]) share a count of those that are
/// pending (their imports running): one that finds others pending runs when
/// required. Each file's first import is its own `enter` module, which
/// counts it; only wrapped CommonJS files import these.
pub(crate) const CJS_STATE: &str = "interpose:cjs/state";
pub(crate) const CJS_ENTER: &str = "interpose:cjs/enter/";
/// What built-in module `name` exports, in source order (`default` last);
/// `None` for any other module.
pub(crate) fn builtin_exports(name: &str) -> Option<Vec<String>> {
    let (_, source) = BUILTINS.iter().find(|(n, _)| *n == name)?;
    Some(crate::code::transpile::export_names(source))
}

/// Names of the built-in modules (for `check` output and docs).
pub fn builtin_names() -> impl Iterator<Item = &'static str> {
    BUILTINS.iter().map(|(n, _)| *n)
}
