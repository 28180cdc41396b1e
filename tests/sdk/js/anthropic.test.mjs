// The official @anthropic-ai/sdk npm package against gemgate, changed only in
// base URL. Run by tests/sdk/test_openai_node.py, which starts the servers
// and sets GEMGATE_URL (healthy keys), GEMGATE_COOLING_URL (every key rate
// limited) and GEMGATE_KEY.
import assert from "node:assert/strict";
import { test } from "node:test";
import Anthropic from "@anthropic-ai/sdk";

const client = (url = process.env.GEMGATE_URL, apiKey = process.env.GEMGATE_KEY) =>
  new Anthropic({ apiKey, baseURL: url, maxRetries: 0 });

const weatherTool = {
  name: "get_weather",
  input_schema: { type: "object", properties: { city: { type: "string" } }, required: ["city"] },
};

test("a message", async () => {
  const reply = await client().messages.create({
    model: "claude-haiku-4-5",
    max_tokens: 100,
    messages: [{ role: "user", content: "hello node" }],
  });
  assert.equal(reply.content[0].text, "Hello from the fake gemini-2.5-flash-lite. You said: hello node");
  assert.equal(reply.stop_reason, "end_turn");
  assert.equal(reply.model, "claude-haiku-4-5");
});

test("a streamed message, accumulated by the SDK", async () => {
  const stream = client().messages.stream({
    model: "gemini-2.5-pro",
    max_tokens: 100,
    messages: [{ role: "user", content: "stream node" }],
  });
  const types = [];
  stream.on("streamEvent", (event) => types.push(event.type));
  const final = await stream.finalMessage();
  assert.equal(final.content[0].text, "Hello from the fake gemini-2.5-pro. You said: stream node");
  assert.equal(types[0], "message_start");
  assert.deepEqual(types.slice(-2), ["message_delta", "message_stop"]);
});

test("a tool round trip on gemini 3", async () => {
  const sdk = client();
  const messages = [{ role: "user", content: "Weather in Paris?" }];
  const first = await sdk.messages.create({ model: "gemini-3-pro-preview", max_tokens: 500, messages, tools: [weatherTool] });
  assert.equal(first.stop_reason, "tool_use");
  const call = first.content.find((block) => block.type === "tool_use");
  assert.deepEqual(call.input, { city: "Paris" });
  messages.push({ role: "assistant", content: first.content });
  messages.push({ role: "user", content: [{ type: "tool_result", tool_use_id: call.id, content: "18 degrees" }] });
  const second = await sdk.messages.create({ model: "gemini-3-pro-preview", max_tokens: 500, messages, tools: [weatherTool] });
  assert.match(second.content.at(-1).text, /get_weather returned/);
});

test("errors as the SDK's classes", async () => {
  const ask = { model: "claude-sonnet-4-5", max_tokens: 10, messages: [{ role: "user", content: "hi" }] };
  await assert.rejects(client(process.env.GEMGATE_URL, "wrong-key-000000000000").messages.create(ask), Anthropic.AuthenticationError);
  await assert.rejects(client(process.env.GEMGATE_COOLING_URL).messages.create(ask), (error) => error.status === 529);
});
