// The official openai npm package against localbox's /v1/responses: LOCALBOX_BASE_URL and
// LOCALBOX_API_KEY come from tests/responses/test_clients.py, which starts the server and
// scripts its upstream model for each call below, in order (so the tests run one by one):
// every call is answered by a python tool call running CODE, then by ANSWER.
import { test } from "node:test";
import assert from "node:assert/strict";
import OpenAI from "openai";

const client = new OpenAI({
  baseURL: process.env.LOCALBOX_BASE_URL,
  apiKey: process.env.LOCALBOX_API_KEY,
  maxRetries: 0,
});

const CODE = process.env.SCRIPTED_CODE;
const ANSWER = process.env.SCRIPTED_ANSWER;
const REQUEST = {
  model: "scripted-model",
  input: "What is the sum of the squares of 1 to 10? Use python.",
  tools: [{ type: "code_interpreter", container: { type: "auto" } }],
  include: ["code_interpreter_call.outputs"],
};

/** The texts of a response's output messages (response.output_text is only set by create). */
function messageText(response) {
  return response.output
    .filter((item) => item.type === "message")
    .flatMap((item) => item.content)
    .filter((part) => part.type === "output_text")
    .map((part) => part.text)
    .join("");
}

/** What two runs of the same script must agree on: item types, code, logs, text. */
function shape(response) {
  return {
    status: response.status,
    types: response.output.map((item) => item.type),
    code: response.output.filter((i) => i.type === "code_interpreter_call").map((i) => i.code),
    logs: response.output
      .filter((i) => i.type === "code_interpreter_call")
      .flatMap((i) => i.outputs ?? [])
      .map((o) => o.logs),
    text: messageText(response),
  };
}

function checkCodeCall(response) {
  const call = response.output.find((item) => item.type === "code_interpreter_call");
  assert.ok(call, `no code_interpreter_call in ${JSON.stringify(response.output)}`);
  assert.equal(call.status, "completed");
  assert.equal(call.code, CODE);
  assert.match(call.container_id, /^cntr_/);
  assert.deepEqual(call.outputs, [{ type: "logs", logs: "385\n" }]);
}

test("responses.stream with a code_interpreter tool, to finalResponse()", async () => {
  const stream = client.responses.stream(REQUEST);
  const types = [];
  let code = "";
  for await (const event of stream) {
    types.push(event.type);
    if (event.type === "response.code_interpreter_call_code.delta") code += event.delta;
  }
  const final = await stream.finalResponse();
  assert.equal(final.status, "completed");
  assert.deepEqual(
    final.output.map((item) => item.type),
    ["code_interpreter_call", "message"],
  );
  assert.equal(final.output_text, ANSWER);
  checkCodeCall(final);
  assert.equal(code, CODE);
  assert.equal(types[0], "response.created");
  assert.equal(types.at(-1), "response.completed");
  for (const kind of [
    "response.code_interpreter_call.in_progress",
    "response.code_interpreter_call_code.done",
    "response.code_interpreter_call.interpreting",
    "response.code_interpreter_call.completed",
    "response.output_text.delta",
  ]) {
    assert.ok(types.includes(kind), `${kind} missing from ${types.join(", ")}`);
  }
});

test("responses.create with stream: true, then the same script unstreamed", async () => {
  const stream = await client.responses.create({ ...REQUEST, stream: true });
  const types = [];
  let sequence = -1;
  let completed;
  for await (const event of stream) {
    types.push(event.type);
    assert.ok(event.sequence_number > sequence, `sequence_number went back at ${event.type}`);
    sequence = event.sequence_number;
    if (event.type === "response.completed") completed = event.response;
  }
  assert.ok(types.includes("response.code_interpreter_call_code.delta"), types.join(", "));
  assert.equal(types.at(-1), "response.completed");
  assert.ok(completed);
  checkCodeCall(completed);
  const streamedShape = shape(completed);

  const plain = await client.responses.create(REQUEST);
  assert.equal(plain.output_text, ANSWER);
  checkCodeCall(plain);
  assert.deepEqual(shape(plain), streamedShape);
  assert.deepEqual(streamedShape, {
    status: "completed",
    types: ["code_interpreter_call", "message"],
    code: [CODE],
    logs: ["385\n"],
    text: ANSWER,
  });

  const stored = await client.responses.retrieve(plain.id);
  assert.deepEqual(
    stored.output.map((item) => item.type),
    ["code_interpreter_call", "message"],
  );
});
