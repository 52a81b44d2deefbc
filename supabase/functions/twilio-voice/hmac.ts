// HMAC-SHA256 as lower-case hex: the stream token (stream_token.ts) and the HTTP tool signature
// (tool_runner.ts) both sign with it, each over its own message and key.

const encoder = new TextEncoder();

export async function hmacSha256Hex(key: string, message: string): Promise<string> {
  const hmacKey = await crypto.subtle.importKey(
    "raw",
    encoder.encode(key),
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign"],
  );
  const mac = new Uint8Array(await crypto.subtle.sign("HMAC", hmacKey, encoder.encode(message)));
  return Array.from(mac, (byte) => byte.toString(16).padStart(2, "0")).join("");
}
