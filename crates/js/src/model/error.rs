//! What a hook call can end in.

/// A thrown `PluginError` (`@ones-op/node-error`): a deliberate rejection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginErrorData {
    /// `error` or `warning`.
    pub kind: String,
    pub reason: String,
    pub errcode: String,
    pub status: u16,
}

/// A call that ran to the end.
#[derive(Debug, Clone, PartialEq)]
pub enum CallOutcome {
    /// The function returned (or resolved to) this value; `None` for `undefined`/`null`.
    Returned(Option<serde_json::Value>),
    /// The function threw a `PluginError`.
    Rejected(PluginErrorData),
}

/// A hook failure: handled by the hook's `on_error`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum HookError {
    #[error("timed out after {0} ms")]
    Timeout(u64),
    #[error("ran out of memory (limit {0} MB)")]
    OutOfMemory(usize),
    #[error("threw {message}{}", location.as_ref().map(|l| format!(" at {l}")).unwrap_or_default())]
    Threw { message: String, location: Option<String> },
    #[error("function {0}() is not exported by the plugin's entry module")]
    NotExported(String),
    #[error("returned a value that cannot be used: {0}")]
    BadResult(String),
    #[error("failed to load: {0}")]
    Load(String),
    #[error("unavailable: {0}")]
    Unavailable(String),
}

/// How a call failed, as the metrics count it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// The function threw (not a `PluginError`, which is a rejection).
    Throw,
    /// Past its deadline.
    Timeout,
    /// Over its memory limit.
    Memory,
    /// Anything else: not exported, a result that cannot be used, code that
    /// does not load, no worker.
    Other,
}

impl FailureKind {
    pub const ALL: [FailureKind; 4] =
        [FailureKind::Throw, FailureKind::Timeout, FailureKind::Memory, FailureKind::Other];

    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::Throw => "throw",
            FailureKind::Timeout => "timeout",
            FailureKind::Memory => "memory",
            FailureKind::Other => "other",
        }
    }
}

impl HookError {
    /// What kind of failure this is, for the metrics.
    pub fn failure(&self) -> FailureKind {
        match self {
            HookError::Threw { .. } => FailureKind::Throw,
            HookError::Timeout(_) => FailureKind::Timeout,
            HookError::OutOfMemory(_) => FailureKind::Memory,
            HookError::NotExported(_) | HookError::BadResult(_) | HookError::Load(_) | HookError::Unavailable(_) => {
                FailureKind::Other
            }
        }
    }

    /// A short label for metrics and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            HookError::Timeout(_) => "timeout",
            HookError::OutOfMemory(_) => "memory",
            HookError::Threw { .. } => "throw",
            HookError::NotExported(_) => "not_exported",
            HookError::BadResult(_) => "bad_result",
            HookError::Load(_) => "load",
            HookError::Unavailable(_) => "unavailable",
        }
    }

    /// Should the runtime that produced this error be thrown away?
    pub(crate) fn poisons_runtime(&self) -> bool {
        matches!(self, HookError::Timeout(_) | HookError::OutOfMemory(_) | HookError::Load(_))
    }
}
