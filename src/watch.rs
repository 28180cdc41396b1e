//! Live reload: `config.toml`, `keys/` and the policy script are watched
//! (notify, debounced). A change is parsed and validated, then swapped in
//! whole; an invalid change is rejected with a message naming the file (and
//! line) and the running version stays. Watching the folders, not the files,
//! makes editors' save-by-rename work. Requests in flight finish on what they
//! started with: leases hold their key, and the policy is swapped atomically.

use crate::config::{self, LoadedConfig};
use crate::keys::load_key_dir;
use crate::policy::SharedPolicy;
use crate::pool::PoolHandle;
use crate::store::{Store, StoreHandle};
use notify::RecursiveMode;
use notify_debouncer_full::{DebounceEventResult, Debouncer, RecommendedCache, new_debouncer};
use serde::Serialize;
use std::collections::{BTreeSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;

/// One reload, accepted or rejected, for logs and the admin.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct ReloadEvent {
    /// Unix milliseconds.
    pub at_ms: i64,
    /// `config`, `keys`, `policy` or `proxies`.
    pub what: &'static str,
    /// Whether the change is in force.
    pub accepted: bool,
    /// What happened, or what is wrong (file and line).
    pub message: String,
}

/// The last reloads, newest last.
#[derive(Default)]
pub struct ReloadStatus {
    events: Mutex<VecDeque<ReloadEvent>>,
}

impl ReloadStatus {
    fn record(&self, what: &'static str, accepted: bool, message: String) {
        if accepted {
            tracing::info!("reload {what}: {message}");
        } else {
            tracing::warn!("reload {what} rejected, the running version stays: {message}");
        }
        let mut events = self.events.lock().unwrap_or_else(|e| e.into_inner());
        events.push_back(ReloadEvent { at_ms: crate::store::now_ms(), what, accepted, message });
        while events.len() > 100 {
            events.pop_front();
        }
    }

    /// The recorded reloads.
    pub fn events(&self) -> Vec<ReloadEvent> {
        self.events.lock().unwrap_or_else(|e| e.into_inner()).iter().cloned().collect()
    }
}

/// Everything a reload touches.
pub struct Reloader {
    /// The config in force.
    pub loaded: Mutex<LoadedConfig>,
    /// The pool (keys, strategy, limits).
    pub pool: PoolHandle,
    /// The policy in force.
    pub policy: SharedPolicy,
    /// The store, for the stored state of keys that rejoin.
    pub store: Store,
    /// The writer, flushed before reading stored state.
    pub store_writer: StoreHandle,
    /// The upstream client, whose proxies the proxies file adds to.
    pub upstream: crate::upstream::UpstreamClient,
    /// What happened.
    pub status: Arc<ReloadStatus>,
    /// Told every accepted config, to apply what lives above this module
    /// (client keys, the retry budget, the admin key and metrics token).
    pub on_config: std::sync::OnceLock<ConfigHook>,
}

/// A function told every accepted config.
pub type ConfigHook = Box<dyn Fn(&config::Config) + Send + Sync>;

type FolderWatcher = Debouncer<notify::RecommendedWatcher, RecommendedCache>;

/// Keeps the watch alive; dropping it stops watching.
pub struct Watch {
    _debouncer: Arc<Mutex<FolderWatcher>>,
}

#[derive(Default)]
struct Changes {
    config: bool,
    keys: bool,
    policy: bool,
    proxies: bool,
}

