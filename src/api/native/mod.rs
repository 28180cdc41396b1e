//! The native Gemini API (`/v1beta/…` and `/v1/…`), paths exactly as Google's,
//! so `google-genai` works with only its base URL changed. Bodies pass through
//! untouched; replies stream back chunk by chunk.

use super::AppState;
use super::intake::{Admitted, ClientError, Dialect, check_json, parse_json, resolve_model};
use crate::catalog::Catalog;
use crate::dispatch::{ProxyRequest, ProxyResponse, StreamMode};
use crate::upstream::UpstreamRequest;
use bytes::Bytes;
use poem::http::Method;
use poem::web::Data;
use poem::{Body, Request, Response, handler};
use std::sync::Arc;

pub mod errors;

/// What a native path asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NativeCall {
    /// `GET models`
    ListModels,
    /// `GET models/{model}`
    GetModel(String),
    /// `POST models/{model}:{action}`
    Action {
        /// The model.
        model: String,
        /// `generateContent`, `streamGenerateContent`, …
        action: String,
    },
}

/// Parses the part of the path after `/v1beta/` (or `/v1/`).
pub fn parse_native_path(method: &Method, tail: &str) -> Result<NativeCall, ClientError> {
    let error = |status, message: String| Err(ClientError::Route { status, message });
    let Some(rest) = tail.strip_prefix("models") else {
        let first = tail.split('/').next().unwrap_or_default();
        if ["files", "cachedContents", "tunedModels", "corpora", "batches"].contains(&first) {
            return error(
                404,
                format!("gemgate does not serve `{first}` yet: these resources belong to the project of one key."),
            );
        }
        return error(404, format!("gemgate: no such method: {tail}"));
    };
    if rest.is_empty() || rest == "/" {
        return if method == Method::GET {
            Ok(NativeCall::ListModels)
        } else {
            error(405, "use GET to list models".into())
        };
    }
    let Some(name) = rest.strip_prefix('/') else { return error(404, format!("gemgate: no such method: {tail}")) };
    let (model, action) = match name.split_once(':') {
        Some((model, action)) => (model, Some(action)),
        None => (name, None),
    };
    super::intake::check_model(model)?;
    match action {
        None if method == Method::GET => Ok(NativeCall::GetModel(model.to_string())),
        None => error(405, "use GET to read a model".into()),
        Some(action) if method == Method::POST && ACTIONS.contains(&action) => {
            Ok(NativeCall::Action { model: model.to_string(), action: action.to_string() })
        }
        Some(_) if method != Method::POST => error(405, "use POST for model methods".into()),
        Some(action) => {
            error(404, format!("gemgate does not serve the method `:{}`", action.chars().take(60).collect::<String>()))
        }
    }
}

/// The model methods gemgate serves: stateless calls any key can answer.
/// Long-running and batch calls (`predictLongRunning`, `batchGenerateContent`)
/// create resources that belong to one key and are refused until gemgate
/// pins them.
const ACTIONS: &[&str] =
    &["generateContent", "streamGenerateContent", "countTokens", "embedContent", "batchEmbedContents", "predict"];

/// The stream mode of a call from its action and query.
fn stream_mode(action: &str, query: &str) -> StreamMode {
    if action != "streamGenerateContent" {
        StreamMode::Whole
    } else if query.split('&').any(|pair| pair == "alt=sse") {
        StreamMode::Sse
    } else {
        StreamMode::JsonArray
    }
}

fn route_name(action: &str) -> &'static str {
    match action {
        "generateContent" => "generateContent",
        "streamGenerateContent" => "streamGenerateContent",
        "countTokens" => "countTokens",
        "embedContent" => "embedContent",
        "batchEmbedContents" => "batchEmbedContents",
        "predict" => "predict",
        _ => "other",
    }
}

/// Google's native dialect: paths as Google's, bodies passed through.
pub struct Native;

/// A native call and the framing of its reply.
pub struct Routed {
    /// `v1beta` or `v1`.
    version: &'static str,
    call: NativeCall,
    mode: StreamMode,
}

/// Serves every native path.
#[handler]
pub async fn native(request: &Request, body: Body, state: Data<&Arc<AppState>>) -> Response {
    super::intake::serve(&Native, request, body, &state).await
}

impl Dialect for Native {
    type Call = Routed;

    fn route(&self, request: &Request) -> Result<Routed, ClientError> {
        let path = request.uri().path();
        let (version, tail) = match path.strip_prefix("/v1beta/") {
            Some(tail) => ("v1beta", tail),
            None => ("v1", path.strip_prefix("/v1/").unwrap_or_default()),
        };
        let call = parse_native_path(request.method(), tail)?;
        let mode = match &call {
            NativeCall::Action { action, .. } => stream_mode(action, request.uri().query().unwrap_or_default()),
            _ => StreamMode::Whole,
        };
        Ok(Routed { version, call, mode })
    }

