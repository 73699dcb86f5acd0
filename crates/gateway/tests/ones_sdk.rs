//! The ONES platform's own SDK shapes (../shared/reference/ones-sdk.md), as a
//! plugin written for ONES uses them: `globalThis.onesEnv`, `@ones-op/node-error`,
//! the SDK errors' conversion, `Logger.warning`, `@ones-op/node-ability`.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use interpose_test_util::{get, send_json, Upstream};
use serde_json::json;

const CODE: &str = r#"
import { PluginError, PluginErrorTypeEnum, CommonReason, clientError, serverError, sdkErrorToPluginError } from '@ones-op/node-error';
import { Logger } from '@ones-op/node-logger';
import { Plugin, Language, Notify, NotifyWay, AbilityError, getAbilityConfig } from '@ones-op/node-ability';

export async function ab() {
  return { body: { one: await getAbilityConfig('t1'), none: await getAbilityConfig('x'), all: await getAbilityConfig() } };
}

// Read at the module's top level, as ONES plugins do.
const atLoad = { ...globalThis.onesEnv, viaGlobal: global.onesEnv === globalThis.onesEnv };

export async function env() { return { body: atLoad } }

export async function err(request) {
  const mode = request.query.mode;
  if (mode === 'ones') throw new PluginError(PluginErrorTypeEnum.warning, 403, 'not yours');
  if (mode === 'common') throw clientError(CommonReason.InvalidParameter);
  if (mode === 'server') throw serverError('down');
  if (mode === 'legacy') throw new PluginError('warning', 'Custom', 'old form', 429);
  if (mode === 'ability') await Notify({ Title: 't', ToUsers: [], NotifyWay: NotifyWay.Email, MessageBody: [] });
  if (mode === 'converted') {
    try { await Notify({}) } catch (e) {
      const p = sdkErrorToPluginError(e);
      p.reason = 'converted: ' + (e instanceof AbilityError);
      throw p;
    }
  }
  if (mode === 'sdk500') throw new AbilityError('error', 'Boom', 500, 'secret detail');
}

export async function hdr(request) {
  const p = request.parsedHeaders;
  return { body: { lang: p['Accept-Language'], lower: p['accept-language'], same: p === request.parsedHeaders,
    enumerable: Object.keys(request).includes('parsedHeaders'), user: request.headers['Ones-User-Id'] } };
}

export async function log() {
  Logger.warning('careful', { n: 1 }, [2]);
  Logger.info('an error:', new PluginError('error', 500, 'why'));
  console.log('from console', 3);
}

export async function conf() {
  const rows = await Plugin.getPluginConfig();
  const user = await Plugin.getPluginUser();
  return { body: {
    limit: rows.find((c) => c.arg_key === 'limit').arg_value,
    types: rows.map((c) => c.type),
    user: user.instance_uuid === globalThis.onesEnv.instanceId,
    hello: await Language.getLanguageString('en', 'Hello'),
    lang: await Language.getLanguage('U1'),
    quoted: await Language.getLanguageString('en', 'Quoted'),
  } };
}
"#;

fn plugin(scope: u8) -> tempfile::TempDir {
    interpose_test_util::project(&[
        ("config/plugin.yaml", &format!("service:\n  app_id: sdk{scope}\n  version: 1.0.0\n  name: sdk\n  scope: {scope}\n  config:\n    - {{key: limit, type: Input, value: '5'}}\n    - {{key: token, type: Password}}\n\
apis:\n  - {{type: addition, methods: [get], url: /env, function: env}}\n  - {{type: addition, methods: [get], url: /err, function: err}}\n  - {{type: addition, methods: [get], url: /log, function: log}}\n  - {{type: addition, methods: [get], url: /conf, function: conf}}\n  - {{type: addition, methods: [get], url: /hdr, function: hdr}}\n  - {{type: addition, methods: [get], url: /ab, function: ab}}\n\
abilities:\n  - id: t1\n    abilityType: TimerTask\n    function: {{taskActionFunc: env}}\n    config:\n      - {{key: interval, fieldType: Number, value: 30}}\n")),
        ("backend/src/index.js", CODE),
        ("workspace/language/en.yaml", "Hello: Hello there\nQuoted: \"a: b\"  # comment\n"),
    ])
}

