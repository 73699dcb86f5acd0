//! The built-in modules plugins import (`@ones-op/*`) by name, with their
//! JS sources (which live beside their native operations in `sdk/`), and
//! the names of the modules only interpose's own code imports. Plain data:
//! loading a plugin checks its imports against it, the runtime loads from it.

/// Node's globals (`console`, timers), evaluated into every runtime before
/// the plugin's code. Plugins cannot import it.
pub(crate) const GLOBALS: &str = "interpose:globals";
pub(crate) const GLOBALS_SOURCE: &str = include_str!("../sdk/globals.js");

/// Built-in modules: name → JS source.
pub(crate) const BUILTINS: &[(&str, &str)] = &[
    ("@ones-op/node-logger", include_str!("../sdk/logger.js")),
    ("@ones-op/node-error", include_str!("../sdk/error.js")),
    ("@ones-op/node-types", include_str!("../sdk/types.js")),
    ("@ones-op/fetch", include_str!("../sdk/fetch.js")),
    ("@ones-op/node-fetch", include_str!("../sdk/node-fetch.js")),
    ("@ones-op/node-file", include_str!("../sdk/file.js")),
    ("@ones-op/node-ability", include_str!("../sdk/ability.js")),
    ("@ones-op/node-fs", include_str!("../sdk/fs.js")),
    ("@ones-op/node-utils", include_str!("../sdk/utils.js")),
    ("@ones-op/node-database", include_str!("../sdk/database.js")),
    ("@ones-op/sdk", include_str!("../sdk/sdk.js")),
    ("@ones-op/sdk/node", include_str!("../sdk/sdk.js")),
    ("@ones-op/sdk/backend", include_str!("../sdk/sdk.js")),
    // Node's core modules (also as `node:…`).
    ("assert", include_str!("../sdk/node/assert.js")),
    ("assert/strict", include_str!("../sdk/node/assert-strict.js")),
    ("buffer", include_str!("../sdk/node/buffer.js")),
    ("crypto", include_str!("../sdk/node/crypto.js")),
    ("events", include_str!("../sdk/node/events.js")),
    ("http", include_str!("../sdk/node/http.js")),
    ("https", include_str!("../sdk/node/https.js")),
    ("path", include_str!("../sdk/node/path.js")),
    ("querystring", include_str!("../sdk/node/querystring.js")),
    ("string_decoder", include_str!("../sdk/node/string_decoder.js")),
    ("timers", include_str!("../sdk/node/timers.js")),
    ("timers/promises", include_str!("../sdk/node/timers-promises.js")),
    ("url", include_str!("../sdk/node/url.js")),
    ("util", include_str!("../sdk/node/util.js")),
];

/// Node's other core modules: they resolve (a plugin importing one loads),
/// and every use throws an error naming the module and what was used.
/// Each with the names it exports, for `import { x } from 'fs'`.
pub(crate) const UNAVAILABLE_CORE: &[(&str, &[&str])] = &[
    (
        "fs",
        &[
            "readFileSync",
            "writeFileSync",
            "appendFileSync",
            "existsSync",
            "mkdirSync",
            "readdirSync",
            "statSync",
            "lstatSync",
            "unlinkSync",
            "rmSync",
            "renameSync",
            "copyFileSync",
            "readFile",
            "writeFile",
            "appendFile",
            "exists",
            "mkdir",
            "readdir",
            "stat",
            "unlink",
            "rm",
            "rename",
            "copyFile",
            "createReadStream",
            "createWriteStream",
            "watch",
            "promises",
            "constants",
        ],
    ),
    (
        "fs/promises",
        &[
            "readFile",
            "writeFile",
            "appendFile",
            "mkdir",
            "readdir",
            "stat",
            "unlink",
            "rm",
            "rename",
            "copyFile",
            "access",
            "open",
        ],
    ),
    (
        "os",
        &[
            "platform",
            "hostname",
            "tmpdir",
            "homedir",
            "cpus",
            "totalmem",
            "freemem",
            "type",
            "release",
            "arch",
            "uptime",
            "loadavg",
            "networkInterfaces",
            "userInfo",
            "endianness",
            "EOL",
        ],
    ),
    ("child_process", &["exec", "execSync", "execFile", "execFileSync", "spawn", "spawnSync", "fork"]),
    ("http2", &["connect", "createServer", "createSecureServer", "constants"]),
    ("net", &["createServer", "createConnection", "connect", "Socket", "Server", "isIP", "isIPv4", "isIPv6"]),
    ("tls", &["connect", "createServer", "createSecureContext", "TLSSocket"]),
    ("dns", &["lookup", "resolve", "resolve4", "resolve6", "promises"]),
    ("dgram", &["createSocket"]),
    (
        "stream",
        &["Readable", "Writable", "Duplex", "Transform", "PassThrough", "Stream", "pipeline", "finished", "promises"],
    ),
    (
        "zlib",
        &[
            "gzip",
            "gzipSync",
            "gunzip",
            "gunzipSync",
            "deflate",
            "deflateSync",
            "inflate",
            "inflateSync",
            "createGzip",
            "createGunzip",
            "brotliCompress",
            "brotliDecompress",
            "constants",
        ],
    ),
    ("readline", &["createInterface", "Interface"]),
    ("worker_threads", &["Worker", "isMainThread", "parentPort", "workerData"]),
    ("cluster", &["fork", "isMaster", "isPrimary", "isWorker", "workers"]),
    ("vm", &["Script", "createContext", "runInContext", "runInNewContext", "runInThisContext"]),
    ("v8", &["serialize", "deserialize", "getHeapStatistics"]),
    ("perf_hooks", &["performance", "PerformanceObserver"]),
    ("async_hooks", &["AsyncLocalStorage", "AsyncResource", "createHook", "executionAsyncId"]),
    (
        "process",
        &["env", "argv", "cwd", "exit", "nextTick", "platform", "version", "versions", "pid", "hrtime", "memoryUsage"],
    ),
    ("module", &["createRequire", "builtinModules"]),
    ("tty", &["isatty"]),
    ("inspector", &["open", "close", "url", "Session"]),
    ("diagnostics_channel", &["channel", "subscribe", "unsubscribe"]),
    ("punycode", &["encode", "decode", "toASCII", "toUnicode"]),
    ("domain", &["create"]),
    ("repl", &["start"]),
    ("trace_events", &["createTracing"]),
    ("wasi", &["WASI"]),
];

