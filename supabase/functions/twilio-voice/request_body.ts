// Request bodies read with a byte cap while they stream in. Content-Length is only a claim (a
// chunked POST has none), so the cap is enforced on the bytes themselves and the reader is
// cancelled the moment it is passed: nothing beyond the cap is ever buffered, whoever sends it
// and before any signature is checked.

export type CappedBody =
  | { kind: "ok"; text: string }
  | { kind: "too_large" }
  | { kind: "timeout" };

/** `request` may be a Response too (a tool's answer): only its headers and body are read. */
export async function readCappedText(
  request: Pick<Request, "headers" | "body">,
  maxBytes: number,
  timeoutMs: number,
): Promise<CappedBody> {
  const declared = request.headers.get("content-length");
  if (declared !== null && Number(declared) > maxBytes) {
    await request.body?.cancel().catch(() => {});
    return { kind: "too_large" };
  }
  if (request.body === null) return { kind: "ok", text: "" };
  const reader = request.body.getReader();
  const chunks: Uint8Array[] = [];
  let received = 0;
  let timer: number | undefined;
  // A slow-drip sender holds a worker's connection; the whole body must arrive within timeoutMs.
  const deadline = new Promise<"timeout">((resolve) =>
    timer = setTimeout(() => resolve("timeout"), timeoutMs)
  );
  try {
    while (true) {
      const next = await Promise.race([reader.read(), deadline]);
      if (next === "timeout") {
        await reader.cancel().catch(() => {});
        return { kind: "timeout" };
      }
      if (next.done) break;
      received += next.value.byteLength;
      if (received > maxBytes) {
        await reader.cancel().catch(() => {});
        return { kind: "too_large" };
      }
      chunks.push(next.value);
    }
  } finally {
    clearTimeout(timer);
  }
  const body = new Uint8Array(received);
  let offset = 0;
  for (const chunk of chunks) {
    body.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return { kind: "ok", text: new TextDecoder().decode(body) };
}
