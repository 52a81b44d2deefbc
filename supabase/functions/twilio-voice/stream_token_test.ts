import assert from "node:assert/strict";
import {
  STREAM_TOKEN_MAX_AGE_S,
  STREAM_TOKEN_MAX_SKEW_S,
  streamToken,
  type TokenVerdict,
  verifyStreamToken,
} from "./stream_token.ts";

const NOW = 1_796_300_000;
const claims = {
  callSid: "CA0123456789abcdef0123456789abcdef",
  tenantId: "7f2c1d7e-3a5b-4c1d-9e8f-0a1b2c3d4e5f",
  toNumber: "+15550001111",
  issuedAt: NOW,
};

const verdict = (
  token: string,
  overrides: Partial<typeof claims> & { resume?: string } = {},
  key = "auth",
  now = NOW,
): Promise<TokenVerdict> => verifyStreamToken(key, { ...claims, ...overrides }, token, now);

Deno.test("a token verifies for the claims it was made for", async () => {
  const token = await streamToken("auth", claims);
  assert.match(token, /^[0-9a-f]{64}$/);
  assert.equal(await verdict(token), "valid");
});

Deno.test("changing any claim or the key invalidates the token", async () => {
  const token = await streamToken("auth", claims);
  assert.equal(await verdict(token, {}, "other"), "invalid");
  assert.equal(await verdict(token, { callSid: "CA" + "0".repeat(32) }), "invalid");
  assert.equal(await verdict(token, { tenantId: "someone-else" }), "invalid");
  assert.equal(await verdict(token, { toNumber: "+15550002222" }), "invalid");
  assert.equal(await verdict(token, { issuedAt: NOW + 1 }), "invalid", "the issue time is signed");
  assert.equal(await verdict(""), "invalid");
  assert.equal(await verdict(token.slice(0, 63) + (token.endsWith("0") ? "1" : "0")), "invalid");
});

Deno.test("claims cannot be shifted across the separator", async () => {
  const token = await streamToken("auth", { callSid: "CA1", tenantId: "t\n+1", toNumber: "", issuedAt: NOW });
  assert.equal(await verdict(token, { callSid: "CA1", tenantId: "t", toNumber: "+1" }), "invalid");
  assert.equal(await verdict(token, { callSid: "CA1", tenantId: "t\n+1", toNumber: "" }), "invalid");
});

Deno.test("each resumed stream gets its own token, and a first stream's token cannot resume", async () => {
  const first = await streamToken("auth", claims);
  const second = await streamToken("auth", { ...claims, resume: "1:listen" });
  const third = await streamToken("auth", { ...claims, resume: "2:listen" });
  assert.equal(new Set([first, second, third]).size, 3);
  assert.equal(await verdict(second, { resume: "1:listen" }), "valid");
  assert.equal(await verdict(first, { resume: "1:listen" }), "invalid");
  assert.equal(await verdict(second, { resume: "1:reply" }), "invalid", "the mode is signed");
  assert.equal(await verdict(second), "invalid");
});

Deno.test("a genuine token is believed for a minute after it was issued, then it has expired", async () => {
  const token = await streamToken("auth", claims);
  assert.equal(await verdict(token, {}, "auth", NOW + STREAM_TOKEN_MAX_AGE_S), "valid");
  assert.equal(await verdict(token, {}, "auth", NOW + STREAM_TOKEN_MAX_AGE_S + 1), "expired");
  assert.equal(await verdict(token, {}, "auth", NOW + 86_400), "expired");
  assert.equal(STREAM_TOKEN_MAX_AGE_S, 60, "the README documents 60 s");
});

Deno.test("a token from a clock a few seconds ahead is believed, one from further ahead is not", async () => {
  const token = await streamToken("auth", claims);
  assert.equal(await verdict(token, {}, "auth", NOW - STREAM_TOKEN_MAX_SKEW_S), "valid");
  assert.equal(await verdict(token, {}, "auth", NOW - STREAM_TOKEN_MAX_SKEW_S - 1), "expired");
});

Deno.test("only a genuine token is told it has expired; a forged one is just invalid", async () => {
  const old = await streamToken("auth", { ...claims, issuedAt: NOW - 3_600 });
  assert.equal(await verdict(old, { issuedAt: NOW - 3_600 }), "expired");
  assert.equal(await verdict(old, { issuedAt: NOW - 3_600 }, "other"), "invalid");
  assert.equal(
    await verdict(old, { issuedAt: NOW }),
    "invalid",
    "moving the time forward breaks the signature",
  );
});

Deno.test("an issue time that is not a whole number of seconds is refused", async () => {
  for (const issuedAt of [-1, 1.5, Number.NaN, Number.MAX_SAFE_INTEGER + 2]) {
    const token = await streamToken("auth", { ...claims, issuedAt });
    assert.equal(await verdict(token, { issuedAt }), "invalid", String(issuedAt));
  }
});
