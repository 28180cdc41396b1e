//! OpenAI's media endpoints on Gemini models (`docs/agent-dialects.md` §4):
//! `/v1/images/generations` on a Gemini image model (`generateContent` with
//! an IMAGE modality) and `/v1/audio/speech` on a Gemini TTS model (AUDIO).
//! Gemini speaks raw PCM (s16le, mono, its rate in the MIME type), so speech
//! comes as `pcm` (the bytes as they are: OpenAI's `pcm` is the same 24 kHz
//! s16le mono) or `wav` (the same bytes behind a RIFF header); gemgate does
//! not transcode, so `mp3`, `opus`, `aac` and `flac` are a clear 400.

use super::TranslateError;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

type Result<T> = std::result::Result<T, TranslateError>;

/// Longest image prompt taken.
const MAX_PROMPT_CHARS: usize = 32_000;
/// Longest speech input taken (OpenAI's own limit).
const MAX_SPEECH_CHARS: usize = 4_096;

/// An image or speech request as a Gemini call.
#[derive(Clone, Debug, PartialEq)]
pub struct MediaRequest {
    /// The Gemini model (`default_model` when the client named an OpenAI one).
    pub model: String,
    /// The `generateContent` body.
    pub body: Value,
}

/// The Gemini model a media request names: its own when it names a Gemini
/// model, else `default_model` (for `dall-e-3`, `gpt-image-1`, `tts-1`…).
fn media_model(request: &Value, default_model: &str) -> String {
    match request.get("model").and_then(Value::as_str).map(super::model_id) {
        Some(model) if model.starts_with("gemini-") => model.to_string(),
        _ => default_model.to_string(),
    }
}

fn text<'a>(request: &'a Value, key: &str, max: usize) -> Result<&'a str> {
    match request.get(key).and_then(Value::as_str) {
        Some(text) if !text.trim().is_empty() && text.chars().count() <= max => Ok(text),
        Some(text) if !text.trim().is_empty() => {
            Err(TranslateError::invalid(key, format!("`{key}` is longer than {max} characters")))
        }
        _ => Err(TranslateError::invalid(key, format!("`{key}` is required and must be a non-empty string"))),
    }
}

/// `POST /v1/images/generations` → a `generateContent` body: `size` sets the
/// aspect ratio, `quality` hd or high the 2K size; one image per request.
pub fn image_request(request: &Value, default_model: &str) -> Result<MediaRequest> {
    let prompt = text(request, "prompt", MAX_PROMPT_CHARS)?;
    match request.get("n") {
        None | Some(Value::Null) => {}
        Some(n) if n.as_u64() == Some(1) => {}
        Some(_) => {
            return Err(TranslateError::invalid("n", "gemgate makes one image per request: send `n: 1` (or none)"));
        }
    }
    let aspect = match request.get("size").and_then(Value::as_str).unwrap_or("auto") {
        "1536x1024" => "3:2",
        "1024x1536" => "2:3",
        "1792x1024" => "16:9",
        "1024x1792" => "9:16",
        "auto" | "1024x1024" | "512x512" | "256x256" => "1:1",
        other => {
            return Err(TranslateError::invalid(
                "size",
                format!(
                    "size `{other}` is not supported: use 1024x1024, 1536x1024, 1024x1536, 1792x1024, 1024x1792 or auto"
                ),
            ));
        }
    };
    let mut image = json!({ "aspectRatio": aspect });
    if matches!(request.get("quality").and_then(Value::as_str), Some("hd" | "high")) {
        image["imageSize"] = json!("2K");
    }
    let body = json!({
        "contents": [{"role": "user", "parts": [{"text": prompt}]}],
        "generationConfig": {"responseModalities": ["TEXT", "IMAGE"], "imageConfig": image},
    });
    Ok(MediaRequest { model: media_model(request, default_model), body })
}

