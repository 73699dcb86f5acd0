//! Entity storage on the gateway's store, measured: 100,000 records of one
//! instance, then `get` of random keys and `set` (updates) for a fixed time
//! each, from `TASKS` concurrent callers; ops/s and p50/p99 per op.
//!
//!   cargo run --release -p interpose-registry --example entity_bench -- sqlite:///tmp/eb.db
//!   cargo run --release -p interpose-registry --example entity_bench -- postgres://…
//!
//! Env: RECORDS (100000), SECONDS (5 per op), TASKS (8).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use interpose_registry::Store;

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn employee() -> interpose_manifest::Entity {
    let yaml = "service: {app_id: a, version: 1.0.0, name: n}\nstorage:\n  entities:\n    - name: employee\n      attributes:\n        name: {type: string, length: 32, required: true}\n        age: {type: integer, required: true}\n        deleted: {type: boolean, default: false}\n      indexes:\n        - {name: by_age, range_attribute: age, partition: [deleted]}\n";
    let m = interpose_manifest::Manifest::parse(std::path::Path::new("plugin.yaml"), yaml).expect("manifest");
    m.entities.into_iter().next().expect("entity")
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)].as_secs_f64() * 1e3
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let url = std::env::args().nth(1).expect("a store URL");
    let (records, seconds, tasks) = (env("RECORDS", 100_000), env("SECONDS", 5), env("TASKS", 8));
    let store = Store::open(&url).await.expect("open");
    let e = Arc::new(employee());
    let t0 = Instant::now();
    let have = store.entity_count("bench", &e, &Default::default()).await.expect("count");
    if have < records {
        for chunk in (have..records).collect::<Vec<_>>().chunks(1000) {
            let items: Vec<_> = chunk
                .iter()
                .map(|i| {
                    (
                        format!("k{i:06}"),
                        serde_json::json!({"name": format!("n{i}"), "age": i % 90, "deleted": i % 2 == 0}),
                    )
                })
                .collect();
            store.entity_set("bench", &e, &items).await.expect("seed");
        }
    }
    println!("{url}: {records} records (seeded in {:.1} s)", t0.elapsed().as_secs_f64());
    for op in ["get", "set"] {
        let until = Instant::now() + Duration::from_secs(seconds);
        let mut handles = Vec::new();
        for t in 0..tasks {
            let (store, e) = (store.clone(), e.clone());
            handles.push(tokio::spawn(async move {
                let mut lat = Vec::new();
                let mut x: u64 = 0x9E37_79B9_7F4A_7C15 ^ t;
                while Instant::now() < until {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    let key = format!("k{:06}", x % records);
                    let s = Instant::now();
                    if op == "get" {
                        store.entity_get("bench", "employee", &key).await.expect("get").expect("there");
                    } else {
                        let v = serde_json::json!({"name": "updated", "age": (x % 90) as i64});
                        store.entity_set("bench", &e, &[(key, v)]).await.expect("set");
                    }
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
        println!(
            "  {op}: {:.0} ops/s, p50 {:.3} ms, p99 {:.3} ms ({} ops, {tasks} callers, {seconds} s)",
            all.len() as f64 / seconds as f64,
            percentile(&all, 0.50),
            percentile(&all, 0.99),
            all.len()
        );
    }
}
