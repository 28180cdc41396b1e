//! Telling an empty reply from an answer. Gemini at times answers 200 with a
//! candidate that has no parts and finishReason STOP (or none); users
//! of key pools ask for those to be retried on another key above almost
//! anything. A blocked prompt or a safety stop is an answer, not an empty
//! reply, and is never retried. Streams are judged as they arrive: the relay
//! holds their first events back until one carries content.

use crate::translate::stream::find_event_end;
use serde_json::Value;

/// What a reply (or the part of a stream seen so far) is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// It carries content: relay it.
    Content,
    /// Google refused or stopped for a reason of its own (blocked prompt,
    /// safety, max tokens…): an answer, relay it.
    Answered,
    /// It ended with nothing to show; the finish reason, if any.
    Empty(Option<String>),
    /// Not decided yet (a stream with no content so far).
    Undecided,
}

/// Finish reasons after which an empty candidate is still an empty reply;
/// any other (SAFETY, MAX_TOKENS, RECITATION…) is Google's answer.
const EMPTY_FINISHES: &[&str] = &["STOP", "FINISH_REASON_UNSPECIFIED", "OTHER"];

/// Judges the response objects of a reply seen so far; `ended` when no more will come.
fn judge(objects: &[Value], ended: bool) -> Verdict {
    let mut finish: Option<String> = None;
    let mut candidates_seen = false;
    for object in objects {
        if object.pointer("/promptFeedback/blockReason").is_some() {
            return Verdict::Answered;
        }
        for candidate in object.get("candidates").and_then(Value::as_array).into_iter().flatten() {
            candidates_seen = true;
            let parts = candidate.pointer("/content/parts").and_then(Value::as_array);
            if parts.into_iter().flatten().any(has_content) {
                return Verdict::Content;
            }
            if let Some(reason) = candidate.get("finishReason").and_then(Value::as_str) {
                if !EMPTY_FINISHES.contains(&reason) {
                    return Verdict::Answered;
                }
                finish = Some(reason.to_string());
            }
        }
    }
    match (ended, candidates_seen) {
        (false, _) => Verdict::Undecided,
        (true, true) => Verdict::Empty(finish),
        // Not a generate reply at all (or no candidates and no block reason): leave it be.
        (true, false) => Verdict::Answered,
    }
}

/// A part that shows the client something: text (thoughts too: once a
/// client has seen them, a retry would show them twice), a function call,
/// data, code.
fn has_content(part: &Value) -> bool {
    if part.get("text").and_then(Value::as_str).is_some_and(|t| !t.is_empty()) {
        return true;
    }
    ["functionCall", "inlineData", "fileData", "executableCode", "codeExecutionResult", "functionResponse"]
        .iter()
        .any(|kind| part.get(*kind).is_some())
}

/// A fast yes for the common reply: a non-empty `"text"` or a content part
/// named anywhere in the bytes means content, without parsing the JSON (a
/// full parse of every reply cost the hot path ~10% of its throughput). No
/// means "parse and look closer", never "empty".
fn surely_has_content(bytes: &[u8]) -> bool {
    let non_empty_text = memchr::memmem::find_iter(bytes, b"\"text\"").any(|at| {
        let rest = &bytes[at + 6..];
        let after_colon = rest.iter().position(|b| !b.is_ascii_whitespace()).filter(|&i| rest[i] == b':');
        after_colon.is_some_and(|colon| {
            let value = &rest[colon + 1..];
            let start = value.iter().position(|b| !b.is_ascii_whitespace());
            start.is_some_and(|i| value[i] == b'"' && value.get(i + 1).is_some_and(|&b| b != b'"'))
        })
    });
    non_empty_text
        || [&b"\"functionCall\""[..], b"\"inlineData\"", b"\"fileData\"", b"\"executableCode\""]
            .iter()
            .any(|needle| memchr::memmem::find(bytes, needle).is_some())
}

/// [`surely_has_content`] in bytes that block nothing: the fast yes both
/// judges take before parsing.
fn surely_content(bytes: &[u8]) -> bool {
    surely_has_content(bytes) && memchr::memmem::find(bytes, b"\"blockReason\"").is_none()
}

/// Judges a whole `generateContent` reply.
pub fn judge_whole(body: &[u8]) -> Verdict {
    if surely_content(body) {
        return Verdict::Content;
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(value) => judge(std::slice::from_ref(&value), true),
        Err(_) => Verdict::Answered,
    }
}

/// How a stream is framed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// Server-sent events, `data: {…}` per event.
    Sse,
    /// A JSON array written element by element.
    JsonArray,
}

/// Judges a stream as its chunks arrive, parsing each complete event once.
pub struct StreamJudge {
    framing: Framing,
    buffer: Vec<u8>,
    parsed_to: usize,
    objects: Vec<Value>,
}

impl StreamJudge {
    /// A judge for a stream framed as `framing`.
    pub fn new(framing: Framing) -> Self {
        Self { framing, buffer: Vec::new(), parsed_to: 0, objects: Vec::new() }
    }

    /// Adds a chunk; the verdict so far.
    pub fn push(&mut self, chunk: &[u8]) -> Verdict {
        if self.buffer.is_empty() && surely_content(chunk) {
            return Verdict::Content;
        }
        self.buffer.extend_from_slice(chunk);
        self.parse_complete();
        judge(&self.objects, false)
    }