/// The module a built-in import names (`node:crypto` is `crypto`), if it is one.
pub(crate) fn builtin(spec: &str) -> Option<&'static str> {
    let name = spec.strip_prefix("node:").unwrap_or(spec);
    let core = |n: &str| !n.starts_with('@') || spec == name;
    BUILTINS.iter().map(|(n, _)| *n).chain(UNAVAILABLE_CORE.iter().map(|(n, _)| *n)).find(|n| *n == name && core(n))
}

/// The source of a Node core module plugins cannot use.
pub(crate) fn unavailable_core_source(name: &str) -> Option<String> {
    let (_, exports) = UNAVAILABLE_CORE.iter().find(|(n, _)| *n == name)?;
    let mut src = format!(
        "const M = {name:?};
         const why = (what) => new Error(`Node's '${{M}}' module is not available to plugins on interpose (${{what}} was used): plugins reach the outside through @ones-op/fetch and their workspace through @ones-op/node-fs`);
         const no = (what) => new Proxy(function () {{}}, {{
           apply() {{ throw why(what); }}, construct() {{ throw why(what); }},
           get(t, k) {{ if (typeof k !== 'string' || k === 'then') return undefined; return no(`${{what}}.${{k}}`); }},
         }});
"
    );
    for e in exports.iter() {
        src.push_str(&format!(
            "export const {e} = no({e:?});
"
        ));
    }
    src.push_str(&format!(
        "export default no({name:?});
"
    ));
    Some(src)
}

/// Where the transpiler's helpers for TypeScript's `experimentalDecorators`
/// are imported from ([`crate::code::transpile`]).
pub(crate) const HELPERS_PREFIX: &str = "interpose:runtime";

/// CommonJS files ([`crate::code::project`]) share a count of those that are
/// pending (their imports running): one that finds others pending runs when
/// required. Each file's first import is its own `enter` module, which
/// counts it; only wrapped CommonJS files import these.
pub(crate) const CJS_STATE: &str = "interpose:cjs/state";
pub(crate) const CJS_ENTER: &str = "interpose:cjs/enter/";
/// What built-in module `name` exports, in source order (`default` last);
/// `None` for any other module.
pub(crate) fn builtin_exports(name: &str) -> Option<Vec<String>> {
    let name = builtin(name)?;
    match BUILTINS.iter().find(|(n, _)| *n == name) {
        Some((_, source)) => Some(crate::code::transpile::export_names(source)),
        None => unavailable_core_source(name).map(|s| crate::code::transpile::export_names(&s)),
    }
}

/// Names of the built-in modules (for `check` output and docs).
pub fn builtin_names() -> impl Iterator<Item = &'static str> {
    BUILTINS.iter().map(|(n, _)| *n)
}
