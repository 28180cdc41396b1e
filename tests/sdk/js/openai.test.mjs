// The official openai npm package against gemgate, changed only in base URL.
// Run by tests/sdk/test_openai_node.py, which starts the servers and sets
// GEMGATE_URL (healthy keys), GEMGATE_COOLING_URL (every key rate limited)
// and GEMGATE_KEY.
import assert from "node:assert/strict";
import { test } from "node:test";
import OpenAI from "openai";

const client = (url = process.env.GEMGATE_URL, apiKey = process.env.GEMGATE_KEY) =>
  new OpenAI({ apiKey, baseURL: `${url}/v1`, maxRetries: 0 });

const weatherTool = {
  type: "function",
  function: {
    name: "get_weather",
    parameters: { type: "object", properties: { city: { type: "string" } }, required: ["city"], additionalProperties: false },
  },
};

test("chat completion", async () => {
  const reply = await client().chat.completions.create({
    model: "gemini-2.5-flash",
    messages: [{ role: "user", content: "hello node" }],
  });
  assert.equal(reply.choices[0].message.content, "Hello from the fake gemini-2.5-flash. You said: hello node");
  assert.equal(reply.choices[0].finish_reason, "stop");
  assert.ok(reply.usage.total_tokens > 0);
});

test("streaming with usage", async () => {
  const stream = await client().chat.completions.create({
    model: "gemini-2.5-pro",
    messages: [{ role: "user", content: "stream node" }],
    stream: true,
    stream_options: { include_usage: true },
  });
  let text = "";
  let usage = null;
  for await (const chunk of stream) {
    text += chunk.choices[0]?.delta?.content ?? "";
    usage = chunk.usage ?? usage;
  }
  assert.equal(text, "Hello from the fake gemini-2.5-pro. You said: stream node");
  assert.ok(usage.total_tokens > 0);
});

test("tool call round trip with a thinking model", async () => {
  const sdk = client();
  const messages = [{ role: "user", content: "Weather in Paris?" }];
  const first = await sdk.chat.completions.create({ model: "gemini-3-pro-preview", messages, tools: [weatherTool] });
  const call = first.choices[0].message.tool_calls[0];
  assert.equal(first.choices[0].finish_reason, "tool_calls");
  assert.deepEqual(JSON.parse(call.function.arguments), { city: "Paris" });
  messages.push(first.choices[0].message, { role: "tool", tool_call_id: call.id, content: "18 degrees" });
  const second = await sdk.chat.completions.create({ model: "gemini-3-pro-preview", messages, tools: [weatherTool] });
  assert.match(second.choices[0].message.content, /get_weather returned/);
});

test("embeddings and models", async () => {
  const sdk = client();
  const embedded = await sdk.embeddings.create({ model: "gemini-embedding-001", input: ["a", "b"], dimensions: 4 });
  assert.deepEqual(embedded.data.map((d) => d.embedding.length), [4, 4]);
  const models = [];
  for await (const model of sdk.models.list()) models.push(model.id);
  assert.ok(models.includes("gemini-2.5-flash"));
});

test("errors raise the SDK's error classes", async () => {
  const request = { model: "gemini-2.5-flash", messages: [{ role: "user", content: "hi" }] };
  await assert.rejects(client(process.env.GEMGATE_URL, "wrong-client-key-000000").chat.completions.create(request), OpenAI.AuthenticationError);
  await assert.rejects(client().chat.completions.create({ ...request, temperature: "hot" }), OpenAI.BadRequestError);
  await assert.rejects(client(process.env.GEMGATE_COOLING_URL).chat.completions.create(request), OpenAI.RateLimitError);
});
