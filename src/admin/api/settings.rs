//! config.toml and the policy script: view (secrets hidden), validate, save
//! (atomically, applied through the reload path at once), try a script on an
//! outcome; and the reload history with its errors.

use super::AdminTag;
use crate::admin::AdminContext;
use crate::admin::config_text;
use crate::admin::error::{ApiError, ApiResult};
use crate::admin::files::write_atomically;
use crate::admin::security::AdminAuth;
use crate::watch::ReloadEvent;
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};
use std::sync::Arc;

pub struct SettingsApi {
    pub ctx: Arc<AdminContext>,
}

/// The config in force.
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
struct ConfigView {
    /// The file, if gemgate runs from one.
    file: Option<String>,
    /// The file's text with each secret shown as `<hidden>` (leave those as
    /// they are to keep the values).
    text: Option<String>,
    /// The effective settings (file, environment and defaults), secrets hidden.
    effective: serde_json::Value,
    /// Settings an environment variable overrides: the file's value for them
    /// does not take effect, and a save that changes one is refused.
    env_overrides: Vec<EnvOverride>,
}

/// A setting set by the environment.
#[derive(Object)]
struct EnvOverride {
    /// `section.field`.
    setting: String,
    /// The variable that sets it.
    variable: String,
}

/// The value at `section.field` in TOML text, as text (None when absent).
fn toml_value(text: &str, setting: &str) -> Option<String> {
    let doc = text.parse::<toml_edit::DocumentMut>().ok()?;
    let (section, field) = setting.split_once('.')?;
    doc.get(section)?.get(field).map(|item| item.to_string().trim().to_string())
}

/// A config file's new text.
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
struct ConfigText {
    #[oai(validator(max_length = 1000000))]
    text: String,
}

/// Whether a text is valid.
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
struct Validation {
    valid: bool,
    /// What is wrong (with its line when known), or what happened.
    message: String,
}

/// The result of a save.
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
struct Saved {
    /// The file written.
    file: String,
    /// What the reload said (settings that need a restart are named).
    message: String,
}

/// The policy script.
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
struct PolicyView {
    /// The script file (`[policy] file`), or none for the built-in policy.
    file: Option<String>,
    /// Its text.
    text: Option<String>,
    /// Script faults since start (each fell back to the built-in decision).
    faults: u64,
}

/// A script's new text.
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
struct PolicyText {
    #[oai(validator(max_length = 1000000))]
    text: String,
}

/// A script and an outcome to try it on.
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
struct PolicyTest {
    /// The script to try; the configured one when left out.
    #[oai(validator(max_length = 1000000))]
    text: Option<String>,
    /// The outcome, e.g. `{"status": 429, "model": "gemini-2.5-pro",
    /// "retry_delay_secs": 20}` (see `gemgate policy test`).
    case: std::collections::BTreeMap<String, serde_json::Value>,
}

/// A reload, accepted or not.
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
struct ReloadView {
    at_ms: i64,
    /// `config`, `keys` or `policy`.
    what: String,
    accepted: bool,
    message: String,
}

impl From<ReloadEvent> for ReloadView {
    fn from(e: ReloadEvent) -> Self {
        Self { at_ms: e.at_ms, what: e.what.to_string(), accepted: e.accepted, message: e.message }
    }
}

/// The newest reload message about `what` since `since_ms`.
fn reload_message(ctx: &AdminContext, what: &str, since_ms: i64) -> Option<ReloadEvent> {
    ctx.state.reloads.events().into_iter().rev().find(|e| e.what == what && e.at_ms >= since_ms)
}

impl SettingsApi {
    fn config_file(&self) -> ApiResult<std::path::PathBuf> {
        self.ctx.reloader.current().file.ok_or_else(|| {
            ApiError::conflict(
                "gemgate was started without a config file, so there is none to edit; start it with --config",
            )
            .with_id("no_config_file", &[])
        })
    }