    async fn serve(
        &self,
        routed: &Routed,
        admitted: Admitted,
        request: &Request,
        state: &Arc<AppState>,
    ) -> Result<Response, ClientError> {
        let Routed { version, call, mode } = routed;
        let mut session = None;
        let (asked, route) = match call {
            NativeCall::ListModels => ("", "listModels"),
            NativeCall::GetModel(model) => (model.as_str(), "getModel"),
            NativeCall::Action { model, action } if action.contains("enerateContent") => {
                // Checks the body is JSON on the way.
                session = super::session::of_native_body(&admitted.body)?;
                (model.as_str(), route_name(action))
            }
            NativeCall::Action { model, action } => {
                check_json(&admitted.body)?;
                (model.as_str(), route_name(action))
            }
        };
        // One view of the rules for the whole request, even across a reload.
        let rules = state.rules.load_full();
        let resolved = if asked.is_empty() { None } else { Some(resolve_model(&rules.catalog, asked)?) };
        let model = resolved.as_ref().map_or(asked, |r| r.model.as_str());
        let pass = admitted.pass(asked, model).await?;
        let mut body = admitted.body;
        let variant = resolved.as_ref().and_then(|r| r.variant);
        if let NativeCall::Action { action, .. } = call
            && action.contains("enerateContent")
            && rules.reshapes(&pass.client, variant)
        {
            let mut json = parse_json(&body)?;
            rules.shape(&pass.client, model, variant, &mut json);
            body = Bytes::from(json.to_string());
        }
        let query = super::paths::native_upstream_query(request.uri().query().unwrap_or_default());
        // The path as gemgate understood it, not as the client spelled it.
        let tail = match call {
            NativeCall::ListModels => "models".to_string(),
            NativeCall::GetModel(_) => format!("models/{model}"),
            NativeCall::Action { action, .. } => format!("models/{model}:{action}"),
        };
        let path_and_query =
            if query.is_empty() { format!("/{version}/{tail}") } else { format!("/{version}/{tail}?{query}") };
        let proxy_request = ProxyRequest {
            upstream: UpstreamRequest {
                method: request.method().clone(),
                path_and_query,
                body,
                content_type: request.headers().get("content-type").cloned(),
                bearer: false,
            },
            model: Arc::from(model),
            mode: *mode,
            route,
            client: pass.client,
            charge: pass.charge,
            session: pass.session.or(session),
            request_id: pass.request_id,
        };
        let reply = state.dispatcher.dispatch(proxy_request).await?;
        if matches!(call, NativeCall::ListModels) && !rules.catalog.is_plain() {
            return list_through(reply, &rules.catalog).await;
        }
        let mode = *mode;
        Ok(super::relay_response(reply, move |cut| {
            errors::cut_frame(&cut.message, mode).ok_or_else(|| std::io::Error::other(cut.message))
        }))
    }

    fn render(&self, routed: Option<&Routed>, error: ClientError) -> Response {
        errors::render(error, routed.map_or(StreamMode::Whole, |r| r.mode))
    }
}

/// Google's list of models as this gemgate serves them (see `catalog`).
async fn list_through(reply: ProxyResponse, catalog: &Catalog) -> Result<Response, ClientError> {
    let bytes = super::collect_reply(reply.body).await?;
    let mut page = parse_json(&bytes).map_err(|_| ClientError::BadReply("the model list was not JSON".into()))?;
    catalog.rewrite_google_page(&mut page);
    Ok(Response::builder().content_type("application/json; charset=UTF-8").body(page.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(method: Method, tail: &str) -> Result<NativeCall, u16> {
        parse_native_path(&method, tail).map_err(|e| match e {
            ClientError::Route { status, .. } => status,
            ClientError::InvalidModel(_) => 400,
            _ => 500,
        })
    }

    #[test]
    fn native_paths() {
        assert_eq!(parse(Method::GET, "models"), Ok(NativeCall::ListModels));
        assert_eq!(parse(Method::GET, "models/gemini-2.5-flash"), Ok(NativeCall::GetModel("gemini-2.5-flash".into())));
        assert_eq!(
            parse(Method::POST, "models/gemini-2.5-flash:streamGenerateContent"),
            Ok(NativeCall::Action { model: "gemini-2.5-flash".into(), action: "streamGenerateContent".into() })
        );
        assert_eq!(parse(Method::POST, "models/bad model:generateContent"), Err(400));
        assert_eq!(parse(Method::POST, "models/x:"), Err(404));
        assert_eq!(parse(Method::POST, "models/x:batchGenerateContent"), Err(404));
        assert_eq!(parse(Method::GET, "models/.."), Err(400));
        assert_eq!(parse(Method::GET, "models/x:generateContent"), Err(405));
        assert_eq!(parse(Method::GET, "files"), Err(404));
        assert_eq!(parse(Method::GET, "whatever"), Err(404));
    }

    #[test]
    fn stream_modes() {
        assert_eq!(stream_mode("streamGenerateContent", "alt=sse"), StreamMode::Sse);
        assert_eq!(stream_mode("streamGenerateContent", ""), StreamMode::JsonArray);
        assert_eq!(stream_mode("generateContent", "alt=sse"), StreamMode::Whole);
    }
}
