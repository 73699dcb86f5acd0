//! A plugin project's backend code, loaded and transpiled once.

use std::collections::HashMap;
use std::fmt;
use std::path::{Component, Path, PathBuf};

use crate::code::transpile::{transpile, transpile_with, Transpiled, TsConfig};

const EXTENSIONS: [&str; 5] = ["ts", "js", "mjs", "mts", "cjs"];
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
    /// First stack frame inside the plugin's own code, as `file:line (function)`,
    /// with TypeScript lines mapped back to the source.
    pub(crate) fn locate(&self, stack: &str) -> Option<String> {
        for frame in stack.lines() {
            let frame = frame.trim().trim_start_matches("at ");
            let (func, place) = match frame.rsplit_once(" (") {
                Some((f, p)) => (f.trim(), p.trim_end_matches(')')),
                None => ("", frame),
            };
            let mut parts = place.rsplitn(3, ':');
            let (Some(_col), Some(line), Some(file)) = (parts.next(), parts.next(), parts.next()) else { continue };
            let Ok(line) = line.parse::<usize>() else { continue };
            if self.module(file).is_none() {
                continue;
            }
            let line = self.source_line(file, line);
            let func = func.strip_suffix(crate::code::transpile::SYNC_TWIN).unwrap_or(func);
            return Some(if func.is_empty() { format!("{file}:{line}") } else { format!("{file}:{line} ({func})") });
        }
        None
    }

    /// Load `backend/dist/index.js` if present, else `backend/src/index.ts` or
    /// `index.js`, with every script file beside it.
    pub fn load(project: &Path) -> Result<PluginCode, CodeError> {
        let backend = project.join("backend");
        let candidates = ["dist/index.js", "dist/index.cjs", "src/index.ts", "src/index.js", "src/index.mjs"];
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
        // Read only for TypeScript (a `dist/` bundle is plain JS).
        let typescript = files.iter().any(|f| f.extension().is_some_and(|x| x == "ts" || x == "mts" || x == "cts"));
        let tsconfig = match typescript.then(|| TsConfig::find(project)) {
            Some(Err(e)) => {
                problems.push(e);
                TsConfig::default()
            }
            Some(Ok(t)) => t,
            None => TsConfig::default(),
        };
        let mut modules = HashMap::new();
        for file in files {
            let name = module_name(project, &file);
            match std::fs::read_to_string(&file) {
                Err(e) => problems.push(format!("{name}: cannot read: {e}")),
                Ok(text) if file.extension().is_some_and(|x| x == "json") => {
                    let t = json_module(&name, &text);
                    modules.insert(name, t);
                }
                Ok(text) => match transpile_with(&file, &text, tsconfig) {
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
        let mut code = PluginCode { root: project.to_path_buf(), entry: format!("backend/{entry_rel}"), modules };
        code.wrap_commonjs();
        Ok(code)
    }

    /// Turn each CommonJS file into a module: `require` finds the built-ins
    /// and the plugin's own files (imported up front, so only literal names
    /// that resolve are imported; any other name throws "Cannot find
    /// module" when it is required, as in Node), `module.exports` becomes
    /// the default export, and the entry's exported functions are the
    /// properties of its `module.exports`. The file's text stays on its own
    /// lines, so line numbers in errors stay true.
    fn wrap_commonjs(&mut self) {
        let names: Vec<String> =
            self.modules.iter().filter(|(_, t)| t.commonjs.is_some()).map(|(n, _)| n.clone()).collect();
        for name in names {
            let Some(t) = self.modules.get(&name) else { continue };
            let requires = t.commonjs.as_deref().unwrap_or_default();
            let mut head = String::new();
            let mut table = String::from("{ __proto__: null");
            for (i, spec) in requires.iter().enumerate() {
                let found = crate::code::builtins::builtin(spec).is_some()
                    || ((spec.starts_with("./") || spec.starts_with("../")) && self.resolve(&name, spec).is_some());
                if found {
                    head.push_str(&format!("import * as __ip{i} from {}; ", lit(spec)));
                    table.push_str(&format!(", {}: __ip{i}", lit(spec)));
                }
            }
            let dir = name.rsplit_once('/').map(|(d, _)| d).unwrap_or("");
            // Node's order: a file runs when it is first required (or, for
            // one that no CommonJS file is loading, when the module graph
            // reaches it), and a file required while it is still running
            // (a cycle) gives its `module.exports` as they are so far. ES
            // modules run their imports first, so each file's first import
            // counts it as pending: a file that finds another pending waits
            // to be required instead of running on its own.
            let code = format!(
                "import {enter}; import {{ state as __ip_state }} from {state}; {head}\
                 function __ip_mods() {{ return {table} }}; }} \
                 function __ip_require(s) {{ const mods = __ip_mods(); if (!(s in mods)) throw new Error(\"Cannot find module '\" + s + \"' from \" + {name_lit} + \": only the @ones-op/* built-ins and the plugin's own files resolve, named by a string literal\"); \
                 const m = mods[s]; return typeof m.__interpose_cjs_load === 'function' ? m.__interpose_cjs_load() : m.__interpose_cjs ? m.default : m }} \
                 var __ip_module, __ip_exports; \
                 export function __interpose_cjs_load() {{ if (__ip_module) return __ip_module.exports; const module = __ip_module = {{ exports: {{}} }}; \
                 (function (exports, require, module, __filename, __dirname) {{{source}\n}}).call(module.exports, module.exports, __ip_require, module, {name_lit}, {dir_lit}); \
                 return __ip_exports = module.exports }} \
                 export {{ __ip_exports as default }}; export const __interpose_cjs = true; \
                 if (--__ip_state.pending === 0) __interpose_cjs_load();\n",
                enter = lit(&format!("{}{name}", crate::code::builtins::CJS_ENTER)),
                state = lit(crate::code::builtins::CJS_STATE),
                // A `#!` line (a bundle made executable) is only allowed at
                // the very start of a file: keep the line, as a comment.
                source = match t.code.strip_prefix("#!") {
                    Some(rest) => format!("//{rest}"),
                    None => t.code.clone(),
                },
                name_lit = lit(&name),
                dir_lit = lit(dir),
            );
            if let Some(t) = self.modules.get_mut(&name) {
                t.code = code;
            }
        }
    }

    /// Code from a single in-memory module (tests, benchmarks).
    pub fn from_source(name: &str, source: &str) -> Result<PluginCode, CodeError> {
        let t = transpile(Path::new(name), source).map_err(|errs| {
            CodeError(errs.into_iter().map(|e| format!("{name}:{}:{}: {}", e.line, e.column, e.message)).collect())
        })?;
        let mut code = PluginCode {
            root: PathBuf::from("."),
            entry: name.to_string(),
            modules: HashMap::from([(name.to_string(), t)]),
        };
        code.wrap_commonjs();
        Ok(code)
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

    /// For an engine error about linking an import — a name a module does
    /// not export, a module that does not resolve — where the import is:
    /// ` (imported at file:line:column)`, with what a built-in module does
    /// export.
    pub(crate) fn import_place(&self, message: &str) -> Option<String> {
        if let Some((name, module)) = quoted_pair(message, "Could not find export '", "' in module '") {
            let target = |file: &str, from: &str| match from.starts_with("./") || from.starts_with("../") {
                true => self.resolve(file, from),
                false => Some(from.to_string()),
            };
            let mut files: Vec<&String> = self.modules.keys().collect();
            // The entry first, then by name: the same answer every time.
            files.sort_by_key(|f| (**f != self.entry, *f));
            let (file, import) = files.into_iter().find_map(|file| {
                let imports = &self.modules[file].imports;
                let found = imports
                    .iter()
                    .find(|i| i.name.as_deref() == Some(name) && target(file, &i.from).as_deref() == Some(module));
                found.map(|i| (file, i))
            })?;
            let exports = crate::code::builtins::builtin_exports(module)
                .map(|names| format!("; {module} exports {}", names.join(", ")))
                .unwrap_or_default();
            return Some(format!(" (imported at {file}:{}:{}{exports})", import.line, import.column));
        }
        let (spec, base) = quoted_pair(message, "Error resolving module '", "' from '")?;
        let import = self.modules.get(base)?.imports.iter().find(|i| i.from == spec)?;
        Some(format!(" (imported at {base}:{}:{})", import.line, import.column))
    }

    /// Whether any of its modules imports or requires `spec` (`@ones-op/node-database`).
    pub fn imports(&self, spec: &str) -> bool {
        self.modules.values().any(|m| {
            m.imports.iter().any(|i| i.from == spec) || m.commonjs.as_ref().is_some_and(|r| r.iter().any(|r| r == spec))
        })
    }

    pub fn module_names(&self) -> impl Iterator<Item = &str> {
        self.modules.keys().map(String::as_str)
    }
}

/// In `…{open}A{middle}B'…`, A and B.
fn quoted_pair<'m>(message: &'m str, open: &str, middle: &str) -> Option<(&'m str, &'m str)> {
    let rest = &message[message.find(open)? + open.len()..];
    let (a, rest) = rest.split_once(middle)?;
    let (b, _) = rest.split_once('\'')?;
    Some((a, b))
}

/// A `.json` file as a module: its value is the default export (`import
/// data from './data.json'`) and what `require('./data.json')` returns.
/// One that is not valid JSON (a `tsconfig.json` with comments, say) is
/// only an error for the code that imports it.
fn json_module(name: &str, text: &str) -> Transpiled {
    let code = match serde_json::from_str::<serde::de::IgnoredAny>(text) {
        // Parsed by `JSON.parse`, as Node does (a `__proto__` key stays a
        // plain property).
        Ok(_) => format!("export default JSON.parse({});\nexport const __interpose_cjs = true;\n", lit(text)),
        Err(e) => {
            // serde_json ends its message with the place, said first here.
            let msg = e.to_string();
            let msg = msg.rsplit_once(" at line ").map_or(msg.as_str(), |(m, _)| m);
            let what = format!("{name}:{}:{}: invalid JSON: {msg}", e.line(), e.column());
            format!(
                "throw new SyntaxError({});\nexport default undefined;\nexport const __interpose_cjs = true;\n",
                lit(&what)
            )
        }
    };
    Transpiled { code, line_map: Vec::new(), commonjs: None, imports: Vec::new() }
}

/// `s` as a JS string literal.
fn lit(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into())
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
            if (EXTENSIONS.contains(&ext) || ext == "json") && !name.ends_with(".d.ts") {
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
