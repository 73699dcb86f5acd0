//! `interpose routes`: the effective route table of a config, per level
//! context, each interface with its hooks in execution order.

use std::path::Path;
use std::process::ExitCode;

use interpose_control::routes::describe;
use interpose_gateway::plugins::{build_routes, declared_instances};

use crate::EXIT_BAD_INPUT;

pub fn run(config: Option<&Path>, admin: Option<String>, as_json: bool) -> anyhow::Result<ExitCode> {
    if let Some(url) = admin.filter(|_| config.is_none()) {
        let admin = crate::client::Admin::new(Some(url));
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        return match rt.block_on(admin.call(http::Method::GET, "/api/routes", None)) {
            Ok(serde_json::Value::Array(rows)) => {
                print_rows(&rows, as_json)?;
                if !as_json {
                    if let Ok(serde_json::Value::Array(timers)) =
                        rt.block_on(admin.call(http::Method::GET, "/api/timers", None))
                    {
                        print_timers(&timers);
                    }
                }
                Ok(ExitCode::SUCCESS)
            }
            Ok(other) => {
                println!("{other}");
                Ok(ExitCode::SUCCESS)
            }
            Err(e) => {
                eprintln!("error: {e}");
                Ok(ExitCode::FAILURE)
            }
        };
    }
    if config.is_none() {
        eprintln!(
            "(the table of the built-in default config; -c FILE for a config's, --admin URL for a running gateway's)"
        );
    }
    let config = match crate::load_config(config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(ExitCode::from(EXIT_BAD_INPUT));
        }
    };
    let instances = match declared_instances(&config) {
        Ok(i) => i,
        Err(problems) => {
            eprintln!("error: cannot install the configured plugins:\n{}", problems.join("\n"));
            return Ok(ExitCode::from(EXIT_BAD_INPUT));
        }
    };
    let table = match build_routes(&instances, &interpose_gateway::metrics::Metrics::default()) {
        Ok(t) => t,
        Err(conflicts) => {
            for c in conflicts {
                eprintln!("error: {c}");
            }
            return Ok(ExitCode::from(EXIT_BAD_INPUT));
        }
    };
    print_rows(&describe(&table), as_json)?;
    if !as_json {
        let timers: Vec<serde_json::Value> = instances
            .iter()
            .flat_map(|i| {
                i.plugin.manifest.timers.iter().map(|t| {
                    serde_json::json!({"instance": i.meta.id, "plugin": i.meta.name, "id": t.id,
                        "function": t.function, "schedule": t.schedule.describe()})
                })
            })
            .collect();
        print_timers(&timers);
    }
    Ok(ExitCode::SUCCESS)
}

/// The timer tasks after the routes: `timers:` and one line each.
fn print_timers(timers: &[serde_json::Value]) {
    if timers.is_empty() {
        return;
    }
    println!("timers:");
    for t in timers {
        println!(
            "    {}  [{} instance {}]",
            timer_line(t),
            t["plugin"].as_str().unwrap_or(""),
            t["instance"].as_str().unwrap_or("")
        );
    }
}

/// `timer t1 every 30 s -> tick()  next 19:20:30, last ok 12 ms at 19:20:00 (5 runs, 1 failed)`.
pub fn timer_line(t: &serde_json::Value) -> String {
    let s = |k: &str| t[k].as_str().unwrap_or("").to_string();
    let clock = |secs: i64| {
        chrono::DateTime::from_timestamp(secs, 0)
            .map(|d| d.with_timezone(&chrono::Local).format("%Y-%m-%d %H:%M:%S").to_string())
            .unwrap_or_default()
    };
    let mut line = format!("timer {} {} -> {}()", s("id"), s("schedule"), s("function"));
    if let Some(next) = t["next_run"].as_i64() {
        line += &format!("  next {}", clock(next));
    }
    let last = &t["last_run"];
    if let Some(at) = last["at"].as_i64() {
        let how = match last["error"].as_str() {
            None => "ok".to_string(),
            Some(e) => format!("failed ({e})"),
        };
        line += &format!(", last {how} {} ms at {}", last["ms"], clock(at));
    }
    if let Some(runs) = t["runs"].as_i64().filter(|r| *r > 0) {
        line += &format!(" ({runs} runs, {} failed)", t["failures"].as_i64().unwrap_or(0));
    }
    if t["running"].as_bool() == Some(true) {
        line += " [running]";
    }
    line
}

fn print_rows(rows: &[serde_json::Value], as_json: bool) -> anyhow::Result<()> {
    if as_json {
        println!("{}", serde_json::to_string_pretty(rows)?);
    } else if rows.is_empty() {
        println!("no hooks: every request is proxied untouched");
    } else {
        for r in rows {
            println!(
                "{} {}  [scope {}, {}]",
                r["method"].as_str().unwrap_or(""),
                r["pattern"].as_str().unwrap_or(""),
                r["scope"].as_str().unwrap_or(""),
                r["context"].as_str().unwrap_or("")
            );
            for h in r["hooks"].as_array().into_iter().flatten() {
                println!("    {}", h.as_str().unwrap_or(""));
            }
        }
    }
    Ok(())
}
