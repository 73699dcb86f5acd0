//! What the throwaway database servers of [`crate::postgres`] and
//! [`crate::mariadb`] share: a free loopback port, and a small shell
//! supervisor that runs the server, stops it (and removes its folder) once
//! the test process is gone — statics are never dropped — and is waited on
//! until the server listens.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A loopback port nothing listens on now.
pub(crate) fn free_port() -> Result<u16, String> {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).map_err(|e| e.to_string())
}

/// Run `server` (a shell command line, its output to `dir/log`) through
/// `sh` (a `Command` for `sh`, as whichever user must run it); stopped with
/// `signal` once this process has exited. Waits up to `within` for it to
/// listen on `port`; `name` is for messages.
pub(crate) fn start(
    mut sh: Command,
    server: &str,
    signal: &str,
    dir: &Path,
    port: u16,
    within: Duration,
    name: &str,
) -> Result<(), String> {
    let script = format!(
        "{server} >{dir}/log 2>&1 & pid=$!\n\
         while [ -d /proc/{parent} ] && kill -0 $pid 2>/dev/null; do sleep 1; done\n\
         kill -{signal} $pid 2>/dev/null; wait $pid; rm -rf {dir}\n",
        dir = dir.display(),
        parent = std::process::id(),
    );
    sh.arg("-c")
        .arg(script)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start {name}: {e}"))?;
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let log = std::fs::read_to_string(dir.join("log")).unwrap_or_default();
    Err(format!("{name} did not listen on port {port} within {} s: {log}", within.as_secs()))
}
