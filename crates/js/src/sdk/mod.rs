//! The SDK: the `@ones-op/*` modules plugins import, each a JS source in
//! this folder (`logger.js`, `fetch.js`, `file.js`, …) built on the native
//! `interpose:host` module only they can import; a module's host operations
//! are the Rust file of the same name (`logger.rs`, `fetch.rs`, …), which
//! declares and exports them. A new module is its JS file (listed in
//! `code/builtins.rs`) and, when it needs the host, its Rust file, added to
//! [`HostModule`] below.

use rquickjs::module::{Declarations, Exports, ModuleDef};
use rquickjs::Ctx;

mod ability;
mod crypto;
mod fetch;
mod file;
mod globals;
mod logger;
mod services;
mod web;

/// `interpose:host`: the primitives the `@ones-op/*` modules are built on,
/// each SDK module's from its file.
pub(crate) struct HostModule;

impl ModuleDef for HostModule {
    fn declare<'js>(decl: &Declarations<'js>) -> rquickjs::Result<()> {
        logger::declare(decl)?;
        fetch::declare(decl)?;
        file::declare(decl)?;
        ability::declare(decl)?;
        globals::declare(decl)?;
        web::declare(decl)?;
        services::declare(decl)?;
        crypto::declare(decl)
    }

    fn evaluate<'js>(ctx: &Ctx<'js>, exports: &Exports<'js>) -> rquickjs::Result<()> {
        logger::export(ctx, exports)?;
        fetch::export(ctx, exports)?;
        file::export(ctx, exports)?;
        ability::export(ctx, exports)?;
        globals::export(ctx, exports)?;
        web::export(ctx, exports)?;
        services::export(ctx, exports)?;
        crypto::export(ctx, exports)
    }
}
