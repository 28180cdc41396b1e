//! What the admin writes to disk: keys pasted in (extracted, appended to a
//! key file), keys deleted (their lines removed), and whole config or policy
//! files. Every write goes to a hidden temporary file (mode 0600) in the same
//! folder, is synced to disk, renamed over the target, and the folder synced:
//! the watcher and readers see the old file or the new one, never half of
//! one, and an acknowledged write survives a crash. Callers serialise their
//! read-modify-writes (`AdminContext::file_writes`).

use crate::keys::{Fingerprint, is_google_key_shape, is_key_file_name, is_nonstandard_key_shape};
use std::collections::HashSet;
use std::path::{Path, PathBuf};

/// Keys found in pasted text.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Extracted {
    /// Distinct keys, in the order found.
    pub keys: Vec<String>,
    /// Keys that appeared again in the same text.
    pub duplicates: usize,
    /// Lines with something on them but no key: (1-based line, reason).
    pub rejected: Vec<(usize, String)>,
}

fn is_key_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'-'
}

/// Every Google-shaped key (`AIza` + 35 characters) inside `line`, even amid
/// other text (`KEY=AIza…`, CSV, JSON).
fn google_keys_in(line: &str) -> Vec<&str> {
    let bytes = line.as_bytes();
    let mut found = Vec::new();
    let mut from = 0;
    while let Some(pos) = line[from..].find("AIza").map(|p| p + from) {
        let starts_clean = pos == 0 || !is_key_byte(bytes[pos - 1]);
        let end = pos + 39;
        let ends_clean = end == bytes.len() || bytes.get(end).is_some_and(|&b| !is_key_byte(b));
        // `get`, not indexing: `end` may fall inside a multi-byte character.
        match line.get(pos..end) {
            Some(candidate) if starts_clean && ends_clean && is_google_key_shape(candidate) => {
                found.push(candidate);
                from = end;
            }
            _ => from = pos + 4,
        }
    }
    found
}

/// Extracts keys from pasted text: Google-shaped keys anywhere in a line, or,
/// with `allow_nonstandard`, a line that is one key-like word.
pub fn extract_keys(text: &str, allow_nonstandard: bool) -> Extracted {
    let mut out = Extracted::default();
    let mut seen = HashSet::new();
    for (index, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut keys = google_keys_in(line);
        if keys.is_empty() && allow_nonstandard && is_nonstandard_key_shape(line) {
            keys.push(line);
        }
        if keys.is_empty() {
            let reason = if allow_nonstandard {
                "no key found on this line"
            } else {
                "no Google API key (AIza followed by 35 letters, digits, - or _) on this line"
            };
            out.rejected.push((index + 1, reason.to_string()));
            continue;
        }
        for key in keys {
            if seen.insert(key.to_string()) {
                out.keys.push(key.to_string());
            } else {
                out.duplicates += 1;
            }
        }
    }
    out
}

/// Whether `group` can name a key file (`[A-Za-z0-9_-]`, 1 to 40 characters).
pub fn is_group_name(group: &str) -> bool {
    (1..=40).contains(&group.len()) && group.bytes().all(is_key_byte)
}

/// Writes `text` to `path` atomically and durably, mode 0600: a temporary
/// file, fsync, rename, fsync of the folder.
pub fn write_atomically(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let temp = dir.join(format!(".{name}.{:08x}.tmp", rand::random::<u32>()));
    let written = (|| {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(&temp)?;
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
        std::fs::rename(&temp, path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&temp);
        return written;
    }
    // The rename itself is durable only once the folder is.
    std::fs::File::open(dir)?.sync_all()
}

/// Appends `keys` to `dir/<group>.txt`; returns the file.
pub fn append_keys(dir: &Path, group: &str, keys: &[String]) -> std::io::Result<PathBuf> {
    let path = dir.join(format!("{group}.txt"));
    append_lines(&path, keys.iter().map(String::as_str))?;
    Ok(path)
}

/// Appends lines at the end of a key file (made if missing), atomically.
fn append_lines<'a>(path: &Path, lines: impl IntoIterator<Item = &'a str>) -> std::io::Result<()> {
    let mut text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(err) => return Err(err),
    };
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    for line in lines {
        text.push_str(line);
        text.push('\n');
    }
    write_atomically(path, &text)
}

/// A line taken out of a key file, kept so the removal can be undone.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RemovedLine {
    /// The key file's name inside the keys folder.
    pub file: String,
    /// The line as it was (the key and its weight).
    pub line: String,
}

impl RemovedLine {
    /// The fingerprint of the line's key.
    pub fn fingerprint(&self) -> Fingerprint {
        Fingerprint::of(self.line.split_whitespace().next().unwrap_or_default())
    }
}

/// Removes the lines holding keys with these fingerprints from every key
/// file of `dir`; returns the lines removed.
pub fn remove_keys(dir: &Path, fingerprints: &HashSet<Fingerprint>) -> std::io::Result<Vec<RemovedLine>> {
    let mut removed = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(removed),
        Err(err) => return Err(err),
    };
    for entry in entries.filter_map(Result::ok) {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !is_key_file_name(&name) || !entry.file_type().is_ok_and(|t| t.is_file()) {
            continue;
        }
        let path = entry.path();
        let Ok(text) = std::fs::read_to_string(&path) else { continue };
        let mut kept = String::with_capacity(text.len());
        let mut changed = false;
        for line in text.lines() {
            let fingerprint = Fingerprint::of(line.split_whitespace().next().unwrap_or_default());
            if fingerprints.contains(&fingerprint) {
                removed.push(RemovedLine { file: name.clone(), line: line.trim().to_string() });
                changed = true;
            } else {
                kept.push_str(line);
                kept.push('\n');
            }
        }
        if changed {
            write_atomically(&path, &kept)?;
        }
    }
    Ok(removed)
}

