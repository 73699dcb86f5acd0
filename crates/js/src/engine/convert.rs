//! Rust ⇄ JS values. Requests are built directly (no JSON text round trip:
//! measured faster); results are read directly when they are plain data and
//! go through `JSON.stringify` otherwise, so they always have its semantics
//! (`toJSON`, dropped `undefined`, cycles refused).

use std::cell::RefCell;
use std::rc::Rc;

use rquickjs::atom::PredefinedAtom;
use rquickjs::function::Opt;
use rquickjs::{Array, Ctx, Function, Object, Value};

use crate::model::error::HookError;
use crate::model::request::{Body, Headers, HookRequest};

/// Makes header lookups case-insensitive without copying the headers.
/// Builds the request object in JS: the object literal gets one cached shape
/// and no property name is looked up from Rust. Headers are looked up
/// case-insensitively through a Proxy (`make.wrap` for the post-hook ones).
pub(crate) const MAKE_REQUEST: &str = r#"(() => {
  // Names looked up, lower-cased (toLowerCase makes a new string each
  // time), null for those already in lower case (a miss then ends at
  // once); at most 512 of them.
  const lower = Object.create(null);
  let lowered = 0;
  const low = (k) => {
    const l = k.toLowerCase();
    if (lowered < 512) { lower[k] = l === k ? null : l; lowered++; }
    return l;
  };
  const lc = (k) => {
    const l = lower[k];
    return l === null ? k : (l ?? low(k));
  };
  const handler = {
    get(t, k) {
      // Header values are strings or arrays, never undefined: a miss is
      // retried lower-cased (the names are stored so).
      const v = t[k];
      if (v !== undefined || typeof k !== 'string') return v;
      const l = lower[k];
      if (l === null) return undefined;
      return t[l ?? low(k)];
    },
    has(t, k) { return typeof k === 'string' ? (k in t || lc(k) in t) : k in t; },
    // Names are stored lower-cased: `headers['Ones-User-Id'] = v` replaces
    // the header the request came with, and delete removes it.
    set(t, k, v) { t[typeof k === 'string' ? lc(k) : k] = v; return true; },
    deleteProperty(t, k) {
      delete t[k];
      if (typeof k === 'string') delete t[lc(k)];
      return true;
    },
  };
  // Many headers start as their source only (convert.rs `headers`), which
  // gives a header in any case until anything but a lookup or `in` has it
  // copy them all onto the target, and is removed.
  const SOURCE = Symbol('source');
  // Taken before the plugin's code runs, which may replace them.
  const { ownKeys, getOwnPropertyDescriptor: ownProperty, defineProperty, preventExtensions } = Reflect;
  const fill = (t) => {
    const source = t[SOURCE];
    if (source !== undefined) { source(t, make); delete t[SOURCE]; }
  };
  const sourced = {
    get(t, k) {
      const source = t[SOURCE];
      if (source !== undefined) {
        const h = source(k);
        if (h !== undefined) return h;
      }
      return handler.get(t, k);
    },
    has(t, k) {
      // Before the copy the target's own keys are only SOURCE: the rest is inherited.
      const source = t[SOURCE];
      if (source !== undefined && typeof k === 'string') return source(k) !== undefined || k in t;
      fill(t);
      return handler.has(t, k);
    },
    set(t, k, v) { fill(t); return handler.set(t, k, v); },
    deleteProperty(t, k) { fill(t); return handler.deleteProperty(t, k); },
    ownKeys(t) { fill(t); return ownKeys(t); },
    getOwnPropertyDescriptor(t, k) { fill(t); return ownProperty(t, k); },
    defineProperty(t, k, d) { fill(t); return defineProperty(t, k, d); },
    preventExtensions(t) { fill(t); return preventExtensions(t); },
  };
  // `o`: the headers, or their source.
  const wrap = (o) => (typeof o === 'function' ? new Proxy({ [SOURCE]: o }, sourced) : new Proxy(o, handler));
  // What every request inherits: `parsedHeaders`, ONES's headers with
  // their values as arrays (any case, as `headers`), made when first read.
  const create = Object.create;
  const REQ = {
    get parsedHeaders() {
      const h = this.headers;
      const out = {};
      for (const k of ownKeys(h)) {
        const v = h[k];
        if (typeof k === 'string' && v !== undefined) out[k] = Array.isArray(v) ? v.map(String) : [String(v)];
      }
      const parsed = wrap(out);
      defineProperty(this, 'parsedHeaders', { value: parsed, writable: true, enumerable: false, configurable: true });
      return parsed;
    },
  };
  // Its keys, in this order, are `REQUEST_KEYS` (convert.rs).
  const make = (method, url, path, query, params, headers, body, teamUUID, userUUID) => {
    const r = create(REQ);
    r.method = method; r.url = url; r.path = path; r.query = query; r.params = params;
    r.headers = wrap(headers); r.body = body;
    if (teamUUID !== undefined) r.teamUUID = teamUUID;
    if (userUUID !== undefined) r.userUUID = userUUID;
    return r;
  };
  make.requestProto = REQ;
  make.wrap = wrap;
  make.objectProto = Object.prototype;
  // One live object per prefix of `keys`, each property defined as an
  // assignment or a literal would (see `Shapes` in convert.rs).
  const kept = [];
  const define = Object.defineProperty;
  const slot = { value: 0, writable: true, enumerable: true, configurable: true };
  make.keep = (keys, proto) => {
    for (let i = 1; i <= keys.length; i++) {
      const o = proto === undefined ? {} : create(proto);
      for (let j = 0; j < i; j++) define(o, keys[j], slot);
      kept[kept.length] = o;
    }
  };
  // A body that is not UTF-8, as Node would hold it.
  make.bytes = (ab) => (typeof Buffer === 'function' ? new Buffer(ab) : new Uint8Array(ab));
  // A result with a bytes body (Uint8Array, Buffer, ArrayBuffer): the rest
  // of it, and the bytes as a string of char codes 0-255.
  make.splitBytes = (r) => {
    const { body, ...rest } = r;
    const u = body instanceof ArrayBuffer ? new Uint8Array(body) : body;
    let s = '';
    for (let i = 0; i < u.length; i += 8192) s += String.fromCharCode.apply(null, u.subarray(i, i + 8192));
    return [rest, s];
  };
  return make;
})()"#;

