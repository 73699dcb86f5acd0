//! One QuickJS runtime + context running one instance's code on one thread,
//! and the call itself: request in, outcome out, within a deadline.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::time::{Duration, Instant};

// Keys are the gateway's own (instance keys, worker ids, export names):
// a fast seeded hash (SipHash was ~1k instructions a call).
use foldhash::HashMap;

use rquickjs::module::Evaluated;
use rquickjs::promise::PromiseState;
use rquickjs::{Context, Ctx, Function, Module, Object, Persistent, Runtime, Value};

use crate::code::transpile::SYNC_TWIN;
use crate::engine::convert::{hook_result_to_json, request_object, Shapes, MAKE_REQUEST};
use crate::engine::scope::{with_scope, CallScope};
use crate::model::error::{CallOutcome, HookError, PluginErrorData};
use crate::model::instance::Instance;
use crate::model::io::HostIo;
use crate::model::request::HookRequest;
use loader::PluginLoader;

mod loader;

fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

pub(crate) fn nanos(t: Instant) -> u64 {
    t.saturating_duration_since(epoch()).as_nanos() as u64
}

/// Fields drop in declaration order: every handle into the context goes
/// before the context, and the context before the runtime (QuickJS aborts
/// the process otherwise).
pub(crate) struct PluginRuntime {
    functions: HashMap<String, Persistent<Function<'static>>>,
    namespace: Persistent<Object<'static>>,
    make_request: Persistent<Function<'static>>,
    /// Shared with the headers' sources (convert.rs `headers`).
    shapes: Rc<RefCell<Shapes>>,
    context: Context,
    runtime: Runtime,
    deadline: Arc<AtomicU64>,
    /// Weak: the pool sweeps a runtime once its instance is gone (uninstalled
    /// or upgraded), which a strong reference from here would never allow.
    instance: Weak<Instance>,
}

