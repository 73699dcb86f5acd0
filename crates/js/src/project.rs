//! A plugin project's backend code, loaded and transpiled once.

use std::collections::HashMap;
use std::fmt;
use std::path::{Component, Path, PathBuf};

use crate::transpile::{transpile, Transpiled};

const EXTENSIONS: [&str; 4] = ["ts", "js", "mjs", "mts"];
const MAX_FILES: usize = 2000;
const MAX_TOTAL_BYTES: u64 = 32 << 20;

/// Every module of a plugin backend as JS, keyed by its path relative to the
/// project root (`backend/src/index.ts`), which is also its module name.
#[derive(Debug)]
pub struct PluginCode {
    pub root: PathBuf,
    /// Module name of the entry.
    pub entry: String,
    modules: HashMap<String, Transpiled>,
}

/// Problems that keep a backend from loading, each with file and line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeError(pub Vec<String>);

impl fmt::Display for CodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.join("\n"))
    }
}

impl std::error::Error for CodeError {}

impl PluginCode {
    /// Load `backend/dist/index.js` if present, else `backend/src/index.ts` or
    /// `index.js`, with every script file beside it.
    pub fn load(project: &Path) -> Result<PluginCode, CodeError> {
        let backend = project.join("backend");
        let candidates = ["dist/index.js", "src/index.ts", "src/index.js", "src/index.mjs"];
        let Some(entry_rel) = candidates.iter().find(|c| backend.join(c).is_file()) else {
            return Err(CodeError(vec![format!(
                "{}: no entry module; expected backend/dist/index.js or backend/src/index.ts (or index.js)",
                project.display()
            )]));
        };
        let dir = backend.join(entry_rel.split('/').next().unwrap_or("src"));
        let mut files = Vec::new();
        let mut problems = Vec::new();
        collect(&dir, &mut files, &mut problems);
        let total: u64 = files.iter().filter_map(|f| f.metadata().ok()).map(|m| m.len()).sum();
        if files.len() > MAX_FILES || total > MAX_TOTAL_BYTES {
            problems.push(format!(
                "{}: {} files, {total} bytes: too large (limits {MAX_FILES} files, {MAX_TOTAL_BYTES} bytes)",
                dir.display(),
                files.len()
            ));
        }
        let mut modules = HashMap::new();
        for file in files {
            let name = module_name(project, &file);
            match std::fs::read_to_string(&file) {
                Err(e) => problems.push(format!("{name}: cannot read: {e}")),
                Ok(text) => match transpile(&file, &text) {
                    Ok(t) => {
                        modules.insert(name, t);
                    }
                    Err(errs) => {
                        for e in errs {
                            problems.push(format!("{name}:{}:{}: {}", e.line, e.column, e.message));
                        }
                    }
                },
            }
        }
        if !problems.is_empty() {
            return Err(CodeError(problems));
        }
        Ok(PluginCode { root: project.to_path_buf(), entry: format!("backend/{entry_rel}"), modules })
    }

    /// Code from a single in-memory module (tests, benchmarks).
    pub fn from_source(name: &str, source: &str) -> Result<PluginCode, CodeError> {
        let t = transpile(Path::new(name), source).map_err(|errs| {
            CodeError(errs.into_iter().map(|e| format!("{name}:{}:{}: {}", e.line, e.column, e.message)).collect())
        })?;
        Ok(PluginCode {
            root: PathBuf::from("."),
            entry: name.to_string(),
            modules: HashMap::from([(name.to_string(), t)]),
        })
    }

    pub(crate) fn module(&self, name: &str) -> Option<&Transpiled> {
        self.modules.get(name)
    }

    /// Resolve a relative import from module `base`.
    pub(crate) fn resolve(&self, base: &str, spec: &str) -> Option<String> {
        let dir = base.rsplit_once('/').map(|(d, _)| d).unwrap_or("");
        let joined = normalize(&format!("{dir}/{spec}"))?;
        let mut tries = vec![joined.clone()];
        for ext in EXTENSIONS {
            tries.push(format!("{joined}.{ext}"));
        }
        for ext in EXTENSIONS {
            tries.push(format!("{joined}/index.{ext}"));
        }
        // TypeScript convention: `./util.js` names `util.ts`.
        if let Some(stem) = joined.strip_suffix(".js") {
            tries.push(format!("{stem}.ts"));
        }
        tries.into_iter().find(|t| self.modules.contains_key(t))
    }

    /// Map a line of generated code back to the source line.
    pub(crate) fn source_line(&self, module: &str, line: usize) -> usize {
        match self.modules.get(module) {
            Some(t) if !t.line_map.is_empty() => {
                t.line_map.get(line.saturating_sub(1)).map(|l| *l as usize).unwrap_or(line)
            }
            _ => line,
        }
    }

    pub fn module_names(&self) -> impl Iterator<Item = &str> {
        self.modules.keys().map(String::as_str)
    }
}

fn collect(dir: &Path, files: &mut Vec<PathBuf>, problems: &mut Vec<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    let mut entries: Vec<_> = entries.filter_map(Result::ok).collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let path = e.path();
        let Ok(meta) = std::fs::symlink_metadata(&path) else { continue };
        if meta.file_type().is_symlink() {
            problems.push(format!("{}: symbolic links are not allowed in a plugin backend", path.display()));
        } else if meta.is_dir() {
            if e.file_name() != "node_modules" && files.len() <= MAX_FILES {
                collect(&path, files, problems);
            }
        } else {
            let name = e.file_name().to_string_lossy().to_string();
            let ext = path.extension().and_then(|x| x.to_str()).unwrap_or("");
            if EXTENSIONS.contains(&ext) && !name.ends_with(".d.ts") {
                files.push(path);
            }
        }
    }
}

fn module_name(root: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(root).unwrap_or(file);
    rel.components().map(|c| c.as_os_str().to_string_lossy()).collect::<Vec<_>>().join("/")
}

/// Resolve `.` and `..` in a `/`-separated path; `None` if it climbs out of the root.
fn normalize(path: &str) -> Option<String> {
    let mut out: Vec<&str> = Vec::new();
    for c in Path::new(path).components() {
        match c {
            Component::Normal(s) => out.push(s.to_str()?),
            Component::ParentDir => {
                out.pop()?;
            }
            Component::CurDir | Component::RootDir | Component::Prefix(_) => {}
        }
    }
    Some(out.join("/"))
}