/// Up to this many headers are copied into a plain object; beyond it a
/// request's headers are looked up where they are (see [`headers`]).
const COPIED_HEADERS: usize = 4;

/// A headers object's target, wrapped in the case-insensitive Proxy by
/// `make` ([`MAKE_REQUEST`]). Copying every header into a JS object costs
/// whether the hook looks at them or not (docs/decisions.md, "Headers
/// looked up where they are"), so past [`COPIED_HEADERS`] the
/// target starts with only a function, `source`: a hook that reads a
/// header or two — the usual case — gets each through `source(name)` (any
/// case; `undefined` when there is none; `in` asks it too), and only one
/// that enumerates, serialises or changes the headers has them all copied
/// onto the target (`source(target, make)`), after which it is an
/// ordinary object.
/// Creating and calling `source` costs about what copying four or five
/// headers does, hence the threshold. A headers object kept past its call
/// keeps the request's [`Headers`] (shared, not copied) outside the JS
/// heap's count — at most `limits.max_header_bytes`; the JS objects around
/// it count — and only them: not the request and its body.
fn headers<'js>(
    ctx: &Ctx<'js>,
    headers: &Headers,
    make: &Function<'js>,
    shapes: &Rc<RefCell<Shapes>>,
) -> rquickjs::Result<Value<'js>> {
    if headers.len() <= COPIED_HEADERS {
        return Ok(pairs_object(ctx, headers.iter(), make, &mut shapes.borrow_mut())?.into_value());
    }
    let packed = headers.clone();
    let shapes = shapes.clone();
    let source = move |ctx: Ctx<'js>, key: Value<'js>, make: Opt<Function<'js>>| -> rquickjs::Result<Value<'js>> {
        if let (Some(target), Some(make)) = (key.as_object(), make.0) {
            // Busy only while a result is read, which the Proxy's traps can run in.
            if let Ok(mut shapes) = shapes.try_borrow_mut() {
                shapes.note(&ctx, &make, packed.iter().map(|(k, _)| k));
            }
            for (k, v) in packed.iter() {
                target.set(k, v)?;
            }
            return Ok(Value::new_undefined(ctx));
        }
        let Some(key) = key.as_string() else { return Ok(Value::new_undefined(ctx)) };
        let key = key.clone().to_cstring()?;
        let found = packed.iter().find(|(name, _)| name.eq_ignore_ascii_case(key.as_str()));
        match found {
            Some((_, value)) => Ok(rquickjs::String::from_str(ctx, value)?.into_value()),
            None => Ok(Value::new_undefined(ctx)),
        }
    };
    Ok(Function::new(ctx.clone(), source)?.into_value())
}

