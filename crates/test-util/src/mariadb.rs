//! A throwaway MariaDB server for tests, like [`crate::postgres`]:
//! `mariadb-install-db` into a temporary folder and `mariadbd` on a free
//! loopback port (no grant tables: every connection may do anything),
//! started once per test process and stopped, its folder removed, by a
//! small shell supervisor once the test process is gone.
//!
//! Needs MariaDB's server (Debian: `apt-get install mariadb-server`;
//! `.ci/run` installs it). Without it [`server`] returns `None` and the
//! test says it was skipped — unless `REQUIRE_MARIADB=1` is set, as CI does.

use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

static SERVER: OnceLock<Result<u16, String>> = OnceLock::new();
static NEXT: AtomicU32 = AtomicU32::new(0);

/// A `mysql://` URL on the test server with a prefix of its own (so each
/// caller's plugin databases are apart); `None` when MariaDB is not
/// installed and not required.
pub fn server() -> Option<String> {
    let port = match SERVER.get_or_init(start) {
        Ok(p) => *p,
        Err(why) if std::env::var("REQUIRE_MARIADB").is_ok_and(|v| v == "1") => {
            panic!("REQUIRE_MARIADB=1 but the test MariaDB server did not start: {why}")
        }
        Err(why) => {
            eprintln!("skipped: no MariaDB for this test ({why})");
            return None;
        }
    };
    let prefix = format!("t{}_{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
    Some(format!("mysql://root@127.0.0.1:{port}/{prefix}"))
}

fn find(names: &[&str]) -> Option<PathBuf> {
    for dir in ["/usr/sbin", "/usr/bin", "/usr/local/bin", "/usr/local/sbin"] {
        for n in names {
            let p = PathBuf::from(dir).join(n);
            if p.is_file() {
                return Some(p);
            }
        }
    }
    None
}

fn start() -> Result<u16, String> {
    let server = find(&["mariadbd", "mysqld"]).ok_or("MariaDB is not installed (no mariadbd)")?;
    let install = find(&["mariadb-install-db", "mysql_install_db"]).ok_or("no mariadb-install-db")?;
    let root = Command::new("id").arg("-u").output().map(|o| o.stdout.trim_ascii() == b"0").unwrap_or(false);
    let dir = PathBuf::from("/tmp").join(format!("interpose-mariadb-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let data = dir.join("data");
    let user: &[&str] = if root { &["--user=root"] } else { &[] };
    let out = Command::new(&install)
        .arg("--no-defaults")
        .arg(format!("--datadir={}", data.display()))
        .args(user)
        .args(["--auth-root-authentication-method=normal", "--skip-test-db"])
        .output()
        .map_err(|e| format!("{}: {e}", install.display()))?;
    if !out.status.success() {
        return Err(format!("mariadb-install-db failed: {}", String::from_utf8_lossy(&out.stderr)));
    }
    let port = crate::supervised::free_port()?;
    let server = format!(
        "{server} --no-defaults --datadir={data} --socket={dir}/sock --port={port} --bind-address=127.0.0.1 \
         --skip-grant-tables --skip-name-resolve --innodb-flush-log-at-trx-commit=0 --innodb-buffer-pool-size=64M \
         --max-connections=300 {user}",
        server = server.display(),
        data = data.display(),
        dir = dir.display(),
        user = user.join(" "),
    );
    crate::supervised::start(Command::new("sh"), &server, "TERM", &dir, port, Duration::from_secs(60), "mariadbd")?;
    Ok(port)
}
