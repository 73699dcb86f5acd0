//! `interpose demo`: a sample standard system, the gateway in front of it
//! and the example plugins, on one machine, with curl lines to try.

use std::net::SocketAddr;
use std::process::ExitCode;

use interpose_gateway::{serve, Gateway};
use interpose_sample::SampleSystem;

use crate::{examples, init_tracing, EXIT_BAD_INPUT};

pub fn run(listen: SocketAddr, sample_addr: SocketAddr) -> anyhow::Result<ExitCode> {
    init_tracing("info");
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(async move {
        let sample = match SampleSystem::start(sample_addr).await {
            Ok(s) => s,
            Err(e) => {
                eprintln!("error: cannot start the sample system on {sample_addr}: {e}");
                return Ok(ExitCode::from(EXIT_BAD_INPUT));
            }
        };
        let dir = tempfile::Builder::new().prefix("interpose-demo-").tempdir()?;
        examples::write_to(dir.path())?;
        let text = demo_config(listen, &sample.url());
        let config = interpose_config::Config::from_str_with_env(&text, "<demo config>", dir.path(), Vec::new())
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let gw = Gateway::new(config).map_err(|e| anyhow::anyhow!("{e}"))?;
        // An in-memory registry and the admin API next to the gateway, so
        // `interpose plugin …` and /metrics can be tried on the demo too.
        let store = interpose_registry::Store::open("sqlite::memory:").await?;
        let manager = interpose_control::Manager::start(gw.clone(), store).await.map_err(|e| anyhow::anyhow!("{e}"))?;
        let (stop, signal) = crate::serve::stop_on_signal();
        let admin_addr = SocketAddr::new(listen.ip(), listen.port().wrapping_add(1));
        let admin = interpose_admin::serve(manager, admin_addr, None, crate::serve::stopped(stop.clone()))
            .await
            .ok()
            .map(|(_, bound)| bound);
        let listener = match tokio::net::TcpListener::bind(listen).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!("error: cannot listen on {listen}: {e}\n       another program uses it; try `interpose demo --listen 127.0.0.1:8090`");
                return Ok(ExitCode::from(EXIT_BAD_INPUT));
            }
        };
        println!("{}", banner(listen, &sample.url(), &gw, admin));
        serve(gw, listener, crate::serve::stopped(stop)).await;
        signal.abort();
        drop(sample);
        Ok(ExitCode::SUCCESS)
    })
}

fn demo_config(listen: SocketAddr, sample: &str) -> String {
    format!(
        r#"
[server]
listen = "{listen}"
[[upstreams]]
scope = "project"
mount = "/project/api/project"
url = "{sample}/project/api/project"
[[upstreams]]
scope = "wiki"
mount = "/wiki/api/wiki"
url = "{sample}/wiki/api/wiki"
[storage]
url = "sqlite::memory:"
workspaces = "workspaces"
[[plugins]]
path = "block-archived-users"
instance = "1d99926e"
[[plugins]]
path = "task-rules"
teams = ["T1"]
instance = "7a5c0e11"
[[plugins]]
path = "query-variants"
instance = "9e1a2b3c"
[[plugins]]
path = "users-me-subscriber"
instance = "5b0c5b0c"
[[plugins]]
path = "title-suffix"
instance = "3f3f3f3f"
[[plugins]]
path = "wiki-title-replace"
instance = "2a2a2a2a"
[[plugins]]
path = "suffix-log"
instance = "4c4c4c4c"
[[plugins]]
path = "hello-addition"
instance = "6d6d6d6d"
[[plugins]]
path = "team-report"
teams = ["T1"]
instance = "8e8e8e8e"
"#
    )
}

fn banner(listen: SocketAddr, sample: &str, gw: &Gateway, admin: Option<SocketAddr>) -> String {
    let g = format!("http://{listen}");
    let ws = gw.config.storage.workspaces.display();
    let snap = gw.snapshot();
    let mut s =
        format!("interpose demo\n  gateway        {g}\n  sample system  {sample} (scopes project, wiki)\n  plugins:\n");
    for i in &snap.instances {
        let place = i.meta.team.as_deref().map(|t| format!("team {t}")).unwrap_or_else(|| "organization".into());
        s += &format!("    {:<22} instance {}  ({place})\n", i.meta.name, i.meta.id);
    }
    s += &format!(
        r#"
Try it (Ctrl-C stops):

  # passes: the plugin logs and lets the request through to the system
  curl -s {g}/project/api/project/users/me -H 'Ones-User-Id: U1'

  # rejected by block-archived-users (403, thrown PluginError)
  curl -s {g}/project/api/project/users/me -H 'Ones-User-Id: archived-42'

  # team T1 has task-rules: an empty summary is rejected (400, clientError)
  curl -s -X POST {g}/project/api/project/team/T1/tasks -H 'Content-Type: application/json' -d '{{"summary":""}}'

  # ... and a good task is created by the system
  curl -s -X POST {g}/project/api/project/team/T1/tasks -H 'Content-Type: application/json' -d '{{"summary":"Write the report","assign":"U1"}}'

  # team T2 has no task-rules instance: the same empty summary goes through
  curl -s -X POST {g}/project/api/project/team/T2/tasks -H 'Content-Type: application/json' -d '{{"summary":""}}'

  # no hook on this route: proxied and streamed untouched
  curl -s {g}/wiki/api/wiki/team/T1/page/P1

  # query variants: k2's hook runs (418 shows which one); without a matching query none does
  curl -s '{g}/project/api/project/users/me?k2=v2' -H 'X-Show-Variant: 1'
  curl -s '{g}/project/api/project/users/me?k1=v1&k2=v2&k3=v3' -H 'X-Show-Variant: 1'

  # prefix (title-suffix) rewrites the body, then replace (wiki-title-replace) answers,
  # calling the original API itself: the stored title is "Roadmap-plugin"
  curl -s -X POST {g}/wiki/api/wiki/team/T1/page/P1/update_title -H 'Content-Type: application/json' -d '{{"title":"Roadmap"}}'

  # suffix-log appended the tasks created above to its workspace:
  cat {ws}/4c4c4c4c/suffix.txt

  # addition: a plugin-level route, for callers that name the instance
  curl -s {g}/project/api/project/hello -H 'Ones-Plugin-Id: 6d6d6d6d' -H 'Ones-Check-Point: team' -H 'Ones-Check-Id: T1'

  # external: a new team-level route, for team T1 only (T2 goes to the system: 404)
  curl -s {g}/project/api/project/team/T1/report
  curl -s {g}/project/api/project/team/T2/report

  # subscriber (users-me-subscriber) and every plugin's Logger lines appear in this terminal
"#
    );
    if let Some(a) = admin {
        s += &format!(
            r#"
  # the admin API (plugins, logs, routes, metrics); its UI: open http://{a}/ in a browser
  interpose plugin list --admin http://{a}
  interpose plugin logs 1d99926e --admin http://{a}
  interpose routes --admin http://{a}
  curl -s http://{a}/metrics | grep interpose_hook_calls_total
"#
        );
    }
    s
}
