//! Every message the admin API names (`with_id("…")`), every rest source
//! and every disable reason has a Chinese text in the dashboard
//! (static/i18n.js), so no server message shows untranslated there.

use std::path::Path;

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn sources(dir: &Path, out: &mut Vec<String>) {
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(read(&path));
        }
    }
}

/// The Chinese half of static/i18n.js.
fn chinese() -> String {
    let text = read(&Path::new(env!("CARGO_MANIFEST_DIR")).join("static/i18n.js"));
    let start = text.find("zh: {").expect("static/i18n.js has a zh table");
    text[start..].to_string()
}

#[test]
fn every_named_admin_message_has_a_chinese_text() {
    let mut files = Vec::new();
    sources(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src/admin"), &mut files);
    let mut ids: Vec<String> = files
        .iter()
        .flat_map(|text| text.split("with_id(\"").skip(1).map(|rest| rest.split('"').next().unwrap_or("").to_string()))
        .collect();
    ids.sort();
    ids.dedup();
    assert!(ids.len() >= 20, "the admin names its messages: {ids:?}");
    let zh = chinese();
    let missing: Vec<&String> = ids.iter().filter(|id| !zh.contains(&format!("'err.{id}'"))).collect();
    assert!(missing.is_empty(), "no Chinese text for {missing:?}");
}

#[test]
fn every_rest_source_and_disable_reason_has_a_text_in_both_languages() {
    let text = read(&Path::new(env!("CARGO_MANIFEST_DIR")).join("static/i18n.js"));
    let zh = chinese();
    let en = &text[..text.find("zh: {").expect("a zh table")];
    let names = ["retry_delay", "daily_quota", "configured", "script", "pacing"].map(|s| format!("'keys.source.{s}'"));
    let reasons = ["invalid", "permission_denied", "manual", "policy"].map(|s| format!("'keys.disableReason.{s}'"));
    for key in names.iter().chain(&reasons) {
        assert!(en.contains(key.as_str()) && zh.contains(key.as_str()), "{key} in both languages");
    }
    // Every failure kind (rests and the error log show them).
    let kinds = read(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src/upstream/google_error.rs"));
    let body = &kinds[kinds.find("pub fn as_str(&self)").expect("FailureKind::as_str")..];
    let body = &body[..body.find("\n    }\n").expect("its end")];
    let names: Vec<&str> = body.split("=> \"").skip(1).filter_map(|rest| rest.split('"').next()).collect();
    assert!(names.len() >= 11, "{names:?}");
    for name in names {
        let key = format!("'keys.restReason.{name}'");
        assert!(en.contains(&key) && zh.contains(&key), "{key} in both languages");
    }
    // The names are the ones the server sends.
    let key_state = read(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src/key_state.rs"));
    for name in
        ["retry_delay", "daily_quota", "configured", "script", "invalid", "permission_denied", "manual", "policy"]
    {
        assert!(key_state.contains(&format!("\"{name}\"")), "{name} is a name src/key_state.rs sends");
    }
}
