//! Tool call ids that carry Gemini's `thoughtSignature`. Thinking models must
//! get the signature of a function call back with it on the next turn;
//! OpenAI clients send tool call ids back unchanged, so the id carries it and
//! gemgate stays stateless (restarts and replicas do not lose it).

use rand::Rng;

const MARK: &str = "__sig__";

/// A fresh OpenAI-style id (`call_` and 24 alphanumerics), with the signature
/// appended when Gemini gave one.
pub fn tool_call_id(gemini_id: Option<&str>, signature: Option<&str>) -> String {
    let base = match gemini_id {
        Some(id) if !id.is_empty() && !id.contains(MARK) => id.to_string(),
        _ => {
            let suffix: String = rand::rng().sample_iter(&rand::distr::Alphanumeric).take(24).map(char::from).collect();
            format!("call_{suffix}")
        }
    };
    match signature {
        Some(signature) if !signature.is_empty() => format!("{base}{MARK}{signature}"),
        _ => base,
    }
}

/// Splits an id back into (Gemini's id, signature).
pub fn split_tool_call_id(id: &str) -> (&str, Option<&str>) {
    match id.split_once(MARK) {
        Some((base, signature)) if !signature.is_empty() => (base, Some(signature)),
        _ => (id, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_survive_the_round_trip() {
        let id = tool_call_id(None, Some("Ck0BVKhc+/sig=="));
        assert!(id.starts_with("call_"));
        let (base, signature) = split_tool_call_id(&id);
        assert_eq!(signature, Some("Ck0BVKhc+/sig=="));
        assert_eq!(base.len(), 29);
        assert_eq!(split_tool_call_id("call_plain"), ("call_plain", None));
        assert_eq!(tool_call_id(Some("abc"), None), "abc");
    }
}
