//! Key files: every file in `keys/` is a list of keys, one per line. The file's
//! name (without extension) is the group of its keys. A key may carry a
//! weight (`KEY weight=3`: three times the traffic of a key of weight 1); a
//! line `weight=3` on its own sets the weight of the keys after it.

use super::{ApiKey, Fingerprint, is_google_key_shape, is_nonstandard_key_shape};
use std::collections::HashSet;
use std::fmt;
use std::path::Path;
use std::sync::Arc;

/// One key as loaded from a file.
#[derive(Clone, Debug)]
pub struct KeyRecord {
    /// The key itself (masked when printed).
    pub key: ApiKey,
    /// Its stable id.
    pub fingerprint: Fingerprint,
    /// The key file's stem, e.g. `paid` for `keys/paid.txt`.
    pub group: Arc<str>,
    /// Its share of traffic relative to other keys (1 to [`MAX_WEIGHT`]).
    pub weight: u32,
    /// The proxy its line (or its file) names with `proxy=NAME`; `direct`
    /// for none. Unset: the key is pinned by hashing.
    pub proxy: Option<Arc<str>>,
}

/// The largest weight a key may carry.
pub const MAX_WEIGHT: u32 = 100;

impl KeyRecord {
    /// A key of `group` with weight 1.
    pub fn new(key: ApiKey, group: Arc<str>) -> Self {
        Self { fingerprint: key.fingerprint(), key, group, weight: 1, proxy: None }
    }
}

/// A line of a key file that was skipped, with the reason. Never holds the key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyFileWarning {
    /// The file's name inside the keys folder.
    pub file: String,
    /// 1-based line number.
    pub line: usize,
    /// What is wrong with the line, in words for the operator.
    pub reason: String,
}

impl fmt::Display for KeyFileWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.file, self.line, self.reason)
    }
}

/// Skipped lines told per file, not line by line (a junk file of 100,000
/// lines is one message): `junk.txt: 100000 lines skipped (first, line 1: …)`.
pub fn summarize_warnings(warnings: &[KeyFileWarning]) -> Vec<String> {
    let mut by_file: Vec<(&str, usize, &KeyFileWarning)> = Vec::new();
    for warning in warnings {
        match by_file.iter_mut().find(|(file, _, _)| *file == warning.file) {
            Some((_, count, _)) => *count += 1,
            None => by_file.push((&warning.file, 1, warning)),
        }
    }
    by_file
        .into_iter()
        .map(|(file, count, first)| match count {
            1 => first.to_string(),
            _ => format!("{file}: {count} lines skipped (first, line {}: {})", first.line, first.reason),
        })
        .collect()
}

/// Every key from every file of the keys folder, deduplicated.
#[derive(Clone, Debug, Default)]
pub struct KeySet {
    /// Keys in load order (files sorted by name, then line order).
    pub records: Vec<KeyRecord>,
    /// Lines skipped, with file and line.
    pub warnings: Vec<KeyFileWarning>,
    /// How many lines repeated a key already loaded.
    pub duplicates: usize,
}

/// Parses one key file's text. `seen` carries the fingerprints of keys already
/// loaded from earlier files, so a key is counted once across files.
pub fn parse_key_file(
    file: &str,
    text: &str,
    allow_nonstandard: bool,
    seen: &mut HashSet<Fingerprint>,
    out: &mut KeySet,
) {
    let group: Arc<str> = Arc::from(group_of(file));
    let mut file_weight = 1;
    let mut file_proxy: Option<Arc<str>> = None;
    for (index, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let warn = |reason: String| KeyFileWarning { file: file.to_string(), line: index + 1, reason };
        let mut words = line.split_whitespace();
        let first = words.next().unwrap_or_default();
        if (first.starts_with("weight=") || first.starts_with("proxy=")) && words.clone().next().is_none() {
            match parse_attribute(first) {
                Ok(Attribute::Weight(weight)) => file_weight = weight,
                Ok(Attribute::Proxy(proxy)) => file_proxy = Some(proxy),
                Err(reason) => out.warnings.push(warn(reason)),
            }
            continue;
        }
        let mut weight = file_weight;
        let mut proxy = file_proxy.clone();
        let mut attributes = Ok(());
        for word in words {
            match parse_attribute(word) {
                Ok(Attribute::Weight(value)) => weight = value,
                Ok(Attribute::Proxy(value)) => proxy = Some(value),
                Err(reason) => attributes = Err(reason),
            }
        }
        let plausible = is_google_key_shape(first) || (allow_nonstandard && is_nonstandard_key_shape(first));
        if !plausible {
            out.warnings.push(warn(describe_bad_line(first, allow_nonstandard)));
            continue;
        }
        if let Err(reason) = attributes {
            out.warnings.push(warn(reason));
            continue;
        }
        let mut record = KeyRecord::new(ApiKey::new(first), group.clone());
        record.weight = weight;
        record.proxy = proxy;
        if !seen.insert(record.fingerprint) {
            out.duplicates += 1;
            continue;
        }
        out.records.push(record);
    }
}

