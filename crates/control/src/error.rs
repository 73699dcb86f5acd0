//! Why a change was refused; each maps to one HTTP status and errcode of
//! the admin API ([`ControlError::status_and_errcode`]).

use interpose_routing::Conflict;

#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("no instance {0:?}")]
    NotFound(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("the plugin is not valid:\n  - {}", .0.join("\n  - "))]
    BadPlugin(Vec<String>),
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Conflict(Vec<Conflict>),
    #[error("{function}() of plugin {plugin} failed: {error}; the change was rolled back")]
    Lifecycle { plugin: String, function: String, error: String },
    /// Enabling needs a value for these `required` config items.
    #[error("{plugin} requires a value for config {} before it is enabled: {how}", keys.iter().map(|k| format!("{k:?}")).collect::<Vec<_>>().join(", "))]
    MissingConfig { plugin: String, keys: Vec<String>, how: String },
    /// A plugin is installed once per place (the organization, or a team).
    #[error("{name} (app_id {app_id}) is already installed for {place} as instance {id}: upgrade that instance (`interpose plugin upgrade {id} DIR`) or uninstall it first")]
    AlreadyInstalled { name: String, app_id: String, place: String, id: String },
    #[error("instance {0} comes from the gateway config file ([[plugins]]); change interpose.toml instead")]
    Declarative(String),
    #[error("{0}")]
    Store(#[from] interpose_registry::StoreError),
    #[error("{0}")]
    Internal(String),
}

impl ControlError {
    /// The HTTP status and the `errcode` the admin API answers with, in
    /// one place so the two cannot disagree.
    pub fn status_and_errcode(&self) -> (u16, &'static str) {
        use interpose_registry::StoreError;
        match self {
            ControlError::NotFound(_) => (404, "NotFound"),
            ControlError::BadRequest(_) => (400, "BadRequest"),
            ControlError::MissingConfig { .. } => (400, "MissingConfig"),
            ControlError::BadPlugin(_) => (422, "InvalidPlugin"),
            ControlError::Lifecycle { .. } => (422, "LifecycleFailed"),
            ControlError::Conflict(_) => (409, "Conflict"),
            ControlError::Declarative(_) => (409, "Declarative"),
            ControlError::AlreadyInstalled { .. } => (409, "AlreadyInstalled"),
            // Another node changed the registry first: the caller may retry.
            ControlError::Store(StoreError::Stale { .. }) => (409, "RegistryChanged"),
            ControlError::Store(StoreError::Unreachable) => (503, "StoreUnreachable"),
            ControlError::Store(_) | ControlError::Internal(_) => (500, "InternalError"),
        }
    }
}
