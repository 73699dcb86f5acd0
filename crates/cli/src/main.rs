//! The `interpose` binary: argument parsing and exit codes only; the work is
//! in the library crates. Each subcommand lives in its own module.

mod check;
mod client;
mod demo;
mod examples;
mod invoke;
mod new;
mod plugin;
mod routes;
mod serve;
mod watch;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

// The gateway allocates small, short-lived buffers on every request;
// mimalloc handles that pattern markedly better than glibc malloc.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "interpose",
    version,
    about = "An API gateway that runs ONES-style JS/TS plugins in front of a standard system"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the gateway (data plane) with a config file.
    Serve {
        /// Config file; without it the built-in defaults are used.
        #[arg(short, long, env = "INTERPOSE_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Everything on one machine: a sample standard system, the gateway, the example plugins.
    Demo {
        /// Gateway address.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: std::net::SocketAddr,
        /// Sample system address (port 0 picks a free one).
        #[arg(long, default_value = "127.0.0.1:0")]
        sample: std::net::SocketAddr,
    },
    /// Validate a plugin project: manifest, code, exported functions.
    Check {
        /// The plugin project (holds config/plugin.yaml).
        #[arg(default_value = ".")]
        dir: PathBuf,
        /// Also check scopes against this gateway config.
        #[arg(short, long)]
        config: Option<PathBuf>,
    },
    /// Print the effective route table per level context (offline from a
    /// config file, or from a running gateway with --admin).
    Routes {
        #[arg(short, long, env = "INTERPOSE_CONFIG")]
        config: Option<PathBuf>,
        /// Ask a running gateway's admin API instead (e.g. http://127.0.0.1:8081); token from $INTERPOSE_ADMIN_TOKEN.
        /// A --config given wins.
        #[arg(long, env = "INTERPOSE_ADMIN")]
        admin: Option<String>,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Plugin development, in a plugin project: `invoke run`, `invoke clear`, `invoke <lifecycle>`.
    Invoke {
        #[command(subcommand)]
        cmd: invoke::InvokeCmd,
    },
    /// Create a plugin project that checks clean and runs under `invoke run`.
    New {
        name: String,
        /// An organization-level plugin (default: team-level).
        #[arg(long)]
        org: bool,
    },
    /// Manage plugins on a running gateway through its admin API.
    Plugin {
        #[command(subcommand)]
        cmd: plugin::PluginCmd,
        /// Admin API URL (default $INTERPOSE_ADMIN or http://127.0.0.1:8081); token from $INTERPOSE_ADMIN_TOKEN.
        #[arg(long, global = true)]
        admin: Option<String>,
        /// Machine-readable output.
        #[arg(long, global = true)]
        json: bool,
    },
}

/// Exit status for bad input (config, manifest, plugin): nothing was started.
pub const EXIT_BAD_INPUT: u8 = 2;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.cmd {
        Cmd::Serve { config } => serve::run(config.as_deref()),
        Cmd::Demo { listen, sample } => demo::run(listen, sample),
        Cmd::Check { dir, config } => check::run(&dir, config.as_deref()),
        Cmd::Routes { config, admin, json } => routes::run(config.as_deref(), admin, json),
        Cmd::Plugin { cmd, admin, json } => plugin::run(cmd, admin, json),
        Cmd::Invoke { cmd } => invoke::run(cmd),
        Cmd::New { name, org } => new::run(&name, org),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Load the config named on the command line, or the built-in default.
pub fn load_config(path: Option<&std::path::Path>) -> Result<interpose_config::Config, interpose_config::ConfigError> {
    match path {
        Some(p) => interpose_config::Config::load(p),
        None => interpose_config::Config::default_with_env(),
    }
}

/// Logs to stderr; `INTERPOSE_LOG` or `RUST_LOG` override the config's level.
/// Colours only on a terminal (a log file or a container's log gets plain
/// text) and never with `NO_COLOR` set.
pub fn init_tracing(level: &str) {
    use std::io::IsTerminal;
    let (source, wanted) = match std::env::var("INTERPOSE_LOG").map(|v| ("INTERPOSE_LOG", v)) {
        Ok(v) => v,
        Err(_) => std::env::var("RUST_LOG").map(|v| ("RUST_LOG", v)).unwrap_or(("log.level", level.to_string())),
    };
    let (filter, bad) = match tracing_subscriber::EnvFilter::try_new(&wanted) {
        Ok(f) => (f, None),
        Err(e) => (tracing_subscriber::EnvFilter::new("info"), Some(e)),
    };
    let ansi = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(ansi)
        .try_init();
    if let Some(e) = bad {
        tracing::warn!("{source}={wanted:?} is not a log filter ({e}); logging at info");
    }
}
