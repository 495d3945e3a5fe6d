// The official openai npm package against a running localbox: LOCALBOX_BASE_URL and
// LOCALBOX_API_KEY come from tests/clients/test_node.py, which starts the server.
import { test } from "node:test";
import assert from "node:assert/strict";
import OpenAI, { toFile } from "openai";

const client = new OpenAI({
  baseURL: process.env.LOCALBOX_BASE_URL,
  apiKey: process.env.LOCALBOX_API_KEY,
  maxRetries: 0,
});

test("containers and files through openai-node", async () => {
  const container = await client.containers.create({
    name: "node-client",
    expires_after: { anchor: "last_active_at", minutes: 60 },
  });
  assert.match(container.id, /^cntr_[0-9a-f]{48}$/);
  assert.equal(container.status, "running");

  const retrieved = await client.containers.retrieve(container.id);
  assert.equal(retrieved.name, "node-client");
  assert.equal(retrieved.expires_after.minutes, 60);

  const seen = [];
  for await (const c of client.containers.list({ order: "desc", limit: 2 })) {
    seen.push(c.id);
  }
  assert.ok(seen.includes(container.id));

  const text = "a,b\n1,2\n";
  const csv = await client.containers.files.create(container.id, {
    file: await toFile(Buffer.from(text), "data.csv", { type: "text/csv" }),
  });
  assert.equal(csv.path, "/mnt/data/data.csv");
  assert.equal(csv.bytes, text.length);
  assert.equal(csv.source, "user");

  const binary = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
  const bin = await client.containers.files.create(container.id, {
    file: await toFile(binary, "bytes.bin"),
  });

  const paths = [];
  for await (const f of client.containers.files.list(container.id, { limit: 1 })) {
    paths.push(f.path);
  }
  assert.deepEqual(paths.sort(), ["/mnt/data/bytes.bin", "/mnt/data/data.csv"]);

  const asText = await client.containers.files.content.retrieve(csv.id, {
    container_id: container.id,
  });
  assert.equal(await asText.text(), text);
  const asBytes = await client.containers.files.content.retrieve(bin.id, {
    container_id: container.id,
  });
  assert.deepEqual(Buffer.from(await asBytes.arrayBuffer()), binary);

  const got = await client.containers.files.retrieve(csv.id, { container_id: container.id });
  assert.equal(got.id, csv.id);

  await client.containers.files.delete(csv.id, { container_id: container.id });
  await assert.rejects(
    client.containers.files.retrieve(csv.id, { container_id: container.id }),
    (err) => err instanceof OpenAI.NotFoundError,
  );

  await client.containers.delete(container.id);
  await assert.rejects(
    client.containers.retrieve(container.id),
    (err) => err instanceof OpenAI.NotFoundError && err.status === 404,
  );
});

test("errors surface as the SDK's classes", async () => {
  await assert.rejects(
    client.containers.create({ name: "bad", memory_limit: "2g" }),
    (err) => err instanceof OpenAI.BadRequestError && err.param === "memory_limit",
  );
});
