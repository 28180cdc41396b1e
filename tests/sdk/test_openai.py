"""The official openai Python SDK against gemgate, changed only in base URL."""

import json

import openai
import pytest

from conftest import CLIENT_KEY, fake_key

PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "unit": {"type": ["string", "null"], "enum": ["c", "f"]}},
            "required": ["city"],
            "additionalProperties": False,
        },
        "strict": True,
    },
}


def client(server, api_key=CLIENT_KEY, prefix="/v1"):
    return openai.OpenAI(api_key=api_key, base_url=server.base_url + prefix, max_retries=0)


def test_chat_completion(gemgate):
    server = gemgate([fake_key("ok", 1)])
    sdk = client(server)
    reply = sdk.chat.completions.create(
        model="gemini-2.5-flash",
        messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hello openai"}],
        temperature=0.2,
        max_tokens=100,
    )
    assert reply.object == "chat.completion"
    assert reply.choices[0].message.role == "assistant"
    assert reply.choices[0].message.content == "Hello from the fake gemini-2.5-flash. You said: hello openai"
    assert reply.choices[0].finish_reason == "stop"
    # The prompt counts the system message too, as Google counts the system instruction.
    assert reply.usage.prompt_tokens == 4 and reply.usage.total_tokens > reply.usage.prompt_tokens