pub(crate) fn json_to_js<'js>(ctx: &Ctx<'js>, v: &serde_json::Value) -> rquickjs::Result<Value<'js>> {
    json_to_js_kept(ctx, v, &mut None)
}

/// `json_to_js`, noting the objects' keys in `shapes` (see [`Shapes`]).
fn json_to_js_kept<'js>(
    ctx: &Ctx<'js>,
    v: &serde_json::Value,
    shapes: &mut Option<(&mut Shapes, &Function<'js>)>,
) -> rquickjs::Result<Value<'js>> {
    use serde_json::Value as J;
    Ok(match v {
        J::Null => Value::new_null(ctx.clone()),
        J::Bool(b) => Value::new_bool(ctx.clone(), *b),
        J::Number(n) => match n.as_i64().and_then(|i| i32::try_from(i).ok()) {
            Some(i) => Value::new_int(ctx.clone(), i),
            None => Value::new_float(ctx.clone(), n.as_f64().unwrap_or(f64::NAN)),
        },
        J::String(s) => rquickjs::String::from_str(ctx.clone(), s)?.into_value(),
        J::Array(items) => {
            let arr = Array::new(ctx.clone())?;
            for (i, item) in items.iter().enumerate() {
                arr.set(i, json_to_js_kept(ctx, item, shapes)?)?;
            }
            arr.into_value()
        }
        J::Object(map) => {
            if let Some((shapes, make)) = shapes {
                shapes.note(ctx, make, map.keys().map(String::as_str));
            }
            let obj = Object::new(ctx.clone())?;
            for (k, item) in map {
                obj.set(k.as_str(), json_to_js_kept(ctx, item, shapes)?)?;
            }
            obj.into_value()
        }
    })
}

fn body_to_js<'js>(
    ctx: &Ctx<'js>,
    body: &Body,
    make: &Function<'js>,
    shapes: &mut Shapes,
) -> rquickjs::Result<Value<'js>> {
    match body {
        Body::Empty => Ok(Value::new_undefined(ctx.clone())),
        Body::Json(v) => json_to_js_kept(ctx, v, &mut Some((shapes, make))),
        Body::Text(s) => Ok(rquickjs::String::from_str(ctx.clone(), s)?.into_value()),
        Body::Bytes(b) => {
            let buffer = rquickjs::ArrayBuffer::new_copy(ctx.clone(), b)?;
            let bytes: Function = make.get("bytes")?;
            bytes.call((buffer,))
        }
    }
}

fn pairs_object<'js, 'a>(
    ctx: &Ctx<'js>,
    pairs: impl ExactSizeIterator<Item = (&'a str, &'a str)> + Clone,
    make: &Function<'js>,
    shapes: &mut Shapes,
) -> rquickjs::Result<Object<'js>> {
    shapes.note(ctx, make, pairs.clone().map(|(k, _)| k));
    let obj = Object::new(ctx.clone())?;
    for (k, v) in pairs {
        obj.set(k, v)?;
    }
    Ok(obj)
}

/// Query pairs: one value → string, a repeated key → array of strings.
fn query_object<'js>(
    ctx: &Ctx<'js>,
    pairs: &[(String, String)],
    make: &Function<'js>,
    shapes: &mut Shapes,
) -> rquickjs::Result<Object<'js>> {
    // The keys in the order they first appear.
    let mut keys: Vec<&str> = Vec::new();
    for (k, _) in pairs {
        if !keys.contains(&k.as_str()) {
            keys.push(k);
        }
    }
    shapes.note(ctx, make, keys.iter().copied());
    let obj = Object::new(ctx.clone())?;
    for k in keys {
        let all: Vec<&str> = pairs.iter().filter(|(pk, _)| pk == k).map(|(_, pv)| pv.as_str()).collect();
        if let [one] = all[..] {
            obj.set(k, one)?;
        } else {
            obj.set(k, all)?;
        }
    }
    Ok(obj)
}

