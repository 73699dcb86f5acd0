//! `@ones-op/node-file`: file operations confined to the instance's
//! workspace folder. Paths are relative to it; absolute paths, `..` and
//! symbolic links are refused (`InvalidParameter`), so a plugin can reach
//! neither the rest of the disk nor another instance's workspace.

use std::io::Write;
use std::path::{Component, Path, PathBuf};

use serde_json::{json, Value};

use crate::engine::scope::current;

pub(super) fn declare(decl: &rquickjs::module::Declarations<'_>) -> rquickjs::Result<()> {
    decl.declare("file")?;
    Ok(())
}

pub(super) fn export<'js>(ctx: &rquickjs::Ctx<'js>, exports: &rquickjs::module::Exports<'js>) -> rquickjs::Result<()> {
    exports.export("file", rquickjs::Function::new(ctx.clone(), host_file)?)?;
    Ok(())
}

/// Largest file `read`/`readLines` return, and largest single write.
const MAX_BYTES: u64 = 16 << 20;

struct FileError {
    errcode: &'static str,
    reason: String,
}

fn invalid(reason: impl Into<String>) -> FileError {
    FileError { errcode: "InvalidParameter", reason: reason.into() }
}

fn io(path: &str, e: std::io::Error) -> FileError {
    let errcode = match e.kind() {
        std::io::ErrorKind::NotFound => "NotFound",
        std::io::ErrorKind::AlreadyExists => "AlreadyExists",
        _ => "IOError",
    };
    FileError { errcode, reason: format!("{path}: {e}") }
}

/// `interpose:host` `file(op, argsJson)` → `{"ok":true,"value":…}` or
/// `{"ok":false,"error":{"errcode","reason"}}`.
fn host_file(op: String, args: String) -> String {
    let result = (|| {
        let scope = current().ok_or_else(|| invalid("file calls are only available inside a plugin call"))?;
        let root = scope.instance.workspace.clone().ok_or_else(|| invalid("this instance has no workspace"))?;
        std::fs::create_dir_all(&root).map_err(|e| io("workspace", e))?;
        let args: Vec<Value> = serde_json::from_str(&args).map_err(|e| invalid(format!("bad arguments: {e}")))?;
        run(&root, &op, &args)
    })();
    match result {
        Ok(value) => json!({"ok": true, "value": value}).to_string(),
        Err(e) => json!({"ok": false, "error": {"errcode": e.errcode, "reason": e.reason}}).to_string(),
    }
}

fn arg_str<'a>(args: &'a [Value], i: usize, name: &str) -> Result<&'a str, FileError> {
    args.get(i).and_then(Value::as_str).ok_or_else(|| invalid(format!("`{name}` must be a string")))
}

fn bytes_arg(args: &[Value], i: usize) -> Result<Vec<u8>, FileError> {
    let items = args
        .get(i)
        .and_then(Value::as_array)
        .ok_or_else(|| invalid("`bytes` must be a Uint8Array or an array of bytes"))?;
    if items.len() as u64 > MAX_BYTES {
        return Err(invalid(format!("at most {MAX_BYTES} bytes per write")));
    }
    items
        .iter()
        .map(|v| v.as_u64().filter(|n| *n < 256).map(|n| n as u8).ok_or_else(|| invalid("bytes must be 0..=255")))
        .collect()
}

