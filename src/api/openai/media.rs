//! OpenAI's media endpoints on Gemini: `POST /v1/images/generations` on an
//! image model and `POST /v1/audio/speech` on a TTS model, through the same
//! pool, limits and logs (`translate::media` says what maps how).

use crate::api::AppState;
use crate::api::intake::{Admitted, ClientError, check_model};
use crate::api::translated::{gemini_request, json_response, parse_reply};
use crate::catalog::Catalog;
use crate::dispatch::StreamMode;
use crate::translate::media::{MediaRequest, image_request, image_response, speech_audio, speech_request, wants_url};
use crate::translate::response::unix_now;
use poem::Response;
use serde_json::Value;
use std::sync::Arc;

/// Resolves the Gemini model in `catalog` and calls it.
async fn generate(
    media: MediaRequest,
    catalog: &Catalog,
    admitted: &Admitted,
    state: &Arc<AppState>,
    route: &'static str,
) -> Result<Value, ClientError> {
    let resolved = crate::api::intake::resolve_model(catalog, &media.model)?;
    check_model(&resolved.model)?;
    let pass = admitted.pass(&media.model, &resolved.model).await?;
    let proxied = gemini_request(&resolved.model, "generateContent", &media.body, StreamMode::Whole, route, pass);
    let reply = state.dispatcher.dispatch(proxied).await?;
    parse_reply(&crate::api::collect_reply(reply.body).await?)
}

/// `POST /v1/images/generations`.
pub async fn images(json: Value, admitted: &Admitted, state: &Arc<AppState>) -> Result<Response, ClientError> {
    // One view of the rules for the whole request, even across a reload.
    let rules = state.rules.load_full();
    let media = image_request(&json, &rules.openai.image_model)?;
    let reply = generate(media, &rules.catalog, admitted, state, "images.generations").await?;
    Ok(json_response(&image_response(&reply, wants_url(&json), unix_now())?))
}

/// `POST /v1/audio/speech`: the audio itself, not JSON.
pub async fn speech(json: Value, admitted: &Admitted, state: &Arc<AppState>) -> Result<Response, ClientError> {
    let rules = state.rules.load_full();
    let (media, format) = speech_request(&json, &rules.openai.speech_model)?;
    let reply = generate(media, &rules.catalog, admitted, state, "audio.speech").await?;
    let audio = speech_audio(&reply, format)?;
    Ok(Response::builder().content_type(format.content_type()).body(audio))
}
