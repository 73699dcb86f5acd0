//! One hook call: request conversion + JS call + result conversion, with the
//! benchmark plugin of ../shared/bench (reject when `X-Block: 1`).
//!
//! - `direct`: on the calling thread (what a worker does per job).
//! - `pool`: through `JsHost` from async code (channel, worker thread, oneshot).
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use common::{request, PLUGIN};
use criterion::{criterion_group, criterion_main, Criterion};
use interpose_js::{HostOptions, Instance, InstanceLimits, JsHost, LocalRuntime, PluginCode};

mod common;

// The allocator the `interpose` binary uses.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn bench(c: &mut Criterion) {
    let code = Arc::new(PluginCode::from_source("backend/src/index.js", PLUGIN).unwrap());
    let instance = Instance::new("bench0001", "bench-block", code, InstanceLimits::default(), None);
    let mut local = LocalRuntime::new(instance.clone(), Duration::from_secs(1), None).unwrap();
    let allowed = request(false);
    let blocked = request(true);
    let mut g = c.benchmark_group("hook_call");
    g.bench_function("direct/allowed", |b| {
        b.iter(|| local.call("preIntercept", &allowed, Duration::from_secs(1)).unwrap())
    });
    g.bench_function("direct/blocked", |b| {
        b.iter(|| local.call("preIntercept", &blocked, Duration::from_secs(1)).unwrap())
    });

    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let host = JsHost::new(HostOptions::new(1), None);
    let allowed = Arc::new(allowed);
    g.bench_function("pool/allowed", |b| {
        b.iter(|| rt.block_on(host.call(&instance, "preIntercept", allowed.clone(), Duration::from_secs(1))).unwrap())
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