#[tokio::test]
async fn a_ones_plugin_sees_the_platform_it_was_written_for() {
    let up = Upstream::start().await;
    let (team, org) = (plugin(1), plugin(2));
    let decls = [
        decl(team.path(), &["T1"], Some("i-team")),
        format!("[[plugins]]\npath = {:?}\ninstance = \"i-org\"\n", org.path().display().to_string()),
    ];
    let gw = start(&up, &decls, "[server]\norganization_uuid = \"ORG1\"\n").await;
    let call = |instance: &'static str, path: &'static str| {
        let url = gw.url(&format!("/project/api/project{path}"));
        async move { get(&url, &[("Ones-Plugin-Id", instance)]).await }
    };

    // onesEnv, set before the module ran, per instance.
    let env = call("i-team", "/env").await.json();
    assert_eq!(env, json!({"teamUUID": "T1", "organizationUUID": "ORG1", "instanceId": "i-team", "viaGlobal": true}));
    let env = call("i-org", "/env").await.json();
    assert_eq!(env, json!({"teamUUID": "", "organizationUUID": "ORG1", "instanceId": "i-org", "viaGlobal": true}));

    // Errors: ONES's constructor, CommonReason texts, the old form, SDK errors.
    let cases = [
        (
            "ones",
            403,
            json!({"type": "warning", "reason": "not yours", "errcode": "ClientError", "statusCode": 403, "model": "plugin.ClientError"}),
        ),
        (
            "common",
            400,
            json!({"type": "warning", "reason": "Invalid parameter.", "errcode": "InvalidParameter", "statusCode": 400, "model": "plugin.InvalidParameter"}),
        ),
        (
            "server",
            500,
            json!({"type": "error", "reason": "down", "errcode": "ServerError", "statusCode": 500, "model": "plugin.ServerError"}),
        ),
        (
            "legacy",
            429,
            json!({"type": "warning", "reason": "old form", "errcode": "Custom", "statusCode": 429, "model": "plugin.Custom"}),
        ),
        (
            "sdk500",
            500,
            json!({"type": "error", "reason": "Service unavailable. Try again later.", "errcode": "Boom", "statusCode": 500, "model": "plugin.Boom"}),
        ),
    ];
    for (mode, status, body) in cases {
        let url = gw.url(&format!("/project/api/project/err?mode={mode}"));
        let got = get(&url, &[("Ones-Plugin-Id", "i-team")]).await;
        assert_eq!((got.status.as_u16(), got.json()), (status, body), "{mode}");
    }
    let url = gw.url("/project/api/project/err?mode=ability");
    let got = get(&url, &[("Ones-Plugin-Id", "i-team")]).await;
    let body = got.json();
    assert_eq!((got.status.as_u16(), body["errcode"].as_str()), (501, Some("AbilityNotAvailable")), "{body}");
    assert!(body["reason"].as_str().unwrap().contains("Notify is not available on this host"), "{body}");
    let url = gw.url("/project/api/project/err?mode=converted");
    let got = get(&url, &[("Ones-Plugin-Id", "i-team")]).await;
    assert_eq!((got.status.as_u16(), got.json()["reason"].as_str()), (501, Some("converted: true")));
    assert_eq!(call("i-team", "/err").await.status, 200, "other routes of a plugin importing Notify work");

    // Logger.warning, variadic; console into the same log.
    assert_eq!(call("i-team", "/log").await.status, 200);
    let lines: Vec<String> = gw
        .gw
        .snapshot()
        .instances
        .iter()
        .find(|i| i.meta.id == "i-team")
        .unwrap()
        .js
        .logs_after(0)
        .into_iter()
        .map(|l| format!("{} {}", l.level.as_str(), l.message))
        .collect();
    assert!(lines.contains(&"warn careful {\"n\":1} [2]".to_string()), "{lines:?}");
    assert!(
        lines.iter().any(|l| l
            .starts_with("info an error: PluginError: why (errcode=\"ServerError\", reason=\"why\", statusCode=500)")),
        "{lines:?}"
    );
    assert!(lines.contains(&"info from console 3".to_string()), "{lines:?}");

    // parsedHeaders: values as arrays, any case, made once.
    let url = gw.url("/project/api/project/hdr");
    let got = get(&url, &[("Ones-Plugin-Id", "i-team"), ("Accept-Language", "zh"), ("Ones-User-Id", "U1")]).await;
    assert_eq!(got.json(), json!({"lang": ["zh"], "lower": ["zh"], "same": true, "enumerable": false, "user": "U1"}));

    // The abilities' config values, from the manifest.
    let ab = call("i-team", "/ab").await.json();
    assert_eq!(ab, json!({"one": {"interval": 30}, "none": {}, "all": {"t1": {"interval": 30}}}));

    // Config rows, the instance's identity, the language files.
    let conf = call("i-team", "/conf").await.json();
    assert_eq!(
        conf,
        json!({"limit": "5", "types": [101, 103], "user": true, "hello": "Hello there", "lang": "en", "quoted": "a: b"})
    );
    gw.stop().await;
}