    /// The verdict once the stream has ended.
    pub fn end(&mut self) -> Verdict {
        self.parse_complete();
        judge(&self.objects, true)
    }

    fn parse_complete(&mut self) {
        match self.framing {
            Framing::Sse => self.parse_events(),
            Framing::JsonArray => self.parse_elements(),
        }
    }

    fn parse_events(&mut self) {
        while let Some((end, separator)) = find_event_end(&self.buffer[self.parsed_to..]) {
            let event = &self.buffer[self.parsed_to..self.parsed_to + end];
            for line in event.split(|&b| b == b'\n') {
                let line = line.strip_suffix(b"\r").unwrap_or(line);
                if let Some(data) = line.strip_prefix(b"data:")
                    && let Ok(value) = serde_json::from_slice::<Value>(data)
                {
                    self.objects.push(value);
                }
            }
            self.parsed_to += end + separator;
        }
    }

    fn parse_elements(&mut self) {
        loop {
            let rest = &self.buffer[self.parsed_to..];
            let skip = rest.iter().take_while(|b| b.is_ascii_whitespace() || matches!(b, b'[' | b',' | b']')).count();
            let mut elements = serde_json::Deserializer::from_slice(&rest[skip..]).into_iter::<Value>();
            match elements.next() {
                Some(Ok(value)) => {
                    let used = skip + elements.byte_offset();
                    self.objects.push(value);
                    self.parsed_to += used;
                }
                _ => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EMPTY: &str = r#"{"candidates":[{"content":{"role":"model"},"finishReason":"STOP","index":0}]}"#;
    const TEXT: &str = r#"{"candidates":[{"content":{"parts":[{"text":"Hi"}],"role":"model"},"index":0}]}"#;
    const THOUGHT: &str = r#"{"candidates":[{"content":{"parts":[{"text":"hmm","thought":true}],"role":"model"}}]}"#;
    const EMPTY_PART: &str = r#"{"candidates":[{"content":{"parts":[{"text":""}],"role":"model"}}]}"#;
    const BLOCKED: &str = r#"{"promptFeedback":{"blockReason":"SAFETY"}}"#;
    const SAFETY: &str = r#"{"candidates":[{"content":{"role":"model"},"finishReason":"SAFETY"}]}"#;

    #[test]
    fn the_fast_path_never_calls_an_empty_reply_content() {
        for empty in [EMPTY, EMPTY_PART, BLOCKED, SAFETY, r#"{"candidates":[{"content":{"parts":[{"text" : ""}]}}]}"#] {
            assert!(!surely_has_content(empty.as_bytes()), "{empty}");
        }
        assert!(surely_has_content(TEXT.as_bytes()));
        assert!(surely_has_content(br#"{"parts":[{"text" :  "x"}]}"#));
        assert!(surely_has_content(br#"{"parts":[{"functionCall":{"name":"f"}}]}"#));
    }

    #[test]
    fn whole_replies() {
        assert_eq!(judge_whole(EMPTY.as_bytes()), Verdict::Empty(Some("STOP".into())));
        assert_eq!(judge_whole(TEXT.as_bytes()), Verdict::Content);
        assert_eq!(judge_whole(THOUGHT.as_bytes()), Verdict::Content);
        assert_eq!(judge_whole(BLOCKED.as_bytes()), Verdict::Answered);
        assert_eq!(judge_whole(SAFETY.as_bytes()), Verdict::Answered);
        assert_eq!(judge_whole(br#"{"totalTokens": 3}"#), Verdict::Answered, "not a generate reply");
        assert_eq!(judge_whole(b"not json"), Verdict::Answered);
    }

    #[test]
    fn sse_streams_are_judged_event_by_event_across_chunks() {
        let mut judge = StreamJudge::new(Framing::Sse);
        let stream = format!("data: {EMPTY_PART}\r\n\r\ndata: {TEXT}\r\n\r\n");
        // Split inside the second event, before its text.
        let (a, b) = stream.as_bytes().split_at(EMPTY_PART.len() + 20);
        assert_eq!(judge.push(a), Verdict::Undecided);
        assert_eq!(judge.push(b), Verdict::Content);
        let mut empty = StreamJudge::new(Framing::Sse);
        assert_eq!(empty.push(format!("data: {EMPTY}\n\n").as_bytes()), Verdict::Undecided);
        assert_eq!(empty.end(), Verdict::Empty(Some("STOP".into())));
    }

    #[test]
    fn json_array_streams_are_judged_element_by_element() {
        let mut judge = StreamJudge::new(Framing::JsonArray);
        let stream = format!("[{EMPTY_PART}\r\n,\r\n{TEXT}]");
        let (a, b) = stream.as_bytes().split_at(EMPTY_PART.len() + 10);
        assert_eq!(judge.push(a), Verdict::Undecided);
        assert_eq!(judge.push(b), Verdict::Content);
        let mut blocked = StreamJudge::new(Framing::JsonArray);
        assert_eq!(blocked.push(format!("[{BLOCKED}]").as_bytes()), Verdict::Answered);
        let mut empty = StreamJudge::new(Framing::JsonArray);
        empty.push(format!("[{EMPTY}]").as_bytes());
        assert_eq!(empty.end(), Verdict::Empty(Some("STOP".into())));
    }
}