/// Starts watching. Changes are applied by a task on the current runtime.
pub fn start(reloader: Arc<Reloader>) -> notify::Result<Watch> {
    let (config_file, keys_dir, policy_file, proxies_file) = {
        let loaded = reloader.loaded.lock().unwrap_or_else(|e| e.into_inner());
        (loaded.file.clone(), loaded.keys_dir(), loaded.policy_file(), loaded.proxies_file())
    };
    let _ = std::fs::create_dir_all(&keys_dir);
    let (tx, mut rx) = mpsc::unbounded_channel::<Vec<PathBuf>>();
    let mut debouncer = new_debouncer(Duration::from_millis(250), None, move |result: DebounceEventResult| {
        if let Ok(events) = result {
            // Reading a file is not changing it (and the reload itself reads them).
            let paths = events
                .into_iter()
                .filter(|e| !matches!(e.event.kind, notify::EventKind::Access(_)))
                .flat_map(|e| e.event.paths)
                .collect::<Vec<_>>();
            if paths.is_empty() {
                return;
            }
            let _ = tx.send(paths);
        }
    })?;
    let mut folders = BTreeSet::new();
    folders.insert(keys_dir.clone());
    // The keys folder's parent too: when the folder is moved away and back,
    // its own watch is gone, and the parent is where it reappears.
    for file in [&config_file, &policy_file, &proxies_file, &Some(keys_dir.clone())].into_iter().flatten() {
        if let Some(parent) = file.parent().filter(|p| p.is_dir()) {
            folders.insert(parent.to_path_buf());
        }
    }
    for folder in &folders {
        debouncer.watch(folder, RecursiveMode::NonRecursive)?;
    }
    let debouncer = Arc::new(Mutex::new(debouncer));
    let rewatch = debouncer.clone();
    tokio::spawn(async move {
        while let Some(mut paths) = rx.recv().await {
            // Take everything already queued: one reload per burst.
            while let Ok(more) = rx.try_recv() {
                paths.extend(more);
            }
            let (config_file, keys_dir, policy_file, proxies_file) = {
                let loaded = reloader.loaded.lock().unwrap_or_else(|e| e.into_inner());
                (loaded.file.clone(), loaded.keys_dir(), loaded.policy_file(), loaded.proxies_file())
            };
            let mut changes = Changes::default();
            if paths.iter().any(|p| same_file(p, &keys_dir)) && keys_dir.is_dir() {
                // The folder came back (or was replaced): watch the new one.
                let mut watcher = rewatch.lock().unwrap_or_else(|e| e.into_inner());
                let _ = watcher.unwatch(&keys_dir);
                if let Err(err) = watcher.watch(&keys_dir, RecursiveMode::NonRecursive) {
                    tracing::warn!("cannot watch {} again: {err}", keys_dir.display());
                }
            }
            for path in &paths {
                changes.config |= config_file.as_deref().is_some_and(|f| same_file(path, f));
                changes.policy |= policy_file.as_deref().is_some_and(|f| same_file(path, f));
                changes.proxies |= proxies_file.as_deref().is_some_and(|f| same_file(path, f));
                changes.keys |= path.parent().is_some_and(|p| same_file(p, &keys_dir)) || same_file(path, &keys_dir);
            }
            reloader.apply(changes).await;
        }
    });
    Ok(Watch { _debouncer: debouncer })
}

fn same_file(a: &Path, b: &Path) -> bool {
    let canonical = |p: &Path| {
        std::fs::canonicalize(p)
            .or_else(|_| {
                p.parent()
                    .map_or(Err(std::io::ErrorKind::NotFound.into()), std::fs::canonicalize)
                    .map(|parent| parent.join(p.file_name().unwrap_or_default()))
            })
            .unwrap_or_else(|_| p.to_path_buf())
    };
    a == b || canonical(a) == canonical(b)
}

