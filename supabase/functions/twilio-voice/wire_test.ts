import assert from "node:assert/strict";
import { base64ByteLength, isBase64, parseObject } from "./wire.ts";

Deno.test("parseObject refuses binary, oversized, non-JSON and non-object frames", () => {
  assert.deepEqual(parseObject(new Uint8Array([1]), 100), { ok: false, reason: "binary" });
  assert.deepEqual(parseObject("x".repeat(101), 100), { ok: false, reason: "oversized" });
  assert.deepEqual(parseObject("{", 100), { ok: false, reason: "not_json" });
  assert.deepEqual(parseObject("[1]", 100), { ok: false, reason: "bad_shape" });
  assert.deepEqual(parseObject("null", 100), { ok: false, reason: "bad_shape" });
  assert.deepEqual(parseObject('{"a":1}', 100), { ok: true, frame: { a: 1 } });
});

Deno.test("isBase64 accepts only what is safe to splice into JSON", () => {
  assert.ok(isBase64("/w+A"));
  assert.ok(isBase64("AA=="));
  assert.ok(isBase64(""));
  assert.ok(!isBase64('AA"}'));
  assert.ok(!isBase64("AAA"));
  assert.ok(!isBase64("AA\\n"));
});

Deno.test("base64ByteLength matches the decoded size", () => {
  for (const size of [0, 1, 2, 3, 160, 161, 4799]) {
    const encoded = btoa(String.fromCharCode(...new Uint8Array(size)));
    assert.equal(base64ByteLength(encoded), size);
  }
});