/// The keys of the request object `make` (runtime.rs) builds, in its
/// order; `teamUUID` and `userUUID` are there only when known.
const REQUEST_KEYS: [&str; 9] = ["method", "url", "path", "query", "params", "headers", "body", "teamUUID", "userUUID"];

fn request_keys(team: bool, user: bool) -> impl Iterator<Item = &'static str> {
    REQUEST_KEYS.into_iter().filter(move |k| match *k {
        "teamUUID" => team,
        "userUUID" => user,
        _ => true,
    })
}

/// Build the JS `PluginRequest`; `make` wraps its headers in the Proxy
/// that makes lookups case-insensitive.
pub(crate) fn request_object<'js>(
    ctx: &Ctx<'js>,
    req: &HookRequest,
    make: &Function<'js>,
    shared: &Rc<RefCell<Shapes>>,
) -> rquickjs::Result<Object<'js>> {
    let opt = |s: &Option<String>| -> rquickjs::Result<Value<'js>> {
        match s {
            Some(s) => Ok(rquickjs::String::from_str(ctx.clone(), s)?.into_value()),
            None => Ok(Value::new_undefined(ctx.clone())),
        }
    };
    let headers = |pairs| headers(ctx, pairs, make, shared);
    let shapes = || shared.borrow_mut();
    let mut args = rquickjs::function::Args::new(ctx.clone(), 9);
    args.push_arg(req.method.as_str())?;
    args.push_arg(req.url.as_str())?;
    args.push_arg(req.path.as_str())?;
    args.push_arg(query_object(ctx, &req.query, make, &mut shapes())?)?;
    let params = req.params.iter().map(|(k, v)| (k.as_str(), v.as_str()));
    args.push_arg(pairs_object(ctx, params, make, &mut shapes())?)?;
    args.push_arg(headers(&req.headers)?)?;
    args.push_arg(body_to_js(ctx, &req.body, make, &mut shapes())?)?;
    args.push_arg(opt(&req.team_uuid)?)?;
    args.push_arg(opt(&req.user_uuid)?)?;
    let obj: Object = args.apply(make)?;
    if let Some(post) = &req.post {
        let wrap: Function = make.get("wrap")?;
        obj.set("reqHeaders", wrap.call::<_, Value>((headers(&post.req_headers)?,))?)?;
        obj.set("reqBody", body_to_js(ctx, &post.req_body, make, &mut shapes())?)?;
        obj.set("respHeaders", wrap.call::<_, Value>((headers(&post.resp_headers)?,))?)?;
        obj.set("respBody", body_to_js(ctx, &post.resp_body, make, &mut shapes())?)?;
        obj.set("statusCode", post.status)?;
        // The keys the object has now, in order: `make`'s, then these.
        let keys: Vec<&str> = request_keys(req.team_uuid.is_some(), req.user_uuid.is_some())
            .chain(["reqHeaders", "reqBody", "respHeaders", "respBody", "statusCode"])
            .collect();
        shapes().note(ctx, make, keys.into_iter());
    }
    for (k, v) in &req.extra {
        obj.set(k.as_str(), json_to_js_kept(ctx, v, &mut Some((&mut *shapes(), make)))?)?;
    }
    Ok(obj)
}

/// A result whose `body` is bytes (a `Uint8Array`, which includes `Buffer`
/// and what `readBytes` gives, or an `ArrayBuffer`) carries them in its JSON
/// as `{"body": {BINARY_BODY_KEY: "<base64>"}}`; the gateway sends them as
/// they are.
pub const BINARY_BODY_KEY: &str = "__interpose_binary_body_base64";

