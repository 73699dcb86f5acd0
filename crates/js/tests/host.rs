//! The JS host as the gateway uses it: real QuickJS, real worker threads.

use std::sync::Arc;
use std::time::{Duration, Instant};

use interpose_js::{
    Body, CallOutcome, HookError, HookRequest, HostOptions, Instance, InstanceLimits, JsHost, LogLevel, PluginCode,
};
use serde_json::json;

fn project(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    for (path, text) in files {
        let p = dir.path().join(path);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(p, text).expect("write");
    }
    dir
}

fn instance(dir: &tempfile::TempDir) -> Arc<Instance> {
    let code = PluginCode::load(dir.path()).expect("code loads");
    Instance::new("inst-1", "test-plugin", Arc::new(code), InstanceLimits { memory_mb: 16, stack_kb: 512 }, None)
}

fn request() -> Arc<HookRequest> {
    Arc::new(HookRequest {
        method: "POST".into(),
        url: "/team/T1/tasks?x=1&x=2&y=3".into(),
        path: "/team/T1/tasks".into(),
        query: vec![("x".into(), "1".into()), ("x".into(), "2".into()), ("y".into(), "3".into())],
        params: vec![("teamUUID".into(), "T1".into())],
        headers: [("ones-user-id", "U1"), ("content-type", "application/json")].into_iter().collect(),
        body: Body::Json(json!({"summary": "hi", "n": 3})),
        team_uuid: Some("T1".into()),
        user_uuid: Some("U1".into()),
        request_id: Some("req-1".into()),
        ..Default::default()
    })
}

const TS: &str = r#"
import { Logger } from '@ones-op/node-logger'
import { PluginError, clientError, CommonReason } from '@ones-op/node-error'
import type { PluginRequest } from '@ones-op/node-types'
import { double } from './lib/math'

interface Out { seen: string }

export async function echo(request: PluginRequest): Promise<Out | any> {
  Logger.info('[Plugin] headers', request.headers['Ones-User-Id'], { n: 1 })
  return {
    statusCode: 200,
    body: {
      user: request.headers['Ones-User-Id'],
      lower: request.headers['ones-user-id'],
      missing: request.headers['X-None'] ?? null,
      has: ['Ones-User-Id' in request.headers, 'ones-user-id' in request.headers, 'X-None' in request.headers],
      keys: Object.keys({ ...request.headers }).includes('ones-user-id'),
      text: String(request.headers),
      query: request.query, params: request.params, body: request.body,
      method: request.method, url: request.url, path: request.path,
      team: request.teamUUID, userUUID: request.userUUID, twice: double(request.body.n),
    },
  }
}

export function reject() { return { statusCode: 403, body: { reason: 'no' } } }
export function pluginError() { throw new PluginError('warning', 'Archived', 'user is archived', 403) }
export function client() { throw clientError(CommonReason.InvalidParameter) }
export function boom(): never {
  const x: number = 1
  throw new TypeError('bad thing ' + x)
}
export function spin() { while (true) {} }
export function grow() { const a: string[] = []; for (;;) a.push('x'.repeat(1024)) }
export function recurse(n: number): number { return recurse(n + 1) + 1 }
export function stringifyLoop() { const big = Array.from({ length: 20000 }, (_, i) => ({ i, s: 'abc' })); for (;;) JSON.stringify(big) }
export function throwString() { throw 'just a string' }
export function cyclic() { const o: any = {}; o.self = o; return { body: o } }
export async function never() { return new Promise(() => {}) }
let counter = 0
export function count() { counter += 1; return { body: counter } }
"#;

fn host() -> JsHost {
    JsHost::new(HostOptions::new(2), None)
}

async fn call(host: &JsHost, inst: &Arc<Instance>, f: &str, ms: u64) -> Result<CallOutcome, HookError> {
    host.call(inst, f, request(), Duration::from_millis(ms)).await
}

#[tokio::test]
async fn typescript_plugin_sees_the_request_contract() {
    let dir = project(&[
        ("backend/src/index.ts", TS),
        ("backend/src/lib/math.ts", "export const double = (n: number): number => n * 2\n"),
    ]);
    let inst = instance(&dir);
    let h = host();
    let out = call(&h, &inst, "echo", 1000).await.expect("ok");
    let CallOutcome::Returned(Some(v)) = out else { panic!("{out:?}") };
    assert_eq!(v["statusCode"], 200);
    let b = &v["body"];
    assert_eq!((b["user"].as_str(), b["lower"].as_str()), (Some("U1"), Some("U1")));
    assert_eq!(b["missing"], serde_json::Value::Null);
    assert_eq!(b["has"], json!([true, true, false]));
    assert_eq!(b["keys"], json!(true), "spread copies the lower-case names");
    assert_eq!(b["text"], json!("[object Object]"), "the headers object converts like any object");
    assert_eq!(b["query"], json!({"x": ["1", "2"], "y": "3"}));
    assert_eq!(b["params"], json!({"teamUUID": "T1"}));
    assert_eq!(b["body"], json!({"summary": "hi", "n": 3}));
    assert_eq!(
        (b["method"].as_str(), b["url"].as_str(), b["path"].as_str()),
        (Some("POST"), Some("/team/T1/tasks?x=1&x=2&y=3"), Some("/team/T1/tasks"))
    );
    assert_eq!((b["team"].as_str(), b["userUUID"].as_str(), b["twice"].as_i64()), (Some("T1"), Some("U1"), Some(6)));
    let logs = inst.logs_after(0);
    assert_eq!(logs.len(), 1);
    assert_eq!(logs[0].message, "[Plugin] headers U1 {\"n\":1}");
    assert_eq!(logs[0].request_id.as_deref(), Some("req-1"));
}

#[tokio::test]
async fn rejections_and_plugin_errors() {
    let dir = project(&[
        ("backend/src/index.ts", TS),
        ("backend/src/lib/math.ts", "export const double = (n: number) => n * 2\n"),
    ]);
    let inst = instance(&dir);
    let h = host();
    assert_eq!(
        call(&h, &inst, "reject", 1000).await.expect("ok"),
        CallOutcome::Returned(Some(json!({"statusCode": 403, "body": {"reason": "no"}})))
    );
    let CallOutcome::Rejected(p) = call(&h, &inst, "pluginError", 1000).await.expect("ok") else { panic!() };
    assert_eq!(
        (p.kind.as_str(), p.errcode.as_str(), p.reason.as_str(), p.status),
        ("warning", "Archived", "user is archived", 403)
    );
    let CallOutcome::Rejected(p) = call(&h, &inst, "client", 1000).await.expect("ok") else { panic!() };
    assert_eq!((p.kind.as_str(), p.errcode.as_str(), p.status), ("warning", "InvalidParameter", 400));
}

