//! `interpose check DIR`: everything install would check, without installing.

use std::path::Path;
use std::process::ExitCode;

use interpose_gateway::LoadedPlugin;
use interpose_manifest::PluginLevel;

use crate::EXIT_BAD_INPUT;

pub fn run(dir: &Path, config: Option<&Path>) -> anyhow::Result<ExitCode> {
    let config = match crate::load_config(config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(ExitCode::from(EXIT_BAD_INPUT));
        }
    };
    // Warnings are worth showing even when the plugin is fine.
    if let Ok(m) = interpose_manifest::Manifest::load(dir) {
        for w in &m.warnings {
            eprintln!("{w}");
        }
    }
    match LoadedPlugin::load(dir, &config) {
        Ok(p) => {
            let s = &p.manifest.service;
            let level = match s.level {
                PluginLevel::Team => "team-level",
                PluginLevel::Organization => "organization-level",
            };
            println!("ok: {} {} (app_id {}, {level})", s.name, s.version, s.app_id);
            println!("  entry: {}", p.code.entry);
            for api in &p.manifest.apis {
                let query = if api.query.is_empty() { String::new() } else { format!(" ?{}", api.query_string()) };
                println!(
                    "  {:<9} {:<12} {}:{}{query} -> {}()",
                    api.kind.as_str(),
                    api.methods.join(","),
                    api.scope,
                    api.url,
                    api.function
                );
            }
            let m = &p.manifest;
            for t in &m.timers {
                println!("  {:<9} {:<12} {} -> {}()", "timer", t.id, t.schedule.describe(), t.function);
            }
            for e in &m.events {
                println!("  {:<9} {} -> {}()", "event", e.event_type, e.function);
            }
            for e in &m.entities {
                let indexes: Vec<&str> = e.indexes.iter().map(|i| i.name.as_str()).collect();
                println!(
                    "  {:<9} {} ({}){}",
                    "entity",
                    e.name,
                    e.attributes
                        .iter()
                        .map(|(n, a)| format!("{n}: {}", a.kind.as_str()))
                        .collect::<Vec<_>>()
                        .join(", "),
                    if indexes.is_empty() { String::new() } else { format!(", indexes {}", indexes.join(", ")) }
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("error: {} has {} problem(s):", dir.display(), e.problems.len());
            for p in &e.problems {
                eprintln!("  - {p}");
            }
            Ok(ExitCode::from(EXIT_BAD_INPUT))
        }
    }
}
