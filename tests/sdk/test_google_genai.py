"""The official google-genai SDK against gemgate, changed only in base URL."""

import json
import urllib.request

import pytest
from google import genai
from google.genai import errors, types

from conftest import CLIENT_KEY, fake_key


def client(server, api_key=CLIENT_KEY):
    return genai.Client(api_key=api_key, http_options=types.HttpOptions(base_url=server.base_url))


def test_generate_count_tokens_embed_and_models(gemgate):
    server = gemgate([fake_key("ok", 1), fake_key("ok", 2)])
    sdk = client(server)

    reply = sdk.models.generate_content(model="gemini-2.5-flash", contents="hello from the sdk")
    assert reply.text == "Hello from the fake gemini-2.5-flash. You said: hello from the sdk"
    assert reply.usage_metadata.prompt_token_count == 4
    assert reply.candidates[0].finish_reason == types.FinishReason.STOP

    assert sdk.models.count_tokens(model="gemini-2.5-flash", contents="one two three").total_tokens == 3

    embedded = sdk.models.embed_content(
        model="gemini-embedding-001",
        contents=["first", "second"],
        config=types.EmbedContentConfig(output_dimensionality=16),
    )
    assert [len(e.values) for e in embedded.embeddings] == [16, 16]

    names = [m.name for m in sdk.models.list()]
    assert "models/gemini-2.5-pro" in names and "models/text-embedding-004" in names
    assert sdk.models.get(model="gemini-2.5-pro").display_name == "Gemini 2.5 Pro"


def test_sse_stream_through_the_sdk(gemgate):
    server = gemgate([fake_key("drip20", 1)])
    sdk = client(server)  # the SDK closes its HTTP client when the Client is collected
    chunks = list(sdk.models.generate_content_stream(model="gemini-2.5-pro", contents="stream please"))
    assert len(chunks) == 3
    assert "".join(c.text for c in chunks) == "Hello from the fake gemini-2.5-pro. You said: stream please"
    assert chunks[-1].usage_metadata.total_token_count > 0


def test_json_array_stream_without_alt_sse(gemgate):
    server = gemgate([fake_key("ok", 1)])
    request = urllib.request.Request(
        f"{server.base_url}/v1beta/models/gemini-2.5-flash:streamGenerateContent",
        data=json.dumps({"contents": [{"parts": [{"text": "array"}]}]}).encode(),
        headers={"x-goog-api-key": CLIENT_KEY, "content-type": "application/json"},
    )
    with urllib.request.urlopen(request) as response:
        events = json.loads(response.read())
    assert len(events) == 3 and events[-1]["candidates"][0]["finishReason"] == "STOP"


def test_failover_is_invisible_to_the_sdk(gemgate):
    server = gemgate([fake_key("rpm", 1), fake_key("internal", 2), fake_key("invalid", 3), fake_key("ok", 4)])
    sdk = client(server)
    for _ in range(6):
        assert sdk.models.generate_content(model="gemini-2.5-flash", contents="hi").text.startswith("Hello")


@pytest.mark.parametrize(
    "keys,model,contents,api_key,code,exception",
    [
        ([fake_key("ok", 1)], "gemini-2.5-flash", "hi", "wrong-client-key-000000", 401, errors.ClientError),
        ([fake_key("ok", 1)], "gemini-9-ultra", "hi", CLIENT_KEY, 404, errors.ClientError),
        ([fake_key("rpm", 1)], "gemini-2.5-flash", "hi", CLIENT_KEY, 429, errors.ClientError),
        ([fake_key("invalid", 1)], "gemini-2.5-flash", "hi", CLIENT_KEY, 503, errors.ServerError),
        ([], "gemini-2.5-flash", "hi", CLIENT_KEY, 503, errors.ServerError),
    ],
    ids=["bad-client-key", "unknown-model", "all-keys-cooling", "all-keys-dead", "empty-pool"],
)
def test_errors_surface_as_the_sdk_exceptions(gemgate, keys, model, contents, api_key, code, exception):
    server = gemgate(keys)
    sdk = client(server, api_key)
    with pytest.raises(exception) as raised:
        sdk.models.generate_content(model=model, contents=contents)
    assert raised.value.code == code
    assert raised.value.message


def test_bad_request_is_a_400_client_error(gemgate):
    server = gemgate([fake_key("ok", 1)])
    sdk = client(server)
    with pytest.raises(errors.ClientError) as raised:
        sdk.models.generate_content(
            model="gemini-2.5-flash",
            contents="hi",
            config=types.GenerateContentConfig(
                thinking_config=types.ThinkingConfig(thinking_budget=128, thinking_level=types.ThinkingLevel.LOW)
            ),
        )
    assert raised.value.code == 400


DEAD_IN_SEVEN_WAYS = ["invalid", "denied", "region", "rpd", "rpm60", "invalid", "denied"]


def test_keys_own_failures_never_reach_the_sdk(gemgate):
    """Seven keys dead or resting in seven ways, one healthy: the SDK sees only successes."""
    keys = [fake_key(kind, n) for n, kind in enumerate(DEAD_IN_SEVEN_WAYS, start=1)] + [fake_key("ok", 8)]
    sdk = client(gemgate(keys))
    for _ in range(4):
        assert sdk.models.generate_content(model="gemini-2.5-flash", contents="hi").text.startswith("Hello")


def test_empty_replies_are_retried_for_the_sdk(gemgate):
    sdk = client(gemgate([fake_key("empty", 1), fake_key("ok", 2)]))
    for _ in range(2):
        assert sdk.models.generate_content(model="gemini-2.5-flash", contents="hi").text.startswith("Hello")
        streamed = "".join(c.text or "" for c in sdk.models.generate_content_stream(model="gemini-2.5-flash", contents="hi"))
        assert streamed.startswith("Hello")