fn run(root: &Path, op: &str, args: &[Value]) -> Result<Value, FileError> {
    let path = |i: usize| -> Result<(String, PathBuf), FileError> {
        let rel = arg_str(args, i, "path")?;
        Ok((rel.to_string(), confine(root, rel)?))
    };
    match op {
        "createFile" => {
            let (rel, p) = path(0)?;
            make_parent(&p, &rel)?;
            std::fs::OpenOptions::new().create(true).append(true).open(&p).map_err(|e| io(&rel, e))?;
            Ok(Value::Bool(true))
        }
        "makeDir" => {
            let (rel, p) = path(0)?;
            std::fs::create_dir_all(&p).map_err(|e| io(&rel, e))?;
            Ok(Value::Bool(true))
        }
        "writeStrings" | "appendStrings" | "writeBytes" | "appendBytes" => {
            let (rel, p) = path(0)?;
            let data = if op.ends_with("Strings") {
                let s = arg_str(args, 1, "content")?;
                if s.len() as u64 > MAX_BYTES {
                    return Err(invalid(format!("at most {MAX_BYTES} bytes per write")));
                }
                s.as_bytes().to_vec()
            } else {
                bytes_arg(args, 1)?
            };
            make_parent(&p, &rel)?;
            let append = op.starts_with("append");
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .write(true)
                .append(append)
                .truncate(!append)
                .open(&p)
                .map_err(|e| io(&rel, e))?;
            f.write_all(&data).map_err(|e| io(&rel, e))?;
            Ok(Value::Bool(true))
        }
        "read" | "readLines" | "readBytes" => {
            let (rel, p) = path(0)?;
            let meta = std::fs::metadata(&p).map_err(|e| io(&rel, e))?;
            if meta.len() > MAX_BYTES {
                return Err(invalid(format!("{rel} is larger than {MAX_BYTES} bytes")));
            }
            let bytes = std::fs::read(&p).map_err(|e| io(&rel, e))?;
            Ok(match op {
                "readBytes" => json!(bytes),
                _ => {
                    let text = String::from_utf8_lossy(&bytes).into_owned();
                    if op == "read" {
                        Value::String(text)
                    } else {
                        json!(text.lines().collect::<Vec<_>>())
                    }
                }
            })
        }
        "list" => {
            let rel = args.first().and_then(Value::as_str).unwrap_or(".");
            let p = confine(root, rel)?;
            let mut names: Vec<String> = std::fs::read_dir(&p)
                .map_err(|e| io(rel, e))?
                .filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect();
            names.sort();
            Ok(json!(names))
        }
        "stat" => {
            let (rel, p) = path(0)?;
            let meta = std::fs::metadata(&p).map_err(|e| io(&rel, e))?;
            let ms = |t: std::io::Result<std::time::SystemTime>| {
                t.ok().and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok()).map_or(0.0, |d| d.as_millis() as f64)
            };
            Ok(json!({"size": meta.len(), "isFile": meta.is_file(), "isDir": meta.is_dir(),
                      "mtimeMs": ms(meta.modified()), "birthtimeMs": ms(meta.created())}))
        }
        "isExist" => Ok(Value::Bool(path(0)?.1.exists())),
        "isDir" => Ok(Value::Bool(path(0)?.1.is_dir())),
        "isFile" => Ok(Value::Bool(path(0)?.1.is_file())),
        "copy" | "rename" => {
            let (from_rel, from) = path(0)?;
            let to_rel = arg_str(args, 1, "target")?;
            let to = confine(root, to_rel)?;
            make_parent(&to, to_rel)?;
            if op == "copy" {
                if from.is_dir() {
                    return Err(invalid(format!("{from_rel} is a folder; copy copies files")));
                }
                std::fs::copy(&from, &to).map_err(|e| io(&from_rel, e))?;
            } else {
                std::fs::rename(&from, &to).map_err(|e| io(&from_rel, e))?;
            }
            Ok(Value::Bool(true))
        }
        "remove" => {
            let (rel, p) = path(0)?;
            if p == root {
                return Err(invalid("the workspace itself cannot be removed"));
            }
            let r = if p.is_dir() { std::fs::remove_dir_all(&p) } else { std::fs::remove_file(&p) };
            r.map_err(|e| io(&rel, e))?;
            Ok(Value::Bool(true))
        }
        other => Err(invalid(format!("unknown file operation {other:?}"))),
    }
}

fn make_parent(p: &Path, rel: &str) -> Result<(), FileError> {
    match p.parent() {
        Some(parent) => std::fs::create_dir_all(parent).map_err(|e| io(rel, e)),
        None => Ok(()),
    }
}

/// `rel` inside `root`, refusing anything that could leave it.
fn confine(root: &Path, rel: &str) -> Result<PathBuf, FileError> {
    if rel.contains('\0') {
        return Err(invalid(format!("path {rel:?} holds a NUL byte")));
    }
    let mut out = root.to_path_buf();
    for c in Path::new(rel).components() {
        match c {
            Component::Normal(part) => {
                out.push(part);
                // Refuse links anywhere on the way: they could point outside.
                if std::fs::symlink_metadata(&out).map(|m| m.file_type().is_symlink()).unwrap_or(false) {
                    return Err(invalid(format!("path {rel:?} goes through a symbolic link")));
                }
            }
            Component::CurDir => {}
            Component::ParentDir => return Err(invalid(format!("path {rel:?} may not use '..'"))),
            Component::RootDir | Component::Prefix(_) => {
                return Err(invalid(format!("path {rel:?} must be relative to the workspace")))
            }
        }
    }
    Ok(out)
}
