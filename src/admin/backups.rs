//! Deleted keys are kept for an undo: each delete writes the lines it took
//! out of the key files to `data/deleted-keys/<id>.json` (0600, written
//! atomically, like every file holding keys). The newest [`KEPT`] backups
//! are kept.

use super::files::{RemovedLine, write_atomically};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Backups kept at most (the oldest are removed first).
const KEPT: usize = 50;

/// One delete's lines.
#[derive(Debug, Serialize, Deserialize)]
pub struct Backup {
    /// When the keys were deleted (Unix milliseconds).
    pub deleted_ms: i64,
    /// The lines taken out, with their files.
    pub lines: Vec<RemovedLine>,
}

fn folder(data_dir: &Path) -> PathBuf {
    data_dir.join("deleted-keys")
}

/// A backup id is `<unix ms>-<8 hex>`; nothing else names a file.
fn path_of(data_dir: &Path, id: &str) -> Option<PathBuf> {
    let valid = (1..=40).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-');
    valid.then(|| folder(data_dir).join(format!("{id}.json")))
}

/// Writes a backup of `lines`; returns its id.
pub fn save(data_dir: &Path, lines: Vec<RemovedLine>) -> std::io::Result<String> {
    let deleted_ms = crate::store::now_ms();
    let id = format!("{deleted_ms}-{:08x}", rand::random::<u32>());
    let text = serde_json::to_string(&Backup { deleted_ms, lines }).map_err(std::io::Error::other)?;
    write_atomically(&folder(data_dir).join(format!("{id}.json")), &text)?;
    prune(data_dir);
    Ok(id)
}

/// Reads a backup, if it exists.
pub fn load(data_dir: &Path, id: &str) -> std::io::Result<Option<Backup>> {
    let Some(path) = path_of(data_dir, id) else { return Ok(None) };
    match std::fs::read_to_string(path) {
        Ok(text) => serde_json::from_str(&text).map(Some).map_err(std::io::Error::other),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(err) => Err(err),
    }
}

/// Removes a backup (after its undo).
pub fn remove(data_dir: &Path, id: &str) {
    if let Some(path) = path_of(data_dir, id) {
        let _ = std::fs::remove_file(path);
    }
}

fn prune(data_dir: &Path) {
    let Ok(entries) = std::fs::read_dir(folder(data_dir)) else { return };
    let mut names: Vec<String> = entries
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".json"))
        .collect();
    // Ids start with their time: sorting by name sorts by age.
    names.sort_by_key(|n| n.split('-').next().and_then(|ms| ms.parse::<u64>().ok()).unwrap_or(0));
    let excess = names.len().saturating_sub(KEPT);
    for name in &names[..excess] {
        let _ = std::fs::remove_file(folder(data_dir).join(name));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_backup_round_trips_and_ids_name_no_other_file() {
        let dir = tempfile::tempdir().unwrap();
        let lines = vec![RemovedLine { file: "paid.txt".into(), line: "AIzaX weight=2".into() }];
        let id = save(dir.path(), lines.clone()).unwrap();
        assert_eq!(load(dir.path(), &id).unwrap().unwrap().lines, lines);
        assert!(load(dir.path(), "../../etc/passwd").unwrap().is_none());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(folder(dir.path()).join(format!("{id}.json"))).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        remove(dir.path(), &id);
        assert!(load(dir.path(), &id).unwrap().is_none());
    }
}