impl PluginRuntime {
    /// Create the runtime and evaluate the entry module, within `deadline`.
    pub(crate) fn new(
        instance: Arc<Instance>,
        deadline: Instant,
        io: Option<Arc<dyn HostIo>>,
    ) -> Result<PluginRuntime, HookError> {
        let load = |e: rquickjs::Error| HookError::Load(e.to_string());
        let runtime = Runtime::new().map_err(load)?;
        runtime.set_memory_limit(instance.limits.memory_mb << 20);
        runtime.set_max_stack_size(instance.limits.stack_kb << 10);
        let dl = Arc::new(AtomicU64::new(nanos(deadline)));
        let handler_dl = dl.clone();
        runtime
            .set_interrupt_handler(Some(Box::new(move || nanos(Instant::now()) > handler_dl.load(Ordering::Relaxed))));
        let loader = PluginLoader { code: instance.code.clone() };
        let resolver = PluginLoader { code: instance.code.clone() };
        runtime.set_loader(resolver, loader);
        let context = Context::full(&runtime).map_err(load)?;
        let scope = CallScope { instance: instance.clone(), request_id: None, io, deadline };
        let shapes = Rc::new(RefCell::new(Shapes::default()));
        let made = with_scope(scope, || {
            context.with(|ctx| -> Result<_, HookError> {
                let _clear = ClearOps;
                // Declare, evaluate and settle a module; any failure is a load error.
                let eval_module = |name: &str, source: Vec<u8>| -> Result<Module<'_, Evaluated>, HookError> {
                    let fail = |e| match as_load_error(failure(&ctx, &instance, e, deadline)) {
                        HookError::Load(m) => {
                            let place = instance.code.import_place(&m).unwrap_or_default();
                            HookError::Load(format!("{m}{place}"))
                        }
                        other => other,
                    };
                    let (module, promise) =
                        Module::declare(ctx.clone(), name, source).and_then(|m| m.eval()).map_err(fail)?;
                    settle(&ctx, promise.into_value(), deadline).map_err(fail)?;
                    Ok(module)
                };
                // `globalThis.onesEnv`, there before the plugin's module runs
                // (its top level may read it), as on the ONES platform.
                let place = instance.place();
                let env = Object::new(ctx.clone()).map_err(load)?;
                env.set("teamUUID", place.team_uuid).map_err(load)?;
                env.set("organizationUUID", place.organization_uuid).map_err(load)?;
                env.set("instanceId", instance.id.as_str()).map_err(load)?;
                ctx.globals().set("onesEnv", env).map_err(load)?;
                eval_module(crate::code::builtins::GLOBALS, crate::code::builtins::GLOBALS_SOURCE.into())?;
                // Before the plugin's code runs, which may replace the globals it uses.
                let make: Function = ctx.eval(MAKE_REQUEST).map_err(load)?;
                shapes.borrow_mut().note_requests(&ctx, &make);
                let code = &instance.code;
                let source = code.module(&code.entry).map(|m| m.code.clone()).unwrap_or_default();
                let ns = eval_module(&code.entry, source.into())?.namespace().map_err(load)?;
                // A CommonJS entry exports what it put on `module.exports`.
                let ns = if ns.get::<_, Option<bool>>("__interpose_cjs").ok().flatten() == Some(true) {
                    let exports: Value = ns.get("default").map_err(load)?;
                    exports
                        .into_object()
                        .ok_or_else(|| HookError::Load(format!("{}: module.exports is not an object", code.entry)))?
                } else {
                    ns
                };
                Ok((Persistent::save(&ctx, ns), Persistent::save(&ctx, make)))
            })
        });
        let (namespace, make_request) = match made {
            Ok(v) => v,
            Err(e) => {
                // Nothing may outlive the context; handles were not created.
                drop(context);
                drop(runtime);
                return Err(e);
            }
        };
        dl.store(u64::MAX, Ordering::Relaxed);
        Ok(PluginRuntime {
            functions: HashMap::default(),
            namespace,
            make_request,
            shapes,
            context,
            runtime,
            deadline: dl,
            instance: Arc::downgrade(&instance),
        })
    }

    /// What is wrong with each of `functions` as an export of the entry
    /// module; the ones exported as functions are left out.
    pub(crate) fn export_problems(&self, functions: &[&str]) -> Vec<(String, ExportProblem)> {
        self.context.with(|ctx| {
            let Ok(ns) = self.namespace.clone().restore(&ctx) else {
                return functions.iter().map(|f| (f.to_string(), ExportProblem::Missing)).collect();
            };
            let default: Option<Value> = ns.get("default").ok().filter(|v: &Value| !v.is_undefined());
            let mut out = Vec::new();
            for f in functions {
                let problem = match ns.get::<_, Value>(*f) {
                    Ok(v) if v.is_function() => continue,
                    Ok(v) if !v.is_undefined() => ExportProblem::NotAFunction(type_name(&v)),
                    _ if default.as_ref().is_some_and(|d| is_in_default(d, f)) => ExportProblem::OnlyInDefault,
                    _ => ExportProblem::Missing,
                };
                out.push((f.to_string(), problem));
            }
            out
        })
    }

    /// Call `function(request)` and wait for its promise, all before `deadline`.
    pub(crate) fn call(
        &mut self,
        function: &str,
        request: &HookRequest,
        deadline: Instant,
        io: Option<Arc<dyn HostIo>>,
    ) -> Result<CallOutcome, HookError> {
        self.invoke(function, request.request_id.clone(), deadline, io, |ctx, make, shapes| {
            Ok(vec![request_object(ctx, request, make, shapes)?.into_value()])
        })
    }

    /// Call `function(...args)` with JSON arguments (lifecycle functions).
    pub(crate) fn call_json(
        &mut self,
        function: &str,
        args: &[serde_json::Value],
        deadline: Instant,
        io: Option<Arc<dyn HostIo>>,
    ) -> Result<CallOutcome, HookError> {
        self.invoke(function, None, deadline, io, |ctx, _, _| {
            args.iter().map(|a| crate::engine::convert::json_to_js(ctx, a)).collect()
        })
    }

    fn invoke(
        &mut self,
        function: &str,
        request_id: Option<String>,
        deadline: Instant,
        io: Option<Arc<dyn HostIo>>,
        build: impl for<'js> FnOnce(&Ctx<'js>, &Function<'js>, &Rc<RefCell<Shapes>>) -> rquickjs::Result<Vec<Value<'js>>>,
    ) -> Result<CallOutcome, HookError> {
        let Some(instance) = self.instance.upgrade() else {
            return Err(HookError::Unavailable("the plugin instance is gone (uninstalled or upgraded)".into()));
        };
        self.deadline.store(nanos(deadline), Ordering::Relaxed);
        let scope = CallScope { instance: instance.clone(), request_id, io, deadline };
        let functions = &mut self.functions;
        let namespace = &self.namespace;
        let make = &self.make_request;
        let shapes = &self.shapes;
        let instance = &instance;
        let out = with_scope(scope, || {
            self.context.with(|ctx| {
                let _clear = ClearOps;
                let f = match functions.get(function) {
                    Some(f) => f.clone().restore(&ctx).map_err(|e| HookError::Load(e.to_string()))?,
                    None => {
                        let ns = namespace.clone().restore(&ctx).map_err(|e| HookError::Load(e.to_string()))?;
                        let v: Value = ns.get(function).map_err(|e| HookError::Load(e.to_string()))?;
                        let Some(f) = v.into_function() else {
                            return Err(HookError::NotExported(function.to_string()));
                        };
                        // An async function that never awaits is called as the
                        // synchronous twin it carries (transpile.rs `sync_twins`).
                        let twin = f.get::<_, Value>(SYNC_TWIN).ok().and_then(Value::into_function);
                        let f = twin.unwrap_or(f);
                        functions.insert(function.to_string(), Persistent::save(&ctx, f.clone()));
                        f
                    }
                };
                let make = make.clone().restore(&ctx).map_err(|e| HookError::Load(e.to_string()))?;
                let values =
                    build(&ctx, &make, shapes).map_err(|e| as_load_error(failure(&ctx, instance, e, deadline)))?;
                let mut args = rquickjs::function::Args::new(ctx.clone(), values.len());
                for v in values {
                    args.push_arg(v).map_err(|e| HookError::Load(e.to_string()))?;
                }
                let result = args
                    .apply::<Value>(&f)
                    .and_then(|v| settle(&ctx, v, deadline))
                    .map_err(|e| failure(&ctx, instance, e, deadline));
                match result {
                    Ok(v) => hook_result_to_json(&ctx, &make, v, &mut shapes.borrow_mut()).map(CallOutcome::Returned),
                    Err(Failure::Rejected(p)) => Ok(CallOutcome::Rejected(p)),
                    Err(Failure::Error(e)) => Err(e),
                }
            })
        });
        self.deadline.store(u64::MAX, Ordering::Relaxed);
        out
    }

    /// Bytes the JS heap holds now.
    pub(crate) fn memory_used(&self) -> i64 {
        self.runtime.memory_usage().malloc_size
    }
}

