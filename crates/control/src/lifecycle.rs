//! The plugin lifecycle functions of the ONES platform, run at each change:
//! `Install`, `Enable`, `Disable`, `UnInstall`, `Upgrade(oldPluginInfo)`,
//! `Start`, `Stop`, and for organization-level plugins the `Org*` twins
//! (`OrgInstall(request, teamUUIDList, firstInstall)`, …), preferred when
//! exported. A function that is not exported is skipped. One that throws or
//! times out fails the step, and the caller rolls the change back.

use std::time::Duration;

use interpose_gateway::{Gateway, InstalledInstance};
use interpose_js::{CallOutcome, HookError};
use interpose_manifest::PluginLevel;
use serde_json::{json, Value};

use crate::ControlError;

#[derive(Debug, Clone)]
pub enum Step {
    Install,
    Enable,
    Start,
    Stop,
    Disable,
    UnInstall,
    /// With `oldPluginInfo` (`{app_id, version, name, instance_uuid}`).
    Upgrade(Value),
}

impl Step {
    fn name(&self) -> &'static str {
        match self {
            Step::Install => "Install",
            Step::Enable => "Enable",
            Step::Start => "Start",
            Step::Stop => "Stop",
            Step::Disable => "Disable",
            Step::UnInstall => "UnInstall",
            Step::Upgrade(_) => "Upgrade",
        }
    }
}

/// The function to call and its arguments, as the platform passes them.
fn call_for(inst: &InstalledInstance, step: &Step) -> Vec<(String, Vec<Value>)> {
    let plain = step.name().to_string();
    let base_args = match step {
        Step::Upgrade(old) => vec![old.clone()],
        _ => Vec::new(),
    };
    if inst.meta.level == PluginLevel::Team || matches!(step, Step::Start | Step::Stop) {
        return vec![(plain, base_args)];
    }
    let request = json!({
        "method": "POST",
        "url": format!("/lifecycle/{}", step.name()),
        "headers": {},
        "body": { "instanceUUID": inst.meta.id, "appId": inst.meta.app_id, "version": inst.meta.version },
    });
    let teams: Vec<Value> = Vec::new();
    let org_args = match step {
        Step::Install => vec![request, json!(teams), json!(true)],
        Step::Upgrade(old) => vec![old.clone(), request, json!(teams)],
        _ => vec![request, json!(teams)],
    };
    vec![(format!("Org{}", step.name()), org_args), (plain, base_args)]
}

/// Run one step for `inst`; `Ok(Some(name))` names the function that ran.
/// It runs on the JS workers that run the plugin's hooks, so what it leaves
/// in module state (a cache `Start` loads) is there for them.
pub async fn run(gw: &Gateway, inst: &InstalledInstance, step: Step) -> Result<Option<String>, ControlError> {
    let timeout = Duration::from_millis(gw.config.limits.hook_timeout_ms.max(5000));
    let plugin = inst.meta.name.clone();
    let fail = |function: &str, error: String| ControlError::Lifecycle {
        plugin: plugin.clone(),
        function: function.to_string(),
        error,
    };
    for (function, args) in call_for(inst, &step) {
        match gw.host.call_json(&inst.js, &function, args, timeout).await {
            Err(HookError::NotExported(_)) => continue,
            Ok(CallOutcome::Returned(_)) => {
                tracing::info!(plugin = %plugin, instance = %inst.meta.id, "ran {function}()");
                return Ok(Some(function));
            }
            Ok(CallOutcome::Rejected(p)) => return Err(fail(&function, format!("threw {}: {}", p.errcode, p.reason))),
            Err(e) => return Err(fail(&function, e.to_string())),
        }
    }
    Ok(None)
}

/// Run steps in order, stopping at the first failure.
pub async fn run_all(gw: &Gateway, inst: &InstalledInstance, steps: &[Step]) -> Result<(), ControlError> {
    for step in steps {
        run(gw, inst, step.clone()).await?;
    }
    Ok(())
}
