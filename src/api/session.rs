//! Which conversation a request belongs to, for session affinity: a session
//! id the client sends in a header, or else a hash of the conversation's
//! start (its system instruction and first turn), which every later request
//! of the conversation repeats. Only a preference for a key: a wrong guess
//! costs a cache miss, nothing else.

use super::intake::ClientError;
use poem::Request;
use serde::Deserialize;
use serde::de::{IgnoredAny, SeqAccess, Visitor};
use serde_json::Value;
use serde_json::value::RawValue;
use std::hash::{DefaultHasher, Hash, Hasher};

/// Headers clients use to name their session (gemgate's own, the common
/// one, Claude Code's and Codex's).
const SESSION_HEADERS: [&str; 4] = ["x-gemgate-session", "x-session-id", "x-claude-code-session-id", "session_id"];

/// The shortest conversation start (system instruction and first turn) that
/// keeps a key: about the 1,024 tokens Gemini's implicit cache needs at
/// least. Shorter ones gain nothing from a key and are spread as usual.
const MIN_START_BYTES: usize = 4096;

/// Bytes of each part of a conversation's start that are hashed: enough to
/// tell conversations apart; conversations sharing a longer prefix may
/// share a key, which suits the cache.
const HASHED_BYTES: usize = 4096;

/// The session a client named in a header, hashed.
pub fn from_header(request: &Request) -> Option<u64> {
    let value = SESSION_HEADERS.iter().find_map(|name| request.headers().get(*name))?;
    let bytes = value.as_bytes();
    (!bytes.is_empty()).then(|| hash(&[b"header", bytes]))
}

/// A session the client named in its body (OpenAI's `prompt_cache_key`).
pub fn from_name(name: &str) -> u64 {
    hash(&[b"header", name.as_bytes()])
}

/// Checks that a native generate body is JSON and returns the hash of its
/// conversation's start (`None` without contents). One pass over the body,
/// as checking it alone would take.
pub fn of_native_body(body: &[u8]) -> Result<Option<u64>, ClientError> {
    #[derive(Deserialize)]
    struct Conversation<'a> {
        #[serde(rename = "systemInstruction", borrow, default)]
        system: Option<&'a RawValue>,
        #[serde(borrow, default)]
        contents: FirstTurn<'a>,
    }
    // serde skips strings it ignores without checking their UTF-8: check it first.
    if std::str::from_utf8(body).is_err() {
        return Err(ClientError::NotJson);
    }
    let conversation: Conversation<'_> = serde_json::from_slice(body).map_err(|_| ClientError::NotJson)?;
    let Some(first) = conversation.contents.0 else { return Ok(None) };
    let system = conversation.system.map_or("", |raw| raw.get());
    Ok(started(system, first.get()))
}

/// The hash of a Gemini body's conversation start (`None` without contents).
pub fn of_gemini_value(body: &Value) -> Option<u64> {
    let first = body.get("contents")?.get(0)?;
    let system = body.get("systemInstruction").map(Value::to_string).unwrap_or_default();
    started(&system, &first.to_string())
}

/// The hash of a conversation's start, when it is long enough to be cached.
fn started(system: &str, first: &str) -> Option<u64> {
    (system.len() + first.len() >= MIN_START_BYTES).then(|| hash(&[system.as_bytes(), first.as_bytes()]))
}

fn hash(parts: &[&[u8]]) -> u64 {
    let mut hasher = DefaultHasher::new();
    for part in parts {
        part[..part.len().min(HASHED_BYTES)].hash(&mut hasher);
    }
    hasher.finish()
}

/// The first element of `contents` as it was written; the rest skipped.
#[derive(Default)]
struct FirstTurn<'a>(Option<&'a RawValue>);

impl<'de: 'a, 'a> Deserialize<'de> for FirstTurn<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct First<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for First<'a> {
            type Value = FirstTurn<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a list of turns")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let first = seq.next_element::<&'de RawValue>()?;
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(FirstTurn(first))
            }
            // Anything else is Google's to refuse: skip it.
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(FirstTurn(None))
            }
            fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
                Ok(FirstTurn(None))
            }
            fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
                Ok(FirstTurn(None))
            }
            fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
                Ok(FirstTurn(None))
            }
            fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
                Ok(FirstTurn(None))
            }
            fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
                Ok(FirstTurn(None))
            }
            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(FirstTurn(None))
            }
        }
        deserializer.deserialize_any(First(std::marker::PhantomData))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_conversation_keeps_its_hash_as_it_grows() {
        let long = "shared context ".repeat(300);
        let first = format!(r#"{{"contents":[{{"role":"user","parts":[{{"text":"{long}"}}]}}]}}"#);
        let later = format!(
            r#"{{"contents":[{{"role":"user","parts":[{{"text":"{long}"}}]}},
            {{"role":"model","parts":[{{"text":"ok"}}]}},{{"role":"user","parts":[{{"text":"next"}}]}}],
            "generationConfig":{{"temperature":0.2}}}}"#
        );
        let other = first.replace("shared", "other!");
        let a = of_native_body(first.as_bytes()).unwrap();
        assert!(a.is_some());
        assert_eq!(a, of_native_body(later.as_bytes()).unwrap());
        assert_ne!(a, of_native_body(other.as_bytes()).unwrap());
        let with_system = first.replacen('{', r#"{"systemInstruction":{"parts":[{"text":"x"}]},"#, 1);
        assert_ne!(a, of_native_body(with_system.as_bytes()).unwrap());
        let short = br#"{"contents":[{"role":"user","parts":[{"text":"hi"}]}]}"#;
        assert_eq!(of_native_body(short).unwrap(), None, "too short to be cached: no key kept");
        assert_eq!(of_native_body(br#"{"contents":"odd"}"#).unwrap(), None, "Google's to refuse");
        assert!(matches!(of_native_body(b"{not json"), Err(ClientError::NotJson)));
        assert!(matches!(of_native_body(b"{\"a\":\"\xff\"}"), Err(ClientError::NotJson)));
        let value: Value = serde_json::from_str(&later).unwrap();
        assert!(of_gemini_value(&value).is_some());
    }
}