def test_streaming_with_usage(gemgate):
    server = gemgate([fake_key("drip10", 1)])
    sdk = client(server, prefix="/openai/v1")
    chunks = list(
        sdk.chat.completions.create(
            model="gemini-2.5-pro",
            messages=[{"role": "user", "content": "stream it"}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Hello from the fake gemini-2.5-pro. You said: stream it"
    assert chunks[0].choices[0].delta.role == "assistant"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage.total_tokens > 0


def test_tool_call_round_trip(gemgate):
    server = gemgate([fake_key("ok", 1)])
    sdk = client(server)
    messages = [{"role": "user", "content": "What is the weather in Paris?"}]
    first = sdk.chat.completions.create(model="gemini-3-pro-preview", messages=messages, tools=[WEATHER_TOOL])
    call = first.choices[0].message.tool_calls[0]
    assert first.choices[0].finish_reason == "tool_calls"
    assert call.function.name == "get_weather" and json.loads(call.function.arguments) == {"city": "Paris"}
    messages.append(first.choices[0].message.model_dump(exclude_none=True))
    messages.append({"role": "tool", "tool_call_id": call.id, "content": json.dumps({"temp_c": 21})})
    # Gemini 3 refuses the second turn unless the thought signature came back.
    second = sdk.chat.completions.create(model="gemini-3-pro-preview", messages=messages, tools=[WEATHER_TOOL])
    assert second.choices[0].message.content == 'The tools said: get_weather returned {"temp_c":21}'


def test_streamed_tool_call_round_trip(gemgate):
    server = gemgate([fake_key("ok", 1)])
    sdk = client(server)
    messages = [{"role": "user", "content": "Weather in Paris?"}]
    stream = sdk.chat.completions.create(
        model="gemini-3-pro-preview", messages=messages, tools=[WEATHER_TOOL], tool_choice="required", stream=True
    )
    calls = {}
    finish = None
    for chunk in stream:
        for delta in chunk.choices[0].delta.tool_calls or []:
            entry = calls.setdefault(delta.index, {"id": "", "name": "", "arguments": ""})
            entry["id"] += delta.id or ""
            entry["name"] += delta.function.name or ""
            entry["arguments"] += delta.function.arguments or ""
        finish = chunk.choices[0].finish_reason or finish
    assert finish == "tool_calls" and calls[0]["name"] == "get_weather"
    assert json.loads(calls[0]["arguments"]) == {"city": "Paris"}
    messages.append({"role": "assistant", "tool_calls": [
        {"id": calls[0]["id"], "type": "function", "function": {"name": "get_weather", "arguments": calls[0]["arguments"]}}]})
    messages.append({"role": "tool", "tool_call_id": calls[0]["id"], "content": "sunny"})
    second = sdk.chat.completions.create(model="gemini-3-pro-preview", messages=messages, tools=[WEATHER_TOOL])
    assert "get_weather returned" in second.choices[0].message.content


def test_json_schema_output(gemgate):
    server = gemgate([fake_key("ok", 1)])
    reply = client(server).chat.completions.create(
        model="gemini-2.5-flash",
        messages=[{"role": "user", "content": "A city, please"}],
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "place", "strict": True, "schema": {
                "type": "object", "properties": {"city": {"type": "string"}, "population": {"type": "integer"}},
                "required": ["city", "population"], "additionalProperties": False}},
        },
    )
    assert json.loads(reply.choices[0].message.content) == {"city": "Paris", "population": 1}


def test_image_input(gemgate):
    server = gemgate([fake_key("ok", 1)])
    reply = client(server).chat.completions.create(
        model="gemini-2.5-flash",
        messages=[{"role": "user", "content": [
            {"type": "text", "text": "What is in this image?"},
            {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
        ]}],
    )
    assert "[attachments: image/png]" in reply.choices[0].message.content


def test_reasoning_content_when_thoughts_are_asked_for(gemgate):
    server = gemgate([fake_key("ok", 1)])
    reply = client(server).chat.completions.create(
        model="gemini-2.5-flash",
        messages=[{"role": "user", "content": "think"}],
        reasoning_effort="low",
        extra_body={"google": {"thinking_config": {"include_thoughts": True}}},
    )
    message = reply.choices[0].message
    assert message.model_extra["reasoning_content"] == "Thinking about: think"
    assert reply.usage.completion_tokens_details.reasoning_tokens == 3


def test_embeddings_and_models(gemgate):
    server = gemgate([fake_key("ok", 1)])
    sdk = client(server)
    result = sdk.embeddings.create(model="gemini-embedding-001", input=["one", "two"], dimensions=32)
    assert [len(d.embedding) for d in result.data] == [32, 32] and result.data[1].index == 1
    encoded = sdk.embeddings.create(model="text-embedding-004", input="three")
    assert len(encoded.data[0].embedding) == 768  # the SDK asks for base64 and decodes it
    ids = [m.id for m in sdk.models.list()]
    assert "gemini-2.5-flash" in ids and "gemini-embedding-001" in ids
    assert sdk.models.retrieve("gemini-2.5-pro").owned_by == "google"
    with pytest.raises(openai.NotFoundError):
        sdk.models.retrieve("gpt-9")


@pytest.mark.parametrize(
    "keys,api_key,kwargs,exception",
    [
        ([fake_key("ok", 1)], "wrong-client-key-0000000", {}, openai.AuthenticationError),
        ([fake_key("ok", 1)], CLIENT_KEY, {"temperature": 7}, openai.BadRequestError),
        ([fake_key("ok", 1)], CLIENT_KEY, {"model": "gemini-9-ultra"}, openai.NotFoundError),
        ([fake_key("rpm", 1)], CLIENT_KEY, {}, openai.RateLimitError),
        ([fake_key("invalid", 1)], CLIENT_KEY, {}, openai.InternalServerError),
        ([fake_key("blocked", 1)], CLIENT_KEY, {}, openai.BadRequestError),
    ],
    ids=["401", "400-bad-parameter", "404-unknown-model", "429-all-cooling", "503-all-dead", "400-blocked-prompt"],
)
def test_errors_raise_the_sdk_exception_classes(gemgate, keys, api_key, kwargs, exception):
    server = gemgate(keys)
    sdk = client(server, api_key)
    request = {"model": "gemini-2.5-flash", "messages": [{"role": "user", "content": "hi"}], **kwargs}
    with pytest.raises(exception) as raised:
        sdk.chat.completions.create(**request)
    assert raised.value.body["message"]


def test_empty_replies_are_retried_and_dead_keys_stay_invisible(gemgate):
    keys = [fake_key("empty", 1), fake_key("region", 2), fake_key("invalid", 3), fake_key("ok", 4)]
    sdk = client(gemgate(keys))
    for _ in range(4):
        reply = sdk.chat.completions.create(model="gemini-2.5-flash", messages=[{"role": "user", "content": "hi"}])
        assert reply.choices[0].message.content.startswith("Hello")
        stream = sdk.chat.completions.create(
            model="gemini-2.5-flash", messages=[{"role": "user", "content": "hi"}], stream=True
        )
        assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices).startswith("Hello")


def test_a_foreign_tool_call_history_continues_on_gemini_3(gemgate):
    sdk = client(gemgate([fake_key("ok", 1)]))
    reply = sdk.chat.completions.create(
        model="gemini-3-pro-preview",
        messages=[
            {"role": "user", "content": "Weather in Paris?"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {"id": "toolu_elsewhere", "type": "function",
                     "function": {"name": "get_weather", "arguments": json.dumps({"city": "Paris"})}}
                ],
            },
            {"role": "tool", "tool_call_id": "toolu_elsewhere", "content": json.dumps({"temp": 21})},
        ],
        tools=[WEATHER_TOOL],
    )
    assert "The tools said" in reply.choices[0].message.content


def test_responses_text_streamed_and_not(gemgate):
    server = gemgate([fake_key("ok", 1)])
    sdk = client(server)
    reply = sdk.responses.create(model="gemini-2.5-flash", instructions="Be brief.", input="hello responses")
    assert reply.object == "response" and reply.status == "completed"
    assert reply.output_text == "Hello from the fake gemini-2.5-flash. You said: hello responses"
    assert reply.usage.input_tokens > 0 and reply.usage.total_tokens >= reply.usage.output_tokens
    events = list(sdk.responses.create(model="gemini-2.5-flash", input="stream responses", stream=True))
    kinds = [e.type for e in events]
    assert kinds[:2] == ["response.created", "response.in_progress"] and kinds[-1] == "response.completed", kinds
    assert [e.sequence_number for e in events] == list(range(len(events)))
    deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert deltas == "Hello from the fake gemini-2.5-flash. You said: stream responses"
    assert events[-1].response.output_text == deltas