/// Drops the resolvers of host I/O still pending when a call ends, inside
/// the context (a handle must never outlive its runtime).
struct ClearOps;

impl Drop for ClearOps {
    fn drop(&mut self) {
        crate::engine::event_loop::clear();
    }
}

/// The SDK's error classes a plugin may let escape, as the platform
/// converts them (ONES's "SDK error handling").
const SDK_ERRORS: &[&str] = &["FileError", "DBError", "AbilityError", "SDKError"];

/// What ONES shows instead of an SDK error's reason when its status is 500.
const SERVICE_UNAVAILABLE: &str = "Service unavailable. Try again later.";

/// How a call that did not return ended.
enum Failure {
    Rejected(PluginErrorData),
    Error(HookError),
}

fn as_load_error(f: Failure) -> HookError {
    match f {
        Failure::Rejected(p) => HookError::Load(format!("threw {}: {}", p.errcode, p.reason)),
        Failure::Error(HookError::Threw { message, location }) => {
            HookError::Load(format!("{message}{}", location.map(|l| format!(" at {l}")).unwrap_or_default()))
        }
        Failure::Error(e) => e,
    }
}

/// Wait for a promise (or take a plain value), running queued jobs.
fn settle<'js>(ctx: &Ctx<'js>, v: Value<'js>, deadline: Instant) -> rquickjs::Result<Value<'js>> {
    let promise = match v.as_promise() {
        Some(p) => p.clone(),
        None => {
            // A thenable is waited for, as `await` (and an async function's
            // `return`) would; a `then` getter that throws fails the call.
            let Some(obj) = v.as_object() else { return Ok(v) };
            if !obj.get::<_, Value>("then")?.is_function() {
                return Ok(v);
            }
            let (promise, resolve, _) = ctx.promise()?;
            resolve.call::<_, ()>((v,))?;
            promise
        }
    };
    loop {
        match promise.state() {
            PromiseState::Resolved => {
                return promise.result::<Value>().unwrap_or(Ok(Value::new_undefined(ctx.clone())))
            }
            PromiseState::Rejected => {
                return match promise.result::<Value>() {
                    Some(r) => r,
                    None => Err(rquickjs::Error::Exception),
                };
            }
            PromiseState::Pending => {
                if !ctx.execute_pending_job() {
                    // Waiting for host I/O (fetch): block until it answers or the deadline.
                    if crate::engine::event_loop::has_waiting() {
                        if crate::engine::event_loop::wait_one(ctx, deadline)? {
                            continue;
                        }
                        return Err(rquickjs::Exception::throw_internal(ctx, "interrupted"));
                    }
                    let why = if Instant::now() >= deadline {
                        "interrupted"
                    } else {
                        "the hook's promise never settled (nothing left to run)"
                    };
                    return Err(rquickjs::Exception::throw_internal(ctx, why));
                }
            }
        }
    }
}

