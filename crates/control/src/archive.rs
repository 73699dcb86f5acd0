//! Plugin projects as uploads: packing a folder into a tar.gz, and unpacking
//! a `.tar.gz` or `.zip` safely (size-limited; absolute paths, `..`, links
//! and devices refused).

use std::io::Read;
use std::path::{Component, Path, PathBuf};

/// Largest upload accepted, compressed.
pub const MAX_UPLOAD: usize = 32 << 20;
/// Largest unpacked size and entry count.
const MAX_UNPACKED: u64 = 128 << 20;
const MAX_ENTRIES: usize = 5000;

/// Folders never packed (build output and tool state). `workspace/` is
/// packed: ONES ships it as the plugin's file space (`plugin.sql`,
/// `language/*.yaml`, seed files), each instance starting from a copy.
const SKIP: [&str; 4] = ["node_modules", ".git", "target", ".interpose"];

/// Pack a plugin project (`config/`, `backend/`, …) as a tar.gz.
pub fn pack(dir: &Path) -> std::io::Result<Vec<u8>> {
    let enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    let mut tar = tar::Builder::new(enc);
    tar.follow_symlinks(false);
    add_dir(&mut tar, dir, Path::new(""))?;
    tar.into_inner()?.finish()
}

fn add_dir<W: std::io::Write>(tar: &mut tar::Builder<W>, root: &Path, rel: &Path) -> std::io::Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(root.join(rel))?.filter_map(Result::ok).collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let name = e.file_name();
        let path = rel.join(&name);
        let kind = e.file_type()?;
        if kind.is_dir() {
            if rel.as_os_str().is_empty() && SKIP.iter().any(|s| name == *s) {
                continue;
            }
            add_dir(tar, root, &path)?;
        } else if kind.is_file() {
            tar.append_path_with_name(root.join(&path), &path)?;
        }
    }
    Ok(())
}

/// Unpack `bytes` (tar.gz or zip) into `dest`; returns the project root
/// inside it (the folder holding `config/plugin.yaml`).
pub fn unpack(bytes: &[u8], dest: &Path) -> Result<PathBuf, String> {
    if bytes.len() > MAX_UPLOAD {
        return Err(format!("the upload is {} bytes; the limit is {MAX_UPLOAD}", bytes.len()));
    }
    if bytes.starts_with(&[0x1f, 0x8b]) {
        unpack_tar(bytes, dest)?;
    } else if bytes.starts_with(b"PK\x03\x04") {
        unpack_zip(bytes, dest)?;
    } else {
        return Err("the upload is neither a .tar.gz nor a .zip".into());
    }
    if dest.join("config/plugin.yaml").is_file() {
        return Ok(dest.to_path_buf());
    }
    // One top-level folder holding the project is fine too.
    let dirs: Vec<PathBuf> = std::fs::read_dir(dest)
        .map_err(|e| e.to_string())?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    match dirs.as_slice() {
        [one] if one.join("config/plugin.yaml").is_file() => Ok(one.clone()),
        _ => Err("the upload holds no config/plugin.yaml (at its top or in one top-level folder)".into()),
    }
}

/// A member path, refused unless it stays inside the destination.
fn safe_path(name: &str) -> Result<PathBuf, String> {
    let p = Path::new(name);
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::Normal(s) => out.push(s),
            Component::CurDir => {}
            Component::ParentDir => return Err(format!("entry {name:?} climbs out with '..'")),
            Component::RootDir | Component::Prefix(_) => return Err(format!("entry {name:?} is an absolute path")),
        }
    }
    Ok(out)
}

/// Write one member (already checked by `safe_path`) under `dest`.
fn write_entry(dest: &Path, rel: &Path, data: &mut impl Read) -> Result<(), String> {
    let target = dest.join(rel);
    if let Some(parent) = target.parent() {
        std::fs::create_dir_all(parent).map_err(|e| e.to_string())?;
    }
    let mut bytes = Vec::new();
    data.take(MAX_UNPACKED).read_to_end(&mut bytes).map_err(|e| e.to_string())?;
    std::fs::write(&target, bytes).map_err(|e| e.to_string())
}

