//! Secrets in config.toml are never sent to the browser: the admin shows the
//! file with each secret replaced by `<hidden>`, and on save puts the current
//! value back wherever `<hidden>` is still there.

use toml_edit::{DocumentMut, Item, Value};

/// What replaces a secret in the text shown.
pub const HIDDEN: &str = "<hidden>";

/// (table, key) of each secret setting (a proxy URL may carry credentials).
const SECRETS: &[(&str, &str)] = &[
    ("auth", "admin_key"),
    ("auth", "metrics_token"),
    ("auth", "client_keys"),
    ("store", "database_url"),
    ("upstream", "proxy"),
    ("upstream", "proxies"),
    // A relay's URL may carry user info too.
    ("upstream", "relays"),
    ("cluster", "redis_url"),
];

/// Calls `f` with the index in [`SECRETS`] and the value of each secret present.
fn each_secret(
    doc: &mut DocumentMut,
    mut f: impl FnMut(usize, &mut Value) -> Result<(), String>,
) -> Result<(), String> {
    for (n, (table, key)) in SECRETS.iter().enumerate() {
        if let Some(value) = doc.get_mut(table).and_then(|t| t.get_mut(key)).and_then(Item::as_value_mut) {
            f(n, value)?;
        }
    }
    Ok(())
}

fn hide(value: &mut Value) {
    match value {
        Value::String(s) if !s.value().is_empty() => *value = HIDDEN.into(),
        Value::Array(array) => array.iter_mut().for_each(hide),
        _ => {}
    }
}

/// `text` with every secret value replaced by [`HIDDEN`]. A file that no
/// longer parses has every line that names a secret hidden whole.
pub fn mask(text: &str) -> String {
    let Ok(mut doc) = text.parse::<DocumentMut>() else { return hide_lines(text) };
    let _ = each_secret(&mut doc, |_, value| {
        let decor = value.decor().clone();
        hide(value);
        *value.decor_mut() = decor;
        Ok(())
    });
    doc.to_string()
}

fn hide_lines(text: &str) -> String {
    text.lines()
        .map(|line| {
            let key = line.split('=').next().unwrap_or_default().trim();
            if SECRETS.iter().any(|(_, secret)| *secret == key) {
                format!("{key} = \"{HIDDEN}\"")
            } else {
                line.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// `edited` with each [`HIDDEN`] put back to its value in `current`.
pub fn restore(edited: &str, current: &str) -> Result<String, String> {
    let mut doc: DocumentMut = edited.parse().map_err(|e: toml_edit::TomlError| e.to_string())?;
    let mut current_doc: DocumentMut = current.parse().unwrap_or_default();
    let mut originals: Vec<(usize, Value)> = Vec::new();
    each_secret(&mut current_doc, |n, value| {
        originals.push((n, value.clone()));
        Ok(())
    })?;
    each_secret(&mut doc, |n, value| {
        let original = originals.iter().find(|(m, _)| *m == n).map(|(_, v)| v);
        let (table, key) = SECRETS[n];
        match value {
            Value::String(s) if s.value() == HIDDEN => {
                let Some(Value::String(orig)) = original else {
                    return Err(format!("{table}.{key} is {HIDDEN} but has no saved value; type the value"));
                };
                let decor = s.decor().clone();
                *value = Value::String(toml_edit::Formatted::new(orig.value().clone()));
                *value.decor_mut() = decor;
            }
            Value::Array(array) => {
                let orig = match original {
                    Some(Value::Array(orig)) => Some(orig),
                    _ => None,
                };
                for (i, element) in array.iter_mut().enumerate() {
                    if element.as_str() == Some(HIDDEN) {
                        let Some(saved) = orig.and_then(|o| o.get(i)).and_then(Value::as_str) else {
                            return Err(format!(
                                "{table}.{key}[{i}] is {HIDDEN} but has no saved value; type the value"
                            ));
                        };
                        let decor = element.decor().clone();
                        *element = saved.into();
                        *element.decor_mut() = decor;
                    }
                }
            }
            _ => {}
        }
        Ok(())
    })?;
    Ok(doc.to_string())
}

/// The effective config as JSON with secrets replaced by [`HIDDEN`].
pub fn masked_json(config: &crate::config::Config) -> serde_json::Value {
    let mut json = serde_json::to_value(config).unwrap_or_default();
    for (table, key) in SECRETS {
        if let Some(value) = json.get_mut(*table).and_then(|t| t.get_mut(*key)) {
            match value {
                serde_json::Value::String(s) if !s.is_empty() => *s = HIDDEN.into(),
                serde_json::Value::Array(items) => items.iter_mut().for_each(|i| *i = HIDDEN.into()),
                _ => {}
            }
        }
    }
    json
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "# top\n[auth]\n# the admin\nadmin_key = \"very-secret-admin\" # inline\nclient_keys = [\"c-one\", \"c-two\"]\nopen = false\n[retry]\nmax_attempts = 3\n";

    #[test]
    fn proxy_credentials_are_hidden_in_text_and_effective_settings() {
        let masked =
            mask("[upstream]\nproxy = \"socks5://user:pa55@127.0.0.1:1080\"\nproxies = [\"eu=http://u:pa66@p:1\"]\n");
        assert!(!masked.contains("pa55") && !masked.contains("pa66"), "{masked}");
        let mut config = crate::config::Config::default();
        config.upstream.proxy = "http://user:pa55@proxy:3128".into();
        config.upstream.proxies = vec!["socks5://user:pa66@proxy:1080".into()];
        config.upstream.relays = vec!["https://user:pa77@relay.example".into()];
        let json = masked_json(&config).to_string();
        assert!(!json.contains("pa55") && !json.contains("pa66") && !json.contains("pa77"), "{json}");
    }

    #[test]
    fn secrets_are_hidden_and_comments_kept() {
        let masked = mask(FILE);
        assert!(!masked.contains("very-secret-admin") && !masked.contains("c-one"));
        assert!(masked.contains("admin_key = \"<hidden>\" # inline"));
        assert!(masked.contains("# the admin") && masked.contains("max_attempts = 3"));
    }

    #[test]
    fn hidden_values_come_back_on_save() {
        let edited = mask(FILE).replace("max_attempts = 3", "max_attempts = 4");
        let saved = restore(&edited, FILE).unwrap();
        assert_eq!(saved, FILE.replace("max_attempts = 3", "max_attempts = 4"));
    }

    #[test]
    fn a_typed_secret_replaces_the_old_one() {
        let edited = mask(FILE).replace("admin_key = \"<hidden>\"", "admin_key = \"new-admin-key-123\"");
        let saved = restore(&edited, FILE).unwrap();
        assert!(saved.contains("new-admin-key-123") && saved.contains("c-one"));
    }

    #[test]
    fn a_broken_file_hides_secret_lines_whole() {
        let masked = mask("[auth\nadmin_key = \"very-secret-admin\"\nopen = false");
        assert_eq!(masked, "[auth\nadmin_key = \"<hidden>\"\nopen = false");
    }

    #[test]
    fn hidden_without_a_saved_value_is_an_error() {
        let err = restore("[auth]\nmetrics_token = \"<hidden>\"\n", FILE).unwrap_err();
        assert!(err.contains("auth.metrics_token"));
    }
}
