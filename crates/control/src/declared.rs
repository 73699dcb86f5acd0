//! The lifecycle of the config file's `[[plugins]]` instances, as an
//! installed instance's: `Install` and `Enable` the first time their place
//! has them, `Upgrade(oldPluginInfo)` when their version changed (at start,
//! or when `serve` reloads the project), `Start`/`Stop` every run. The store
//! remembers which version each one last ran ([`interpose_registry::Arrival`]),
//! so these run once across restarts and across the nodes sharing it.

use interpose_gateway::{Gateway, InstalledInstance};
use interpose_registry::{Arrival, DeclaredRow, Store};
use serde_json::json;

use crate::lifecycle::{self, Step};
use crate::ControlError;

fn row(inst: &InstalledInstance) -> DeclaredRow {
    let m = &inst.meta;
    DeclaredRow {
        id: m.id.clone(),
        app_id: m.app_id.clone(),
        team: m.team.clone(),
        version: m.version.clone(),
        name: m.name.clone(),
    }
}

/// Run what `inst` is owed on arriving at this node (not `Start`: the caller
/// starts everything it runs). A failing function takes the claim back, so
/// the next start owes it again, and fails the whole start or reload.
pub(crate) async fn arrive(gw: &Gateway, store: &Store, inst: &InstalledInstance) -> Result<(), ControlError> {
    let d = row(inst);
    let arrival = store.arrive_declared(&d).await?;
    let steps = match &arrival {
        Arrival::Known => return Ok(()),
        Arrival::First => vec![Step::Install, Step::Enable],
        Arrival::Upgraded { version, name } => vec![Step::Upgrade(json!({
            "app_id": d.app_id, "version": version, "name": name, "instance_uuid": d.id,
        }))],
    };
    if let Err(e) = lifecycle::run_all(gw, inst, &steps).await {
        if let Err(undo) = store.undo_arrival(&d, &arrival).await {
            tracing::error!(instance = %d.id, "cannot take back the record of {}: {undo}", d.name);
        }
        return Err(e);
    }
    match arrival {
        Arrival::First => {
            tracing::info!(instance = %d.id, "{} {} is new at {}: ran its Install and Enable", d.name, d.version, inst.meta.place())
        }
        _ => tracing::info!(instance = %d.id, "{} upgraded to {}: ran its Upgrade", d.name, d.version),
    }
    Ok(())
}
