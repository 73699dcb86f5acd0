//! The event loop of a call: promises the host settles later. An operation
//! (`sdk/`) makes one with [`pending`] and settles it from any thread — an
//! outbound call's answer arrives from the gateway's tokio runtime — and the
//! runtime, while the call waits for them, takes the next completion or due
//! timer ([`wait_one`]) and settles its promise. Everything counts against
//! the call's deadline.
//!
//! Timers (`setTimeout` and friends) are a host sleep on the same footing:
//! a promise settled when its time comes, while the call waits. They run
//! only while a call is in progress: what is still pending when it returns
//! is dropped with it.
//!
//! A wait blocks the worker thread; the pool, which counts workers that
//! wait, wraps each blocking wait ([`on_blocking_wait`]) — injected, so this
//! layer does not know the pool.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use rquickjs::{Ctx, Function, Persistent, Value};

use crate::engine::convert::json_to_js;

type Completion = (u64, serde_json::Value);

struct Ops {
    next: u64,
    waiting: HashMap<u64, Persistent<Function<'static>>>,
    /// Sleeps by due time (then id: equal times fire in the order asked).
    timers: BTreeSet<(Instant, u64)>,
    /// Calls ended on this thread: timers of an earlier generation are gone.
    generation: u64,
    tx: Sender<Completion>,
    rx: Receiver<Completion>,
}

thread_local! {
    static OPS: RefCell<Ops> = RefCell::new({
        let (tx, rx) = crossbeam_channel::unbounded();
        Ops { next: 0, waiting: HashMap::new(), timers: BTreeSet::new(), generation: 0, tx, rx }
    });
}

/// Settles one [`pending`] promise, from any thread, once.
pub(crate) struct Settle {
    id: u64,
    tx: Sender<Completion>,
}

impl Settle {
    /// Settle the promise with `value` (when the call still waits for it).
    pub(crate) fn settle(self, value: serde_json::Value) {
        let _ = self.tx.send((self.id, value));
    }
}

/// A promise for the current call and the handle that settles it.
pub(crate) fn pending<'js>(ctx: &Ctx<'js>) -> rquickjs::Result<(Value<'js>, Settle)> {
    let (promise, resolve, _reject) = ctx.promise()?;
    let id = register(ctx, resolve);
    let tx = OPS.with(|o| o.borrow().tx.clone());
    Ok((promise.into_value(), Settle { id, tx }))
}

/// What a worker does around each blocking wait of its calls: called
/// before the wait, and again (with `false`) after it.
pub(crate) type WaitHook = fn(waiting: bool);

thread_local! {
    static WAIT_HOOK: Cell<Option<WaitHook>> = const { Cell::new(None) };
}

/// Tell `hook` of every blocking wait of this thread's calls (the pool
/// counts workers that wait for I/O, and starts others meanwhile).
pub(crate) fn on_blocking_wait(hook: WaitHook) {
    WAIT_HOOK.with(|h| h.set(Some(hook)));
}

fn blocking<T>(wait: impl FnOnce() -> T) -> T {
    let hook = WAIT_HOOK.with(Cell::get);
    if let Some(h) = hook {
        h(true);
    }
    let out = wait();
    if let Some(h) = hook {
        h(false);
    }
    out
}

/// Register `resolve` for a completion; its id.
fn register<'js>(ctx: &Ctx<'js>, resolve: Function<'js>) -> u64 {
    OPS.with(|o| {
        let mut o = o.borrow_mut();
        o.next += 1;
        let id = o.next;
        o.waiting.insert(id, Persistent::save(ctx, resolve));
        id
    })
}

pub(crate) fn has_waiting() -> bool {
    OPS.with(|o| !o.borrow().waiting.is_empty())
}

/// Drop every pending resolver and timer (at the end of a call, while the
/// runtime lives); the next call is a new generation.
pub(crate) fn clear() {
    let old = OPS.with(|o| {
        let mut o = o.borrow_mut();
        o.timers.clear();
        o.generation += 1;
        std::mem::take(&mut o.waiting)
    });
    drop(old);
}

/// Wait for one completion or timer until `deadline` and settle its
/// promise. Returns false when the deadline passed first.
pub(crate) fn wait_one<'js>(ctx: &Ctx<'js>, deadline: Instant) -> rquickjs::Result<bool> {
    let rx = OPS.with(|o| o.borrow().rx.clone());
    loop {
        let timer = OPS.with(|o| o.borrow().timers.first().copied());
        let until = timer.map_or(deadline, |(due, _)| due.min(deadline));
        let (id, value) = match rx.try_recv() {
            Ok(c) => c,
            Err(_) if timer.is_some_and(|(due, _)| due <= Instant::now()) => {
                let (due, id) = timer.unwrap_or((deadline, 0));
                OPS.with(|o| o.borrow_mut().timers.remove(&(due, id)));
                (id, serde_json::Value::Null)
            }
            Err(_) => match blocking(|| rx.recv_deadline(until)) {
                Ok(c) => c,
                Err(_) if until < deadline => continue,
                Err(_) => return Ok(false),
            },
        };
        let resolve = OPS.with(|o| o.borrow_mut().waiting.remove(&id));
        // A completion of an earlier, abandoned call has no resolver: skip it.
        let Some(resolve) = resolve else { continue };
        let resolve = resolve.restore(ctx)?;
        let v = json_to_js(ctx, &value)?;
        resolve.call::<_, ()>((v,))?;
        return Ok(true);
    }
}

/// `interpose:host` `generation()`: changes when a call ends, so the timer
/// bookkeeping in JS can forget the timers the host dropped with it.
pub(crate) fn generation() -> f64 {
    OPS.with(|o| o.borrow().generation as f64)
}

/// The host side of timers: a promise settled after `ms` milliseconds,
/// if the call is still running then.
pub(crate) fn host_sleep<'js>(ctx: Ctx<'js>, ms: f64) -> rquickjs::Result<Value<'js>> {
    let (promise, resolve, _reject) = ctx.promise()?;
    let id = register(&ctx, resolve);
    let ms = if ms.is_finite() && ms > 0.0 { ms.min(86_400_000.0) } else { 0.0 };
    let due = Instant::now() + Duration::from_secs_f64(ms / 1000.0);
    OPS.with(|o| o.borrow_mut().timers.insert((due, id)));
    Ok(promise.into_value())
}