/// `result_to_json`, with a bytes `body` kept as bytes (see [`BINARY_BODY_KEY`]).
pub(crate) fn hook_result_to_json<'js>(
    ctx: &Ctx<'js>,
    make: &Function<'js>,
    v: Value<'js>,
    shapes: &mut Shapes,
) -> Result<Option<serde_json::Value>, HookError> {
    let mut plain = Plain { object_proto: None, shapes: Some((shapes, make)) };
    if v.is_undefined() || v.is_null() {
        return Ok(None);
    }
    // Plain data, the usual result, is read without asking about bytes
    // first: bytes are not plain, so a bytes body ends the walk.
    if let Some(out) = plain.walk(ctx, &v, 0) {
        return Ok(out);
    }
    // A getter may have thrown on the way: JSON.stringify meets it again.
    let _ = ctx.catch();
    let bytes_body = v.as_object().is_some_and(|o| {
        o.get::<_, Value>("body").is_ok_and(|b| b.as_object().is_some_and(|b| plain.is_bytes(ctx, b)))
    });
    if !bytes_body {
        return stringified(ctx, v);
    }
    let split: Function = make.get("splitBytes").map_err(|e| HookError::BadResult(e.to_string()))?;
    let bad = |e: rquickjs::Error| HookError::BadResult(format!("bytes body: {e}"));
    let parts: Array = split.call((v,)).map_err(bad)?;
    let (rest, latin1): (Value, String) = (parts.get(0).map_err(bad)?, parts.get(1).map_err(bad)?);
    let mut out = result_to_json(ctx, rest)?.unwrap_or_else(|| serde_json::json!({}));
    if let serde_json::Value::Object(map) = &mut out {
        use base64::Engine as _;
        let bytes: Vec<u8> = latin1.chars().map(|c| c as u8).collect();
        let encoded = base64::engine::general_purpose::STANDARD.encode(bytes);
        map.insert("body".into(), serde_json::json!({ BINARY_BODY_KEY: encoded }));
    }
    Ok(Some(out))
}

/// A JS result as JSON; `None` for `undefined` and `null`. Plain data is
/// read directly; anything `JSON.stringify` treats specially (a `toJSON`
/// anywhere on the prototype chain, boxed primitives and other class
/// instances, proxies, functions, BigInt, cycles or deep nesting, a getter
/// that throws) goes through `JSON.stringify`, so the result is the same.
pub(crate) fn result_to_json<'js>(ctx: &Ctx<'js>, v: Value<'js>) -> Result<Option<serde_json::Value>, HookError> {
    Plain { object_proto: None, shapes: None }.read(ctx, v)
}

/// Nesting beyond this is left to `JSON.stringify` (which also finds cycles).
const MAX_PLAIN_DEPTH: u32 = 64;

struct Plain<'js, 's> {
    /// The realm's own `Object.prototype` (whatever the plugin did to the
    /// global `Object`), looked up at the first object.
    object_proto: Option<Value<'js>>,
    /// Where the keys of the objects read are noted (see [`Shapes`]).
    shapes: Option<(&'s mut Shapes, &'s Function<'js>)>,
}

impl<'js> Plain<'js, '_> {
    fn read(&mut self, ctx: &Ctx<'js>, v: Value<'js>) -> Result<Option<serde_json::Value>, HookError> {
        if v.is_undefined() || v.is_null() {
            return Ok(None);
        }
        match self.walk(ctx, &v, 0) {
            Some(out) => Ok(out),
            None => {
                // A getter may have thrown on the way: JSON.stringify meets it again.
                let _ = ctx.catch();
                stringified(ctx, v)
            }
        }
    }

    /// A `Uint8Array` (which includes `Buffer`) or an `ArrayBuffer`. Asking
    /// QuickJS whether an object is an `ArrayBuffer` throws a `TypeError`
    /// (with its backtrace) when it is not, so ordinary objects and arrays
    /// are not asked.
    fn is_bytes(&mut self, ctx: &Ctx<'js>, b: &Object<'js>) -> bool {
        if b.is_typed_array::<u8>() {
            return true;
        }
        if b.is_array() || self.is_plain(ctx, b) != Some(false) {
            return false;
        }
        let yes = b.is_array_buffer();
        if !yes {
            let _ = ctx.catch();
        }
        yes
    }

