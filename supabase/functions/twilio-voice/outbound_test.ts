import assert from "node:assert/strict";
import { answeredByMachine, contextFromUrl, isOutbound, machineTwiml, tenantNumber } from "./outbound.ts";

const TENANT = "+14155550100";
const CALLEE = "+14155550199";

Deno.test("the tenant's number is To inbound and From outbound", () => {
  const inbound = new Map([["From", CALLEE], ["To", TENANT], ["Direction", "inbound"]]);
  const outbound = new Map([["From", TENANT], ["To", CALLEE], ["Direction", "outbound-api"]]);
  assert.equal(isOutbound(inbound), false);
  assert.equal(tenantNumber(inbound), TENANT);
  assert.equal(isOutbound(outbound), true);
  assert.equal(tenantNumber(outbound), TENANT);
  assert.equal(tenantNumber(new Map([["To", TENANT]])), TENANT, "no Direction: inbound");
});

Deno.test("machines and faxes are not people; unknown and human are", () => {
  for (
    const value of ["machine_start", "machine_end_beep", "machine_end_silence", "machine_end_other", "fax"]
  ) {
    assert.equal(answeredByMachine(new Map([["AnsweredBy", value]])), true, value);
  }
  for (const value of ["human", "unknown", ""]) {
    assert.equal(answeredByMachine(new Map([["AnsweredBy", value]])), false, value);
  }
});

Deno.test("a machine gets the voicemail message only when the tenant asks for it", () => {
  const message = machineTwiml({
    voicemailAction: "message",
    voicemailMessage: "Call us <back>",
  });
  assert.match(message, /<Say>Call us &lt;back&gt;<\/Say><Hangup\/>/);
  const blank = machineTwiml({ voicemailAction: "message", voicemailMessage: "  " });
  assert.doesNotMatch(blank, /<Say/);
  const hangUp = machineTwiml({
    voicemailAction: "hang_up",
    voicemailMessage: "unused",
  });
  assert.doesNotMatch(hangUp, /<Say/);
  assert.match(hangUp, /<Hangup\/>/);
});

Deno.test("the webhook URL's context: a JSON object within the cap, else nothing", () => {
  const encode = (text: string) => btoa(text).replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");
  const at = (query: string) => contextFromUrl(new URL(`https://x.example/twilio-voice?${query}`));
  assert.deepEqual(at(`context=${encode('{"order":"A-17"}')}`), { order: "A-17" });
  assert.equal(at(""), null);
  assert.equal(at(`context=${encode("[1,2]")}`), null, "not an object");
  assert.equal(at(`context=${encode("not json")}`), null);
  assert.equal(at("context=%%%"), null, "not base64");
  assert.equal(at(`context=${encode(JSON.stringify({ x: "y".repeat(3000) }))}`), null, "over the cap");
});