/// Turn an engine error into what it means for the hook.
fn failure<'js>(ctx: &Ctx<'js>, instance: &Instance, e: rquickjs::Error, deadline: Instant) -> Failure {
    let thrown = match e {
        rquickjs::Error::Exception => ctx.catch(),
        other => {
            if Instant::now() >= deadline {
                return Failure::Error(HookError::Timeout(0));
            }
            return Failure::Error(HookError::Threw { message: other.to_string(), location: None });
        }
    };
    if Instant::now() >= deadline {
        return Failure::Error(HookError::Timeout(0));
    }
    if let Some(obj) = thrown.as_object() {
        let name: String = obj.get("name").unwrap_or_default();
        let message: String = obj.get("message").unwrap_or_default();
        if name == "PluginError" {
            let status: i32 = obj.get("statusCode").unwrap_or(500);
            return Failure::Rejected(PluginErrorData {
                kind: obj.get("type").unwrap_or_else(|_| "error".to_string()),
                reason: obj.get("reason").unwrap_or(message),
                errcode: obj.get("errcode").unwrap_or_else(|_| "PluginError".to_string()),
                status: u16::try_from(status).ok().filter(|s| (400..600).contains(s)).unwrap_or(500),
            });
        }
        // An SDK error thrown on: converted as ONES does (level → type, its
        // status; a 500's reason is not shown, the stack is the plugin's log's).
        if SDK_ERRORS.contains(&name.as_str()) {
            let status: i32 = obj.get("statusCode").unwrap_or(500);
            let status = u16::try_from(status).ok().filter(|s| (400..600).contains(s)).unwrap_or(500);
            let reason: String = obj.get("reason").unwrap_or(message);
            let errcode: String = obj.get("errcode").unwrap_or_else(|_| name.clone());
            if status == 500 {
                instance.record_log(crate::LogLevel::Error, format!("{name} {errcode}: {reason}"), None);
            }
            return Failure::Rejected(PluginErrorData {
                kind: obj.get::<_, String>("level").ok().filter(|l| l == "warning").unwrap_or_else(|| "error".into()),
                reason: if status == 500 { SERVICE_UNAVAILABLE.to_string() } else { reason },
                errcode,
                status,
            });
        }
        if message.contains("out of memory") {
            return Failure::Error(HookError::OutOfMemory(instance.limits.memory_mb));
        }
        if thrown.is_error() {
            let stack: String = obj.get("stack").unwrap_or_default();
            let text = if name.is_empty() { message } else { format!("{name}: {message}") };
            return Failure::Error(HookError::Threw { message: text, location: instance.code.locate(&stack) });
        }
    }
    if thrown.is_null() {
        // QuickJS throws `null` when it cannot even allocate the error object
        // (quickjs.c, JS_ThrowError2); by then the heap may already be freed,
        // so it is taken as exhaustion. A plugin's own `throw null` is
        // reported the same way.
        return Failure::Error(HookError::OutOfMemory(instance.limits.memory_mb));
    }
    let shown = ctx
        .json_stringify(thrown.clone())
        .ok()
        .flatten()
        .and_then(|s| s.to_string().ok())
        .unwrap_or_else(|| format!("a {} value", thrown.type_name()));
    Failure::Error(HookError::Threw { message: format!("a non-Error value: {shown}"), location: None })
}