#[tokio::test]
async fn failures_are_contained_and_located() {
    let dir = project(&[
        ("backend/src/index.ts", TS),
        ("backend/src/lib/math.ts", "export const double = (n: number) => n * 2\n"),
    ]);
    let inst = instance(&dir);
    let h = host();
    let e = call(&h, &inst, "boom", 1000).await.expect_err("throws");
    assert_eq!(e.to_string(), "threw TypeError: bad thing 1 at backend/src/index.ts:32 (boom)");
    let e = call(&h, &inst, "throwString", 1000).await.expect_err("throws");
    assert_eq!(e.to_string(), "threw a non-Error value: \"just a string\"");
    let e = call(&h, &inst, "cyclic", 1000).await.expect_err("cyclic");
    assert!(matches!(e, HookError::BadResult(_)), "{e:?}");
    assert_eq!(call(&h, &inst, "nope", 1000).await.expect_err("missing"), HookError::NotExported("nope".into()));

    let t0 = Instant::now();
    assert_eq!(call(&h, &inst, "spin", 100).await.expect_err("spins"), HookError::Timeout(100));
    assert!(t0.elapsed() < Duration::from_millis(1000), "{:?}", t0.elapsed());
    assert_eq!(call(&h, &inst, "grow", 5000).await.expect_err("grows"), HookError::OutOfMemory(16));
    let e = call(&h, &inst, "recurse", 5000).await.expect_err("recurses");
    assert!(e.to_string().contains("RangeError") || e.to_string().contains("stack"), "{e}");
    // Nothing can ever settle it: reported at once rather than at the deadline.
    let e = call(&h, &inst, "never", 5000).await.expect_err("never");
    assert!(e.to_string().contains("promise never settled"), "{e}");
    // The plugin keeps serving.
    assert!(matches!(call(&h, &inst, "reject", 1000).await, Ok(CallOutcome::Returned(Some(_)))));
    // Each failure is in the instance's own log, with the call's request id.
    let errors: Vec<String> = inst
        .logs_after(0)
        .into_iter()
        .filter(|l| matches!(l.level, LogLevel::Error) && l.request_id.as_deref() == Some("req-1"))
        .map(|l| l.message)
        .collect();
    assert_eq!(errors[0], "boom() threw TypeError: bad thing 1 at backend/src/index.ts:32 (boom)");
    assert_eq!(errors[4], "spin() timed out after 100 ms");
    assert_eq!(errors[5], "grow() ran out of memory (limit 16 MB)");
    assert_eq!(errors.len(), 8, "{errors:?}");
}

