//! Runs one hook call `N` times on the calling thread (request conversion,
//! the benchmark plugin's function, result conversion), for counting
//! instructions per call under callgrind, where criterion's timing is too
//! noisy to see a few percent:
//!
//! ```text
//! cargo build --release -p interpose-js --example callcost
//! B=target/release/examples/callcost
//! valgrind --tool=callgrind $B 200 block; valgrind --tool=callgrind $B 2200 block
//! ```
//!
//! (the difference of the two totals / 2000 is the cost of one call; `allow`
//! instead of `block` for a request the plugin lets through). With
//! `CALLCOST_PLUGIN=file.js` it runs that file's `preIntercept` instead;
//! `CALLCOST_HEADERS=N` adds N headers to the request.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use interpose_js::{Instance, InstanceLimits, LocalRuntime, PluginCode};

#[path = "../benches/common/mod.rs"]
mod common;
use common::{request, PLUGIN};

// The allocator the `interpose` binary uses.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().and_then(|n| n.parse().ok()).expect("usage: callcost N [allow|block]");
    let block = args.next().as_deref() == Some("block");
    let mut request = request(block);
    // CALLCOST_HEADERS=N: N more headers, as a browser sends (cookies, accept-*, …).
    let extra: usize = std::env::var("CALLCOST_HEADERS").ok().and_then(|n| n.parse().ok()).unwrap_or(0);
    let more = (0..extra).map(|i| (format!("x-extra-{i}"), format!("value number {i} of a browser-like header")));
    request.headers = request.headers.iter().map(|(k, v)| (k.to_string(), v.to_string())).chain(more).collect();
    let source = std::env::var("CALLCOST_PLUGIN").map(|f| std::fs::read_to_string(f).unwrap());
    let code = Arc::new(PluginCode::from_source("backend/src/index.js", source.as_deref().unwrap_or(PLUGIN)).unwrap());
    let instance = Instance::new("bench0001", "bench-block", code, InstanceLimits::default(), None);
    let mut local = LocalRuntime::new(instance, Duration::from_secs(1), None).unwrap();
    for _ in 0..n {
        local.call("preIntercept", &request, Duration::from_secs(1)).unwrap();
    }
}
