//! The one config file: its typed schema with defaults, loading with
//! `GEMGATE_<SECTION>__<FIELD>` environment overrides, and validation.

mod clients;
mod proxy;
mod schema;

pub use clients::*;
pub use proxy::*;
pub use schema::*;

use figment::Figment;
use figment::providers::{Env, Format, Toml};
use std::path::{Path, PathBuf};
use thiserror::Error;

/// Why a config could not be used. Each says what to fix.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// The file or an environment override does not parse or has a wrong type.
    #[error("{0}")]
    Parse(String),
    /// A value parses but makes no sense.
    #[error("invalid setting `{field}`{at}: {message}")]
    Invalid {
        /// Dotted name of the setting.
        field: &'static str,
        /// What is wrong and what is expected.
        message: String,
        /// ` (file:line)` when the setting comes from a file line, else empty.
        at: String,
    },
}

/// A loaded config plus the folder its relative paths are resolved against.
#[derive(Clone, Debug)]
pub struct LoadedConfig {
    /// The settings.
    pub config: Config,
    /// The config file, when there is one.
    pub file: Option<PathBuf>,
    /// The config file's folder (or the working directory without a file).
    pub base_dir: PathBuf,
}

impl LoadedConfig {
    /// Resolves a path from the config against the config file's folder.
    pub fn resolve(&self, path: &Path) -> PathBuf {
        if path.is_absolute() { path.to_path_buf() } else { self.base_dir.join(path) }
    }

    /// Whether `path` (from the config) stays inside the config's folder,
    /// judged on its components (`..` climbs), before any file is touched.
    pub fn is_inside_base(&self, path: &Path) -> bool {
        let mut inside = PathBuf::new();
        for part in self.resolve(path).components() {
            match part {
                std::path::Component::ParentDir => {
                    if !inside.pop() {
                        return false;
                    }
                }
                std::path::Component::CurDir => {}
                other => inside.push(other),
            }
        }
        inside.starts_with(&self.base_dir) && inside != self.base_dir
    }

    /// The keys folder.
    pub fn keys_dir(&self) -> PathBuf {
        self.resolve(&self.config.keys.dir)
    }

    /// The proxies file, if one is configured.
    pub fn proxies_file(&self) -> Option<PathBuf> {
        let file = &self.config.upstream.proxies_file;
        (!file.is_empty()).then(|| self.resolve(Path::new(file)))
    }

    /// The policy script, if one is configured.
    pub fn policy_file(&self) -> Option<PathBuf> {
        let file = &self.config.policy.file;
        (!file.as_os_str().is_empty()).then(|| self.resolve(file))
    }

    /// The data folder (SQLite file, generated secrets).
    pub fn data_dir(&self) -> PathBuf {
        self.resolve(&self.config.store.data_dir)
    }

    /// The database URL: the configured one, or the SQLite file in the data folder.
    pub fn database_url(&self) -> String {
        if self.config.store.database_url.trim().is_empty() {
            format!("sqlite://{}?mode=rwc", self.data_dir().join("gemgate.db").display())
        } else {
            self.config.store.database_url.clone()
        }
    }
}

/// Loads `file` (when it exists) and the environment overrides on top, then
/// validates. A file that is named but missing is an error; no file at all
/// means defaults plus environment.
pub fn load(file: Option<&Path>) -> Result<LoadedConfig, ConfigError> {
    load_with_env(file, Env::prefixed("GEMGATE_").split("__").ignore(&["config"]))
}

