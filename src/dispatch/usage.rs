//! Token counts from the tail of a reply: Google puts `usageMetadata` at the
//! end of a generateContent reply and on the last event of a stream, so the
//! relay keeps only the last few kilobytes and reads the usage from them.

use bytes::Bytes;
use serde_json::Value;
use std::collections::VecDeque;

pub use crate::prices::Usage;

/// Reads the last `usageMetadata` object found in `tail`.
pub fn parse_usage(tail: &[u8]) -> Usage {
    const NEEDLE: &[u8] = b"\"usageMetadata\"";
    let Some(at) = tail.windows(NEEDLE.len()).rposition(|w| w == NEEDLE) else { return Usage::default() };
    let rest = &tail[at + NEEDLE.len()..];
    let Some(colon) = rest.iter().position(|&b| b == b':') else { return Usage::default() };
    let mut values = serde_json::Deserializer::from_slice(&rest[colon + 1..]).into_iter::<Value>();
    let Some(Ok(usage)) = values.next() else { return Usage::default() };
    let count = |field: &str| usage.get(field).and_then(Value::as_i64).unwrap_or(0);
    Usage {
        prompt_tokens: count("promptTokenCount"),
        completion_tokens: count("candidatesTokenCount") + count("thoughtsTokenCount"),
        total_tokens: count("totalTokenCount"),
        thinking_tokens: count("thoughtsTokenCount"),
        cached_tokens: count("cachedContentTokenCount"),
    }
}

/// The last bytes of a stream, kept as shared chunks (no copying on the hot path).
#[derive(Default)]
pub struct Tail {
    chunks: VecDeque<Bytes>,
    len: usize,
}

/// Enough for a final event with usage and candidates' last text.
const TAIL_BYTES: usize = 16 * 1024;

impl Tail {
    /// Remembers a chunk, forgetting chunks that fell out of the window.
    pub fn push(&mut self, chunk: &Bytes) {
        self.chunks.push_back(chunk.clone());
        self.len += chunk.len();
        while self.chunks.len() > 1 && self.len - self.chunks.front().map_or(0, Bytes::len) >= TAIL_BYTES {
            if let Some(old) = self.chunks.pop_front() {
                self.len -= old.len();
            }
        }
    }

    /// The remembered tail as one buffer.
    pub fn joined(&self) -> Vec<u8> {
        self.chunks.iter().flat_map(|c| c.iter().copied()).collect()
    }

    /// The usage in the remembered tail.
    pub fn usage(&self) -> Usage {
        parse_usage(&self.joined())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_from_a_whole_reply_and_from_the_last_sse_event() {
        let whole = br#"{"candidates":[{"content":{"parts":[{"text":"hi"}]}}],
            "usageMetadata": {"promptTokenCount": 4, "candidatesTokenCount": 2, "thoughtsTokenCount": 3, "totalTokenCount": 9,
            "cachedContentTokenCount": 1}}"#;
        let expected =
            Usage { prompt_tokens: 4, completion_tokens: 5, total_tokens: 9, thinking_tokens: 3, cached_tokens: 1 };
        assert_eq!(parse_usage(whole), expected);
        let sse = b"data: {\"usageMetadata\":{\"totalTokenCount\":1}}\r\n\r\ndata: {\"usageMetadata\":{\"promptTokenCount\":2,\"totalTokenCount\":7}}\r\n\r\n";
        assert_eq!(parse_usage(sse).total_tokens, 7);
        assert_eq!(parse_usage(b"no usage here"), Usage::default());
        assert_eq!(parse_usage(b"\"usageMetadata\": {broken"), Usage::default());
    }

    #[test]
    fn tail_keeps_only_the_end_but_never_splits_the_last_chunk() {
        let mut tail = Tail::default();
        for _ in 0..100 {
            tail.push(&Bytes::from(vec![b'x'; 1000]));
        }
        tail.push(&Bytes::from_static(b"\"usageMetadata\":{\"totalTokenCount\":42}"));
        assert!(tail.len < TAIL_BYTES + 2000);
        assert_eq!(tail.usage().total_tokens, 42);
    }
}
