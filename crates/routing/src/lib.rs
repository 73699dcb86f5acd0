//! The route table: which hooks run for a request.
//!
//! Built once per change of the enabled hook set ([`RouteTable::build`]) and
//! then read-only: the gateway holds it in an `ArcSwap` and swaps the whole
//! snapshot, so a request sees the old table or the new one, never half.
//!
//! A request is matched by scope (from the mount), method and path
//! ([`RouteTable::lookup`]); the matched [`Interface`] hands out the [`Plan`]
//! of the request's level context ([`Interface::plan`]): for a team-level
//! interface the hooks of org-level instances plus those of the request's
//! team; for an org-level interface every enabled hook. Building refuses
//! conflicting hook sets ([`Conflict`]) with the rule and both plugins named.

mod build;
mod conflict;
mod table;
mod trie;

pub use conflict::{Conflict, Rule};
pub use table::{Group, Hook, HookInput, Instance, Interface, Matched, Plan, RouteTable};

#[cfg(test)]
mod tests;
