//! Patterns and paths from the fuzzer: parsing, table building (conflicts
//! are fine) and lookups never panic, and a match always yields a plan.
#![no_main]
use std::sync::Arc;

use interpose_manifest::{Manifest, PluginLevel};
use interpose_routing::{HookInput, Instance, RouteTable};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut lines = text.lines();
    let mut inputs = Vec::new();
    for (i, url) in lines.by_ref().take(8).enumerate() {
        let _ = interpose_manifest::UrlPattern::parse(url);
        let yaml = format!(
            "service: {{app_id: p{i}, version: 1.0.0, name: p{i}, scope: 2}}\napis:\n  - {{type: intercept, methods: [GET], url: {:?}, function: f}}\n",
            url
        );
        let Ok(m) = Manifest::parse(std::path::Path::new("p.yaml"), &yaml) else { continue };
        let inst = Arc::new(Instance {
            id: format!("i{i}"),
            app_id: format!("p{i}"),
            name: format!("p{i}"),
            version: "1.0.0".into(),
            level: if i % 2 == 0 { PluginLevel::Organization } else { PluginLevel::Team },
            team: (i % 2 == 1).then(|| "T1".to_string()),
            seq: i as u64,
        });
        for api in m.apis {
            inputs.push(HookInput { instance: inst.clone(), api: Arc::new(api), payload: () });
        }
    }
    let Ok(table) = RouteTable::build(inputs) else { return };
    for path in lines {
        let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        if let Some(m) = table.lookup("project", "GET", &segs) {
            let _ = m.plan().groups().count();
            let _ = m.interface.team(&m.values);
        }
    }
});
