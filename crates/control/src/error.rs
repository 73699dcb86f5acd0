//! Why a change was refused; each maps to one HTTP status in the admin API.

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
    /// The HTTP status the admin API answers with.
    pub fn status(&self) -> u16 {
        match self {
            ControlError::NotFound(_) => 404,
            ControlError::BadRequest(_) | ControlError::MissingConfig { .. } => 400,
            ControlError::BadPlugin(_) | ControlError::Lifecycle { .. } => 422,
            ControlError::Conflict(_) | ControlError::Declarative(_) | ControlError::AlreadyInstalled { .. } => 409,
            // Another node changed the registry first: the caller may retry.
            ControlError::Store(interpose_registry::StoreError::Stale { .. }) => 409,
            ControlError::Store(interpose_registry::StoreError::Unreachable) => 503,
            ControlError::Store(_) | ControlError::Internal(_) => 500,
        }
    }
}