    /// `Some(Some(json))`, `Some(None)` for what JSON omits (`undefined`,
    /// symbols), `None` when `JSON.stringify` must decide.
    fn walk(&mut self, ctx: &Ctx<'js>, v: &Value<'js>, depth: u32) -> Option<Option<serde_json::Value>> {
        use serde_json::Value as J;
        // Tags first, cheapest and likeliest first (not `type_of`, which asks
        // an object six questions before it says "object").
        if let Some(i) = v.as_int() {
            return Some(Some(J::from(i)));
        }
        if let Some(s) = v.as_string() {
            return Some(Some(J::String(s.to_string().ok()?)));
        }
        if let Some(obj) = v.as_object() {
            if depth >= MAX_PLAIN_DEPTH {
                return None;
            }
            if let Some(arr) = obj.as_array() {
                if arr.contains_key(PredefinedAtom::ToJSON).ok()? {
                    return None;
                }
                let mut items = Vec::with_capacity(arr.len());
                for i in 0..arr.len() {
                    let item: Value = arr.get(i).ok()?;
                    items.push(self.walk(ctx, &item, depth + 1)?.unwrap_or(J::Null));
                }
                return Some(Some(J::Array(items)));
            }
            // A function is left out by JSON; a proxy's prototype is its
            // trap's to say; anything else not plain (an Error, a Promise, a
            // class instance, bytes) is `JSON.stringify`'s to read.
            if v.is_function()
                || v.is_proxy()
                || !self.is_plain(ctx, obj)?
                || obj.contains_key(PredefinedAtom::ToJSON).ok()?
            {
                return None;
            }
            let props = obj.props::<String, Value>();
            let mut map = serde_json::Map::with_capacity(props.len());
            for prop in props {
                let (key, item) = prop.ok()?;
                if let Some(item) = self.walk(ctx, &item, depth + 1)? {
                    map.insert(key, item);
                }
            }
            if let Some((shapes, make)) = &mut self.shapes {
                shapes.note(ctx, make, map.keys().map(String::as_str));
            }
            return Some(Some(J::Object(map)));
        }
        Some(Some(if let Some(b) = v.as_bool() {
            J::Bool(b)
        } else if let Some(f) = v.as_float() {
            number(f)?
        } else if v.is_null() {
            J::Null
        } else if v.is_undefined() || v.is_symbol() {
            return Some(None);
        } else {
            // BigInt (JSON.stringify throws), anything else.
            return None;
        }))
    }

    /// An ordinary object: its prototype is `Object.prototype` or null.
    fn is_plain(&mut self, ctx: &Ctx<'js>, obj: &Object<'js>) -> Option<bool> {
        let Some(proto) = obj.get_prototype() else { return Some(true) };
        if self.object_proto.is_none() {
            // `make` holds it when there is one (taken before the plugin's code ran).
            let from_make = self.shapes.as_ref().and_then(|(_, make)| make.get::<_, Value>("objectProto").ok());
            self.object_proto = match from_make {
                Some(p) => Some(p),
                None => Some(Object::new(ctx.clone()).ok()?.get_prototype()?.into_value()),
            };
        }
        Some(self.object_proto.as_ref() == Some(proto.as_value()))
    }
}

/// QuickJS gives an object its hidden class ("shape") one property at a
/// time, and finds a shape in its cache only while some live object has
/// it. So an object made afresh on every call — the headers, a JSON body,
/// the literal a hook returns — rebuilt its whole chain of shapes on every
/// call (docs/decisions.md, "Kept shapes", has the cost). `Shapes` notes the key sequences of the objects a runtime builds
/// and reads and, the first time it sees one, keeps one object alive per
/// prefix of it (`make.keep`), so the next object built with those keys in
/// that order finds each shape cached. Only sequences of at most
/// `MAX_KEYS` keys are kept (a longer object is data, a map by id, say:
/// its prefixes would cost memory quadratic in its length), and at most
/// `MAX_KEPT` objects per runtime; past that, nothing more is kept.
#[derive(Default)]
pub(crate) struct Shapes {
    /// The key sequences kept, each with whether its objects inherit from the
    /// requests' prototype (their shapes are not plain objects').
    known: Vec<(bool, Box<[Box<str>]>)>,
    kept: usize,
}

const MAX_KEPT: usize = 256;
const MAX_KEYS: usize = 32;

