import assert from "node:assert/strict";

import { readCappedText } from "./request_body.ts";

/** A body of `total` bytes produced only as the reader pulls, counting what was pulled. */
function lazyBody(total: number, chunk = 64 * 1024) {
  const pulled = { bytes: 0 };
  const stream = new ReadableStream<Uint8Array>({
    pull(controller) {
      if (pulled.bytes >= total) return controller.close();
      const size = Math.min(chunk, total - pulled.bytes);
      pulled.bytes += size;
      controller.enqueue(new Uint8Array(size).fill(0x61));
    },
  });
  return { stream, pulled };
}

function post(body: BodyInit | null, headers: Record<string, string> = {}): Request {
  return new Request("http://localhost/twilio-voice", { method: "POST", body, headers });
}

Deno.test("a body within the cap is read whole", async () => {
  assert.deepEqual(await readCappedText(post("CallSid=CA1&To=%2B1"), 64, 1000), {
    kind: "ok",
    text: "CallSid=CA1&To=%2B1",
  });
  assert.deepEqual(await readCappedText(post("x".repeat(64)), 64, 1000), {
    kind: "ok",
    text: "x".repeat(64),
  });
});

Deno.test("a declared Content-Length over the cap is refused without reading", async () => {
  const { stream, pulled } = lazyBody(1024 * 1024);
  const request = post(stream, { "content-length": String(1024 * 1024) });
  assert.deepEqual(await readCappedText(request, 64 * 1024, 1000), { kind: "too_large" });
  assert(pulled.bytes <= 64 * 1024, `pulled ${pulled.bytes} bytes`);
});

Deno.test("a chunked 400 MB body stops being read one chunk past the cap, and memory stays flat", async () => {
  const { stream, pulled } = lazyBody(400 * 1024 * 1024);
  const before = Deno.memoryUsage().rss;
  assert.deepEqual(await readCappedText(post(stream), 64 * 1024, 5000), { kind: "too_large" });
  const grown = Deno.memoryUsage().rss - before;
  // The stream pulls ahead of the reader by its high-water mark: a few chunks, never the body.
  assert(pulled.bytes <= 4 * 64 * 1024, `pulled ${pulled.bytes} bytes of 400 MB`);
  assert(grown < 5 * 1024 * 1024, `rss grew by ${grown} bytes`);
});

Deno.test("a body that drips slower than the deadline is abandoned", async () => {
  let timer: number | undefined;
  const stream = new ReadableStream<Uint8Array>({
    start(controller) {
      controller.enqueue(new TextEncoder().encode("CallSid="));
      timer = setTimeout(() => controller.close(), 5000);
    },
    cancel() {
      clearTimeout(timer);
    },
  });
  const started = performance.now();
  assert.deepEqual(await readCappedText(post(stream), 64 * 1024, 100), { kind: "timeout" });
  assert(performance.now() - started < 1000);
});
