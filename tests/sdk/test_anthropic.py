"""The official anthropic Python SDK against gemgate, changed only in base URL."""

import anthropic
import pytest

from conftest import CLIENT_KEY, fake_key

PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
WEATHER_TOOL = {
    "name": "get_weather",
    "description": "Weather for a city",
    "input_schema": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
        "additionalProperties": False,
    },
}

# The documented order of a streamed message's events (agent-dialects §1.7),
# with `ping` allowed anywhere.
BLOCK = ["content_block_start", "content_block_delta*", "content_block_stop"]


def client(server, api_key=CLIENT_KEY, prefix=""):
    return anthropic.Anthropic(api_key=api_key, base_url=server.base_url + prefix, max_retries=0)


def assert_documented_order(types):
    """message_start, then blocks (start, deltas, stop) one after another,
    then message_delta and message_stop."""
    types = [t for t in types if t != "ping"]
    assert types[0] == "message_start" and types[-2:] == ["message_delta", "message_stop"], types
    body = types[1:-2]
    assert body, "at least one block"
    i = 0
    while i < len(body):
        assert body[i] == "content_block_start", types
        i += 1
        while body[i] == "content_block_delta":
            i += 1
        assert body[i] == "content_block_stop", types
        i += 1


def test_a_message_with_system_and_turns(gemgate):
    server = gemgate([fake_key("ok", 1)])
    reply = client(server).messages.create(
        model="claude-sonnet-4-5-20250929",
        max_tokens=200,
        system="Be brief.",
        messages=[
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": "Hello."},
            {"role": "user", "content": [{"type": "text", "text": "hello anthropic"},
                                         {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}}]},
        ],
    )
    assert reply.type == "message" and reply.role == "assistant"
    assert reply.model == "claude-sonnet-4-5-20250929", "the model as asked for"
    assert reply.id.startswith("msg_")
    # Claude's Sonnet family maps to gemini-2.5-flash by default.
    assert reply.content[0].text == (
        "Hello from the fake gemini-2.5-flash. You said: hello anthropic [attachments: image/png]"
    )
    assert reply.stop_reason == "end_turn"
    assert reply.usage.input_tokens > 0 and reply.usage.output_tokens > 0
    assert reply.usage.cache_read_input_tokens == 0


def test_streaming_follows_the_documented_event_sequence(gemgate):
    server = gemgate([fake_key("drip10", 1)])
    sdk = client(server, prefix="/anthropic")
    events = list(sdk.messages.create(
        model="gemini-2.5-pro", max_tokens=300, stream=True,
        messages=[{"role": "user", "content": "stream it"}],
    ))
    assert_documented_order([e.type for e in events])
    text = "".join(e.delta.text for e in events if e.type == "content_block_delta" and e.delta.type == "text_delta")
    assert text == "Hello from the fake gemini-2.5-pro. You said: stream it"
    assert events[-2].delta.stop_reason == "end_turn"
    assert events[-2].usage.output_tokens > 0
    # The SDK's own accumulator agrees.
    with sdk.messages.stream(model="gemini-2.5-pro", max_tokens=300,
                             messages=[{"role": "user", "content": "stream it"}]) as stream:
        final = stream.get_final_message()
    assert final.content[0].text == text and final.stop_reason == "end_turn"


@pytest.mark.parametrize("stream", [False, True])
def test_a_tool_round_trip_on_gemini_3_keeps_signatures_and_call_ids(gemgate, stream):
    server = gemgate([fake_key("ok", 1)])
    sdk = client(server)
    ask = [{"role": "user", "content": "weather in Paris?"}]
    args = dict(model="gemini-3-pro-preview", max_tokens=1000, tools=[WEATHER_TOOL],
                thinking={"type": "enabled", "budget_tokens": 2048})
    if stream:
        with sdk.messages.stream(messages=ask, **args) as events:
            first = events.get_final_message()
    else:
        first = sdk.messages.create(messages=ask, **args)
    assert first.stop_reason == "tool_use"
    kinds = [block.type for block in first.content]
    assert kinds[-1] == "tool_use" and "thinking" in kinds, kinds
    call = first.content[-1]
    assert call.name == "get_weather" and call.input == {"city": "Paris"}
    assert call.id.startswith("toolu_")
    # The reply goes back as the SDK holds it: thinking blocks (carrying the
    # signature) and the call; Gemini 3 refuses a call without its signature
    # and a response naming no call.
    history = ask + [
        {"role": "assistant", "content": [block.model_dump(exclude_none=True) for block in first.content]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "18C and sunny"}]},
    ]
    second = sdk.messages.create(messages=history, **args)
    assert second.stop_reason == "end_turn"
    assert second.content[-1].text == 'The tools said: get_weather returned {"output":"18C and sunny"}'