impl Shapes {
    /// The request objects' shapes: with both optional keys, and with the
    /// user's only (a request on an org-level route).
    pub(crate) fn note_requests<'js>(&mut self, ctx: &Ctx<'js>, make: &Function<'js>) {
        // Requests inherit from their own prototype (`parsedHeaders`): their
        // shapes start from it.
        let Ok(proto) = make.get::<_, Value>("requestProto") else { return };
        for team in [true, false] {
            let keys: Vec<&str> = request_keys(team, true).collect();
            self.note_from(ctx, make, keys.into_iter(), Some(proto.clone()));
        }
    }

    fn note<'a, 'js>(
        &mut self,
        ctx: &Ctx<'js>,
        make: &Function<'js>,
        keys: impl ExactSizeIterator<Item = &'a str> + Clone,
    ) {
        self.note_from(ctx, make, keys, None)
    }

    /// [`Shapes::note`] for objects inheriting from `proto` (none: plain objects).
    fn note_from<'a, 'js>(
        &mut self,
        ctx: &Ctx<'js>,
        make: &Function<'js>,
        keys: impl ExactSizeIterator<Item = &'a str> + Clone,
        proto: Option<Value<'js>>,
    ) {
        let n = keys.len();
        if n == 0 || n > MAX_KEYS || self.kept + n > MAX_KEPT {
            return;
        }
        let request = proto.is_some();
        if self.known.iter().any(|(r, k)| *r == request && k.len() == n && k.iter().map(|s| &**s).eq(keys.clone())) {
            return;
        }
        let keys: Vec<&str> = keys.collect();
        let kept = make.get::<_, Function>("keep").and_then(|keep| match proto {
            Some(p) => keep.call::<_, ()>((keys.clone(), p)),
            None => keep.call::<_, ()>((keys.clone(),)),
        });
        if kept.is_err() {
            // Out of memory, most likely: the call goes on without.
            let _ = ctx.catch();
            return;
        }
        self.kept += n;
        self.known.push((request, keys.into_iter().map(Box::from).collect()));
    }
}

/// A JS number as `JSON.stringify` writes it and a JSON parser reads it
/// back: integral values as integers, NaN and infinities as null; `None`
/// for integers past 2^53, which JS writes in shortest form (`2**60` as
/// 1152921504606847000).
fn number(f: f64) -> Option<serde_json::Value> {
    use serde_json::Value as J;
    const EXACT: f64 = 9007199254740992.0;
    Some(match f {
        f if !f.is_finite() => J::Null,
        f if f.fract() != 0.0 => J::from(f),
        f if f.abs() < EXACT => J::from(f as i64),
        _ => return None,
    })
}

