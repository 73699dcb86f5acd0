//! `interpose new NAME [--org]`: a plugin project that checks clean and runs
//! under `interpose invoke run` as it is.

use std::path::Path;
use std::process::ExitCode;

pub fn run(name: &str, org: bool) -> anyhow::Result<ExitCode> {
    let valid = !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !valid {
        eprintln!("error: {name:?} is not a plugin name (letters, digits, '-', '_')");
        return Ok(ExitCode::from(crate::EXIT_BAD_INPUT));
    }
    let dir = Path::new(name);
    if dir.exists() {
        eprintln!("error: {} already exists", dir.display());
        return Ok(ExitCode::from(crate::EXIT_BAD_INPUT));
    }
    let app_id = uuid::Uuid::new_v4().simple().to_string()[..8].to_string();
    let (scope, url, method, function) =
        if org { (2, "/users/me", "GET", "onUsersMe") } else { (1, "/team/:teamUUID/tasks", "POST", "onNewTask") };
    let manifest = format!(
        "service:\n  app_id: '{app_id}'\n  version: 1.0.0\n  name: {name}\n  description: A new interpose plugin\n  scope: {scope}                  # 1 team-level, 2 organization-level\n  language: nodejs\napis:\n  - type: intercept\n    methods: [{method}]\n    url: {url}\n    scope: project\n    function: {function}\n"
    );
    let lifecycle = if org {
        "export async function OrgInstall(request: unknown, teamUUIDList: string[], firstInstall: boolean) { Logger.info('OrgInstall', teamUUIDList, firstInstall) }\nexport async function OrgEnable(request: unknown, teamUUIDList: string[]) { Logger.info('OrgEnable'); return teamUUIDList }\nexport async function OrgDisable(request: unknown, teamUUIDList: string[]) { Logger.info('OrgDisable'); return teamUUIDList }\nexport async function OrgUnInstall(request: unknown, teamUUIDList: string[]) { Logger.info('OrgUnInstall') }\nexport async function OrgUpgrade(oldPluginInfo: unknown, request: unknown, teamUUIDList: string[]) { Logger.info('OrgUpgrade from', oldPluginInfo) }\n"
    } else {
        "export async function Install() { Logger.info('Install') }\nexport async function Enable() { Logger.info('Enable') }\nexport async function Disable() { Logger.info('Disable') }\nexport async function UnInstall() { Logger.info('UnInstall') }\nexport async function Upgrade(oldPluginInfo: unknown) { Logger.info('Upgrade from', oldPluginInfo) }\n"
    };
    let hook = if org {
        "// Pre-interception of GET /users/me: reject archived users, let the rest through.\nexport async function onUsersMe(request: PluginRequest): Promise<PluginResponse | void> {\n  const user = request.headers['Ones-User-Id'] ?? ''\n  Logger.info('GET /users/me for', user)\n  if (user.startsWith('archived-')) {\n    throw new PluginError(PluginErrorTypeEnum.Warning, 'UserArchived', `user ${user} is archived`, 403)\n  }\n}\n"
    } else {
        "// Pre-interception of POST /team/:teamUUID/tasks: a task needs a summary.\nexport async function onNewTask(request: PluginRequest): Promise<PluginResponse | void> {\n  const body = (request.body ?? {}) as { summary?: string }\n  Logger.info(`new task in team ${request.teamUUID}`, body)\n  if (!body.summary) {\n    throw new PluginError(PluginErrorTypeEnum.Warning, 'InvalidParameter', 'a task needs a summary', 400)\n  }\n}\n"
    };
    let code = format!(
        "import {{ Logger }} from '@ones-op/node-logger'\nimport {{ PluginError, PluginErrorTypeEnum }} from '@ones-op/node-error'\n\ninterface PluginRequest {{\n  method: string\n  url: string\n  headers: Record<string, string | undefined>\n  body?: unknown\n  teamUUID?: string\n}}\ninterface PluginResponse {{\n  statusCode?: number\n  headers?: Record<string, string>\n  body?: unknown\n}}\n\n// Lifecycle: run at install, enable, disable, uninstall and upgrade.\n{lifecycle}export async function Start() {{ Logger.info('Start') }}\nexport async function Stop() {{ Logger.info('Stop') }}\n\n{hook}"
    );
    let local = "# For `interpose invoke run`: the standard system to run in front of.\nsystem: http://127.0.0.1:9000\n# The local gateway (the admin API takes the next port).\nlisten: 127.0.0.1:8080\n# The team a team-level plugin's debug instance is installed for.\nteam: T1\n# Config values for the debug instance (keys from service.config).\n# config:\n#   denyList: U1,U2\n";
    let readme = format!(
        "# {name}\n\nAn interpose plugin.\n\n```sh\ninterpose check .                 # validate\ninterpose invoke run --sample     # run it in front of the built-in sample system (or config/local.yaml's)\ninterpose invoke clear            # Stop, Disable, UnInstall the debug instance\n```\n"
    );
    for (path, text) in [
        ("config/plugin.yaml", manifest.as_str()),
        ("config/local.yaml", local),
        ("backend/src/index.ts", code.as_str()),
        ("workspace/.keep", ""),
        ("README.md", readme.as_str()),
        (".gitignore", ".interpose/\n"),
    ] {
        let p = dir.join(path);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(p, text)?;
    }
    println!("created {name}/ ({} plugin, app_id {app_id})", if org { "organization-level" } else { "team-level" });
    println!("  cd {name} && interpose check . && interpose invoke run --sample");
    Ok(ExitCode::SUCCESS)
}