/// Whether the client asked for a URL (given as a `data:` URL) rather than `b64_json`.
pub fn wants_url(request: &Value) -> bool {
    request.get("response_format").and_then(Value::as_str) == Some("url")
}

/// A Gemini image reply → OpenAI's images response; a reply with no image
/// (refused, `NO_IMAGE`) is an error saying why.
pub fn image_response(reply: &Value, as_url: bool, created: u64) -> Result<Value> {
    let parts = reply.pointer("/candidates/0/content/parts").and_then(Value::as_array).cloned().unwrap_or_default();
    let said: Vec<&str> = parts.iter().filter_map(|p| p.get("text").and_then(Value::as_str)).collect();
    let images: Vec<Value> = parts
        .iter()
        .filter_map(|p| p.get("inlineData"))
        .filter(|d| d.get("mimeType").and_then(Value::as_str).is_some_and(|m| m.starts_with("image/")))
        .map(|d| {
            let (mime, data) = (d["mimeType"].as_str().unwrap_or("image/png"), d["data"].as_str().unwrap_or_default());
            let mut entry =
                if as_url { json!({"url": format!("data:{mime};base64,{data}")}) } else { json!({"b64_json": data}) };
            entry["revised_prompt"] = if said.is_empty() { Value::Null } else { json!(said.join("")) };
            entry
        })
        .collect();
    if images.is_empty() {
        let reason = reply
            .pointer("/candidates/0/finishReason")
            .or_else(|| reply.pointer("/promptFeedback/blockReason"))
            .and_then(Value::as_str)
            .unwrap_or("no image");
        return Err(TranslateError::invalid("prompt", format!("Gemini made no image ({reason}): {}", said.join("")))
            .with_code("image_generation_failed"));
    }
    Ok(json!({"created": created, "data": images}))
}

/// An audio format gemgate can answer speech in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AudioFormat {
    /// The PCM behind a RIFF header (the default: every player takes it).
    Wav,
    /// Raw s16le mono PCM, as Gemini sends it.
    Pcm,
}

impl AudioFormat {
    /// Its `Content-Type`.
    pub fn content_type(self) -> &'static str {
        match self {
            AudioFormat::Wav => "audio/wav",
            AudioFormat::Pcm => "audio/pcm",
        }
    }
}

/// OpenAI voices → Gemini's prebuilt voices (a Gemini voice name passes as is).
const VOICES: &[(&str, &str)] = &[
    ("alloy", "Kore"),
    ("ash", "Puck"),
    ("ballad", "Sulafat"),
    ("coral", "Aoede"),
    ("echo", "Charon"),
    ("fable", "Fenrir"),
    ("nova", "Leda"),
    ("onyx", "Orus"),
    ("sage", "Zephyr"),
    ("shimmer", "Callirrhoe"),
    ("verse", "Iapetus"),
];

