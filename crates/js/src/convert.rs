//! Rust ⇄ JS values. Requests are built directly (no JSON text round trip:
//! measured faster); results go through `JSON.stringify`, which gives the
//! usual JS semantics (`toJSON`, dropped `undefined`, cycles refused).

use rquickjs::{Array, Ctx, Function, Object, Value};

use crate::error::HookError;
use crate::request::{Body, HookRequest};

pub(crate) fn json_to_js<'js>(ctx: &Ctx<'js>, v: &serde_json::Value) -> rquickjs::Result<Value<'js>> {
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
                arr.set(i, json_to_js(ctx, item)?)?;
            }
            arr.into_value()
        }
        J::Object(map) => {
            let obj = Object::new(ctx.clone())?;
            for (k, item) in map {
                obj.set(k.as_str(), json_to_js(ctx, item)?)?;
            }
            obj.into_value()
        }
    })
}

fn body_to_js<'js>(ctx: &Ctx<'js>, body: &Body) -> rquickjs::Result<Value<'js>> {
    match body {
        Body::Empty => Ok(Value::new_undefined(ctx.clone())),
        Body::Json(v) => json_to_js(ctx, v),
        Body::Text(s) => Ok(rquickjs::String::from_str(ctx.clone(), s)?.into_value()),
    }
}

fn pairs_object<'js>(ctx: &Ctx<'js>, pairs: &[(String, String)]) -> rquickjs::Result<Object<'js>> {
    let obj = Object::new(ctx.clone())?;
    for (k, v) in pairs {
        obj.set(k.as_str(), v.as_str())?;
    }
    Ok(obj)
}

/// Query pairs: one value → string, a repeated key → array of strings.
fn query_object<'js>(ctx: &Ctx<'js>, pairs: &[(String, String)]) -> rquickjs::Result<Object<'js>> {
    let obj = Object::new(ctx.clone())?;
    for (i, (k, v)) in pairs.iter().enumerate() {
        let earlier = pairs[..i].iter().any(|(pk, _)| pk == k);
        if earlier {
            continue;
        }
        let all: Vec<&str> = pairs[i..].iter().filter(|(pk, _)| pk == k).map(|(_, pv)| pv.as_str()).collect();
        if all.len() == 1 {
            obj.set(k.as_str(), v.as_str())?;
        } else {
            obj.set(k.as_str(), all)?;
        }
    }
    Ok(obj)
}

/// Build the JS `PluginRequest`; `wrap_headers` makes header lookups case-insensitive.
pub(crate) fn request_object<'js>(
    ctx: &Ctx<'js>,
    req: &HookRequest,
    make: &Function<'js>,
) -> rquickjs::Result<Object<'js>> {
    let opt = |s: &Option<String>| -> rquickjs::Result<Value<'js>> {
        match s {
            Some(s) => Ok(rquickjs::String::from_str(ctx.clone(), s)?.into_value()),
            None => Ok(Value::new_undefined(ctx.clone())),
        }
    };
    let mut args = rquickjs::function::Args::new(ctx.clone(), 9);
    args.push_arg(req.method.as_str())?;
    args.push_arg(req.url.as_str())?;
    args.push_arg(req.path.as_str())?;
    args.push_arg(query_object(ctx, &req.query)?)?;
    args.push_arg(pairs_object(ctx, &req.params)?)?;
    args.push_arg(pairs_object(ctx, &req.headers)?)?;
    args.push_arg(body_to_js(ctx, &req.body)?)?;
    args.push_arg(opt(&req.team_uuid)?)?;
    args.push_arg(opt(&req.user_uuid)?)?;
    let obj: Object = args.apply(make)?;
    if let Some(post) = &req.post {
        let wrap: Function = make.get("wrap")?;
        let headers =
            |pairs: &[(String, String)]| -> rquickjs::Result<Value<'js>> { wrap.call((pairs_object(ctx, pairs)?,)) };
        obj.set("reqHeaders", headers(&post.req_headers)?)?;
        obj.set("reqBody", body_to_js(ctx, &post.req_body)?)?;
        obj.set("respHeaders", headers(&post.resp_headers)?)?;
        obj.set("respBody", body_to_js(ctx, &post.resp_body)?)?;
        obj.set("statusCode", post.status)?;
    }
    for (k, v) in &req.extra {
        obj.set(k.as_str(), json_to_js(ctx, v)?)?;
    }
    Ok(obj)
}

/// A JS result as JSON; `None` for `undefined` and `null`.
pub(crate) fn result_to_json<'js>(ctx: &Ctx<'js>, v: Value<'js>) -> Result<Option<serde_json::Value>, HookError> {
    if v.is_undefined() || v.is_null() {
        return Ok(None);
    }
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