    /// The edited text with its hidden secrets restored, checked whole.
    fn checked_config(&self, edited: &str) -> ApiResult<(std::path::PathBuf, String)> {
        let file = self.config_file()?;
        let current = std::fs::read_to_string(&file).unwrap_or_default();
        let text = config_text::restore(edited, &current)
            .map_err(|e| ApiError::bad_request(e.clone()).with_id("config_invalid", &[("detail", &e)]))?;
        let config = crate::config::parse_str(&text).map_err(|e| {
            let detail = e.to_string();
            ApiError::bad_request(detail.clone()).with_id("config_invalid", &[("detail", &detail)])
        })?;
        for (setting, variable) in crate::config::env_overrides() {
            if toml_value(&text, &setting) != toml_value(&current, &setting) {
                return Err(ApiError::bad_request(format!(
                    "{setting}: set by the environment variable {variable}, which wins over the file; \
                     change or unset the variable for a new value to take effect"
                ))
                .with_id("env_override", &[("setting", &setting), ("variable", &variable)]));
            }
        }
        // What the admin can make gemgate read or write stays in the config's folder.
        let base_dir = file.parent().map(std::path::Path::to_path_buf).unwrap_or_default();
        let loaded = crate::config::LoadedConfig { config, file: Some(file.clone()), base_dir };
        if !loaded.is_inside_base(&loaded.config.keys.dir) {
            return Err(ApiError::bad_request("keys.dir: the keys folder must be inside the config file's folder")
                .with_id("keys_dir_outside", &[]));
        }
        if loaded.policy_file().is_some() && !loaded.is_inside_base(&loaded.config.policy.file) {
            return Err(ApiError::bad_request("policy.file: the script must be inside the config file's folder")
                .with_id("policy_outside", &[]));
        }
        // Built as a reload would build it: a script that cannot be read or compiled is refused.
        crate::policy::configured_policy(&loaded, Arc::default()).map_err(|e| {
            let detail = e.to_string();
            ApiError::bad_request(format!("policy.file: the script cannot be read or does not compile: {detail}"))
                .with_id("policy_broken", &[("detail", &detail)])
        })?;
        Ok((file, text))
    }

    fn policy_file(&self) -> ApiResult<std::path::PathBuf> {
        self.ctx.reloader.current().policy_file().ok_or_else(|| {
            ApiError::conflict("no policy script is configured: set `[policy] file` in config.toml first")
                .with_id("no_policy_file", &[])
        })
    }
}

#[OpenApi(tag = "AdminTag::Settings")]
impl SettingsApi {
    /// The config in force: the file's text and the effective settings, with
    /// every secret shown as `<hidden>`.
    #[oai(path = "/config", method = "get")]
    async fn config(&self, _auth: AdminAuth) -> ApiResult<Json<ConfigView>> {
        let loaded = self.ctx.reloader.current();
        let text = match &loaded.file {
            Some(file) => {
                let raw = std::fs::read_to_string(file)
                    .map_err(|e| ApiError::internal(format!("cannot read {}: {e}", file.display())))?;
                Some(config_text::mask(&raw))
            }
            None => None,
        };
        Ok(Json(ConfigView {
            file: loaded.file.as_ref().map(|f| f.display().to_string()),
            text,
            effective: config_text::masked_json(&loaded.config),
            env_overrides: crate::config::env_overrides()
                .into_iter()
                .map(|(setting, variable)| EnvOverride { setting, variable })
                .collect(),
        }))
    }

    /// Checks a config text without saving it.
    #[oai(path = "/config/validate", method = "post")]
    async fn validate_config(&self, _auth: AdminAuth, body: Json<ConfigText>) -> ApiResult<Json<Validation>> {
        Ok(Json(match self.checked_config(&body.text) {
            Ok(_) => Validation { valid: true, message: "valid".into() },
            Err(ApiError::BadRequest(err)) => Validation { valid: false, message: err.0.error.message },
            Err(other) => return Err(other),
        }))
    }