/// `POST /v1/audio/speech` → a `generateContent` body for a TTS model, and
/// the format to answer in. `instructions` and `speed` become a short
/// direction before the text (Gemini takes style in the prompt).
pub fn speech_request(request: &Value, default_model: &str) -> Result<(MediaRequest, AudioFormat)> {
    let input = text(request, "input", MAX_SPEECH_CHARS)?;
    let format = match request.get("response_format").and_then(Value::as_str) {
        None | Some("wav") => AudioFormat::Wav,
        Some("pcm") => AudioFormat::Pcm,
        Some(other) => {
            return Err(TranslateError::invalid(
                "response_format",
                format!("response_format `{other}` needs transcoding, which gemgate does not do: use wav or pcm"),
            )
            .with_code("unsupported_value"));
        }
    };
    let voice = match request.get("voice") {
        Some(Value::String(voice)) => voice.as_str(),
        Some(Value::Object(voice)) => voice.get("id").and_then(Value::as_str).unwrap_or_default(),
        _ => return Err(TranslateError::invalid("voice", "`voice` is required")),
    };
    let voice = VOICES.iter().find(|(openai, _)| *openai == voice).map_or(voice, |(_, gemini)| gemini);
    if voice.is_empty() || voice.len() > 64 || !voice.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(TranslateError::invalid("voice", "`voice` must be an OpenAI voice or a Gemini voice name"));
    }
    let mut direction = Vec::new();
    if let Some(instructions) = request.get("instructions").and_then(Value::as_str).filter(|i| !i.trim().is_empty()) {
        direction.push(instructions.chars().take(MAX_SPEECH_CHARS).collect::<String>());
    }
    match request.get("speed").and_then(Value::as_f64) {
        Some(speed) if !(0.25..=4.0).contains(&speed) => {
            return Err(TranslateError::invalid("speed", "`speed` must be from 0.25 to 4"));
        }
        Some(speed) if speed < 0.9 => direction.push("speak slowly".into()),
        Some(speed) if speed > 1.1 => direction.push("speak quickly".into()),
        _ => {}
    }
    let spoken = if direction.is_empty() { input.to_string() } else { format!("{}: {input}", direction.join(", ")) };
    let body = json!({
        "contents": [{"role": "user", "parts": [{"text": spoken}]}],
        "generationConfig": {"responseModalities": ["AUDIO"],
            "speechConfig": {"voiceConfig": {"prebuiltVoiceConfig": {"voiceName": voice}}}},
    });
    Ok((MediaRequest { model: media_model(request, default_model), body }, format))
}

/// The audio of a Gemini TTS reply in `format`.
pub fn speech_audio(reply: &Value, format: AudioFormat) -> Result<Vec<u8>> {
    let data = reply
        .pointer("/candidates/0/content/parts")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|p| p.get("inlineData"))
        .find(|d| d.get("mimeType").and_then(Value::as_str).is_some_and(|m| m.starts_with("audio/")));
    let Some(data) = data else {
        let reason = reply.pointer("/candidates/0/finishReason").and_then(Value::as_str).unwrap_or("no audio");
        return Err(TranslateError::invalid("input", format!("Gemini made no audio ({reason})")));
    };
    let mime = data["mimeType"].as_str().unwrap_or_default().to_ascii_lowercase();
    if !mime.starts_with("audio/l16") && !mime.starts_with("audio/pcm") {
        return Err(TranslateError::invalid("model", format!("Gemini answered {mime}, which gemgate cannot convert")));
    }
    let rate: u32 = mime
        .split(';')
        .find_map(|p| p.trim().strip_prefix("rate="))
        .and_then(|r| r.parse().ok())
        .filter(|r| (8_000..=192_000).contains(r))
        .unwrap_or(24_000);
    let pcm = STANDARD
        .decode(data["data"].as_str().unwrap_or_default())
        .map_err(|_| TranslateError::invalid("model", "Gemini's audio was not base64"))?;
    Ok(match format {
        AudioFormat::Pcm => pcm,
        AudioFormat::Wav => wav(&pcm, rate),
    })
}