/// What a word after a key (or a line of its own) may set.
enum Attribute {
    Weight(u32),
    Proxy(Arc<str>),
}

/// `weight=N` or `proxy=NAME`.
fn parse_attribute(word: &str) -> Result<Attribute, String> {
    if let Some(name) = word.strip_prefix("proxy=") {
        let fits = |c: char| c.is_ascii_alphanumeric() || "._:-".contains(c);
        return match name {
            name if !name.is_empty() && name.len() <= 100 && name.chars().all(fits) => {
                Ok(Attribute::Proxy(Arc::from(name)))
            }
            _ => Err(
                "skipped: a proxy is named by letters, digits and `._:-` (a proxy's NAME or host:port, or `direct`)"
                    .into(),
            ),
        };
    }
    parse_weight(word).map(Attribute::Weight)
}

/// `weight=N` with N from 1 to [`MAX_WEIGHT`].
fn parse_weight(word: &str) -> Result<u32, String> {
    let Some(value) = word.strip_prefix("weight=") else {
        // Never echo the word: it may be a second key pasted on the line.
        return Err(
            "skipped: after the key, a line may hold only `weight=N` and `proxy=NAME`; put one key per line".into()
        );
    };
    match value.parse::<u32>() {
        Ok(weight) if (1..=MAX_WEIGHT).contains(&weight) => Ok(weight),
        _ => Err(format!("skipped: a weight is a whole number from 1 to {MAX_WEIGHT}, not `{value}`")),
    }
}

/// Reads every regular file of `dir` (sorted by name; hidden files and editor
/// backups skipped). A missing folder is an empty pool, not an error.
pub fn load_key_dir(dir: &Path, allow_nonstandard: bool) -> std::io::Result<KeySet> {
    let mut out = KeySet::default();
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(err) => return Err(err),
    };
    let mut files: Vec<_> = entries
        .filter_map(Result::ok)
        // Followed links count (Kubernetes mounts Secrets as symlinks).
        .filter(|entry| std::fs::metadata(entry.path()).is_ok_and(|m| m.is_file()))
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .filter(|name| is_key_file_name(name))
        .collect();
    files.sort();
    let mut seen = HashSet::new();
    for name in files {
        match std::fs::read(dir.join(&name)) {
            Ok(bytes) => {
                let text = String::from_utf8_lossy(&bytes);
                parse_key_file(&name, &text, allow_nonstandard, &mut seen, &mut out);
            }
            Err(err) => out.warnings.push(KeyFileWarning {
                file: name,
                line: 0,
                reason: format!("cannot read the file: {err}"),
            }),
        }
    }
    Ok(out)
}

/// Files an editor leaves behind (`.swp`, `~`, `.tmp`, hidden) are not key files.
pub(crate) fn is_key_file_name(name: &str) -> bool {
    !(name.starts_with('.')
        || name.ends_with('~')
        || name.ends_with(".swp")
        || name.ends_with(".tmp")
        || name.ends_with(".bak")
        || name.eq_ignore_ascii_case("README.md"))
}

fn group_of(file: &str) -> &str {
    match file.rsplit_once('.') {
        Some((stem, _)) if !stem.is_empty() => stem,
        _ => file,
    }
}

