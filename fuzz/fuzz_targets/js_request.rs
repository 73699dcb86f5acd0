//! Request conversion to the JS object and back: arbitrary header, query and
//! body contents reach a real QuickJS function and its result is converted,
//! without a panic.
#![no_main]
use std::cell::RefCell;
use std::sync::Arc;
use std::time::Duration;

use interpose_js::{Body, HookRequest, Instance, InstanceLimits, LocalRuntime, PluginCode};
use libfuzzer_sys::fuzz_target;

const PLUGIN: &str = "export function f(r) { return { statusCode: 200, body: { h: r.headers['X-A'], q: r.query, b: r.body, p: r.params } } }\n";

thread_local! {
    static RT: RefCell<LocalRuntime> = RefCell::new({
        let code = Arc::new(PluginCode::from_source("backend/src/index.js", PLUGIN).expect("plugin"));
        let inst = Instance::new("fuzz", "fuzz", code, InstanceLimits::default(), None);
        LocalRuntime::new(inst, Duration::from_secs(5), None).expect("runtime")
    });
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data).into_owned();
    let parts: Vec<&str> = text.splitn(4, '\u{1}').collect();
    let get = |i: usize| parts.get(i).copied().unwrap_or("").to_string();
    let body = match serde_json::from_str::<serde_json::Value>(&get(3)) {
        Ok(v) => Body::Json(v),
        Err(_) if get(3).is_empty() => Body::Empty,
        Err(_) => Body::Text(get(3)),
    };
    let req = HookRequest {
        method: "POST".into(),
        url: format!("/x?{}", get(1)),
        path: "/x".into(),
        query: vec![(get(1), get(2))],
        params: vec![("teamUUID".into(), get(2))],
        headers: [("x-a".to_string(), get(0)), (get(1).to_lowercase(), get(2))].into_iter().collect(),
        body,
        ..Default::default()
    };
    RT.with(|rt| {
        let _ = rt.borrow_mut().call("f", &req, Duration::from_secs(2));
    });
});
