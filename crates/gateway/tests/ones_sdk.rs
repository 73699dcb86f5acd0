//! The ONES platform's own SDK shapes (../shared/reference/ones-sdk.md), as a
//! plugin written for ONES uses them: `globalThis.onesEnv`, `@ones-op/node-error`,
//! the SDK errors' conversion, `Logger.warning`, `@ones-op/node-ability`.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use interpose_test_util::{get, Upstream};
use serde_json::json;

const CODE: &str = r#"
import { PluginError, PluginErrorTypeEnum, CommonReason, clientError, serverError, sdkErrorToPluginError } from '@ones-op/node-error';
import { Logger } from '@ones-op/node-logger';
import { Plugin, Language, Notify, NotifyWay, AbilityError } from '@ones-op/node-ability';

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
    quoted: await Language.getLanguageString('en', 'Quoted'),
  } };
}
"#;

fn plugin(scope: u8) -> tempfile::TempDir {
    interpose_test_util::project(&[
        ("config/plugin.yaml", &format!("service:\n  app_id: sdk{scope}\n  version: 1.0.0\n  name: sdk\n  scope: {scope}\n  config:\n    - {{key: limit, type: Input, value: '5'}}\n    - {{key: token, type: Password}}\n\
apis:\n  - {{type: addition, methods: [get], url: /env, function: env}}\n  - {{type: addition, methods: [get], url: /err, function: err}}\n  - {{type: addition, methods: [get], url: /log, function: log}}\n  - {{type: addition, methods: [get], url: /conf, function: conf}}\n  - {{type: addition, methods: [get], url: /hdr, function: hdr}}\n")),
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

    // Config rows, the instance's identity, the language files.
    let conf = call("i-team", "/conf").await.json();
    assert_eq!(
        conf,
        json!({"limit": "5", "types": [101, 103], "user": true, "hello": "Hello there", "quoted": "a: b"})
    );
    gw.stop().await;
}