#[tokio::test]
async fn a_native_call_loop_is_answered_at_the_deadline_and_capacity_is_kept() {
    let dir = project(&[
        ("backend/src/index.ts", TS),
        ("backend/src/lib/math.ts", "export const double = (n: number) => n * 2\n"),
    ]);
    let inst = instance(&dir);
    let h = JsHost::new(HostOptions::new(1), None);
    let t0 = Instant::now();
    let e = call(&h, &inst, "stringifyLoop", 100).await.expect_err("stuck");
    assert_eq!(e, HookError::Timeout(100));
    assert!(
        t0.elapsed() < Duration::from_millis(1000),
        "answered late (the loop alone runs for many seconds): {:?}",
        t0.elapsed()
    );
    // The watchdog, asleep while nothing ran, was woken by the call: the
    // worker is retired 50 ms past the deadline, not at the watchdog's next
    // idle tick a second later.
    while h.stuck_workers() == 0 {
        assert!(t0.elapsed() < Duration::from_millis(700), "not retired after {:?}", t0.elapsed());
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // The one worker is stuck inside JSON.stringify; a replacement serves this.
    let t1 = Instant::now();
    let ok = call(&h, &inst, "reject", 2000).await.expect("served by a replacement worker");
    assert!(matches!(ok, CallOutcome::Returned(Some(_))));
    assert!(t1.elapsed() < Duration::from_millis(2000), "{:?}", t1.elapsed());
    assert!(h.stuck_workers() >= 1);
}

#[tokio::test]
async fn module_state_persists_per_worker_and_imports_are_checked() {
    let dir = project(&[
        ("backend/src/index.ts", TS),
        ("backend/src/lib/math.ts", "export const double = (n: number) => n * 2\n"),
    ]);
    let inst = instance(&dir);
    let h = JsHost::new(HostOptions::new(1), None);
    let mut last = 0;
    for _ in 0..3 {
        let CallOutcome::Returned(Some(v)) = call(&h, &inst, "count", 1000).await.expect("ok") else { panic!() };
        last = v["body"].as_i64().expect("n");
    }
    assert_eq!(last, 3);

    let bad = project(&[("backend/src/index.js", "import _ from 'lodash'\nexport function f() {}\n")]);
    let inst = instance(&bad);
    let e = call(&h, &inst, "f", 1000).await.expect_err("unresolvable");
    assert!(e.to_string().contains("lodash") && e.to_string().contains("bundle npm packages"), "{e}");
    let e =
        PluginCode::load(project(&[("backend/src/index.ts", "export function f( {\n")]).path()).expect_err("syntax");
    assert!(e.to_string().starts_with("backend/src/index.ts:"), "{e}");
    let e = PluginCode::load(project(&[("backend/other.js", "")]).path()).expect_err("no entry");
    assert!(e.to_string().contains("no entry module"), "{e}");
    // `interpose:host` is for the built-ins only.
    let sneaky = project(&[("backend/src/index.js", "import { log } from 'interpose:host'\nexport function f() {}\n")]);
    let e = call(&h, &instance(&sneaky), "f", 1000).await.expect_err("internal");
    assert!(e.to_string().contains("internal to interpose"), "{e}");
    let sneaky =
        project(&[("backend/src/index.js", "import { state } from 'interpose:cjs/state'\nexport function f() {}\n")]);
    let e = call(&h, &instance(&sneaky), "f", 1000).await.expect_err("internal");
    assert!(e.to_string().contains("internal to interpose"), "{e}");
}

#[tokio::test]
async fn dist_wins_over_src_and_exports_are_listed() {
    let dir = project(&[
        ("backend/src/index.ts", "export function fromSrc() {}\n"),
        (
            "backend/dist/index.js",
            "export function fromDist() { return { body: 'dist' } }\nexport const notAFunction = 1\n\
             export const nothing = null\nexport default { inDefault() {} }\n",
        ),
    ]);
    let inst = instance(&dir);
    let missing = interpose_js::check_exports(
        inst,
        &["fromDist", "fromSrc", "notAFunction", "nothing", "inDefault"],
        Duration::from_secs(1),
    )
    .expect("loads");
    use interpose_js::ExportProblem::*;
    assert_eq!(
        missing,
        [
            ("fromSrc".to_string(), Missing),
            ("notAFunction".to_string(), NotAFunction("number".into())),
            ("nothing".to_string(), NotAFunction("null".into())),
            ("inDefault".to_string(), OnlyInDefault),
        ]
    );
    // `export default function f` is the same mistake.
    let dir = project(&[("backend/src/index.js", "export default async function named() {}\n")]);
    let missing = interpose_js::check_exports(instance(&dir), &["named"], Duration::from_secs(1)).expect("loads");
    assert_eq!(missing, [("named".to_string(), OnlyInDefault)]);
}

/// An async hook that never awaits runs as its synchronous twin; nothing a
/// plugin or its caller can see differs from the async function.
#[tokio::test]
async fn async_hooks_that_never_await_behave_as_async() {
    let dir = project(&[(
        "backend/src/index.ts",
        "export async function plain(r: any) { return { body: { m: r.method, isAsync: plain.constructor.name } } }\n\
         export async function boom(r: any) {\n  const x = 1\n  throw new TypeError('bad ' + x)\n}\n\
         export async function rejects() { return Promise.reject(new RangeError('later')) }\n\
         export async function thenable() { return { then(ok: any) { ok({ statusCode: 418 }) } } }\n\
         export async function fails() { throw new PluginError('warning', 'No', 'not allowed', 403) }\n\
         export async function viaOwn(r: any) { const p = boom(r); return { body: { promise: p instanceof Promise, caught: await p.catch((e: any) => e.message) } } }\n\
         export function syncThenable() { return { then(ok: any) { ok({ body: 'adopted' }) } } }\n\
         async function named() { return { body: 'the local one' } }\n\
         async function real() { return { body: 'the exported one' } }\n\
         export { real as named }\n\
         import { PluginError } from '@ones-op/node-error'\n",
    )]);
    let inst = instance(&dir);
    let h = host();
    let body = |out: Result<CallOutcome, HookError>| match out {
        Ok(CallOutcome::Returned(Some(v))) => v,
        other => panic!("{other:?}"),
    };
    assert_eq!(body(call(&h, &inst, "plain", 1000).await), json!({"body": {"m": "POST", "isAsync": "AsyncFunction"}}));
    // A throw is placed at its line, under the function's own name.
    let e = call(&h, &inst, "boom", 1000).await.expect_err("throws");
    assert_eq!(e.to_string(), "threw TypeError: bad 1 at backend/src/index.ts:4 (boom)");
    let e = call(&h, &inst, "rejects", 1000).await.expect_err("rejects");
    assert!(e.to_string().starts_with("threw RangeError: later"), "{e}");
    // What it returns is settled as `await` would: a thenable is adopted.
    assert_eq!(body(call(&h, &inst, "thenable", 1000).await), json!({"statusCode": 418}));
    assert_eq!(body(call(&h, &inst, "syncThenable", 1000).await), json!({"body": "adopted"}));
    match call(&h, &inst, "fails", 1000).await {
        Ok(CallOutcome::Rejected(p)) => assert_eq!((p.errcode.as_str(), p.status), ("No", 403)),
        other => panic!("{other:?}"),
    }
    // The twin is the called function's own, whatever the names.
    assert_eq!(body(call(&h, &inst, "named", 1000).await), json!({"body": "the exported one"}));
    // The plugin's own code calling the hook still gets a promise that rejects.
    assert_eq!(body(call(&h, &inst, "viaOwn", 1000).await), json!({"body": {"promise": true, "caught": "bad 1"}}));
}

/// The same for `const f = async (…) => …` and `= async function …`.
#[tokio::test]
async fn async_arrow_hooks_that_never_await_behave_as_async() {
    let dir = project(&[(
        "backend/src/index.ts",
        "import { PluginError } from '@ones-op/node-error'\n\
         export const plain = async (r: any): Promise<any> => ({ body: { m: r.method, kind: plain.constructor.name, name: plain.name, length: plain.length } })\n\
         export const boom = async (r: any) => {\n  const x = 1\n  throw new TypeError('bad ' + x)\n}\n\
         export const fails = async function () { throw new PluginError('warning', 'No', 'not allowed', 403) }\n\
         export const self = async function (this: any) { return { body: { thisIs: typeof this } } }\n\
         const table = { boom }\n\
         export const viaOwn = async (r: any) => { const p = table.boom(r); return { body: { promise: p instanceof Promise, caught: await p.catch((e: any) => e.message) } } }\n\
         export const waits = async (r: any) => await r.method\n",
    )]);
    let inst = instance(&dir);
    let h = host();
    let body = |out: Result<CallOutcome, HookError>| match out {
        Ok(CallOutcome::Returned(Some(v))) => v,
        other => panic!("{other:?}"),
    };
    assert_eq!(
        body(call(&h, &inst, "plain", 1000).await),
        json!({"body": {"m": "POST", "kind": "AsyncFunction", "name": "plain", "length": 1}})
    );
    let e = call(&h, &inst, "boom", 1000).await.expect_err("throws");
    assert_eq!(e.to_string(), "threw TypeError: bad 1 at backend/src/index.ts:5 (boom)");
    match call(&h, &inst, "fails", 1000).await {
        Ok(CallOutcome::Rejected(p)) => assert_eq!((p.errcode.as_str(), p.status), ("No", 403)),
        other => panic!("{other:?}"),
    }
    assert_eq!(body(call(&h, &inst, "self", 1000).await), json!({"body": {"thisIs": "undefined"}}));
    assert_eq!(body(call(&h, &inst, "viaOwn", 1000).await), json!({"body": {"promise": true, "caught": "bad 1"}}));
    assert_eq!(body(call(&h, &inst, "waits", 1000).await), json!("POST"));
}

#[tokio::test]
async fn a_failed_import_is_reported_where_it_is() {
    let load_error = |files: &[(&str, &str)]| {
        let dir = project(files);
        match interpose_js::check_exports(instance(&dir), &["f"], Duration::from_secs(1)) {
            Err(e) => e.to_string(),
            Ok(_) => panic!("loaded: {files:?}"),
        }
    };
    // A name a built-in does not export: where, and what it does export.
    let e = load_error(&[(
        "backend/src/index.ts",
        "import { Logger } from '@ones-op/node-logger';\nimport { writeFile } from '@ones-op/node-file';\n\
         export async function f() { await writeFile('a', 'b'); }\n",
    )]);
    assert!(e.contains("Could not find export 'writeFile' in module '@ones-op/node-file'"), "{e}");
    assert!(
        e.contains("(imported at backend/src/index.ts:2:10; @ones-op/node-file exports FileError, createFile,"),
        "{e}"
    );
    // The column as written, also on a first line the host adds to (an
    // async function that never awaits: see `sync_twins`).
    let e = load_error(&[(
        "backend/src/index.js",
        "import { writeFile } from '@ones-op/node-file';\nexport async function f() { return writeFile }\n",
    )]);
    assert!(e.contains("(imported at backend/src/index.js:1:10;"), "{e}");
    // Through a re-export in another of the plugin's files.
    let e = load_error(&[
        ("backend/src/index.ts", "import { a } from './lib';\nexport function f() { return a; }\n"),
        ("backend/src/lib.ts", "export const a = 1;\n\nexport { missing } from './deep.js';\n"),
        ("backend/src/deep.ts", "export const there = 1;\n"),
    ]);
    assert!(
        e.ends_with(
            "Could not find export 'missing' in module 'backend/src/deep.ts' (imported at backend/src/lib.ts:3:10)"
        ),
        "{e}"
    );
    // A module that does not resolve.
    let e = load_error(&[("backend/src/index.js", "\nimport './setup.js';\nexport function f() {}\n")]);
    assert!(e.ends_with("no such file in the plugin's backend (imported at backend/src/index.js:2:8)"), "{e}");
}

#[tokio::test]
async fn runtimes_go_with_their_instance() {
    // An upgrade or uninstall drops the instance; every worker's runtime for
    // it must go too (it used to be kept forever: memory grew per upgrade).
    let dir = project(&[("backend/src/index.js", "export function f() { return { body: 1 } }\n")]);
    let h = JsHost::new(HostOptions::new(1), None);
    for round in 0..5 {
        let inst = instance(&dir);
        assert!(call(&h, &inst, "f", 1000).await.is_ok());
        assert_eq!(h.runtimes(), 1, "round {round}: only the live instance's runtime");
        drop(inst);
        // An idle worker sweeps within about a second.
        let t0 = Instant::now();
        while h.runtimes() > 0 {
            assert!(t0.elapsed() < Duration::from_secs(5), "round {round}: the runtime outlived its instance");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

#[tokio::test]
async fn idle_runtimes_are_dropped_and_reloaded_on_demand() {
    let dir = project(&[("backend/src/index.js", "export function f() { return { body: 1 } }\n")]);
    let h = JsHost::new(HostOptions { runtime_idle: Duration::from_millis(300), ..HostOptions::new(1) }, None);
    let inst = instance(&dir);
    assert!(call(&h, &inst, "f", 1000).await.is_ok());
    assert_eq!(h.runtimes(), 1);
    let t0 = Instant::now();
    while h.runtimes() > 0 {
        assert!(t0.elapsed() < Duration::from_secs(5), "an unused runtime stayed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The instance is still installed: the next call loads it again.
    assert!(call(&h, &inst, "f", 1000).await.is_ok());
    assert_eq!(h.runtimes(), 1);
}

const TIMERS: &str = r#"
import { Logger } from '@ones-op/node-logger'
let leftover = 0
export async function timers(request: any) {
  console.log('node style', { a: 1 })
  console.warn('careful')
  const order: string[] = []
  const t0 = Date.now()
  setTimeout(() => order.push('b30'), 30)
  setTimeout((x: string) => order.push(x), 10, 'a10')
  const c = setTimeout(() => order.push('cleared'), 5)
  clearTimeout(c)
  setImmediate(() => order.push('now'))
  let ticks = 0
  await new Promise<void>((done) => {
    const iv = setInterval(() => { ticks++; if (ticks === 3) { clearInterval(iv); done() } }, 5)
  })
  await new Promise((r) => setTimeout(r, 40))
  setTimeout(() => { throw new Error('late boom') }, 1)
  await new Promise((r) => setTimeout(r, 5))
  // Still pending when the call returns: dropped, never run.
  setTimeout(() => { leftover++ }, 1)
  const t = setTimeout(() => 0, 1)
  return { order, ticks, waited: Date.now() - t0 >= 40, unref: t.unref() === t, id: +t > 0 }
}
export async function leftovers() { await new Promise((r) => setTimeout(r, 20)); return { leftover } }
export async function oversleep() { await new Promise((r) => setTimeout(r, 10000)); return 'never' }
export async function badTimer() { setTimeout('code', 1) }
"#;

#[tokio::test]
async fn node_globals_console_and_timers_work_while_the_call_runs() {
    let dir = project(&[("backend/src/index.ts", TIMERS)]);
    let inst = instance(&dir);
    // One worker: the next call runs in the runtime the first one left timers in.
    let h = JsHost::new(HostOptions::new(1), None);
    let CallOutcome::Returned(Some(v)) = call(&h, &inst, "timers", 2000).await.expect("ok") else { panic!() };
    assert_eq!(v, json!({"order": ["now", "a10", "b30"], "ticks": 3, "waited": true, "unref": true, "id": true}));
    let logs: Vec<(String, String)> =
        inst.logs_after(0).into_iter().map(|l| (format!("{:?}", l.level), l.message)).collect();
    assert_eq!(
        logs,
        [
            ("Info".to_string(), "node style {\"a\":1}".to_string()),
            ("Warn".to_string(), "careful".to_string()),
            (
                "Error".to_string(),
                "uncaught in a timer callback: Error: late boom at backend/src/index.ts:19 (<anonymous>)".to_string()
            ),
        ]
    );
    assert_eq!(
        call(&h, &inst, "leftovers", 2000).await.expect("ok"),
        CallOutcome::Returned(Some(json!({"leftover": 0})))
    );
    let t0 = Instant::now();
    assert_eq!(call(&h, &inst, "oversleep", 100).await.expect_err("sleeps"), HookError::Timeout(100));
    assert!(t0.elapsed() < Duration::from_millis(1000), "{:?}", t0.elapsed());
    let e = call(&h, &inst, "badTimer", 1000).await.expect_err("not a function");
    assert!(e.to_string().contains("setTimeout: the callback must be a function"), "{e}");
}

/// What `tsc --module commonjs` or `esbuild --platform=node --bundle` emits
/// into `backend/dist`: `require`, `exports`, `module.exports`.
#[tokio::test]
async fn a_commonjs_bundle_in_dist_runs_with_require_and_module_exports() {
    let dir = project(&[
        (
            "backend/dist/index.js",
            r#""use strict";
var __importDefault = (this && this.__importDefault) || function (mod) { return (mod && mod.__esModule) ? mod : { "default": mod }; };
Object.defineProperty(exports, "__esModule", { value: true });
exports.check = exports.helperName = void 0;
const node_logger_1 = require("@ones-op/node-logger");
const node_error_1 = require("@ones-op/node-error");
const rules_1 = __importDefault(require("./rules"));
const { twice } = require('./lib/math.cjs');
function check(request) {
    node_logger_1.Logger.info('check', request.params.teamUUID);
    if (rules_1.default.denied(request.body.summary)) {
        throw new node_error_1.PluginError('warning', 'Denied', 'summary denied', 403);
    }
    return { statusCode: 200, body: { twice: twice(request.body.n), file: __filename, dir: __dirname, self: this === undefined } };
}
exports.check = check;
exports.helperName = 'not a function';
module.exports.late = () => ({ body: typeof require('./rules').denied });
exports.missing = () => require('lodash');
exports.fails = () => { throw new Error('failed here') };
"#,
        ),
        ("backend/dist/rules.js", "#!/usr/bin/env node\nmodule.exports = { denied: (s) => s === 'no' }\n"),
        ("backend/dist/lib/math.cjs", "exports.twice = (n) => n * 2\n"),
    ]);
    let inst = instance(&dir);
    let missing = interpose_js::check_exports(inst.clone(), &["check", "late", "helperName"], Duration::from_secs(1))
        .expect("loads");
    assert_eq!(missing, [("helperName".to_string(), interpose_js::ExportProblem::NotAFunction("string".into()))]);
    let h = host();
    let Ok(CallOutcome::Returned(Some(out))) = call(&h, &inst, "check", 1000).await else { panic!("check answers") };
    assert_eq!(
        out["body"],
        json!({"twice": 6, "file": "backend/dist/index.js", "dir": "backend/dist", "self": true}),
        "{out}"
    );
    let Ok(CallOutcome::Returned(Some(out))) = call(&h, &inst, "late", 1000).await else { panic!("late answers") };
    assert_eq!(out["body"], "function");
    let e = call(&h, &inst, "missing", 1000).await.expect_err("no lodash");
    assert!(e.to_string().contains("Cannot find module 'lodash'"), "{e}");
    let e = call(&h, &inst, "fails", 1000).await.expect_err("throws");
    assert_eq!(e.to_string(), "threw Error: failed here at backend/dist/index.js:20 (<anonymous>)");
    // A denied summary: the PluginError from the required built-in rejects.
    let denied = Arc::new(HookRequest { body: Body::Json(json!({"summary": "no", "n": 1})), ..(*request()).clone() });
    let r = h.call(&inst, "check", denied, Duration::from_secs(1)).await;
    assert!(matches!(r, Ok(CallOutcome::Rejected(_))), "{r:?}");
}

/// CommonJS files run in Node's order — a file when it is first required —
/// and a cycle gives the file still running its exports so far, as tsc's
/// output of TypeScript files that import each other expects.
#[tokio::test]
async fn commonjs_runs_in_node_order_and_cycles_see_partial_exports() {
    let dir = project(&[
        (
            "backend/dist/index.js",
            "const order = require('./order'); order.push('index start');\n\
             const a = require('./a'); order.push('index end');\n\
             exports.f = () => ({ body: { order, aSeesB: a.seenB, bSeesA: require('./b').seenA, kind: new a.Derived().kind() } });\n",
        ),
        ("backend/dist/order.js", "module.exports = [];\n"),
        (
            "backend/dist/a.js",
            "const order = require('./order'); order.push('a start'); exports.early = 1;\n\
             const b = require('./b'); exports.seenB = Object.keys(b);\n\
             class Derived extends b.Base { kind() { return 'derived of ' + super.kind() } }\n\
             exports.Derived = Derived; order.push('a end');\n",
        ),
        (
            "backend/dist/b.js",
            "const order = require('./order'); order.push('b start');\n\
             const a = require('./a'); exports.seenA = Object.keys(a);\n\
             class Base { kind() { return 'base' } }\n\
             exports.Base = Base; order.push('b end');\n",
        ),
    ]);
    let h = host();
    let r = call(&h, &instance(&dir), "f", 1000).await;
    let Ok(CallOutcome::Returned(Some(out))) = r else { panic!("f answers: {r:?}") };
    assert_eq!(
        out["body"],
        json!({
            "order": ["index start", "a start", "b start", "b end", "a end", "index end"],
            "aSeesB": ["seenA", "Base"], "bSeesA": ["early"], "kind": "derived of base",
        })
    );
    // ES modules importing CommonJS files get their exports, each file run once.
    let mixed = project(&[
        (
            "backend/src/index.js",
            "import lib from './lib.cjs'\nimport dep from './dep.cjs'\n\
             export function f() { return { body: { lib: lib.name, dep: dep.name, same: lib.dep === dep, runs: dep.runs } } }\n",
        ),
        ("backend/src/lib.cjs", "const dep = require('./dep.cjs');\nmodule.exports = { name: 'lib', dep };\n"),
        ("backend/src/dep.cjs", "globalThis.runs = (globalThis.runs || 0) + 1;\nmodule.exports = { name: 'dep', runs: globalThis.runs };\n"),
    ]);
    let r = call(&h, &instance(&mixed), "f", 1000).await;
    let Ok(CallOutcome::Returned(Some(out))) = r else { panic!("f answers: {r:?}") };
    assert_eq!(out["body"], json!({"lib": "lib", "dep": "dep", "same": true, "runs": 1}));
}

#[tokio::test]
async fn node_web_globals_structured_clone_text_codecs_url_search_params_crypto() {
    let dir = project(&[(
        "backend/src/index.js",
        r#"
export function f() {
  const o = { d: new Date(5), m: new Map([[1, { x: 1 }]]), s: new Set([2]), b: new Uint8Array([1, 2]), r: /a/g };
  o.self = o;
  const c = structuredClone(o);
  let fnErr = null;
  try { structuredClone({ f() {} }); } catch (e) { fnErr = e.name; }
  const enc = new TextEncoder().encode('héllo €😀\ud800');
  const dec = new TextDecoder().decode(enc);
  let fatal = null;
  try { new TextDecoder('utf-8', { fatal: true }).decode(new Uint8Array([0xff])); } catch (e) { fatal = e.name; }
  const q = new URLSearchParams('?a=1&b=x+y&a=2&c=%E2%82%AC&bad=%zz');
  q.append('d', "it's a & b");
  q.set('a', '3');
  const fromObj = new URLSearchParams({ team: 'T1', n: 2 }).toString();
  const bytes = crypto.getRandomValues(new Uint8Array(32));
  const uuid = crypto.randomUUID();
  return { body: {
    cloned: c !== o && c.self === c && c.d.getTime() === 5 && c.m.get(1).x === 1 && c.m.get(1) !== o.m.get(1)
      && c.s.has(2) && c.b[1] === 2 && c.b !== o.b && c.r.flags === 'g',
    fnErr,
    enc: Array.from(enc.slice(0, 6)), encLen: enc.length, dec, fatal,
    q: q.toString(), all: q.getAll('a'), c: q.get('c'), bad: q.get('bad'), size: q.size, fromObj,
    random: bytes.some((b) => b !== 0) && bytes.length === 32,
    uuid: /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/.test(uuid) && uuid !== crypto.randomUUID(),
    global: global === globalThis,
  } };
}
export function urls() {
  const u = new URL('/team/T1/tasks?x=1&y=a+b#frag', 'http://user:pw@Example.COM:8080/base/');
  const parts = [u.href, u.origin, u.protocol, u.username, u.password, u.host, u.hostname, u.port, u.pathname, u.search, u.hash];
  u.searchParams.append('z', 'é');
  const afterAppend = u.href;
  u.search = '?k=v';
  const param = u.searchParams.get('k');
  u.pathname = '/a b/../c d';
  u.port = '80';
  u.hash = '';
  let invalid = null;
  try { new URL('not a url'); } catch (e) { invalid = e.name + ': ' + e.message; }
  let badHref = null;
  try { u.href = '::'; } catch (e) { badHref = e.name; }
  return { body: {
    parts, afterAppend, param, final: String(u), json: JSON.stringify({ u }), invalid, badHref,
    can: [URL.canParse('https://x.y'), URL.canParse('nope'), URL.parse('nope')],
    staticsHidden: Object.getOwnPropertyNames(URLSearchParams).filter((n) => n.startsWith('_')),
  } };
}
export async function bufs() {
  const b = Buffer.from('user:pässword');
  const b64 = b.toString('base64');
  const back = Buffer.from(b64, 'base64').toString();
  const hexed = Buffer.from([0, 15, 255]).toString('hex');
  const fromHex = Array.from(Buffer.from('0fff', 'hex'));
  const url64 = Buffer.from([251, 255]).toString('base64url');
  const cat = Buffer.concat([Buffer.from('ab'), Buffer.alloc(2, 'z')]).toString();
  const view = b.slice(0, 4);
  view[0] = 85; // 'U': a slice shares memory, as in Node
  return { body: {
    b64, back, hexed, fromHex, url64, cat, shared: b.toString().startsWith('User'),
    json: JSON.stringify(Buffer.from('hi')), isBuffer: [Buffer.isBuffer(b), Buffer.isBuffer(new Uint8Array(1))],
    len: [b.length, Buffer.byteLength('€')], eq: Buffer.from('x').equals(Buffer.from('x')),
    process: [typeof process, process.env.NODE_ENV, process.version, typeof process.nextTick],
  } };
}
export async function numbers() {
  const png = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 13]);
  const w = Buffer.alloc(16);
  const ends = [w.writeUInt16BE(0xbeef, 0), w.writeInt32LE(-2, 2), w.writeDoubleBE(1.5, 6), w.writeUint8(7, 14)];
  let range = null;
  try { png.readUInt32BE(10); } catch (e) { range = e.name; }
  const text = Buffer.alloc(8);
  return { body: {
    magic: png.readUInt32BE(0).toString(16), len: png.readUint32BE(8), le: png.readUInt16LE(0), i8: png.readInt8(0),
    ends, back: [w.readUInt16BE(0), w.readInt32LE(2), w.readDoubleBE(6), w.readUInt8(14)],
    big: String(Buffer.from([0, 0, 0, 0, 0, 0, 1, 0]).readBigUInt64BE(0)), range,
    find: [png.indexOf('PNG'), png.indexOf(0x0a), png.indexOf(Buffer.from([0x1a, 0x0a])), png.includes('JPG'), png.indexOf(0x0a, 6)],
    wrote: text.write('héllo', 1), text: text.toString('hex'),
  } };
}
// A polyfill assigned over one replaces it.
export function poly() { globalThis.TextDecoder = function Mine() {}; return { body: [TextDecoder.name, typeof URLSearchParams] } }
"#,
    )]);
    let inst = instance(&dir);
    let h = host();
    let Ok(CallOutcome::Returned(Some(out))) = call(&h, &inst, "f", 1000).await else { panic!("f answers") };
    assert_eq!(
        out["body"],
        json!({
            "cloned": true, "fnErr": "DataCloneError",
            "enc": [104, 195, 169, 108, 108, 111], "encLen": 17, "dec": "héllo €😀\u{fffd}", "fatal": "TypeError",
            "q": "a=3&b=x+y&c=%E2%82%AC&bad=%25zz&d=it%27s+a+%26+b", "all": ["3"], "c": "€", "bad": "%zz", "size": 5,
            "fromObj": "team=T1&n=2", "random": true, "uuid": true, "global": true
        }),
        "{out}"
    );
    let r = call(&h, &inst, "urls", 1000).await;
    let Ok(CallOutcome::Returned(Some(out))) = r else { panic!("urls answers: {r:?}") };
    assert_eq!(
        out["body"],
        json!({
            "parts": ["http://user:pw@example.com:8080/team/T1/tasks?x=1&y=a+b#frag", "http://example.com:8080", "http:",
                      "user", "pw", "example.com:8080", "example.com", "8080", "/team/T1/tasks", "?x=1&y=a+b", "#frag"],
            "afterAppend": "http://user:pw@example.com:8080/team/T1/tasks?x=1&y=a+b&z=%C3%A9#frag",
            "param": "v",
            "final": "http://user:pw@example.com/c%20d?k=v",
            "json": "{\"u\":\"http://user:pw@example.com/c%20d?k=v\"}",
            "invalid": "TypeError: Invalid URL: \"not a url\"",
            "badHref": "TypeError",
            "can": [true, false, null],
            "staticsHidden": [],
        }),
        "{out}"
    );
    let r = call(&h, &inst, "bufs", 1000).await;
    let Ok(CallOutcome::Returned(Some(out))) = r else { panic!("bufs answers: {r:?}") };
    assert_eq!(
        out["body"],
        json!({
            "b64": "dXNlcjpww6Rzc3dvcmQ=", "back": "user:pässword", "hexed": "000fff", "fromHex": [15, 255],
            "url64": "-_8", "cat": "abzz", "shared": true, "json": "{\"type\":\"Buffer\",\"data\":[104,105]}",
            "isBuffer": [true, false], "len": [14, 3], "eq": true, "process": ["object", "production", "v16.13.1", "function"],
        }),
        "{out}"
    );
    let r = call(&h, &inst, "numbers", 1000).await;
    let Ok(CallOutcome::Returned(Some(out))) = r else { panic!("numbers answers: {r:?}") };
    assert_eq!(
        out["body"],
        json!({
            "magic": "89504e47", "len": 13, "le": 0x5089, "i8": -119,
            "ends": [2, 6, 14, 15], "back": [0xbeef, -2, 1.5, 7], "big": "256", "range": "RangeError",
            "find": [1, 5, 6, false, 7], "wrote": 6, "text": "0068c3a96c6c6f00",
        }),
        "{out}"
    );
    let Ok(CallOutcome::Returned(Some(out))) = call(&h, &inst, "poly", 1000).await else { panic!("poly answers") };
    assert_eq!(out["body"], json!(["Mine", "function"]));
}

#[tokio::test]
async fn json_files_are_modules_for_import_and_require() {
    let data = r#"{"limits": {"max": 3}, "names": ["a", "b"], "__proto__": {"polluted": true}}"#;
    let esm = project(&[
        (
            "backend/src/index.ts",
            "import data from './data.json'\nimport again from './data.json'\n\
             export function f() { return { body: { max: data.limits.max, names: data.names, same: data === again, \
             own: Object.keys(data).includes('__proto__'), polluted: ({} as any).polluted ?? null } } }\n",
        ),
        ("backend/src/data.json", data),
    ]);
    let cjs = project(&[
        (
            "backend/dist/index.js",
            "const data = require('./data.json'); const nested = require('./conf/x.json');\n\
             exports.f = () => ({ body: { max: data.limits.max, names: data.names, x: nested } });\n",
        ),
        ("backend/dist/data.json", data),
        ("backend/dist/conf/x.json", "[1, \"two\", null]"),
    ]);
    let h = host();
    for (dir, expected) in [
        (&esm, json!({"max": 3, "names": ["a", "b"], "same": true, "own": true, "polluted": null})),
        (&cjs, json!({"max": 3, "names": ["a", "b"], "x": [1, "two", null]})),
    ] {
        let inst = instance(dir);
        let Ok(CallOutcome::Returned(Some(out))) = call(&h, &inst, "f", 1000).await else { panic!("answers") };
        assert_eq!(out["body"], expected);
    }
    // A broken JSON file is an error only for the code that imports it,
    // named with its line and column.
    let bad = project(&[
        ("backend/src/index.ts", "export function f() {}\n"),
        ("backend/src/tsconfig.json", "{ // comments are not JSON\n}\n"),
        ("backend/src/lib.ts", "import bad from './bad.json'\nexport const x = bad\n"),
        ("backend/src/bad.json", "{\n  \"a\": 1,\n}\n"),
    ]);
    let inst = instance(&bad);
    assert!(matches!(call(&h, &inst, "f", 1000).await, Ok(CallOutcome::Returned(None))));
    let importer = project(&[
        ("backend/src/index.ts", "import bad from './bad.json'\nexport function f() { return bad }\n"),
        ("backend/src/bad.json", "{\n  \"a\": 1,\n}\n"),
    ]);
    let e = call(&h, &instance(&importer), "f", 1000).await.expect_err("refused").to_string();
    assert!(e.contains("backend/src/bad.json:3:1: invalid JSON: key must be a string"), "{e}");
}

#[tokio::test]
async fn typescript_decorators_run_as_tsc_compiles_them_with_experimental_decorators() {
    let code = "function sealed<T extends Function>(c: T) { return class extends (c as any) { sealed = true } as any }\n\
                function twice(_t: any, _k: string, d: PropertyDescriptor) { const f = d.value; d.value = function (this: any, ...a: any[]) { return f.apply(this, a) * 2 }; return d }\n\
                const seen: string[] = []\n\
                function field(_t: any, k: string) { seen.push(`field ${k}`) }\n\
                function param(_t: any, k: string, i: number) { seen.push(`param ${k} ${i}`) }\n\
                @sealed\n\
                class Calc {\n  @field base = 1\n  @twice add(@param a: number, b: number) { return this.base + a + b }\n}\n\
                export function f() { const c = new Calc() as any; return { body: { sum: c.add(2, 3), sealed: c.sealed, seen } } }\n";
    let files = |tsconfig: &'static str| project(&[("backend/src/index.ts", code), ("tsconfig.json", tsconfig)]);
    let on = files("{\n  // as tsc reads it: comments, trailing commas\n  \"compilerOptions\": { \"experimentalDecorators\": true, },\n}\n");
    let h = host();
    let Ok(CallOutcome::Returned(Some(out))) = call(&h, &instance(&on), "f", 1000).await else { panic!("answers") };
    assert_eq!(out["body"], json!({"sum": 12, "sealed": true, "seen": ["field base", "param add 0"]}));
    // Without the option, the first decorator is named with what to do.
    let off = files("{ \"compilerOptions\": {} }");
    let e = PluginCode::load(off.path()).expect_err("refused").to_string();
    assert!(
        e.contains("backend/src/index.ts:6:1: a decorator") && e.contains("\"experimentalDecorators\": true"),
        "{e}"
    );
    // A tsconfig that cannot be read is named.
    let broken = files("{ \"compilerOptions\": ");
    let e = PluginCode::load(broken.path()).expect_err("refused").to_string();
    assert!(e.starts_with("tsconfig.json:1:"), "{e}");
}

/// `n` concurrent calls of `inst`'s `f` (5 s deadline), running in the background.
fn spawn_calls(
    h: &JsHost,
    inst: &Arc<Instance>,
    n: usize,
) -> Vec<tokio::task::JoinHandle<Result<CallOutcome, HookError>>> {
    (0..n)
        .map(|_| {
            let (h, inst) = (h.clone(), inst.clone());
            tokio::spawn(async move { call(&h, &inst, "f", 5000).await })
        })
        .collect()
}

/// Calls that wait (timers, outbound I/O) do not hold the pool: more workers
/// start for them, and one instance's share is bounded so the others still
/// get workers at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_calls_neither_hold_the_pool_nor_starve_other_plugins() {
    let slow = instance(&project(&[(
        "backend/src/index.ts",
        "export async function f() { await new Promise((r) => setTimeout(r, 300)) }\n",
    )]));
    let fast = instance(&project(&[("backend/src/index.ts", "export function f() { return { body: 'fast' } }\n")]));
    let h = JsHost::new(HostOptions { per_instance: 8, ..HostOptions::new(1) }, None);
    let t0 = Instant::now();
    let calls = spawn_calls(&h, &slow, 16);
    tokio::time::sleep(Duration::from_millis(50)).await;
    // One worker, sixteen waiting calls: another plugin is answered at once.
    let t1 = Instant::now();
    assert!(matches!(call(&h, &fast, "f", 1000).await, Ok(CallOutcome::Returned(Some(_)))));
    assert!(t1.elapsed() < Duration::from_millis(200), "the other plugin waited {:?}", t1.elapsed());
    for c in calls {
        assert!(matches!(c.await.expect("joined"), Ok(CallOutcome::Returned(None))));
    }
    // Eight at a time: two rounds of 300 ms, not sixteen (one worker) or one (no bound).
    let took = t0.elapsed();
    assert!(took >= Duration::from_millis(600) && took < Duration::from_millis(2000), "{took:?}");
}

/// Queued calls are taken in turn between instances: a plugin with many
/// CPU-heavy calls waiting does not make another plugin's call wait behind
/// all of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_calls_are_served_in_turn_between_plugins() {
    let heavy = instance(&project(&[(
        "backend/src/index.ts",
        "export function f() { const t = Date.now(); while (Date.now() - t < 100) {} }\n",
    )]));
    let light = instance(&project(&[("backend/src/index.ts", "export function f() { return { body: 'light' } }\n")]));
    let h = JsHost::new(HostOptions::new(1), None);
    // Load both runtimes first, so what is timed below is waiting in the queue.
    call(&h, &heavy, "f", 5000).await.expect("heavy");
    call(&h, &light, "f", 1000).await.expect("light");
    let calls = spawn_calls(&h, &heavy, 8);
    tokio::time::sleep(Duration::from_millis(30)).await;
    let t = Instant::now();
    assert!(matches!(call(&h, &light, "f", 2000).await, Ok(CallOutcome::Returned(Some(_)))));
    // Behind the one heavy call running (and at most one more), not all eight (800 ms).
    assert!(t.elapsed() < Duration::from_millis(350), "the light call waited {:?}", t.elapsed());
    for c in calls {
        assert!(c.await.expect("joined").is_ok());
    }
}

/// Calls that do not overlap run on the runtime their instance last ran on,
/// whatever the number of workers: module state carries from call to call
/// (a counter counts), for each of several plugins called in turn, and a
/// plugin is loaded once rather than once per worker.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_one_at_a_time_keep_to_one_runtime_per_instance() {
    let code = "let n = 0\nexport function f() { n += 1; return { body: n } }\n";
    let (a, b) =
        (instance(&project(&[("backend/src/index.js", code)])), instance(&project(&[("backend/src/index.js", code)])));
    let h = JsHost::new(HostOptions::new(4), None);
    let body = |r: Result<CallOutcome, HookError>| match r {
        Ok(CallOutcome::Returned(Some(v))) => v["body"].as_i64().expect("n"),
        other => panic!("{other:?}"),
    };
    for i in 1..=40 {
        assert_eq!(body(call(&h, &a, "f", 1000).await), i, "call {i} of a");
        assert_eq!(body(call(&h, &b, "f", 1000).await), i, "call {i} of b");
    }
    assert_eq!(h.runtimes(), 2);
    // Overlapping calls spread over the workers (each has its own copy of
    // the module), and then the instance keeps to one runtime again.
    let heavy = "let n = 0\nexport function f() { n += 1; const t = Date.now(); while (Date.now() - t < 30) {} return { body: n } }\n";
    let c = instance(&project(&[("backend/src/index.js", heavy)]));
    for r in spawn_calls(&h, &c, 8) {
        body(r.await.expect("joined"));
    }
    assert!(h.runtimes() > 3, "{} runtimes", h.runtimes());
    let first = body(call(&h, &c, "f", 1000).await);
    for i in 1..=10 {
        assert_eq!(body(call(&h, &c, "f", 1000).await), first + i);
    }
}

/// Detached calls (suffix and subscribe hooks) use at most `background`
/// workers at once, so a burst of slow ones leaves the others for calls a
/// client waits for; they share the instance's runtimes with those calls.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn detached_calls_leave_workers_for_waited_ones() {
    let heavy = instance(&project(&[(
        "backend/src/index.ts",
        "let n = 0\nexport function f() { n += 1; const t = Date.now(); while (Date.now() - t < 100) {} return { body: n } }\n\
         export function g() { return { body: n } }\n",
    )]));
    let h = JsHost::new(HostOptions { background: 1, ..HostOptions::new(2) }, None);
    let t0 = Instant::now();
    let detached: Vec<_> = (0..4)
        .map(|_| {
            let (h, inst) = (h.clone(), heavy.clone());
            tokio::spawn(async move { h.call_detached(&inst, "f", request(), Duration::from_secs(5)).await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(30)).await;
    let t = Instant::now();
    let seen = match h.call(&heavy, "g", request(), Duration::from_secs(1)).await {
        Ok(CallOutcome::Returned(Some(v))) => v["body"].as_i64().expect("n"),
        other => panic!("{other:?}"),
    };
    assert!(t.elapsed() < Duration::from_millis(80), "the waited-for call waited {:?}", t.elapsed());
    assert!(seen <= 1, "{seen}");
    for d in detached {
        assert!(d.await.expect("joined").is_ok());
    }
    // One at a time: four of 100 ms, not two rounds of two.
    assert!(t0.elapsed() >= Duration::from_millis(390), "{:?}", t0.elapsed());
}

const HEADERS: &str = r#"
const ok = (body) => ({ body })
export function probe(request) {
  const h = request.headers
  const forIn = []
  for (const k in h) forIn.push(k)
  return ok({
    get: [h['Ones-User-Id'], h['ones-user-id'], h['X-Missing'] ?? null, h['X-EXTRA-7'] ?? null],
    inherited: [typeof h.hasOwnProperty, h.hasOwnProperty('content-type'), String(h)],
    has: ['Ones-User-Id' in h, 'x-missing' in h, 'hasOwnProperty' in h],
    keys: Object.keys(h),
    json: JSON.parse(JSON.stringify(h)),
    spread: { ...h },
    forIn,
    desc: Object.getOwnPropertyDescriptor(h, 'ones-user-id'),
    symbols: Object.getOwnPropertySymbols(h).length,
  })
}
export function mutate(request) {
  const h = request.headers
  // Misses first (in lower case and not), then the same names set, tested and deleted in other cases.
  const before = [h['x-new'] ?? null, h['X-Tmp'] ?? null, 'X-NEW' in h]
  h['X-New'] = 'n'
  h['x-tmp'] = 't'
  const between = ['X-NEW' in h, h['X-TMP'], h['x-tmp']]
  delete h['X-TMP']
  delete h['Content-Type']
  h['ones-user-id'] = 'U2'
  return ok({ keys: Object.keys(h), user: h['Ones-User-Id'], type: h['content-type'] ?? null, added: h['x-new'],
    before, between, gone: ['x-tmp' in h, h['X-Tmp'] ?? null] })
}
export function freeze(request) {
  Object.freeze(request.headers)
  return ok({ frozen: Object.isFrozen(request.headers), n: Object.keys(request.headers).length, user: request.headers['Ones-User-Id'] })
}
export function define(request) {
  Object.defineProperty(request.headers, 'x-def', { value: 'd', enumerable: true, configurable: true, writable: true })
  return ok({ last: Object.keys(request.headers).pop(), d: request.headers['X-Def'] })
}
export function returned(request) { return { statusCode: 200, headers: request.headers } }
export function keep(request) { globalThis.kept = request.headers; globalThis.sent = request.reqHeaders }
export function readKept() {
  return ok({ user: globalThis.kept['Ones-User-Id'], n: Object.keys(globalThis.kept).length, sent: globalThis.sent?.['X-Extra-1'] ?? null })
}
export function post(request) {
  return ok({ sent: request.reqHeaders['X-Extra-3'] ?? null, got: request.respHeaders['Content-Type'], keys: Object.keys(request.respHeaders) })
}
"#;

/// A request's headers object behaves the same whether its headers were
/// copied in (a few) or are looked up where they are until needed (many):
/// lookups in any case, inherited methods, `in`, enumeration, JSON, spread,
/// changes, freezing, defining, being returned, outliving the call, and the
/// headers of suffix/subscribe calls.
#[test]
fn headers_behave_the_same_however_many_there_are() {
    use interpose_js::{LocalRuntime, PostHook};
    let dir = project(&[("backend/src/index.js", HEADERS)]);
    for extra in [0usize, 12] {
        let mut headers =
            vec![("ones-user-id".to_string(), "U1".to_string()), ("content-type".into(), "application/json".into())];
        headers.extend((0..extra).map(|i| (format!("x-extra-{i}"), format!("v{i}"))));
        let names: Vec<String> = headers.iter().map(|(k, _)| k.clone()).collect();
        let all: serde_json::Map<String, serde_json::Value> =
            headers.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
        let headers: interpose_js::Headers = headers.into_iter().collect();
        let post =
            PostHook { req_headers: headers.clone(), resp_headers: headers.clone(), status: 200, ..Default::default() };
        let req = HookRequest { headers, post: Some(Arc::new(post)), ..(*request()).clone() };
        let mut rt = LocalRuntime::new(instance(&dir), Duration::from_secs(1), None).expect("loads");
        let mut body = |f: &str| match rt.call(f, &req, Duration::from_secs(1)).expect(f) {
            CallOutcome::Returned(Some(v)) => v["body"].clone(),
            other => panic!("{f}: {other:?}"),
        };
        let case = format!("{extra} extra headers");
        let p = body("probe");
        let x7 = if extra > 7 { json!("v7") } else { json!(null) };
        assert_eq!(p["get"], json!(["U1", "U1", null, x7]), "{case}");
        assert_eq!(p["inherited"], json!(["function", true, "[object Object]"]), "{case}");
        assert_eq!(p["has"], json!([true, false, true]), "{case}");
        assert_eq!(p["keys"], json!(names), "{case}");
        assert_eq!((&p["json"], &p["spread"]), (&json!(all), &json!(all)), "{case}");
        assert_eq!(p["forIn"], json!(names), "{case}");
        assert_eq!(
            p["desc"],
            json!({"value": "U1", "writable": true, "enumerable": true, "configurable": true}),
            "{case}"
        );
        assert_eq!(p["symbols"], json!(0), "{case}: nothing of the host shows");
        let m = body("mutate");
        let mut keys: Vec<String> = names.iter().filter(|k| *k != "content-type").cloned().collect();
        keys.push("x-new".into());
        assert_eq!(
            m,
            json!({"keys": keys, "user": "U2", "type": null, "added": "n",
                "before": [null, null, false], "between": [true, "t", "t"], "gone": [false, null]}),
            "{case}"
        );
        assert_eq!(body("freeze"), json!({"frozen": true, "n": names.len(), "user": "U1"}), "{case}");
        assert_eq!(body("define"), json!({"last": "x-def", "d": "d"}), "{case}");
        let returned = match rt.call("returned", &req, Duration::from_secs(1)).expect("returned") {
            CallOutcome::Returned(Some(v)) => v["headers"].clone(),
            other => panic!("{other:?}"),
        };
        assert_eq!(returned, json!(all), "{case}: a returned headers object reads as its headers");
        rt.call("keep", &req, Duration::from_secs(1)).expect("keep");
        let sent = if extra > 1 { json!("v1") } else { json!(null) };
        let mut body = |f: &str| match rt.call(f, &req, Duration::from_secs(1)).expect(f) {
            CallOutcome::Returned(Some(v)) => v["body"].clone(),
            other => panic!("{f}: {other:?}"),
        };
        assert_eq!(body("readKept"), json!({"user": "U1", "n": names.len(), "sent": sent}), "{case}: after the call");
        let x3 = if extra > 3 { json!("v3") } else { json!(null) };
        assert_eq!(body("post"), json!({"sent": x3, "got": "application/json", "keys": names}), "{case}");
    }
}