fn unpack_tar(bytes: &[u8], dest: &Path) -> Result<(), String> {
    let mut ar = tar::Archive::new(flate2::read::GzDecoder::new(bytes));
    let mut total = 0u64;
    for (n, entry) in ar.entries().map_err(|e| format!("not a valid tar.gz: {e}"))?.enumerate() {
        if n >= MAX_ENTRIES {
            return Err(format!("more than {MAX_ENTRIES} entries"));
        }
        let mut entry = entry.map_err(|e| format!("not a valid tar.gz: {e}"))?;
        let name = entry.path().map_err(|e| e.to_string())?.to_string_lossy().into_owned();
        let rel = safe_path(&name)?;
        let kind = entry.header().entry_type();
        if kind.is_dir() {
            std::fs::create_dir_all(dest.join(&rel)).map_err(|e| e.to_string())?;
            continue;
        }
        if !kind.is_file() {
            return Err(format!("entry {name:?} is a link or special file; only files and folders are accepted"));
        }
        total += entry.header().size().unwrap_or(0);
        if total > MAX_UNPACKED {
            return Err(format!("unpacks to more than {MAX_UNPACKED} bytes"));
        }
        write_entry(dest, &rel, &mut entry)?;
    }
    Ok(())
}

fn unpack_zip(bytes: &[u8], dest: &Path) -> Result<(), String> {
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes)).map_err(|e| format!("not a valid zip: {e}"))?;
    if zip.len() > MAX_ENTRIES {
        return Err(format!("more than {MAX_ENTRIES} entries"));
    }
    let mut total = 0u64;
    for i in 0..zip.len() {
        let mut f = zip.by_index(i).map_err(|e| format!("not a valid zip: {e}"))?;
        let name = f.name().map_err(|e| format!("not a valid zip: {e}"))?.to_string();
        let rel = safe_path(&name)?;
        if f.is_symlink() {
            return Err(format!("entry {name:?} is a link; only files and folders are accepted"));
        }
        if f.is_dir() {
            std::fs::create_dir_all(dest.join(&rel)).map_err(|e| e.to_string())?;
            continue;
        }
        total += f.size();
        if total > MAX_UNPACKED {
            return Err(format!("unpacks to more than {MAX_UNPACKED} bytes"));
        }
        write_entry(dest, &rel, &mut f)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_traversal_refused() {
        let src = tempfile::tempdir().expect("tmp");
        std::fs::create_dir_all(src.path().join("config")).expect("mkdir");
        std::fs::create_dir_all(src.path().join("node_modules/x")).expect("mkdir");
        std::fs::write(src.path().join("config/plugin.yaml"), "service: {}").expect("write");
        std::fs::write(src.path().join("node_modules/x/a.js"), "").expect("write");
        let packed = pack(src.path()).expect("pack");
        let out = tempfile::tempdir().expect("tmp");
        let root = unpack(&packed, out.path()).expect("unpack");
        assert!(root.join("config/plugin.yaml").is_file());
        assert!(!root.join("node_modules").exists());

        // A hand-made tar with a `../` entry.
        let mut raw = Vec::new();
        {
            let enc = flate2::write::GzEncoder::new(&mut raw, flate2::Compression::default());
            let mut b = tar::Builder::new(enc);
            let mut h = tar::Header::new_gnu();
            let data = b"evil";
            h.set_size(data.len() as u64);
            h.set_entry_type(tar::EntryType::Regular);
            h.set_mode(0o644);
            // set_path refuses "..", so write the name bytes directly.
            let name = b"../../escape.txt";
            h.as_old_mut().name[..name.len()].copy_from_slice(name);
            h.set_cksum();
            b.append(&h, &data[..]).expect("append");
            b.into_inner().expect("inner").finish().expect("finish");
        }
        let out = tempfile::tempdir().expect("tmp");
        let e = unpack(&raw, &out.path().join("x")).expect_err("traversal");
        assert!(e.contains("climbs out"), "{e}");
        assert!(unpack(b"hello", out.path()).expect_err("junk").contains("neither"));
    }
}