def test_thinking_shows_thought_blocks(gemgate):
    server = gemgate([fake_key("ok", 1)])
    reply = client(server).messages.create(
        model="claude-opus-4-1", max_tokens=4000, thinking={"type": "enabled", "budget_tokens": 2048},
        messages=[{"role": "user", "content": "think hard"}],
    )
    assert reply.content[0].type == "thinking"
    assert reply.content[0].thinking == "Thinking about: think hard"
    assert reply.content[1].text == "Hello from the fake gemini-2.5-pro. You said: think hard"


def test_count_tokens(gemgate):
    server = gemgate([fake_key("ok", 1)])
    counted = client(server).messages.count_tokens(
        model="claude-haiku-4-5", system="Be brief.", messages=[{"role": "user", "content": "count these words"}],
    )
    assert counted.input_tokens > 0


@pytest.mark.parametrize(
    "keys,api_key,kwargs,exception",
    [
        ([fake_key("ok", 1)], "wrong-client-key-0000000", {}, anthropic.AuthenticationError),
        ([fake_key("ok", 1)], CLIENT_KEY, {"extra_body": {"temperature": 7}}, anthropic.BadRequestError),
        ([fake_key("ok", 1)], CLIENT_KEY, {"model": "gemini-9-ultra"}, anthropic.NotFoundError),
        ([fake_key("ok", 1)], CLIENT_KEY,
         {"tools": [{"type": "bash_20250124", "name": "bash"}], "tool_choice": {"type": "tool", "name": "bash"}},
         anthropic.BadRequestError),
        # Every key resting: Anthropic's overloaded, which Claude Code waits out.
        ([fake_key("rpm", 1)], CLIENT_KEY, {}, anthropic.OverloadedError),
        ([fake_key("invalid", 1)], CLIENT_KEY, {}, anthropic.InternalServerError),
    ],
)
def test_errors_raise_the_sdk_exception_classes(gemgate, keys, api_key, kwargs, exception):
    server = gemgate(keys)
    args = {"model": "claude-sonnet-4-5", "max_tokens": 100, "messages": [{"role": "user", "content": "hi"}]}
    args.update(kwargs)
    with pytest.raises(exception) as raised:
        client(server, api_key=api_key).messages.create(**args)
    body = raised.value.body
    assert body["type"] == "error" and body["error"]["message"], body


def test_a_stream_silent_upstream_gets_ping_events(gemgate):
    # Google silent for 1.5 s between chunks; keep-alives after 1 s.
    server = gemgate([fake_key("drip1500", 1)], GEMGATE_OPENAI__KEEPALIVE_SECS="1")
    import json
    import urllib.request

    request = {"model": "gemini-2.5-flash", "max_tokens": 50, "stream": True,
               "messages": [{"role": "user", "content": "slowly"}]}
    headers = {"x-api-key": CLIENT_KEY, "anthropic-version": "2023-06-01", "content-type": "application/json"}
    raw = urllib.request.Request(server.base_url + "/v1/messages", data=json.dumps(request).encode(), headers=headers)
    with urllib.request.urlopen(raw, timeout=30) as reply:
        body = reply.read().decode()
    assert "event: ping\ndata: {\"type\":\"ping\"}\n\n" in body
    assert body.rstrip().endswith('data: {"type":"message_stop"}')
    # The pings change nothing the SDK sees.
    with client(server).messages.stream(**{k: v for k, v in request.items() if k != "stream"}) as stream:
        assert stream.get_final_message().content[0].text.endswith("You said: slowly")