const NODE: &str = r#"
import crypto, { createHash, createHmac, randomBytes, randomUUID, timingSafeEqual } from 'crypto';
import * as nodeCrypto from 'node:crypto';
import path from 'node:path';
import { format, inspect, promisify } from 'util';
import { EventEmitter, once } from 'events';
import qs from 'querystring';
import url from 'url';
import { StringDecoder } from 'string_decoder';
import assert from 'assert';
import { Buffer as B } from 'buffer';
import { setTimeout as sleep } from 'timers/promises';
import fs, { readFileSync } from 'fs';

export async function node() {
  const e = new EventEmitter();
  const heard = [];
  e.on('x', (v) => heard.push(v));
  e.once('x', (v) => heard.push('once ' + v));
  e.emit('x', 1); e.emit('x', 2);
  const later = once(e, 'y'); e.emit('y', 'why');
  const d = new StringDecoder('utf8');
  const euro = B.from('€');
  const split = d.write(euro.subarray(0, 1)) + d.write(euro.subarray(1)) + d.end();
  let threw = '';
  try { assert.strictEqual(1, 2) } catch (err) { threw = err.name + ' ' + err.code }
  let fsError = '';
  try { readFileSync('/etc/passwd') } catch (err) { fsError = err.message }
  let fsDefault = '';
  try { fs.promises.readFile('x') } catch (err) { fsDefault = err.message }
  const wait = promisify((ms, cb) => setTimeout(() => cb(null, ms), ms));
  return { body: {
    sha256: createHash('sha256').update('ab').update('c').digest('hex'),
    md5: crypto.createHash('md5').update(B.from('')).digest('base64'),
    hmac: createHmac('SHA256', 'Jefe').update('what do ya want for nothing?').digest('hex'),
    same: nodeCrypto.createHash === createHash,
    random: randomBytes(16).length,
    uuid: /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/.test(randomUUID()),
    equal: [timingSafeEqual(B.from('ab'), B.from('ab')), timingSafeEqual(B.from('ab'), B.from('ac'))],
    path: [path.join('/a/b', '../c', 'd.txt'), path.extname('x/y.tar.gz'), path.basename('/p/q.js', '.js'), path.resolve('a', '/b', 'c')],
    format: format('%s has %d items: %j', 'list', 3, { a: 1 }),
    inspect: inspect({ a: [1, 'b'] }),
    heard,
    later: await later,
    qs: [qs.stringify({ a: [1, 2], b: 'x y' }), qs.parse('a=1&a=2&b=x+y')],
    url: url.parse('https://u@Example.com:8080/p/a?x=1#h', true).query.x + ' ' + url.parse('https://u@Example.com:8080/p/a?x=1#h').hostname,
    split,
    threw,
    waited: await wait(5),
    slept: await sleep(1, 'done'),
    fsError,
    fsDefault,
  } };
}
"#;

