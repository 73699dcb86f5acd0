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
    ("task-rules/backend/src/index.ts", include_str!("../../../examples/plugins/task-rules/backend/src/index.ts")),
    ("task-rules/backend/src/rules.ts", include_str!("../../../examples/plugins/task-rules/backend/src/rules.ts")),
    ("task-rules/config/plugin.yaml", include_str!("../../../examples/plugins/task-rules/config/plugin.yaml")),
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
