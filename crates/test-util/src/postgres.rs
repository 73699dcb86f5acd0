//! A throwaway PostgreSQL server for tests: `initdb` into a temporary folder
//! and `postgres` on a free loopback port, started once per test process and
//! stopped (its folder removed) by a small shell supervisor when the test
//! process is gone. Each caller gets a database of its own.
//!
//! Needs PostgreSQL's server binaries (Debian: `apt-get install postgresql`;
//! `.ci/run` installs them). Without them [`database`] returns `None` and
//! the test says it was skipped — unless `REQUIRE_POSTGRES=1` is set, as CI
//! does, which turns that into a failure.

use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

struct Server {
    port: u16,
}

static SERVER: OnceLock<Result<Server, String>> = OnceLock::new();
static NEXT_DB: AtomicU32 = AtomicU32::new(0);

/// The URL of a new, empty database on the test server; `None` (after
/// printing why) when PostgreSQL is not installed and not required.
pub async fn database() -> Option<String> {
    let server = match SERVER.get_or_init(start) {
        Ok(s) => s,
        Err(why) if std::env::var("REQUIRE_POSTGRES").is_ok_and(|v| v == "1") => {
            panic!("REQUIRE_POSTGRES=1 but the test PostgreSQL server did not start: {why}")
        }
        Err(why) => {
            eprintln!("skipped: no PostgreSQL for this test ({why})");
            return None;
        }
    };
    let admin = format!("postgres://postgres@127.0.0.1:{}/postgres", server.port);
    let name = format!("t{}_{}", std::process::id(), NEXT_DB.fetch_add(1, Ordering::Relaxed));
    // Listening is not yet accepting: it may still be starting up.
    let deadline = Instant::now() + Duration::from_secs(20);
    let pool = loop {
        match sqlx::PgPool::connect(&admin).await {
            Ok(p) => break p,
            Err(e) if Instant::now() > deadline => panic!("test PostgreSQL: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    };
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&pool)
        .await
        .unwrap_or_else(|e| panic!("test PostgreSQL: CREATE DATABASE: {e}"));
    pool.close().await;
    Some(format!("postgres://postgres@127.0.0.1:{}/{name}", server.port))
}

fn bin_dir() -> Result<PathBuf, String> {
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output() {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if dir.join("initdb").is_file() {
            return Ok(dir);
        }
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map_err(|_| "PostgreSQL is not installed (no pg_config, no /usr/lib/postgresql)".to_string())?
        .filter_map(Result::ok)
        .map(|e| e.path().join("bin"))
        .filter(|b| b.join("initdb").is_file() && b.join("postgres").is_file())
        .collect();
    found.sort();
    found.pop().ok_or_else(|| "no initdb under /usr/lib/postgresql/*/bin".to_string())
}

/// Commands as the `postgres` user when we are root (the server refuses to
/// run as root).
fn as_server_user(root: bool, program: &str) -> Command {
    if root {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--", program]);
        c
    } else {
        Command::new(program)
    }
}

fn start() -> Result<Server, String> {
    let bin = bin_dir()?;
    let root = Command::new("id").arg("-u").output().map(|o| o.stdout.trim_ascii() == b"0").unwrap_or(false);
    // As root the server runs as `postgres`, which must reach the folder:
    // /tmp is open to every user, a root-only TMPDIR may not be.
    let tmp = if root { PathBuf::from("/tmp") } else { std::env::temp_dir() };
    let dir = tmp.join(format!("interpose-pg-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    if root {
        let ok = Command::new("chown").arg("postgres:").arg(&dir).status().map(|s| s.success()).unwrap_or(false);
        if !ok {
            return Err(format!("cannot give {} to the postgres user", dir.display()));
        }
    }
    let data = dir.join("data");
    let initdb = bin.join("initdb");
    let out = as_server_user(root, &initdb.to_string_lossy())
        .args(["-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync", "-D"])
        .arg(&data)
        .output()
        .map_err(|e| format!("{}: {e}", initdb.display()))?;
    if !out.status.success() {
        return Err(format!("initdb failed: {}", String::from_utf8_lossy(&out.stderr)));
    }
    let port = crate::supervised::free_port()?;
    let server = format!(
        "{postgres} -D {data} -k {dir} -p {port} -h 127.0.0.1 -c fsync=off -c synchronous_commit=off \
         -c full_page_writes=off -c max_connections=200",
        postgres = bin.join("postgres").display(),
        data = data.display(),
        dir = dir.display(),
    );
    let sh = as_server_user(root, "sh");
    crate::supervised::start(sh, &server, "INT", &dir, port, Duration::from_secs(30), "postgres")?;
    Ok(Server { port })
}

/// Connections to the database at `url` that `LISTEN` to interpose's
/// registry announcements (one per listening gateway node).
pub async fn listeners(url: &str) -> i64 {
    let pool = sqlx::PgPool::connect(url).await.unwrap_or_else(|e| panic!("test PostgreSQL: {e}"));
    let n: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = current_database() AND query ILIKE 'LISTEN %interpose_registry%'",
    )
    .fetch_one(&pool)
    .await
    .unwrap_or_else(|e| panic!("test PostgreSQL: {e}"));
    pool.close().await;
    n
}

/// Terminate those connections (as a network cut would): announcements
/// sent before a node listens again are lost to it. Returns how many.
pub async fn cut_listeners(url: &str) -> usize {
    let pool = sqlx::PgPool::connect(url).await.unwrap_or_else(|e| panic!("test PostgreSQL: {e}"));
    let cut: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND query ILIKE 'LISTEN %interpose_registry%'",
    )
    .fetch_all(&pool)
    .await
    .unwrap_or_else(|e| panic!("test PostgreSQL: {e}"));
    pool.close().await;
    cut.into_iter().filter(|ok| *ok).count()
}