/// Like [`load`] with the given environment provider (tests pass their own).
pub fn load_with_env(file: Option<&Path>, env: Env) -> Result<LoadedConfig, ConfigError> {
    let mut figment = Figment::new();
    let mut base_dir = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    let mut file_path = None;
    if let Some(path) = file {
        if !path.is_file() {
            return Err(ConfigError::Parse(format!("config file {} not found", path.display())));
        }
        let absolute = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        if let Some(parent) = absolute.parent() {
            base_dir = parent.to_path_buf();
        }
        figment = figment.merge(Toml::file_exact(&absolute));
        file_path = Some(absolute);
    }
    let config: Config = figment.merge(env).extract().map_err(|err| ConfigError::Parse(describe_figment_error(err)))?;
    config.validate().map_err(|err| match (err, &file_path) {
        (ConfigError::Invalid { field, message, .. }, Some(path)) => {
            let keys: Vec<String> = field.split('.').map(String::from).collect();
            let at = key_line(path, &keys).map_or(String::new(), |line| format!(" ({}:{line})", path.display()));
            ConfigError::Invalid { field, message, at }
        }
        (err, _) => err,
    })?;
    Ok(LoadedConfig { config, file: file_path, base_dir })
}

/// Settings an environment variable overrides, as (`section.field`,
/// `GEMGATE_SECTION__FIELD`): the file's value for them cannot take effect.
pub fn env_overrides() -> Vec<(String, String)> {
    let mut found: Vec<(String, String)> = std::env::vars()
        .filter_map(|(name, _)| {
            let setting = name.strip_prefix("GEMGATE_")?;
            (setting != "CONFIG" && setting.contains("__"))
                .then(|| (setting.to_ascii_lowercase().replace("__", "."), name.clone()))
        })
        .collect();
    found.sort();
    found
}

/// Parses config text alone (no environment), for validation of an edit;
/// errors name the line and the setting.
pub fn parse_str(text: &str) -> Result<Config, ConfigError> {
    let config: Config = Figment::from(Toml::string(text)).extract().map_err(|err| {
        let lines: Vec<String> = err
            .clone()
            .into_iter()
            .filter_map(|e| key_line_in(text, &e.path).map(|line| format!("line {line}: `{}`", e.path.join("."))))
            .collect();
        let described = describe_figment_error(err);
        ConfigError::Parse(if lines.is_empty() { described } else { format!("{} ({described})", lines.join(", ")) })
    })?;
    config.validate().map_err(|err| match err {
        ConfigError::Invalid { field, message, .. } => {
            let keys: Vec<String> = field.split('.').map(String::from).collect();
            let at = key_line_in(text, &keys).map_or(String::new(), |line| format!(" (line {line})"));
            ConfigError::Invalid { field, message, at }
        }
        err => err,
    })?;
    Ok(config)
}

/// The 1-based line of `keys` (`["retry", "max_attempts"]`) in a TOML file:
/// the line `max_attempts = …` under the `[retry]` header.
fn key_line(path: &Path, keys: &[String]) -> Option<usize> {
    key_line_in(&std::fs::read_to_string(path).ok()?, keys)
}

/// [`key_line`] over TOML text.
fn key_line_in(text: &str, keys: &[String]) -> Option<usize> {
    let (key, table) = keys.split_last()?;
    let table = table.join(".");
    let mut current = String::new();
    for (index, line) in text.lines().enumerate() {
        let line = line.trim();
        if let Some(header) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            current = header.trim().replace('"', "");
        } else if current == table
            && let Some(rest) = line.strip_prefix(key.as_str())
            && rest.trim_start().starts_with('=')
        {
            return Some(index + 1);
        }
    }
    None
}

