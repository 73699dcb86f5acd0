//! The web platform's globals (`web.js`: `URL`, `TextEncoder`, `crypto`,
//! `atob`, …), compiled only in the runtimes whose plugin uses one of them.

use rquickjs::module::{Declarations, Exports};
use rquickjs::{Ctx, Function, TypedArray};

pub(super) fn declare(decl: &Declarations<'_>) -> rquickjs::Result<()> {
    for name in ["randomBytes", "webGlobals", "url", "fromBase64"] {
        decl.declare(name)?;
    }
    Ok(())
}

pub(super) fn export<'js>(ctx: &Ctx<'js>, exports: &Exports<'js>) -> rquickjs::Result<()> {
    // From the operating system's generator (for `crypto`): n bytes, n ≤ 65536.
    let random_bytes =
        Function::new(ctx.clone(), |ctx: Ctx<'js>, n: usize| -> rquickjs::Result<TypedArray<'js, u8>> {
            if n > 65_536 {
                return Err(rquickjs::Exception::throw_range(&ctx, "at most 65536 random bytes at a time"));
            }
            let mut bytes = vec![0u8; n];
            getrandom::fill(&mut bytes)
                .map_err(|e| rquickjs::Exception::throw_internal(&ctx, &format!("no random bytes: {e}")))?;
            TypedArray::new(ctx.clone(), bytes)
        })?;
    exports.export("randomBytes", random_bytes)?;
    // `web.js`, compiled when a plugin first uses one of its globals.
    let web = Function::new(ctx.clone(), |ctx: Ctx<'js>| -> rquickjs::Result<rquickjs::Value<'js>> {
        ctx.eval(include_str!("web.js"))
    })?;
    exports.export("webGlobals", web)?;
    exports.export("url", Function::new(ctx.clone(), host_url)?)?;
    // Base64 (standard or URL-safe alphabet, padding optional, other
    // characters skipped, as Node's `Buffer.from(s, 'base64')`) to bytes.
    let from_base64 = Function::new(ctx.clone(), |ctx: Ctx<'js>, text: String| {
        use base64::Engine as _;
        let clean: Vec<u8> = text
            .bytes()
            .filter_map(|b| match b {
                b'-' => Some(b'+'),
                b'_' => Some(b'/'),
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'+' | b'/' => Some(b),
                _ => None,
            })
            .collect();
        let usable = clean.len() - usize::from(clean.len() % 4 == 1);
        let bytes = base64::engine::general_purpose::STANDARD_NO_PAD.decode(&clean[..usable]).unwrap_or_default();
        TypedArray::<u8>::new(ctx.clone(), bytes)
    })?;
    exports.export("fromBase64", from_base64)?;
    Ok(())
}

/// `URL` on the `url` crate (the WHATWG URL standard): `url(input, base)`
/// parses and gives the parts; `url(href, undefined, name, value)` sets one
/// part and gives the parts after (an invalid value leaves the URL as it
/// was, as the standard's setters do). Parts: `[href, origin, protocol,
/// username, password, host, hostname, port, pathname, search, hash]`, or
/// `undefined` for an input that is not a URL.
fn host_url(
    input: String,
    base: rquickjs::function::Opt<Option<String>>,
    part: rquickjs::function::Opt<String>,
    value: rquickjs::function::Opt<String>,
) -> Option<Vec<String>> {
    use url::quirks as q;
    let base = match base.0.flatten() {
        Some(b) => Some(url::Url::parse(&b).ok()?),
        None => None,
    };
    let mut u = url::Url::options().base_url(base.as_ref()).parse(&input).ok()?;
    if let (Some(part), Some(v)) = (part.0, value.0) {
        // A value a part cannot take leaves the URL as it was.
        match part.as_str() {
            "href" => drop(q::set_href(&mut u, &v)),
            "protocol" => drop(q::set_protocol(&mut u, &v)),
            "username" => drop(q::set_username(&mut u, &v)),
            "password" => drop(q::set_password(&mut u, &v)),
            "host" => drop(q::set_host(&mut u, &v)),
            "hostname" => drop(q::set_hostname(&mut u, &v)),
            "port" => drop(q::set_port(&mut u, &v)),
            "pathname" => q::set_pathname(&mut u, &v),
            "search" => q::set_search(&mut u, &v),
            "hash" => q::set_hash(&mut u, &v),
            _ => {}
        }
    }
    Some(
        [
            q::href(&u).to_string(),
            q::origin(&u),
            q::protocol(&u).to_string(),
            q::username(&u).to_string(),
            q::password(&u).to_string(),
            q::host(&u).to_string(),
            q::hostname(&u).to_string(),
            q::port(&u).to_string(),
            q::pathname(&u).to_string(),
            q::search(&u).to_string(),
            q::hash(&u).to_string(),
        ]
        .into(),
    )
}
