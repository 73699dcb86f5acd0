//! Why a hook set was refused, with both plugins, the interface and the rule.

use std::fmt;
use std::sync::Arc;

use crate::table::Instance;

/// The coexistence rules of DESIGN.md.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// `intercept` and `replace` on the same interface and level context.
    InterceptWithReplace,
    /// `subscribe` and `replace` on the same interface and level context.
    SubscribeWithReplace,
    /// A second `replace` / `prefix` / `suffix` on the same interface and level context.
    OnlyOne(&'static str),
    /// One plugin declares the same hook type twice on an interface with the same `query`.
    SameQuery,
    /// Two plugins answer the same `external` route for the same team.
    ExternalTaken,
    /// One instance declares the same `addition` route twice.
    AdditionTwice,
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rule::InterceptWithReplace => {
                f.write_str("intercept and replace cannot be used on the same interface in the same level context")
            }
            Rule::SubscribeWithReplace => {
                f.write_str("subscribe and replace cannot be used on the same interface in the same level context")
            }
            Rule::OnlyOne(kind) => write!(f, "only one {kind} hook is allowed per interface and level context"),
            Rule::SameQuery => f.write_str(
                "hooks of the same type from one plugin may share an interface only when they differ by `query`",
            ),
            Rule::ExternalTaken => f.write_str("only one plugin may serve an external route for a team"),
            Rule::AdditionTwice => f.write_str("an instance may declare an addition route only once"),
        }
    }
}

/// A refused combination of two hooks.
#[derive(Debug, Clone)]
pub struct Conflict {
    pub rule: Rule,
    pub method: String,
    pub scope: String,
    /// The interface as the first plugin spells it.
    pub pattern: String,
    /// `organization` or `team <uuid>`.
    pub context: String,
    pub first: (Arc<Instance>, String),
    pub second: (Arc<Instance>, String),
    /// The `apis[]` index of each hook in its plugin's manifest.
    pub apis: (usize, usize),
    /// Either hook carries a `query`.
    pub queried: bool,
}

impl fmt::Display for Conflict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let who = |(i, kind): &(Arc<Instance>, String)| {
            format!("plugin {} (app_id {}, instance {}) {kind}", i.name, i.app_id, i.id)
        };
        write!(
            f,
            "conflict on {} {} (scope {}, {}): {} and {}: {}",
            self.method,
            self.pattern,
            self.scope,
            self.context,
            who(&self.first),
            who(&self.second),
            self.rule
        )?;
        if self.queried && self.rule != Rule::SameQuery {
            // A query only narrows a hook: one request can carry both
            // maps' pairs (`?a=1&a=2` matches `{a: '1'}` and `{a: '2'}`).
            f.write_str(" (a `query` does not keep them apart: one request can match both)")?;
        }
        Ok(())
    }
}

impl std::error::Error for Conflict {}