fn describe_figment_error(err: figment::Error) -> String {
    err.into_iter()
        .map(|e| {
            let place = if e.path.is_empty() { String::new() } else { format!(" at `{}`", e.path.join(".")) };
            let file = e.metadata.as_ref().and_then(|m| m.source.as_ref()).and_then(|s| s.file_path());
            let line = file.and_then(|f| key_line(f, &e.path)).map_or(String::new(), |l| format!(", line {l}"));
            let source = match &e.metadata {
                Some(meta) => match &meta.source {
                    Some(source) => format!(" (from {source}{line})"),
                    None => format!(" (from {})", meta.name),
                },
                None => String::new(),
            };
            format!("config error{place}: {}{source}", e.kind)
        })
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_free() -> Env {
        Env::prefixed("GEMGATE_TEST_NOTHING_").split("__")
    }

    #[test]
    fn defaults_are_valid() {
        let loaded = load_with_env(None, env_free()).unwrap();
        assert_eq!(loaded.config.upstream.base_url, "https://generativelanguage.googleapis.com");
        assert!(loaded.config.retry.max_attempts >= 1);
    }

    #[test]
    fn the_shipped_config_file_parses() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config.toml");
        let loaded = load_with_env(Some(&path), env_free()).unwrap();
        assert_eq!(loaded.base_dir, path.parent().unwrap().canonicalize().unwrap());
        assert!(loaded.keys_dir().ends_with("keys"));
    }

    #[test]
    #[allow(clippy::result_large_err)]
    fn environment_overrides_nested_fields_and_comma_lists() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("GGTEST_SERVER__LISTEN", "0.0.0.0:9999");
            jail.set_env("GGTEST_AUTH__CLIENT_KEYS", "alpha-key-123456,beta-key-1234567");
            jail.set_env("GGTEST_RETRY__MAX_ATTEMPTS", "7");
            let loaded = load_with_env(None, Env::prefixed("GGTEST_").split("__")).unwrap();
            assert_eq!(loaded.config.server.listen, "0.0.0.0:9999");
            assert_eq!(loaded.config.auth.client_keys, vec!["alpha-key-123456", "beta-key-1234567"]);
            assert_eq!(loaded.config.retry.max_attempts, 7);
            Ok(())
        });
    }

    #[test]
    fn unknown_fields_and_bad_values_are_named() {
        let err = parse_str("[server]\nlisten = \"127.0.0.1:1\"\nlisen = 3\n").unwrap_err();
        assert!(err.to_string().contains("lisen"), "{err}");
        let err = parse_str("[pool]\nstrategy = \"fastest\"\n").unwrap_err();
        assert!(err.to_string().contains("strategy"), "{err}");
        let err = parse_str("[retry]\nmax_attempts = 0\n").unwrap_err();
        assert!(err.to_string().contains("retry.max_attempts"), "{err}");
        let err = parse_str("[server]\nlisten = \"nowhere\"\n").unwrap_err();
        assert!(err.to_string().contains("server.listen"), "{err}");
        let err = parse_str("[server]\ntrusted_proxies = [\"10.0.0.0/8\", \"not-an-ip\"]\n").unwrap_err();
        assert!(err.to_string().contains("server.trusted_proxies") && err.to_string().contains("not-an-ip"), "{err}");
        let nets =
            parse_str("[server]\ntrusted_proxies = [\"::1\", \"10.0.0.0/8\"]\n").unwrap().server.trusted_networks();
        assert_eq!(nets.map(|n| n.len()).ok(), Some(2));
    }

    #[test]
    fn errors_in_a_file_name_its_line() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("gemgate.toml");
        std::fs::write(&file, "[server]\nlisten = \"127.0.0.1:1\"\n\n[retry]\nmax_atempts = 3\n").unwrap();
        let err = load_with_env(Some(&file), env_free()).unwrap_err().to_string();
        assert!(err.contains("max_atempts") && err.contains("line 5"), "{err}");
        std::fs::write(&file, "[retry]\n# comment\nmax_attempts = 0\n").unwrap();
        let err = load_with_env(Some(&file), env_free()).unwrap_err().to_string();
        assert!(err.contains("retry.max_attempts") && err.contains("gemgate.toml:3"), "{err}");
    }

    #[test]
    fn relative_paths_resolve_against_the_config_folder() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("gemgate.toml");
        std::fs::write(&file, "[keys]\ndir = \"k\"\n[store]\ndata_dir = \"/abs/data\"\n").unwrap();
        let loaded = load_with_env(Some(&file), env_free()).unwrap();
        assert_eq!(loaded.keys_dir(), dir.path().canonicalize().unwrap().join("k"));
        assert_eq!(loaded.data_dir(), PathBuf::from("/abs/data"));
        assert!(loaded.database_url().starts_with("sqlite:///abs/data/gemgate.db"));
    }
}