#[tokio::test]
async fn node_core_modules_work_and_the_unavailable_ones_say_so_when_used() {
    let up = Upstream::start().await;
    let p = org_plugin("nodemods", "  - {type: addition, methods: [GET], url: /node, function: node}\n", NODE);
    let gw =
        start(&up, &[format!("[[plugins]]\npath = {:?}\ninstance = \"n1\"\n", p.path().display().to_string())], "")
            .await;
    let got = get(&gw.url("/project/api/project/node"), &[("Ones-Plugin-Id", "n1")]).await;
    let b = got.json();
    assert_eq!(got.status, 200, "{b}");
    assert_eq!(b["sha256"], "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    assert_eq!(b["md5"], "1B2M2Y8AsgTpgAmY7PhCfg==");
    assert_eq!(b["hmac"], "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    assert_eq!((b["same"].clone(), b["random"].clone(), b["uuid"].clone()), (json!(true), json!(16), json!(true)));
    assert_eq!(b["equal"], json!([true, false]));
    assert_eq!(b["path"], json!(["/a/c/d.txt", ".gz", "q", "/b/c"]));
    assert_eq!(b["format"], "list has 3 items: {\"a\":1}");
    assert_eq!(b["inspect"], "{ a: [ 1, 'b' ] }");
    assert_eq!(b["heard"], json!([1, "once 1", 2]));
    assert_eq!(b["later"], json!(["why"]));
    assert_eq!(b["qs"], json!(["a=1&a=2&b=x%20y", {"a": ["1", "2"], "b": "x y"}]));
    assert_eq!(b["url"], "1 example.com");
    assert_eq!(b["split"], "€");
    assert_eq!(b["threw"], "AssertionError ERR_ASSERTION");
    assert_eq!((b["waited"].clone(), b["slept"].clone()), (json!(5), json!("done")));
    assert!(
        b["fsError"]
            .as_str()
            .unwrap()
            .contains("Node's 'fs' module is not available to plugins on interpose (readFileSync was used)"),
        "{b}"
    );
    assert!(b["fsDefault"].as_str().unwrap().contains("(fs.promises.readFile was used)"), "{b}");
    gw.stop().await;
}

const AXIOS: &str = r#"
import { OPFetch, Fetch, isFetchError, FetchAsAdmin } from '@ones-op/fetch';
import { fetchONES } from '@ones-op/node-fetch';

export async function axios(request) {
  const a = await OPFetch('/team/T1/tasks', { params: { q: 'x y', ids: [1, 2] }, headers: { 'Ones-User-Id': ['U1'] }, root: false });
  const b = await OPFetch.get('/users/me', { params: { n: 1 } });
  const c = await OPFetch.post('/team/T1/tasks/add', { summary: 's' });
  const child = OPFetch.create({ headers: { 'X-Child': 'yes' } }, {
    request: [[(config, inst) => { config.headers['X-Seen'] = String(typeof inst); return config; }]],
    response: [[(response) => { response.data.wrapped = true; return response; }]],
  });
  OPFetch.interceptors.request.use((config) => { config.headers['X-Root-Interceptor'] = '1'; return config; });
  const d = await child({ url: '/wiki/team/T1/pages', method: 'GET' });
  let e = null;
  try { await OPFetch('/status/404') } catch (err) { e = { fetchError: isFetchError(err), status: err.response.status, data: err.response.data, code: err.code } }
  const f = await OPFetch('/status/404', { validateStatus: () => true });
  const text = await OPFetch('/users/me', { responseType: 'text' });
  let plain = null;
  try { await Fetch('/relative') } catch (err) { plain = err.code }
  const admin = await FetchAsAdmin.get('/openapi/v2/project/issues/I1');
  const legacy = await fetchONES({ path: '/users/me', method: 'GET' });
  return { body: {
    a: [a.status, a.statusText, a.data.path], b: b.data.path, c: c.status, d: [d.data.path, d.data.wrapped], e, f: f.status,
    text: typeof text.data, plain, admin: admin.status, legacyHeader: legacy.headers['x-upstream'],
  } };
}

export async function passthrough() {
  return OPFetch.get('/users/me');
}
"#;

#[tokio::test]
async fn opfetch_is_axios_style_as_on_ones() {
    let up = Upstream::start().await;
    let p = org_plugin(
        "axios",
        "  - {type: addition, methods: [GET], url: /axios, function: axios}\n  - {type: addition, methods: [GET], url: /pass, function: passthrough}\n",
        AXIOS,
    );
    let gw =
        start(&up, &[format!("[[plugins]]\npath = {:?}\ninstance = \"ax\"\n", p.path().display().to_string())], "")
            .await;
    let got = get(&gw.url("/project/api/project/axios"), &[("Ones-Plugin-Id", "ax")]).await;
    assert_eq!(got.status, 200, "{}", got.text());
    let b = got.json();
    assert_eq!(got.status, 200, "{b}");
    assert_eq!(b["a"], json!([200, "OK", "/project/api/project/team/T1/tasks"]));
    assert_eq!(b["b"], "/project/api/project/users/me");
    assert_eq!(b["c"], 200);
    assert_eq!(
        b["d"],
        json!(["/wiki/api/wiki/team/T1/pages", true]),
        "/wiki goes to the wiki scope; inherited interceptors ran"
    );
    assert_eq!(
        b["e"],
        json!({"fetchError": true, "status": 404, "data": {"status": 404}, "code": "ERR_BAD_REQUEST"}),
        "{b}"
    );
    assert_eq!(
        (b["f"].clone(), b["text"].clone(), b["plain"].clone()),
        (json!(404), json!("string"), json!("ERR_INVALID_URL"))
    );
    assert_eq!((b["admin"].clone(), b["legacyHeader"].clone()), (json!(200), json!(["yes"])));
    let seen = up.seen();
    let first = &seen[0];
    assert_eq!(first.uri, "/project/api/project/team/T1/tasks?q=x%20y&ids[]=1&ids[]=2");
    assert_eq!(first.headers["ones-user-id"], "U1");
    let post = seen.iter().find(|s| s.uri.ends_with("/tasks/add")).unwrap();
    assert_eq!((post.method.as_str(), &post.body[..]), ("POST", &br#"{"summary":"s"}"#[..]));
    let wiki = seen.iter().find(|s| s.uri.contains("/pages")).unwrap();
    assert_eq!(
        (wiki.headers["x-child"].to_str().unwrap(), wiki.headers["x-seen"].to_str().unwrap()),
        ("yes", "function")
    );
    // The root instance's own interceptor was added after `create`: the child does not inherit it.
    assert!(!wiki.headers.contains_key("x-root-interceptor"));
    // A response returned as it came answers the route.
    let got = get(&gw.url("/project/api/project/pass"), &[("Ones-Plugin-Id", "ax")]).await;
    assert_eq!((got.status.as_u16(), got.json()["path"].as_str()), (200, Some("/project/api/project/users/me")));
    gw.stop().await;
}

const FS: &str = r#"
import { promises as fs } from '@ones-op/node-fs';
import { String2Unit8Array, Object2Unit8Array, Unit8Array2String } from '@ones-op/node-utils';

export async function files() {
  const errors = {};
  const attempt = async (name, fn) => { try { await fn() } catch (e) { errors[name] = [e.code ?? null, e.message] } };
  await fs.mkdir('data/deep', { recursive: true });
  await fs.writeFile('data/deep/a.txt', 'héllo');
  await fs.appendFile('data/deep/a.txt', String2Unit8Array(' world'));
  const text = await fs.readFile('data/deep/a.txt', 'utf8');
  const bytes = await fs.readFile('data/deep/a.txt');
  const stat = await fs.stat('data/deep/a.txt');
  const listed = await fs.readdir('data/deep');
  await fs.rename('data/deep/a.txt', 'data/b.txt');
  const typed = (await fs.readdir('data', { withFileTypes: true })).map((d) => [d.name, d.isDirectory()]);
  await fs.rm('data/b.txt');
  await fs.rm('data/b.txt', { force: true });
  await attempt('missing', () => fs.readFile('data/b.txt'));
  await attempt('notString', () => fs.readFile(42));
  await attempt('escape', () => fs.readFile('../../etc/passwd'));
  return { body: {
    text, bytes: bytes.length, size: stat.size, isFile: stat.isFile(), listed, typed, errors,
    utils: [Unit8Array2String(Object2Unit8Array({ a: 1 })), Unit8Array2String(String2Unit8Array('ü'))],
  } };
}
"#;

#[tokio::test]
async fn node_fs_and_utils_as_ones_has_them() {
    let up = Upstream::start().await;
    let p = org_plugin("fsp", "  - {type: addition, methods: [GET], url: /files, function: files}\n", FS);
    let gw =
        start(&up, &[format!("[[plugins]]\npath = {:?}\ninstance = \"fs1\"\n", p.path().display().to_string())], "")
            .await;
    let got = get(&gw.url("/project/api/project/files"), &[("Ones-Plugin-Id", "fs1")]).await;
    assert_eq!(got.status, 200, "{}", got.text());
    let b = got.json();
    assert_eq!(b["text"], "héllo world");
    assert_eq!((b["bytes"].clone(), b["size"].clone(), b["isFile"].clone()), (json!(12), json!(12), json!(true)));
    assert_eq!(b["listed"], json!(["a.txt"]));
    assert_eq!(b["typed"], json!([["b.txt", false], ["deep", true]]));
    assert_eq!(b["errors"]["missing"][0], "ENOENT");
    assert_eq!(
        b["errors"]["notString"][1],
        "Argument of the file or directory is not assignable to parameter of type 'string'."
    );
    assert_eq!(b["errors"]["escape"][1], "Invalid Param: ../../etc/passwd Out of the accessible path range.");
    assert_eq!(b["utils"], json!(["{\"a\":1}", "ü"]));
    assert!(gw.dir.path().join("ws/fs1/data/deep").is_dir(), "in the instance's workspace");
    gw.stop().await;
}

/// Plugins' absolute URLs speak https, trusting the Mozilla roots and the
/// private CA of `[sandbox] ca_file`; a certificate that does not verify is
/// a clear error, never ignored.
#[tokio::test]
async fn outside_calls_speak_https_and_check_certificates() {
    let up = Upstream::start().await;
    let (port, pem, _server) = interpose_test_util::https_upstream().await;
    let code = format!(
        "import {{ Fetch }} from '@ones-op/fetch'\nimport {{ fetchHttp }} from '@ones-op/node-fetch'\n\
         export async function out() {{\n\
           try {{\n\
             const a = await Fetch.get('https://localhost:{port}/axios');\n\
             const b = await fetchHttp({{ url: 'https://localhost:{port}/legacy', method: 'GET' }});\n\
             return {{ body: {{ a: a.data, b: b.body }} }};\n\
           }} catch (e) {{ return {{ body: {{ error: e.code, message: e.message }} }} }}\n\
         }}\n"
    );
    let code = format!(
        "{code}\nimport http from 'node:http'\nimport https from 'https'\n\
         const collect = (res) => new Promise((resolve) => {{ let s = ''; res.setEncoding('utf8'); res.on('data', (d) => s += d); res.on('end', () => resolve([res.statusCode, JSON.parse(s)])) }});\n\
         export async function node() {{\n\
           const a = await new Promise((resolve, reject) => https.get('https://localhost:{port}/node', (res) => collect(res).then(resolve)).on('error', reject));\n\
           const req = http.request({{ hostname: '127.0.0.1', port: {up_port}, path: '/project/api/project/echo-me', method: 'POST', headers: {{ 'X-Node': 'yes' }} }});\n\
           const b = new Promise((resolve, reject) => {{ req.on('response', (res) => collect(res).then(resolve)); req.on('error', reject) }});\n\
           req.write('part1,'); req.end('part2');\n\
           const denied = await new Promise((resolve) => http.get('http://example.com/', () => resolve('answered')).on('error', (e) => resolve(e.code)));\n\
           return {{ body: {{ a, b: await b, denied }} }};\n\
         }}\n",
        up_port = up.addr.port()
    );
    let p = org_plugin(
        "tls",
        "  - {type: addition, methods: [GET], url: /out, function: out}\n  - {type: addition, methods: [GET], url: /node, function: node}\n",
        &code,
    );
    let decl = format!("[[plugins]]\npath = {:?}\ninstance = \"t1\"\n", p.path().display().to_string());
    let call = |gw: &Running| {
        let url = gw.url("/project/api/project/out");
        async move { get(&url, &[("Ones-Plugin-Id", "t1")]).await.json() }
    };
    // The certificate is nobody's the gateway trusts: refused, and said why.
    let gw = start(&up, std::slice::from_ref(&decl), "[sandbox]\nhttp_allow = [\"localhost\", \"127.0.0.1\"]\n").await;
    let refused = call(&gw).await;
    assert_eq!(refused["error"], "NetworkError", "{refused}");
    assert!(refused["message"].as_str().unwrap().to_lowercase().contains("certificate"), "{refused}");
    gw.stop().await;
    // Trusted through ca_file: both SDKs reach it over TLS.
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, &pem).unwrap();
    let sandbox =
        format!("[sandbox]\nhttp_allow = [\"localhost\", \"127.0.0.1\"]\nca_file = {:?}\n", ca.display().to_string());
    let gw = start(&up, std::slice::from_ref(&decl), &sandbox).await;
    assert_eq!(call(&gw).await, json!({"a": {"tls": true, "path": "/axios"}, "b": {"tls": true, "path": "/legacy"}}));
    // Node's http and https modules, over the same calls.
    let node = get(&gw.url("/project/api/project/node"), &[("Ones-Plugin-Id", "t1")]).await.json();
    assert_eq!(node["a"], json!([200, {"tls": true, "path": "/node"}]), "{node}");
    assert_eq!(node["b"][0], 200, "{node}");
    assert_eq!(node["denied"], "EACCES", "{node}");
    let echo = up.seen().into_iter().find(|r| r.uri.ends_with("/echo-me")).unwrap();
    assert_eq!(
        (echo.method.as_str(), &echo.body[..], echo.headers["x-node"].to_str().unwrap()),
        ("POST", &b"part1,part2"[..], "yes")
    );
    gw.stop().await;
    // A ca_file without a certificate keeps the gateway from starting.
    std::fs::write(&ca, "not a certificate\n").unwrap();
    let dir2 = tempfile::tempdir().unwrap();
    let text = config_text(&up, &[], &sandbox);
    let config = interpose_config::Config::from_str_with_env(&text, "t.toml", dir2.path(), Vec::new()).unwrap();
    let err = interpose_gateway::Gateway::new(config).expect_err("refused").to_string();
    assert!(err.contains("sandbox.ca_file") && err.contains("no PEM certificate"), "{err}");
}

/// `@ones-op/node-database` on the embedded SQLite: a plugin's MySQL
/// `plugin.sql` imported, rows inserted, upserted, selected and counted;
/// failures are DBErrors with ONES's errcodes.
#[tokio::test]
async fn the_plugin_database_runs_mysql_as_plugins_write_it() {
    let up = Upstream::start().await;
    let p = interpose_test_util::project(&[
        ("config/plugin.yaml", "service: {app_id: data, version: 1.0.0, name: data, scope: 1}\napis:\n  - {type: addition, methods: [GET], url: /team, function: team}\n  - {type: addition, methods: [POST], url: /init, function: init}\n  - {type: addition, methods: [POST], url: /add, function: add}\n  - {type: addition, methods: [GET], url: /rows, function: rows}\n  - {type: addition, methods: [GET], url: /bad, function: bad}\n"),
        ("workspace/plugin.sql", "CREATE TABLE IF NOT EXISTS `{{visits}}` (\n  `id` bigint(20) NOT NULL AUTO_INCREMENT,\n  `user` varchar(64) NOT NULL,\n  `n` int(11) NOT NULL DEFAULT '0',\n  `at` datetime DEFAULT NULL,\n  PRIMARY KEY (`id`),\n  UNIQUE KEY `uk_user` (`user`)\n) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;\n"),
        ("backend/src/index.ts", "import { env } from '@ones-op/sdk/node'\n\
import { importSQL, select, exec, count } from '@ones-op/node-database'\n\
export async function team() { return { body: { team: await env.getTeamID() } } }\n\
export async function init() { await importSQL('plugin.sql'); return { body: { ok: true } } }\n\
export async function add(r: any) {\n  await exec('insert', `insert into visits (user, n, at) values ('${r.body.user}', 1, NOW()) on duplicate key update n = n + 1, at = NOW()`)\n  return { body: { users: await count('select count(*) from visits') } }\n}\n\
export async function rows() { return { body: await select('select user, n from visits order by n desc, user limit 0, 10') } }\n\
export async function bad(r: any) { return { body: await select(r.query.sql) } }\n"),
    ]);
    let gw = start(&up, &[decl(p.path(), &["T7"], Some("d1"))], "").await;
    let h = [("Ones-Plugin-Id", "d1")];
    let url = |path: &str| gw.url(&format!("/project/api/project{path}"));
    assert_eq!(get(&url("/team"), &h).await.json(), json!({"team": "T7"}));
    assert_eq!(send_json("POST", &url("/init"), &json!({}), &h).await.json(), json!({"ok": true}));
    for user in ["ann", "bob", "ann", "cy", "ann", "bob"] {
        let got = send_json("POST", &url("/add"), &json!({"user": user}), &h).await;
        assert_eq!(got.status, 200, "{}", got.text());
    }
    assert_eq!(
        get(&url("/rows"), &h).await.json(),
        json!([{"user": "ann", "n": 3}, {"user": "bob", "n": 2}, {"user": "cy", "n": 1}])
    );
    let got = get(&url("/bad?sql=select%20*%20from%20nowhere"), &h).await;
    let b = got.json();
    assert_eq!((got.status.as_u16(), b["errcode"].as_str()), (500, Some("DB.QuerySqlErr")), "{b}");
    let got = get(&url("/bad?sql=update%20visits%20set%20n%3D0"), &h).await;
    let b = got.json();
    assert_eq!((got.status.as_u16(), b["errcode"].as_str()), (400, Some("InvalidParameter")), "{b}");
    assert!(b["reason"].as_str().unwrap().contains("select() runs a SELECT, not UPDATE"), "{b}");
    gw.stop().await;
}

const EMPLOYEES: &str = r#"
import { storage, WhereConditions, SortOrder } from '@ones-op/sdk/backend'
const { entity } = storage
export async function put(request) {
  const { key, value } = request.body
  await entity('employee').set(key, value)
  return { body: await entity('employee').get(key) }
}
export async function seed(request) {
  const items = []
  for (let i = 0; i < request.body.n; i++) items.push({ key: `e${String(i).padStart(3, '0')}`, value: { name: `n${i % 7}`, age: 20 + (i % 10), deleted: i % 3 === 0 } })
  await entity('employee').batchSet(items)
  return { body: { count: await entity('employee').query().count() } }
}
export async function one(request) {
  const v = await entity('employee').get(request.query.key)
  return { body: { found: v !== undefined, value: v ?? null } }
}
export async function page(request) {
  let q = entity('employee').query()
  if (request.query.index) q = q.index(request.query.index, { partition: request.query.deleted ? [request.query.deleted === 'true'] : [] })
  if (request.query.min) q = q.where(WhereConditions.isGreaterThanEqualTo(Number(request.query.min)))
  if (request.query.desc) q = q.sort(SortOrder.DESC)
  const all = []
  let cursor, pages = 0, info
  do {
    const r = await q.limit(Number(request.query.limit ?? 10)).cursor(cursor).getMany()
    all.push(...r.data)
    info = r.page_info
    cursor = info.end_cursor
    pages++
  } while (info.has_more)
  return { body: { keys: all.map((d) => d.key), ages: all.map((d) => d.value.age), pages, count: await q.count() } }
}
export async function drop(request) {
  await entity('employee').delete(request.query.key)
  await entity('employee').batchDelete(['e001', 'e002'])
  return { body: { count: await entity('employee').query().count() } }
}
export async function undeclared() {
  return { body: await entity('nobody').get('x') }
}
"#;

/// Entity storage as ONES documents it: upsert with the attribute rules,
/// get, delete, batches, queries by key and by a partitioned index with
/// conditions, pages with cursors, count; refusals are 400s that say why.
#[tokio::test]
async fn entity_storage_keeps_records_by_the_declared_rules() {
    let up = Upstream::start().await;
    let manifest = "service: {app_id: staff, version: 1.0.0, name: staff, scope: 1}\n\
apis:\n  - {type: addition, methods: [POST], url: /put, function: put}\n  - {type: addition, methods: [POST], url: /seed, function: seed}\n  - {type: addition, methods: [GET], url: /one, function: one}\n  - {type: addition, methods: [GET], url: /page, function: page}\n  - {type: addition, methods: [DELETE], url: /drop, function: drop}\n  - {type: addition, methods: [GET], url: /undeclared, function: undeclared}\n\
storage:\n  entities:\n    - name: employee\n      attributes:\n        name: {type: string, length: 32, required: true}\n        age: {type: integer, required: true}\n        deleted: {type: boolean, default: false}\n        bio: {type: text}\n      indexes:\n        - {name: by_age_in_deleted, range_attribute: age, partition: [deleted]}\n        - {name: by_name, range_attribute: name}\n";
    let p = interpose_test_util::project(&[("config/plugin.yaml", manifest), ("backend/src/index.js", EMPLOYEES)]);
    let gw = start(&up, &[decl(p.path(), &["T1"], Some("s1"))], "").await;
    gw.gw.use_store(interpose_registry::Store::open("sqlite::memory:").await.unwrap());
    let url = |path: &str| gw.url(&format!("/project/api/project{path}"));
    let h = [("Ones-Plugin-Id", "s1")];

    // Create: the default fills in; update: it is kept, the rest replaced.
    let got = send_json("POST", &url("/put"), &json!({"key": "k1", "value": {"name": "Mike", "age": 25}}), &h).await;
    assert_eq!(got.json(), json!({"name": "Mike", "age": 25, "deleted": false}));
    send_json("POST", &url("/put"), &json!({"key": "k1", "value": {"name": "Mike", "age": 25, "deleted": true}}), &h)
        .await;
    let got =
        send_json("POST", &url("/put"), &json!({"key": "k1", "value": {"name": "Mike", "age": 26, "bio": "hi"}}), &h)
            .await;
    assert_eq!(got.json(), json!({"name": "Mike", "age": 26, "deleted": true, "bio": "hi"}));
    for (value, says) in [
        (json!({"age": 3}), "attribute \"name\" of entity \"employee\" is required"),
        (json!({"name": "x", "age": 1.5}), "expected integer, found the number 1.5"),
        (json!({"name": "x", "age": 1, "salary": 9}), "declares no attribute \"salary\""),
        (json!("flat"), "must be an object"),
    ] {
        let got = send_json("POST", &url("/put"), &json!({"key": "bad", "value": value}), &h).await;
        let b = got.json();
        assert_eq!((got.status.as_u16(), b["errcode"].as_str()), (400, Some("InvalidParameter")), "{b}");
        assert!(b["reason"].as_str().unwrap().contains(says), "{b}");
    }
    assert_eq!(get(&url("/one?key=bad"), &h).await.json(), json!({"found": false, "value": null}));
    let got = get(&url("/undeclared"), &h).await;
    let b = got.json();
    assert_eq!((got.status.as_u16(), b["errcode"].as_str()), (400, Some("Storage.EntityNotDeclared")), "{b}");
    assert!(b["reason"].as_str().unwrap().contains("declared: employee"), "{b}");

    // 60 more, then pages of 7 by key: every record once, in key order.
    assert_eq!(send_json("POST", &url("/seed"), &json!({"n": 60}), &h).await.json(), json!({"count": 61}));
    let b = get(&url("/page?limit=7"), &h).await.json();
    let keys: Vec<&str> = b["keys"].as_array().unwrap().iter().map(|k| k.as_str().unwrap()).collect();
    assert_eq!((keys.len(), b["pages"].as_i64(), b["count"].as_i64()), (61, Some(9), Some(61)));
    assert!(keys.windows(2).all(|w| w[0] < w[1]), "{keys:?}");
    // The index in the `deleted: true` partition, ages ≥ 25, oldest first.
    let b = get(&url("/page?index=by_age_in_deleted&deleted=true&min=25&desc=1&limit=4"), &h).await.json();
    let ages: Vec<i64> = b["ages"].as_array().unwrap().iter().map(|a| a.as_i64().unwrap()).collect();
    let expected = (0..60).filter(|i| i % 3 == 0 && 20 + i % 10 >= 25).count() + 1; // + k1 (26, deleted)
    assert_eq!((ages.len(), b["count"].as_u64()), (expected, Some(expected as u64)), "{b}");
    assert!(ages.windows(2).all(|w| w[0] >= w[1]) && ages.iter().all(|a| *a >= 25), "{ages:?}");
    let got = get(&url("/page?index=by_age_in_deleted"), &h).await;
    assert_eq!(got.status.as_u16(), 400);
    assert!(got.json()["reason"].as_str().unwrap().contains("give 1 partition value(s), not 0"), "{}", got.json());

    let got = send_json("DELETE", &url("/drop?key=e000"), &json!({}), &h).await;
    assert_eq!(got.json(), json!({"count": 58}));
    gw.stop().await;
}
