//! Route lookup with 10,000 routes across 1,000 plugins (each plugin hooks
//! ten interfaces of its own, half of them team-level, installed per team).
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::sync::Arc;

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use interpose_manifest::{Manifest, PluginLevel};
use interpose_routing::{HookInput, Instance, RouteTable};

fn table() -> RouteTable<u32> {
    let mut inputs = Vec::new();
    for p in 0..1000u32 {
        let mut yaml = format!("service: {{app_id: p{p}, version: 1.0.0, name: p{p}, scope: 1}}\napis:\n");
        for r in 0..10 {
            if r % 2 == 0 {
                yaml += &format!("  - {{type: intercept, methods: [GET, POST], url: '/team/:teamUUID/res{p}/item{r}/:id', function: f}}\n");
            } else {
                yaml += &format!(
                    "  - {{type: intercept, methods: [GET], url: '/api{p}/things{r}/:id/detail', function: f}}\n"
                );
            }
        }
        let m = Manifest::parse(Path::new("plugin.yaml"), &yaml).unwrap();
        let inst = Arc::new(Instance {
            id: format!("i{p}"),
            app_id: format!("p{p}"),
            name: format!("p{p}"),
            version: "1.0.0".into(),
            level: PluginLevel::Team,
            team: Some(format!("T{}", p % 50)),
            seq: u64::from(p),
        });
        for api in m.apis {
            inputs.push(HookInput { instance: inst.clone(), api: Arc::new(api), payload: p });
        }
    }
    RouteTable::build(inputs).unwrap()
}

fn bench(c: &mut Criterion) {
    let t = table();
    let team_path = ["team", "T7", "res507", "item4", "abc"];
    let org_path = ["api999", "things3", "x1", "detail"];
    let miss = ["users", "me"];
    let mut g = c.benchmark_group("route_lookup_10k");
    g.bench_function("team_route", |b| {
        b.iter(|| {
            let m = t.lookup("project", "GET", black_box(&team_path)).unwrap();
            black_box(m.plan().intercepts.len())
        })
    });
    g.bench_function("org_route", |b| {
        b.iter(|| {
            let m = t.lookup("project", "GET", black_box(&org_path)).unwrap();
            black_box(m.plan().intercepts.len())
        })
    });
    g.bench_function("no_route", |b| b.iter(|| black_box(t.lookup("project", "GET", black_box(&miss)).is_none())));
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