/// Says what is wrong without echoing the line (it may be a real key with a typo).
fn describe_bad_line(line: &str, allow_nonstandard: bool) -> String {
    let len = line.chars().count();
    if !allow_nonstandard && !line.starts_with("AIza") {
        return format!(
            "skipped: not a Google API key (expected 39 characters starting with AIza, got {len} characters); \
             set keys.allow_nonstandard = true to accept other key formats"
        );
    }
    format!("skipped: not a plausible API key ({len} characters, or characters outside A-Z a-z 0-9 _ -)")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u32) -> String {
        format!("AIza{:035}", n)
    }

    fn parse(files: &[(&str, &str)]) -> KeySet {
        let mut seen = HashSet::new();
        let mut out = KeySet::default();
        for (name, text) in files {
            parse_key_file(name, text, false, &mut seen, &mut out);
        }
        out
    }

    #[test]
    fn a_line_or_a_file_names_its_proxy() {
        let (a, b) = (format!("AIza{}", "a".repeat(35)), format!("AIza{}", "b".repeat(35)));
        let mut out = KeySet::default();
        let text = format!("{a} proxy=eu weight=2\nproxy=direct\n{b}\n");
        parse_key_file("k.txt", &text, false, &mut HashSet::new(), &mut out);
        assert_eq!(out.records[0].proxy.as_deref(), Some("eu"));
        assert_eq!(out.records[0].weight, 2);
        assert_eq!(out.records[1].proxy.as_deref(), Some("direct"));
        let mut out = KeySet::default();
        parse_key_file("k.txt", &format!("{a} proxy=bad/name\n"), false, &mut HashSet::new(), &mut out);
        assert!(out.records.is_empty() && out.warnings.len() == 1);
    }

    #[test]
    fn comments_blanks_and_whitespace_are_ignored() {
        let text = format!("# my keys\n\n  {}  \n\t{}\n", key(1), key(2));
        let set = parse(&[("paid.txt", &text)]);
        assert_eq!(set.records.len(), 2);
        assert_eq!(&*set.records[0].group, "paid");
        assert!(set.warnings.is_empty());
    }

    #[test]
    fn duplicates_across_files_count_once() {
        let a = format!("{}\n{}\n", key(1), key(2));
        let b = format!("{}\n{}\n", key(2), key(3));
        let set = parse(&[("a.txt", &a), ("b", &b)]);
        assert_eq!(set.records.len(), 3);
        assert_eq!(set.duplicates, 1);
        assert_eq!(&*set.records[2].group, "b");
    }

    #[test]
    fn bad_lines_warn_with_file_and_line_but_never_the_key() {
        let secretish = "AIzaSyTHIS_IS_TOO_SHORT";
        let text = format!("{}\n{secretish}\nkey = value\n", key(1));
        let set = parse(&[("free.txt", &text)]);
        assert_eq!(set.records.len(), 1);
        assert_eq!(set.warnings.len(), 2);
        assert_eq!((set.warnings[0].file.as_str(), set.warnings[0].line), ("free.txt", 2));
        assert_eq!(set.warnings[1].line, 3);
        for warning in &set.warnings {
            assert!(!warning.to_string().contains(secretish));
        }
    }

    #[test]
    fn weights_per_line_and_for_the_lines_after() {
        let text = format!(
            "{} weight=3\nweight=2\n{}\n{}  weight=5\n{} weight=0\n{} {}\n",
            key(1),
            key(2),
            key(3),
            key(4),
            key(5),
            key(6)
        );
        let set = parse(&[("paid.txt", &text)]);
        let weights: Vec<u32> = set.records.iter().map(|r| r.weight).collect();
        assert_eq!(weights, [3, 2, 5]);
        assert_eq!(set.warnings.len(), 2);
        assert!(set.warnings[0].reason.contains("from 1 to 100"));
        assert!(!set.warnings[1].reason.contains(&key(6)), "a second key on a line is never echoed");
        assert_eq!(parse(&[("free.txt", &key(7))]).records[0].weight, 1);
    }

    #[test]
    fn nonstandard_keys_need_the_switch() {
        let mut seen = HashSet::new();
        let mut out = KeySet::default();
        parse_key_file("x", "AQ.Ab8RN6Jabcdefghijklmnop\n", false, &mut seen, &mut out);
        assert_eq!(out.records.len(), 0);
        parse_key_file("x", "AQ.Ab8RN6Jabcdefghijklmnop\n", true, &mut seen, &mut out);
        assert_eq!(out.records.len(), 1);
    }

    #[test]
    fn directory_loading_skips_editor_files_and_missing_dir() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("main.txt"), key(1)).unwrap();
        std::fs::write(dir.path().join(".main.txt.swp"), key(2)).unwrap();
        std::fs::write(dir.path().join("main.txt~"), key(3)).unwrap();
        let set = load_key_dir(dir.path(), false).unwrap();
        assert_eq!(set.records.len(), 1);
        let missing = load_key_dir(&dir.path().join("nope"), false).unwrap();
        assert!(missing.records.is_empty());
    }
}
