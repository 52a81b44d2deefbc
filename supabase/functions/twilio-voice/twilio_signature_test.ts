import assert from "node:assert/strict";
import {
  computeSignature,
  isValidSignature,
  type Param,
  signedPayload,
  timingSafeEqual,
  urlPortVariants,
} from "./twilio_signature.ts";

// Twilio's published vectors (see shared/contracts/README.md, from Twilio's SDK test suites).
const TOKEN = "12345";
const URL = "https://mycompany.com/myapp.php?foo=1&bar=2";
const PARAMS: Param[] = [
  ["CallSid", "CA1234567890ABCDE"],
  ["Caller", "+14158675309"],
  ["Digits", "1234"],
  ["From", "+14158675309"],
  ["To", "+18005551212"],
];

Deno.test("published vector: plain URL", async () => {
  assert.equal(await computeSignature(TOKEN, URL, PARAMS), "RSOYDt4T1cUTdK1PDd93/VVr8B8=");
});

Deno.test("published vector: the same URL signed with :443", async () => {
  const withPort = "https://mycompany.com:443/myapp.php?foo=1&bar=2";
  assert.equal(await computeSignature(TOKEN, withPort, PARAMS), "kvajT1Ptam85bY51eRf/AJRuM3w=");
  assert.ok(await isValidSignature(TOKEN, "kvajT1Ptam85bY51eRf/AJRuM3w=", [URL], PARAMS));
  assert.ok(await isValidSignature(TOKEN, "RSOYDt4T1cUTdK1PDd93/VVr8B8=", [withPort], PARAMS));
});

// The contracts README says "port stripped to sign", but the vector is the HMAC of the URL with
// :1234 as written (the stripped form signs to OyGYPqTF…): a non-default port is kept.
Deno.test("published vector: a non-default port is signed as written", async () => {
  const url = "http://mycompany.com:1234/myapp.php?foo=1&bar=2";
  assert.equal(await computeSignature(TOKEN, url, PARAMS), "Zmvh+3yNM1Phv2jhDCwEM3q5ebU=");
  assert.ok(await isValidSignature(TOKEN, "Zmvh+3yNM1Phv2jhDCwEM3q5ebU=", [url], PARAMS));
  assert.ok(
    !await isValidSignature(TOKEN, "Zmvh+3yNM1Phv2jhDCwEM3q5ebU=", [
      "http://mycompany.com:80/myapp.php?foo=1&bar=2",
    ], PARAMS),
  );
});

Deno.test("published vector: repeated params count each distinct pair once, sorted by name then value", async () => {
  const params: Param[] = [
    ["Sid", "CA123"],
    ["SidAccount", "AC123"],
    ["Digits", "5678"],
    ["Digits", "1234"],
    ["Digits", "1234"],
  ];
  assert.equal(signedPayload(URL, params), URL + "Digits1234Digits5678SidCA123SidAccountAC123");
  assert.equal(await computeSignature(TOKEN, URL, params), "IK+Dwps556ElfBT0I3Rgjkr1wJU=");
});

Deno.test("forged, altered and wrong-URL signatures are refused", async () => {
  const good = await computeSignature(TOKEN, URL, PARAMS);
  assert.ok(await isValidSignature(TOKEN, good, [URL], PARAMS));
  assert.ok(!await isValidSignature("other-token", good, [URL], PARAMS));
  assert.ok(!await isValidSignature(TOKEN, good, [URL], [...PARAMS.slice(1), ["CallSid", "CA0"]]));
  assert.ok(!await isValidSignature(TOKEN, good, ["https://mycompany.com/other.php?foo=1&bar=2"], PARAMS));
  assert.ok(!await isValidSignature(TOKEN, "", [URL], PARAMS));
  assert.ok(!await isValidSignature(TOKEN, good.slice(0, -2), [URL], PARAMS));
});

Deno.test("a WebSocket upgrade is signed over the wss URL with no params", async () => {
  const streamUrl = "wss://ref.supabase.co/functions/v1/twilio-voice";
  const signature = await computeSignature("tok", streamUrl);
  assert.ok(await isValidSignature("tok", signature, [streamUrl + "/", streamUrl]));
  const withPort = await computeSignature("tok", "wss://ref.supabase.co:443/functions/v1/twilio-voice");
  assert.ok(await isValidSignature("tok", withPort, [streamUrl]));
});

Deno.test("port variants keep the path byte for byte", () => {
  assert.deepEqual(urlPortVariants("https://a.test/x%2fy?q=%20"), [
    "https://a.test/x%2fy?q=%20",
    "https://a.test:443/x%2fy?q=%20",
  ]);
  assert.deepEqual(urlPortVariants("ws://127.0.0.1:54321/f"), ["ws://127.0.0.1/f", "ws://127.0.0.1:54321/f"]);
  assert.deepEqual(urlPortVariants("http://[::1]/f"), ["http://[::1]/f", "http://[::1]:80/f"]);
  assert.deepEqual(urlPortVariants("not a url"), ["not a url"]);
});

Deno.test("timingSafeEqual compares whole strings", () => {
  assert.ok(timingSafeEqual("abc", "abc"));
  assert.ok(!timingSafeEqual("abc", "abd"));
  assert.ok(!timingSafeEqual("abc", "abcd"));
});