@pytest.mark.parametrize("stream", [False, True])
def test_responses_tool_round_trip_with_reasoning_on_gemini_3(gemgate, stream):
    server = gemgate([fake_key("ok", 1)])
    sdk = client(server)
    tool = {"type": "function", "name": "get_weather", "parameters": WEATHER_TOOL["function"]["parameters"]}
    args = dict(model="gemini-3-pro-preview", tools=[tool], reasoning={"effort": "high", "summary": "auto"},
                include=["reasoning.encrypted_content"], store=False)
    ask = [{"role": "user", "content": "weather in Paris?"}]
    if stream:
        with sdk.responses.stream(input=ask, **args) as events:
            first = events.get_final_response()
    else:
        first = sdk.responses.create(input=ask, **args)
    kinds = [item.type for item in first.output]
    assert kinds[-1] == "function_call" and "reasoning" in kinds, kinds
    call = first.output[-1]
    assert call.name == "get_weather" and json.loads(call.arguments)["city"] == "Paris"
    # Codex's way: store false, the whole history sent back, reasoning items
    # (carrying the signature) included; Gemini 3 refuses a call without it.
    history = ask + [item.model_dump(exclude_none=True) for item in first.output]
    history.append({"type": "function_call_output", "call_id": call.call_id, "output": "18C"})
    second = sdk.responses.create(input=history, **args)
    assert second.output_text == 'The tools said: get_weather returned {"output":"18C"}'


def test_responses_previous_response_id_continues_and_stays_with_its_client(gemgate):
    other_key = "sdk-other-client-key-0123456789"
    server = gemgate([fake_key("ok", 1)], GEMGATE_AUTH__CLIENT_KEYS=f"{CLIENT_KEY},{other_key}")
    sdk = client(server)
    first = sdk.responses.create(model="gemini-2.5-flash", input="first turn")
    second = sdk.responses.create(model="gemini-2.5-flash", previous_response_id=first.id, input="second turn")
    assert second.previous_response_id == first.id
    assert second.output_text == "Hello from the fake gemini-2.5-flash. You said: second turn"
    # The history went upstream: the fake counts its prompt's words.
    assert second.usage.input_tokens > first.usage.input_tokens
    assert sdk.responses.retrieve(second.id).output_text == second.output_text
    streamed = list(sdk.responses.create(model="gemini-2.5-flash", previous_response_id=second.id,
                                         input="third turn", stream=True))
    third = streamed[-1].response
    assert sdk.responses.retrieve(third.id).id == third.id, "a streamed response is kept too"
    stranger = client(server, api_key=other_key)
    with pytest.raises(openai.BadRequestError) as refused:
        stranger.responses.create(model="gemini-2.5-flash", previous_response_id=first.id, input="mine now?")
    assert refused.value.code == "previous_response_not_found"
    with pytest.raises(openai.NotFoundError):
        stranger.responses.retrieve(first.id)
    unkept = sdk.responses.create(model="gemini-2.5-flash", input="forget me", store=False)
    with pytest.raises(openai.NotFoundError):
        sdk.responses.retrieve(unkept.id)
    sdk.responses.delete(first.id)
    with pytest.raises(openai.BadRequestError):
        sdk.responses.create(model="gemini-2.5-flash", previous_response_id=first.id, input="gone?")


def test_images_on_a_gemini_image_model(gemgate):
    import base64

    server = gemgate([fake_key("ok", 1)])
    sdk = client(server)
    made = sdk.images.generate(model="gpt-image-1", prompt="a red bicycle", size="1536x1024",
                               response_format="b64_json")
    image = base64.b64decode(made.data[0].b64_json)
    assert image.startswith(b"\x89PNG\r\n\x1a\n"), image[:8]
    assert made.data[0].revised_prompt == "Here is a red bicycle"
    with pytest.raises(openai.BadRequestError):
        sdk.images.generate(model="gemini-2.5-flash-image", prompt="two bicycles", n=2)
    with pytest.raises(openai.BadRequestError):
        # Google refuses image output from a text model; its 400 reaches the client.
        sdk.images.generate(model="gemini-2.5-flash", prompt="a bicycle")


def test_speech_on_a_gemini_tts_model_as_wav_and_pcm(gemgate):
    server = gemgate([fake_key("ok", 1)])
    sdk = client(server)
    words = "hello there from the speech endpoint"
    wav = sdk.audio.speech.create(model="tts-1", voice="alloy", input=words, response_format="wav").read()
    pcm = sdk.audio.speech.create(model="gemini-2.5-flash-preview-tts", voice="Puck", input=words,
                                  response_format="pcm").read()
    assert wav[:4] == b"RIFF" and wav[8:12] == b"WAVE"
    assert int.from_bytes(wav[24:28], "little") == 24000, "Gemini's rate, read from its MIME type"
    # The fake speaks 0.1 s (2,400 samples of 2 bytes) per word.
    assert len(pcm) == 6 * 2400 * 2
    assert wav[44:] == pcm, "the same audio behind a RIFF header"
    with pytest.raises(openai.BadRequestError) as refused:
        sdk.audio.speech.create(model="tts-1", voice="alloy", input=words, response_format="mp3")
    assert "wav or pcm" in refused.value.message