impl Reloader {
    /// The config in force now.
    pub fn current(&self) -> LoadedConfig {
        self.loaded.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    async fn apply(&self, changes: Changes) {
        let mut policy_changed = changes.policy;
        if changes.config {
            policy_changed |= self.reload_config();
        }
        if policy_changed {
            self.reload_policy();
        }
        if changes.keys {
            self.reload_keys().await;
        }
        if changes.proxies {
            self.reload_proxies();
        }
    }

    /// Re-reads the proxies file: its proxies join those of config.toml, and
    /// proxies that stay keep their connections and health. A file with a bad
    /// line is refused whole (the proxies in force stay), so a half-edited
    /// file never moves keys.
    pub fn reload_proxies(&self) {
        let Some(file) = self.current().proxies_file() else { return };
        match apply_proxies_file(&self.upstream, &file) {
            Ok(count) => self.status.record("proxies", true, format!("{count} proxies from {}", file.display())),
            Err(message) => {
                tracing::warn!("{message}");
                self.status.record("proxies", false, message);
            }
        }
    }

    /// Re-reads config.toml; returns whether the policy must be rebuilt.
    pub fn reload_config(&self) -> bool {
        let file = self.loaded.lock().unwrap_or_else(|e| e.into_inner()).file.clone();
        let fresh = match config::load(file.as_deref()) {
            Ok(fresh) => fresh,
            Err(err) => {
                self.status.record("config", false, err.to_string());
                return false;
            }
        };
        let mut current = self.loaded.lock().unwrap_or_else(|e| e.into_inner());
        let (old, new) = (&current.config, &fresh.config);
        let mut restart = Vec::new();
        let differs = |a: &dyn std::fmt::Debug, b: &dyn std::fmt::Debug| format!("{a:?}") != format!("{b:?}");
        for (name, changed) in [
            ("server", differs(&old.server, &new.server)),
            ("store", differs(&old.store, &new.store)),
            ("upstream", differs(&old.upstream, &new.upstream)),
            ("keys.dir", old.keys.dir != new.keys.dir),
            ("scan", differs(&old.scan, &new.scan)),
        ] {
            if changed {
                restart.push(name);
            }
        }
        self.pool.reconfigure(&new.pool, new.models.clone());
        if let Some(on_config) = self.on_config.get() {
            on_config(new);
        }
        let policy_changed =
            differs(&old.cooldown, &new.cooldown) || differs(&old.retry, &new.retry) || old.policy != new.policy;
        let mut message = "applied".to_string();
        if !restart.is_empty() {
            message = format!(
                "partly applied: [{}] take effect only after a restart (the running values stay); everything else is in force",
                restart.join(", ")
            );
        }
        *current = fresh;
        drop(current);
        self.status.record("config", true, message);
        policy_changed
    }

    /// Rebuilds the policy from the configured script.
    pub fn reload_policy(&self) {
        let loaded = self.current();
        match self.policy.reload(&loaded) {
            Ok(()) => {
                let name = loaded.policy_file().map_or("the built-in policy".into(), |f| f.display().to_string());
                self.status.record("policy", true, format!("now using {name}"));
            }
            Err(err) => self.status.record("policy", false, err.to_string()),
        }
    }

    /// Re-reads the keys folder after a file change. A missing folder, or
    /// one with no key left, keeps the running pool and says so: a folder
    /// moved away for a moment must not take every key with it.
    pub async fn reload_keys(&self) {
        self.reload_keys_from(false).await;
    }

    /// Re-reads the keys folder after the admin edited it: there, removing
    /// the last key is what the operator asked for.
    pub async fn reload_keys_edited(&self) {
        self.reload_keys_from(true).await;
    }

    /// A keys reload refused: the running pool stays, and the operator is told why.
    fn keep_pool(&self, message: String) {
        tracing::warn!("{message}");
        self.status.record("keys", false, message);
    }

    async fn reload_keys_from(&self, may_empty: bool) {
        let (dir, allow) = {
            let loaded = self.loaded.lock().unwrap_or_else(|e| e.into_inner());
            (loaded.keys_dir(), loaded.config.keys.allow_nonstandard)
        };
        if !dir.is_dir() {
            return self.keep_pool(format!("the keys folder {} is missing; the running pool stays", dir.display()));
        }
        let key_set = match load_key_dir(&dir, allow) {
            Ok(set) => set,
            Err(err) => {
                self.status.record("keys", false, format!("cannot read {}: {err}", dir.display()));
                return;
            }
        };
        for summary in crate::keys::summarize_warnings(&key_set.warnings) {
            self.status.record("keys", false, format!("lines skipped: {summary}"));
        }
        if key_set.records.is_empty() && !may_empty && !self.pool.slots().is_empty() {
            let message =
                format!("the keys folder {} holds no key now; the running pool stays until it does", dir.display());
            return self.keep_pool(message);
        }
        // Keys that rejoin start from their stored state.
        self.store_writer.flush().await;
        let persisted = self.store.load_key_states().await.unwrap_or_default();
        let total = key_set.records.len();
        let (added, removed) = self.pool.replace_keys(key_set.records, persisted).await;
        self.status.record("keys", true, format!("{total} keys: {added} added, {removed} removed"));
    }
}

/// Loads the proxies file into `upstream`; a missing file is no proxies.
pub fn apply_proxies_file(upstream: &crate::upstream::UpstreamClient, file: &Path) -> Result<usize, String> {
    let text = match std::fs::read_to_string(file) {
        Ok(text) => text,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(err) => return Err(format!("cannot read the proxies file {}: {err}", file.display())),
    };
    let (specs, problems) = crate::config::parse_proxies_file(&text);
    if !problems.is_empty() {
        return Err(format!(
            "proxies file {} refused, the proxies in force stay: {}",
            file.display(),
            problems.join("; ")
        ));
    }
    let count = specs.len();
    upstream.set_file_proxies(specs).map_err(|why| format!("proxies file {} refused: {why}", file.display()))?;
    Ok(count)
}