/// 16-bit mono PCM at `rate` behind a 44-byte RIFF/WAVE header.
fn wav(pcm: &[u8], rate: u32) -> Vec<u8> {
    let length = u32::try_from(pcm.len()).unwrap_or(u32::MAX - 36);
    let mut out = Vec::with_capacity(44 + pcm.len());
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + length).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes()); // fmt chunk size
    out.extend_from_slice(&1u16.to_le_bytes()); // PCM
    out.extend_from_slice(&1u16.to_le_bytes()); // mono
    out.extend_from_slice(&rate.to_le_bytes());
    out.extend_from_slice(&(rate * 2).to_le_bytes()); // bytes per second
    out.extend_from_slice(&2u16.to_le_bytes()); // block align
    out.extend_from_slice(&16u16.to_le_bytes()); // bits per sample
    out.extend_from_slice(b"data");
    out.extend_from_slice(&length.to_le_bytes());
    out.extend_from_slice(pcm);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_map_size_quality_and_model_and_come_back_as_b64_or_data_urls() {
        let request =
            json!({"model": "gpt-image-1", "prompt": "a red bicycle", "size": "1536x1024", "quality": "high"});
        let made = image_request(&request, "gemini-2.5-flash-image").unwrap();
        assert_eq!(made.model, "gemini-2.5-flash-image");
        assert_eq!(made.body["generationConfig"]["imageConfig"], json!({"aspectRatio": "3:2", "imageSize": "2K"}));
        assert_eq!(
            image_request(&json!({"model": "gemini-3-pro-image-preview", "prompt": "x"}), "d").unwrap().model,
            "gemini-3-pro-image-preview"
        );
        assert_eq!(image_request(&json!({"prompt": "x", "n": 2}), "d").unwrap_err().param.as_deref(), Some("n"));
        assert_eq!(
            image_request(&json!({"prompt": "x", "size": "7x7"}), "d").unwrap_err().param.as_deref(),
            Some("size")
        );
        assert_eq!(image_request(&json!({"prompt": ""}), "d").unwrap_err().param.as_deref(), Some("prompt"));
        let reply = json!({"candidates": [{"content": {"parts": [{"text": "Here"},
            {"inlineData": {"mimeType": "image/png", "data": "iVBOR"}}]}, "finishReason": "STOP"}]});
        let out = image_response(&reply, false, 7).unwrap();
        assert_eq!(out, json!({"created": 7, "data": [{"b64_json": "iVBOR", "revised_prompt": "Here"}]}));
        assert_eq!(image_response(&reply, true, 7).unwrap()["data"][0]["url"], "data:image/png;base64,iVBOR");
        let refused =
            json!({"candidates": [{"content": {"parts": [{"text": "I can't."}]}, "finishReason": "IMAGE_SAFETY"}]});
        assert!(image_response(&refused, false, 7).unwrap_err().message.contains("IMAGE_SAFETY"));
    }

    #[test]
    fn speech_maps_voices_and_formats_and_wraps_pcm_in_wav() {
        let (made, format) = speech_request(
            &json!({"model": "tts-1", "input": "hi", "voice": "alloy", "speed": 2.0}),
            "gemini-2.5-flash-preview-tts",
        )
        .unwrap();
        assert_eq!((made.model.as_str(), format), ("gemini-2.5-flash-preview-tts", AudioFormat::Wav));
        assert_eq!(
            made.body["generationConfig"]["speechConfig"]["voiceConfig"]["prebuiltVoiceConfig"]["voiceName"],
            "Kore"
        );
        assert_eq!(made.body["contents"][0]["parts"][0]["text"], "speak quickly: hi");
        let gemini_voice = json!({"input": "hi", "voice": "Puck", "response_format": "pcm"});
        assert_eq!(speech_request(&gemini_voice, "d").unwrap().1, AudioFormat::Pcm);
        let mp3 = json!({"input": "hi", "voice": "alloy", "response_format": "mp3"});
        assert_eq!(speech_request(&mp3, "d").unwrap_err().code, Some("unsupported_value"));
        let pcm = vec![1u8, 2, 3, 4];
        let reply = json!({"candidates": [{"content": {"parts": [{"inlineData":
            {"mimeType": "audio/L16;codec=pcm;rate=24000", "data": STANDARD.encode(&pcm)}}]}}]});
        assert_eq!(speech_audio(&reply, AudioFormat::Pcm).unwrap(), pcm);
        let wav = speech_audio(&reply, AudioFormat::Wav).unwrap();
        assert_eq!(&wav[..4], b"RIFF");
        assert_eq!(&wav[8..16], b"WAVEfmt ");
        assert_eq!(u32::from_le_bytes([wav[24], wav[25], wav[26], wav[27]]), 24_000);
        assert_eq!(u32::from_le_bytes([wav[40], wav[41], wav[42], wav[43]]), 4);
        assert_eq!(&wav[44..], &pcm[..]);
    }
}
