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
    Ok(ExitCode::SUCCESS)
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