fn stringified<'js>(ctx: &Ctx<'js>, v: Value<'js>) -> Result<Option<serde_json::Value>, HookError> {
    let text = match ctx.json_stringify(v) {
        Ok(Some(s)) => s.to_string().map_err(|e| HookError::BadResult(e.to_string()))?,
        Ok(None) => return Ok(None),
        Err(rquickjs::Error::Exception) => {
            let e = ctx.catch();
            let msg = e
                .as_object()
                .and_then(|o| o.get::<_, String>("message").ok())
                .unwrap_or_else(|| "cannot be serialised to JSON".to_string());
            return Err(HookError::BadResult(msg));
        }
        Err(e) => return Err(HookError::BadResult(e.to_string())),
    };
    serde_json::from_str(&text).map(Some).map_err(|e| HookError::BadResult(e.to_string()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use rquickjs::{Context, Runtime, Value};

    use super::{result_to_json, stringified, Shapes, MAX_KEPT, MAX_KEYS};

    /// Reading a result directly gives what a JSON.stringify round trip gives.
    #[test]
    fn results_read_directly_match_json_stringify() {
        let rt = Runtime::new().unwrap();
        let ctx = Context::full(&rt).unwrap();
        ctx.with(|ctx| {
            for src in [
                "({statusCode: 403, body: {type: 'error', reason: 'no', n: [1, 2.5, -0, 1e21, 2**60, NaN, Infinity]}})",
                "({a: undefined, b: () => 1, c: Symbol('x'), d: null, e: [undefined, () => 1, Symbol('y')]})",
                "({2: 'two', 1: 'one', z: 'z', a: 'a', '-1': 'neg'})",
                "({date: new Date(0), boxed: [new Number(3), new String('ab'), new Boolean(false)]})",
                "({m: new Map([[1, 2]]), s: new Set([1]), c: new (class { constructor() { this.x = 1 } })()})",
                "({t: {toJSON() { return 'custom' }}, u: Object.create(null)})",
                "(() => { const o = {a: 1}; Object.defineProperty(o, 'hidden', {value: 2}); return {o} })()",
                "(() => { const o = {}; Object.defineProperty(o, 'g', {get() { return 7 }, enumerable: true}); return o })()",
                "(() => { let d = {}; let o = d; for (let i = 0; i < 100; i++) { o.n = {}; o = o.n } return d })()",
                r#"({p: new Proxy({a: 1}, {}), s: 'caf\u00e9 \u{1F600} \\ "'})"#,
                "'plain string'",
                "42",
                "[1, 'x', true, null]",
                "({f: Object.setPrototypeOf(function () {}, Object.prototype), k: class K {}, b: (() => 1).bind(null)})",
                "({e: Object.setPrototypeOf(new Error('x'), Object.prototype), err: new Error('e'), p: Promise.resolve(1)})",
                "({pa: new Proxy([1, 2], {}), po: new Proxy({}, {getPrototypeOf() { return Object.prototype }})})",
                "({bytes: new Uint8Array([1, 2]), buf: new ArrayBuffer(2), n: [1.5, -7, 2147483648]})",
                "(() => { Array.prototype.toJSON = function () { return 'arr' }; return [[1], {a: [2]}] })()",
            ] {
                let v: Value = ctx.eval(src).unwrap();
                let direct = result_to_json(&ctx, v.clone()).unwrap();
                let text = stringified(&ctx, v).unwrap();
                assert_eq!(direct, text, "{src}");
            }
            for src in [
                "(() => { const o = {}; o.self = o; return o })()",
                "({big: 10n})",
                "({get bad() { throw new Error('getter') }})",
                "(() => { const r = Proxy.revocable({}, {}); r.revoke(); return {r: r.proxy} })()",
            ] {
                let v: Value = ctx.eval(src).unwrap();
                let direct = result_to_json(&ctx, v.clone()).unwrap_err().to_string();
                let text = stringified(&ctx, v).unwrap_err().to_string();
                assert_eq!(direct, text, "{src}");
            }
        });
    }

    /// `f` with a context and its `make` ([`MAKE_REQUEST`]).
    fn with_make(f: impl for<'js> FnOnce(rquickjs::Ctx<'js>, rquickjs::Function<'js>)) {
        let rt = Runtime::new().unwrap();
        let ctx = Context::full(&rt).unwrap();
        ctx.with(|ctx| {
            let make: rquickjs::Function = ctx.eval(super::MAKE_REQUEST).unwrap();
            f(ctx, make);
        });
    }

    /// A key sequence is kept once, and never more than `MAX_KEPT` objects.
    #[test]
    fn shapes_are_kept_once_per_key_sequence_and_bounded() {
        with_make(|ctx, make| {
            let mut shapes = Shapes::default();
            shapes.note(&ctx, &make, ["a", "b", "c"].into_iter());
            shapes.note(&ctx, &make, ["a", "b", "c"].into_iter());
            shapes.note(&ctx, &make, ["a", "b"].into_iter());
            shapes.note(&ctx, &make, [].into_iter());
            assert_eq!((shapes.known.len(), shapes.kept), (2, 5));
            let long: Vec<String> = (0..=MAX_KEYS).map(|i| format!("k{i}")).collect();
            shapes.note(&ctx, &make, long.iter().map(String::as_str));
            assert_eq!((shapes.known.len(), shapes.kept), (2, 5), "a long object is data: not kept");
            for i in 0..2000 {
                let keys = [format!("k{i}"), "x".to_string(), "y".to_string()];
                shapes.note(&ctx, &make, keys.iter().map(String::as_str));
            }
            assert!(shapes.kept <= MAX_KEPT && shapes.kept > MAX_KEPT - 3, "{}", shapes.kept);
            // An object read or built with noted keys is what it was.
            let v: Value = ctx.eval("({a: 1, b: [2], c: {a: 3, b: 4, c: 5}})").unwrap();
            let json = super::Plain { object_proto: None, shapes: Some((&mut shapes, &make)) }.read(&ctx, v).unwrap();
            assert_eq!(json, Some(serde_json::json!({"a": 1, "b": [2], "c": {"a": 3, "b": 4, "c": 5}})));
        });
    }

    /// The request shapes kept are those `make` builds.
    #[test]
    fn request_keys_are_makes() {
        with_make(|ctx, make| {
            ctx.globals().set("make", make).unwrap();
            for (team, user) in [(true, true), (false, true), (true, false), (false, false)] {
                let src = format!(
                    "Object.keys(make('GET', '/', '/', {{}}, {{}}, {{}}, undefined, {}, {}))",
                    if team { "'T1'" } else { "undefined" },
                    if user { "'U1'" } else { "undefined" },
                );
                let keys: Vec<String> = ctx.eval(src).unwrap();
                assert_eq!(keys, super::request_keys(team, user).collect::<Vec<_>>());
            }
        });
    }
}
