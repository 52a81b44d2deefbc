import assert from "node:assert/strict";
import { isValidStreamToken, streamToken } from "./stream_token.ts";

const claims = {
  callSid: "CA0123456789abcdef0123456789abcdef",
  tenantId: "7f2c1d7e-3a5b-4c1d-9e8f-0a1b2c3d4e5f",
  toNumber: "+15550001111",
};

Deno.test("a token verifies for the claims it was made for", async () => {
  const token = await streamToken("auth", claims);
  assert.match(token, /^[0-9a-f]{64}$/);
  assert.ok(await isValidStreamToken("auth", claims, token));
});

Deno.test("changing any claim or the key invalidates the token", async () => {
  const token = await streamToken("auth", claims);
  assert.ok(!await isValidStreamToken("other", claims, token));
  assert.ok(!await isValidStreamToken("auth", { ...claims, callSid: "CA" + "0".repeat(32) }, token));
  assert.ok(!await isValidStreamToken("auth", { ...claims, tenantId: "someone-else" }, token));
  assert.ok(!await isValidStreamToken("auth", { ...claims, toNumber: "+15550002222" }, token));
  assert.ok(!await isValidStreamToken("auth", claims, ""));
});

Deno.test("claims cannot be shifted across the separator", async () => {
  const token = await streamToken("auth", { callSid: "CA1", tenantId: "t\n+1", toNumber: "" });
  assert.ok(!await isValidStreamToken("auth", { callSid: "CA1", tenantId: "t", toNumber: "+1" }, token));
  assert.ok(!await isValidStreamToken("auth", { callSid: "CA1", tenantId: "t\n+1", toNumber: "" }, token));
});

Deno.test("each resumed stream gets its own token, and a first stream's token cannot resume", async () => {
  const first = await streamToken("auth", claims);
  const second = await streamToken("auth", { ...claims, resume: "1:listen" });
  const third = await streamToken("auth", { ...claims, resume: "2:listen" });
  assert.equal(new Set([first, second, third]).size, 3);
  assert.ok(await isValidStreamToken("auth", { ...claims, resume: "1:listen" }, second));
  assert.ok(!await isValidStreamToken("auth", { ...claims, resume: "1:listen" }, first));
  assert.ok(
    !await isValidStreamToken("auth", { ...claims, resume: "1:reply" }, second),
    "the mode is signed",
  );
  assert.ok(!await isValidStreamToken("auth", claims, second));
});
