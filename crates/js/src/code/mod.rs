//! A plugin's code, loaded once: its backend's modules read and stripped of
//! TypeScript ([`project`], [`transpile`]), checked against the built-in
//! modules there are (`builtins`). Depends on nothing else in the crate.

pub(crate) mod builtins;
pub mod project;
pub mod transpile;
