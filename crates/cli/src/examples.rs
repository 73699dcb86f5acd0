//! The example plugins of `examples/plugins/`, embedded so `interpose demo`
//! runs from any folder. A test checks this list against the folder.

use std::path::{Path, PathBuf};

/// (path under examples/plugins, contents).
pub const FILES: &[(&str, &str)] = &[
    (
        "block-archived-users/backend/src/index.ts",
        include_str!("../../../examples/plugins/block-archived-users/backend/src/index.ts"),
    ),
    (
        "block-archived-users/config/plugin.yaml",
        include_str!("../../../examples/plugins/block-archived-users/config/plugin.yaml"),
    ),
    (
        "hello-addition/backend/src/index.ts",
        include_str!("../../../examples/plugins/hello-addition/backend/src/index.ts"),
    ),
    ("hello-addition/config/plugin.yaml", include_str!("../../../examples/plugins/hello-addition/config/plugin.yaml")),
    (
        "query-variants/backend/src/index.ts",
        include_str!("../../../examples/plugins/query-variants/backend/src/index.ts"),
    ),
    ("query-variants/config/plugin.yaml", include_str!("../../../examples/plugins/query-variants/config/plugin.yaml")),
    ("suffix-log/backend/src/index.ts", include_str!("../../../examples/plugins/suffix-log/backend/src/index.ts")),
    ("suffix-log/config/plugin.yaml", include_str!("../../../examples/plugins/suffix-log/config/plugin.yaml")),
    ("suffix-log/workspace/.keep", include_str!("../../../examples/plugins/suffix-log/workspace/.keep")),
    ("task-rules/backend/src/index.ts", include_str!("../../../examples/plugins/task-rules/backend/src/index.ts")),
    ("task-rules/backend/src/rules.ts", include_str!("../../../examples/plugins/task-rules/backend/src/rules.ts")),
    ("task-rules/config/plugin.yaml", include_str!("../../../examples/plugins/task-rules/config/plugin.yaml")),
    ("team-report/backend/src/index.ts", include_str!("../../../examples/plugins/team-report/backend/src/index.ts")),
    ("team-report/config/plugin.yaml", include_str!("../../../examples/plugins/team-report/config/plugin.yaml")),
    ("title-suffix/backend/src/index.ts", include_str!("../../../examples/plugins/title-suffix/backend/src/index.ts")),
    ("title-suffix/config/plugin.yaml", include_str!("../../../examples/plugins/title-suffix/config/plugin.yaml")),
    (
        "users-me-subscriber/backend/src/index.ts",
        include_str!("../../../examples/plugins/users-me-subscriber/backend/src/index.ts"),
    ),
    (
        "users-me-subscriber/config/plugin.yaml",
        include_str!("../../../examples/plugins/users-me-subscriber/config/plugin.yaml"),
    ),
    (
        "wiki-title-replace/backend/src/index.ts",
        include_str!("../../../examples/plugins/wiki-title-replace/backend/src/index.ts"),
    ),
    (
        "wiki-title-replace/config/plugin.yaml",
        include_str!("../../../examples/plugins/wiki-title-replace/config/plugin.yaml"),
    ),
];

/// Write every example plugin under `dir`; returns the plugin folders.
pub fn write_to(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut plugins = Vec::new();
    for (path, text) in FILES {
        let p = dir.join(path);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&p, text)?;
        if let Some(name) = path.split('/').next() {
            let plugin = dir.join(name);
            if !plugins.contains(&plugin) {
                plugins.push(plugin);
            }
        }
    }
    Ok(plugins)
}

#[cfg(test)]
mod tests {
    #[test]
    fn embedded_examples_match_the_folder() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/plugins");
        let mut on_disk = Vec::new();
        let mut stack = vec![root.clone()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).expect("examples folder") {
                let p = e.expect("entry").path();
                if p.is_dir() {
                    stack.push(p);
                } else {
                    on_disk.push(p.strip_prefix(&root).expect("prefix").to_string_lossy().replace('\\', "/"));
                }
            }
        }
        on_disk.sort();
        let embedded: Vec<String> = super::FILES.iter().map(|(p, _)| p.to_string()).collect();
        assert_eq!(on_disk, embedded, "regenerate crates/cli/src/examples.rs after adding an example file");
    }
}