/// Puts removed lines back at the end of their files, but not a key the
/// folder holds again meanwhile; returns the lines put back.
pub fn restore_lines(dir: &Path, lines: &[RemovedLine]) -> std::io::Result<Vec<RemovedLine>> {
    let present: HashSet<Fingerprint> =
        crate::keys::load_key_dir(dir, true)?.records.iter().map(|r| r.fingerprint).collect();
    let mut by_file: std::collections::BTreeMap<&str, Vec<&RemovedLine>> = Default::default();
    for line in lines.iter().filter(|l| !present.contains(&l.fingerprint())) {
        if !is_key_file_name(&line.file) || line.file.contains(['/', '\\']) {
            continue;
        }
        by_file.entry(&line.file).or_default().push(line);
    }
    let mut restored = Vec::new();
    for (file, lines) in by_file {
        append_lines(&dir.join(file), lines.iter().map(|l| l.line.as_str()))?;
        restored.extend(lines.into_iter().cloned());
    }
    Ok(restored)
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "AIzaSyA0000000000000000000000000000000a";
    const B: &str = "AIzaSyB0000000000000000000000000000000b";

    #[test]
    fn keys_are_found_amid_text_and_deduplicated() {
        let text = format!("# my keys\n{A}\nGEMINI_KEY={B},{A}\n\nnot a key\n\"{B}\"\n");
        let out = extract_keys(&text, false);
        assert_eq!(out.keys, vec![A.to_string(), B.to_string()]);
        assert_eq!(out.duplicates, 2);
        assert_eq!(out.rejected.len(), 1);
        assert_eq!(out.rejected[0].0, 5);
    }

    #[test]
    fn too_long_or_glued_keys_are_not_keys() {
        assert!(google_keys_in(&format!("{A}x")).is_empty());
        assert!(google_keys_in(&format!("x{A}")).is_empty());
        assert_eq!(google_keys_in(&format!("{A} {B}")), vec![A, B]);
    }

    #[test]
    fn a_multi_byte_character_after_a_key_like_run_does_not_panic() {
        let text = format!("AIza{}é and {A}", "x".repeat(34));
        assert_eq!(extract_keys(&text, false).keys, vec![A.to_string()]);
    }

    proptest::proptest! {
        /// Any pasted text: no panic, and every key embedded between separators is found.
        #[test]
        fn pasted_text_never_panics_and_embedded_keys_are_found(
            noise in proptest::collection::vec("\\PC{0,12}", 0..8),
            picks in proptest::collection::vec(0usize..2, 0..6),
        ) {
            let keys = [A, B];
            let mut text = String::new();
            for (i, piece) in noise.iter().enumerate() {
                // `#` at a line's start makes it a comment, which is skipped on purpose.
                text.push_str(&piece.replace('#', ""));
                if let Some(&pick) = picks.get(i) {
                    text.push_str(&format!(" {} \n", keys[pick]));
                }
            }
            let out = extract_keys(&text, false);
            for &pick in &picks[..picks.len().min(noise.len())] {
                proptest::prop_assert!(out.keys.iter().any(|k| k == keys[pick]), "{text:?}");
            }
            let _ = extract_keys(&text, true);
        }
    }

    #[test]
    fn nonstandard_keys_only_when_allowed() {
        assert_eq!(extract_keys("sk-other-provider-key-1234", false).keys.len(), 0);
        assert_eq!(extract_keys("sk-other-provider-key-1234", true).keys, vec!["sk-other-provider-key-1234"]);
    }

    #[test]
    fn append_then_remove_keeps_other_lines() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("main.txt"), format!("# keep me\n{A}")).unwrap();
        let file = append_keys(dir.path(), "main", &[B.to_string()]).unwrap();
        assert_eq!(std::fs::read_to_string(&file).unwrap(), format!("# keep me\n{A}\n{B}\n"));
        let gone = remove_keys(dir.path(), &HashSet::from([Fingerprint::of(A)])).unwrap();
        assert_eq!(gone, vec![RemovedLine { file: "main.txt".into(), line: A.into() }]);
        assert_eq!(std::fs::read_to_string(&file).unwrap(), format!("# keep me\n{B}\n"));
        assert_eq!(restore_lines(dir.path(), &gone).unwrap().len(), 1);
        assert_eq!(restore_lines(dir.path(), &gone).unwrap().len(), 0, "a key back already is not doubled");
        assert_eq!(std::fs::read_to_string(&file).unwrap(), format!("# keep me\n{B}\n{A}\n"));
        remove_keys(dir.path(), &HashSet::from([Fingerprint::of(A)])).unwrap();
        let leftovers: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "no temporary file is left behind");
    }

    #[test]
    fn group_names_are_plain() {
        assert!(is_group_name("paid-tier_2"));
        assert!(!is_group_name("../etc"));
        assert!(!is_group_name(""));
    }
}