/// Why a function a manifest names cannot be called.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExportProblem {
    /// The entry module has no export of that name.
    Missing,
    /// It exports the name, as something else (its `typeof`, or `null`).
    NotAFunction(String),
    /// Only through the default export (`export default function f`, or
    /// `export default { f }`); hooks call named exports, as on ONES.
    OnlyInDefault,
}

/// JavaScript's `typeof`, with `null` said as such.
fn type_name(v: &Value) -> String {
    use rquickjs::Type;
    match v.type_of() {
        Type::Null => "null",
        Type::Bool => "boolean",
        Type::Int | Type::Float => "number",
        Type::String => "string",
        Type::Symbol => "symbol",
        Type::BigInt => "bigint",
        Type::Undefined | Type::Uninitialized => "undefined",
        _ => "object",
    }
    .to_string()
}

/// The default export is the function `name`, or an object holding it.
fn is_in_default(default: &Value, name: &str) -> bool {
    if let Some(f) = default.as_function() {
        if f.get::<_, String>("name").is_ok_and(|n| n == name) {
            return true;
        }
    }
    default.as_object().is_some_and(|o| o.get::<_, Value>(name).is_ok_and(|v| v.is_function()))
}

/// Load `instance` on this thread and say which of `functions` it does not
/// export as functions, and why (the install-time check).
pub fn check_exports(
    instance: Arc<Instance>,
    functions: &[&str],
    timeout: Duration,
) -> Result<Vec<(String, ExportProblem)>, HookError> {
    let rt = PluginRuntime::new(instance, Instant::now() + timeout, None)?;
    Ok(rt.export_problems(functions))
}

impl Drop for PluginRuntime {
    fn drop(&mut self) {
        // Handles first (field order also guarantees this; explicit for clarity).
        self.functions.clear();
    }
}

/// One runtime used directly on the calling thread, without the pool: for
/// tools and benchmarks (lifecycle functions run on the pool). Not `Send`.
pub struct LocalRuntime {
    runtime: PluginRuntime,
    io: Option<Arc<dyn HostIo>>,
    /// The runtime only holds its instance weakly; this keeps it alive.
    _instance: Arc<Instance>,
}

impl LocalRuntime {
    /// Load `instance`, evaluating its entry module within `timeout`.
    pub fn new(
        instance: Arc<Instance>,
        timeout: Duration,
        io: Option<Arc<dyn HostIo>>,
    ) -> Result<LocalRuntime, HookError> {
        PluginRuntime::new(instance.clone(), Instant::now() + timeout, io.clone()).map(|runtime| LocalRuntime {
            runtime,
            io,
            _instance: instance,
        })
    }

    /// Call `function(request)` within `timeout`.
    pub fn call(&mut self, function: &str, request: &HookRequest, timeout: Duration) -> Result<CallOutcome, HookError> {
        let ms = timeout.as_millis() as u64;
        self.runtime.call(function, request, Instant::now() + timeout, self.io.clone()).map_err(|e| match e {
            HookError::Timeout(_) => HookError::Timeout(ms),
            other => other,
        })
    }
}
