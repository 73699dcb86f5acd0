//! A plugin database's `select` by primary key, measured on either backend:
//! a table of 100,000 rows, then random-key selects for a fixed time from
//! `TASKS` callers; selects/s and p50/p99.
//!
//!   cargo run --release -p interpose-plugindb --example select_bench              # embedded SQLite
//!   cargo run --release -p interpose-plugindb --example select_bench -- mysql://root@127.0.0.1:3306/bench
//!
//! Env: ROWS (100000), SECONDS (5), TASKS (8).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use interpose_plugindb::PluginDb;

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let (rows, seconds, tasks) = (env("ROWS", 100_000), env("SECONDS", 5), env("TASKS", 8));
    let dir = tempfile::tempdir().expect("tmp");
    let (db, name) = match std::env::args().nth(1) {
        Some(url) => (PluginDb::mysql(&url).await.expect("connect"), url),
        None => (PluginDb::sqlite(dir.path().join("dbs")), "embedded SQLite".to_string()),
    };
    let db = Arc::new(db);
    let ws = dir.path();
    std::fs::write(
        ws.join("plugin.sql"),
        "DROP TABLE IF EXISTS `{{items}}`;\nCREATE TABLE `{{items}}` (`id` int NOT NULL AUTO_INCREMENT, `name` varchar(64) NOT NULL, `score` int NOT NULL DEFAULT 0, PRIMARY KEY (`id`)) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;\n",
    )
    .expect("write");
    db.import_sql("bench", ws, "plugin.sql").await.expect("import");
    let t0 = Instant::now();
    for start in (0..rows).step_by(1000) {
        let values: Vec<String> = (start..(start + 1000).min(rows)).map(|i| format!("('n{i}', {})", i % 100)).collect();
        db.exec("bench", "insert", &format!("INSERT INTO items (name, score) VALUES {}", values.join(", ")))
            .await
            .expect("insert");
    }
    println!("{name}: {rows} rows (inserted in {:.1} s)", t0.elapsed().as_secs_f64());
    let until = Instant::now() + Duration::from_secs(seconds);
    let mut handles = Vec::new();
    for t in 0..tasks {
        let db = db.clone();
        handles.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut x: u64 = 0x9E37_79B9_7F4A_7C15 ^ t;
            while Instant::now() < until {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let s = Instant::now();
                let r = db
                    .select("bench", &format!("SELECT id, name, score FROM items WHERE id = {}", x % rows + 1))
                    .await
                    .expect("select");
                assert_eq!(r.len(), 1);
                lat.push(s.elapsed());
            }
            lat
        }));
    }
    let mut all = Vec::new();
    for h in handles {
        all.extend(h.await.expect("task"));
    }
    all.sort();
    let pct = |p: f64| all[((all.len() as f64 * p) as usize).min(all.len() - 1)].as_secs_f64() * 1e3;
    println!(
        "  select by primary key: {:.0}/s, p50 {:.3} ms, p99 {:.3} ms ({} selects, {tasks} callers, {seconds} s)",
        all.len() as f64 / seconds as f64,
        pct(0.5),
        pct(0.99),
        all.len()
    );
    db.drop_instance("bench").await.expect("drop");
}