    /// Saves config.toml (atomically) and applies it as a file change would.
    /// An invalid text is refused with what is wrong and nothing changes.
    #[oai(path = "/config", method = "put")]
    async fn save_config(&self, _auth: AdminAuth, body: Json<ConfigText>) -> ApiResult<Json<Saved>> {
        let _writing = self.ctx.file_writes.lock().await;
        let (file, text) = self.checked_config(&body.text)?;
        let since = crate::store::now_ms();
        write_atomically(&file, &text)
            .map_err(|e| ApiError::internal(format!("cannot write {}: {e}", file.display())))?;
        if self.ctx.reloader.reload_config() {
            self.ctx.reloader.reload_policy();
        }
        let event = reload_message(&self.ctx, "config", since);
        tracing::info!(file = %file.display(), "admin saved config.toml");
        match event {
            Some(e) if !e.accepted => {
                Err(ApiError::bad_request(e.message.clone()).with_id("config_invalid", &[("detail", &e.message)]))
            }
            e => Ok(Json(Saved {
                file: file.display().to_string(),
                message: e.map_or_else(|| "saved".into(), |e| e.message),
            })),
        }
    }

    /// The policy script in force.
    #[oai(path = "/policy", method = "get")]
    async fn policy(&self, _auth: AdminAuth) -> ApiResult<Json<PolicyView>> {
        let file = self.ctx.reloader.current().policy_file();
        let text = match &file {
            Some(f) => Some(
                std::fs::read_to_string(f)
                    .map_err(|e| ApiError::internal(format!("cannot read {}: {e}", f.display())))?,
            ),
            None => None,
        };
        Ok(Json(PolicyView {
            file: file.map(|f| f.display().to_string()),
            text,
            faults: self.ctx.state.dispatcher.policy.faults(),
        }))
    }

    /// Saves the policy script after compiling it; a script that does not
    /// compile is refused with its line, and the running one stays.
    #[oai(path = "/policy", method = "put")]
    async fn save_policy(&self, _auth: AdminAuth, body: Json<PolicyText>) -> ApiResult<Json<Saved>> {
        let _writing = self.ctx.file_writes.lock().await;
        let file = self.policy_file()?;
        let config = self.ctx.reloader.current().config;
        let fallback = crate::policy::DefaultPolicy::new(&config.cooldown, &config.retry);
        let name = file.display().to_string();
        crate::policy::script::ScriptPolicy::compile(&name, &body.text, fallback, Arc::default()).map_err(|e| {
            let detail = e.to_string();
            ApiError::bad_request(detail.clone()).with_id("policy_broken", &[("detail", &detail)])
        })?;
        write_atomically(&file, &body.text).map_err(|e| ApiError::internal(format!("cannot write {name}: {e}")))?;
        let since = crate::store::now_ms();
        self.ctx.reloader.reload_policy();
        tracing::info!(file = %name, "admin saved the policy script");
        let message = reload_message(&self.ctx, "policy", since).map_or_else(|| "saved".into(), |e| e.message);
        Ok(Json(Saved { file: name, message }))
    }

    /// Tries a script (the given text, or the configured file) on an outcome:
    /// the script's decision beside the built-in one.
    #[oai(path = "/policy/test", method = "post")]
    async fn test_policy(&self, _auth: AdminAuth, body: Json<PolicyTest>) -> ApiResult<Json<serde_json::Value>> {
        let case = serde_json::Value::Object(body.case.clone().into_iter().collect());
        let (name, source) = match &body.text {
            Some(text) => ("(edited script)".to_string(), text.clone()),
            None => {
                let file = self.policy_file()?;
                let text = std::fs::read_to_string(&file)
                    .map_err(|e| ApiError::internal(format!("cannot read {}: {e}", file.display())))?;
                (file.display().to_string(), text)
            }
        };
        let config = self.ctx.reloader.current().config;
        crate::policy::case::run_case(&name, &source, &case, &config).map(Json).map_err(|e| {
            let detail = e.to_string();
            ApiError::bad_request(detail.clone()).with_id("policy_case", &[("detail", &detail)])
        })
    }

    /// Reloads of config, keys and policy, newest first, with the errors of
    /// those that were refused.
    #[oai(path = "/reloads", method = "get")]
    async fn reloads(&self, _auth: AdminAuth) -> ApiResult<Json<Vec<ReloadView>>> {
        Ok(Json(self.ctx.state.reloads.events().into_iter().rev().map(Into::into).collect()))
    }
}
