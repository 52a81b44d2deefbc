// What both codecs share: a text frame parsed into a JSON object, or the reason it was refused.
// Refusals are counted by the caller, never thrown: one bad frame must not end a call.

export type RejectReason = "binary" | "oversized" | "not_json" | "unknown_event" | "bad_shape";
export type Decoded<T> = { ok: true; frame: T } | { ok: false; reason: RejectReason; event?: string };
export type Json = Record<string, unknown>;

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

export function isObject(value: unknown): value is Json {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

export function parseObject(data: unknown, maxChars: number): Decoded<Json> {
  if (typeof data !== "string") return { ok: false, reason: "binary" };
  if (data.length > maxChars) return { ok: false, reason: "oversized" };
  let value: unknown;
  try {
    value = JSON.parse(data);
  } catch {
    return { ok: false, reason: "not_json" };
  }
  return isObject(value) ? { ok: true, frame: value } : { ok: false, reason: "bad_shape" };
}

/** Audio crosses the bridge as base64 text inside hand-built JSON: this check is what makes that safe. */
export function isBase64(text: string): boolean {
  return text.length % 4 === 0 && BASE64.test(text);
}

/** Bytes encoded by a base64 string, without decoding it. */
export function base64ByteLength(text: string): number {
  const padding = text.endsWith("==") ? 2 : text.endsWith("=") ? 1 : 0;
  return (text.length / 4) * 3 - padding;
}
