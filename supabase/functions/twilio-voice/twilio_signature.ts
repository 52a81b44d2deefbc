// Twilio's request signature: base64(HMAC-SHA1(auth token, url + each name+value pair)).
// https://www.twilio.com/docs/usage/security#validating-requests
// Web Crypto only: it is on every runtime this function targets, and a hand-rolled or third-party
// HMAC is one more thing to trust.

export type Param = readonly [name: string, value: string];

const encoder = new TextEncoder();

/** The signed string: url, then each distinct (name, value) once, sorted by name then value, as
 * Twilio's own validators do (their published vector repeats `Digits=1234`). */
export function signedPayload(url: string, params: Iterable<Param>): string {
  const distinct = new Map<string, Param>();
  for (const [name, value] of params) distinct.set(`${name}\u0000${value}`, [name, value]);
  const sorted = [...distinct.values()].sort(([nameA, valueA], [nameB, valueB]) =>
    compareCodeUnits(nameA, nameB) || compareCodeUnits(valueA, valueB)
  );
  let payload = url;
  for (const [name, value] of sorted) payload += name + value;
  return payload;
}

function compareCodeUnits(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

export async function computeSignature(
  authToken: string,
  url: string,
  params: Iterable<Param> = [],
): Promise<string> {
  const key = await crypto.subtle.importKey(
    "raw",
    encoder.encode(authToken),
    { name: "HMAC", hash: "SHA-1" },
    false,
    ["sign"],
  );
  const digest = await crypto.subtle.sign("HMAC", key, encoder.encode(signedPayload(url, params)));
  return base64(new Uint8Array(digest));
}

function base64(bytes: Uint8Array): string {
  let binary = "";
  for (const byte of bytes) binary += String.fromCharCode(byte);
  return btoa(binary);
}

/** Compares in time that depends only on the length, so a forger learns nothing from timing. */
export function timingSafeEqual(a: string, b: string): boolean {
  const left = encoder.encode(a);
  const right = encoder.encode(b);
  if (left.length !== right.length) return false;
  let difference = 0;
  for (let i = 0; i < left.length; i++) difference |= left[i] ^ right[i];
  return difference === 0;
}

const DEFAULT_PORTS: Record<string, string> = { "http:": "80", "https:": "443", "ws:": "80", "wss:": "443" };
// Split by hand: the URL class drops default ports and re-encodes paths, changing what was signed.
const URL_PARTS = /^([a-z][a-z0-9+.-]*:)\/\/([^/?#@]*@)?(\[[^\]]*\]|[^/?#:]*)(?::(\d*))?(.*)$/is;

/** The URL without any port, and the URL with its scheme's default port when it has none: the two
 * forms twilio-node's validateRequest accepts (a proxy in front may add or drop the port). */
export function urlPortVariants(url: string): string[] {
  const parts = URL_PARTS.exec(url);
  if (!parts) return [url];
  const [, scheme, userinfo = "", host, port, rest] = parts;
  const prefix = `${scheme}//${userinfo}${host}`;
  const withoutPort = prefix + rest;
  const defaultPort = DEFAULT_PORTS[scheme.toLowerCase()];
  const withPort = port !== undefined ? url : defaultPort ? `${prefix}:${defaultPort}${rest}` : url;
  return withoutPort === withPort ? [url] : [withoutPort, withPort];
}

/** Whether `signature` is Twilio's for any of `urls` (each tried with its port variants). */
export async function isValidSignature(
  authToken: string,
  signature: string,
  urls: readonly string[],
  params: readonly Param[] = [],
): Promise<boolean> {
  const candidates = new Set(urls.flatMap(urlPortVariants));
  let valid = false;
  // Every candidate is checked, so the time taken does not say which variant matched.
  for (const candidate of candidates) {
    if (timingSafeEqual(await computeSignature(authToken, candidate, params), signature)) valid = true;
  }
  return valid;
}
