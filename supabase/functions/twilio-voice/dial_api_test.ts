// The dial rules of testing/dial_cases.json, run against dial_api.ts (tests/test_dial_cases.py runs
// the same file against supactl dial). The endpoint itself, over HTTP with the Twilio contract
// server behind it, is tests/test_dial_api.py.

import assert from "node:assert/strict";
import cases from "./testing/dial_cases.json" with { type: "json" };
import {
  compactJson,
  constantTimeEqual,
  dialForm,
  parseDialRequest,
  STATUS_CALLBACK_EVENTS,
} from "./dial_api.ts";
import { contextFromUrl, MAX_CONTEXT_BYTES } from "./outbound.ts";

const VALID = { to: "+14155550100", from: "+14155550111", tenant: "7d0c1c1e-0000-4000-8000-000000000001" };

Deno.test("the cap and the status events are the cases file's", () => {
  assert.equal(MAX_CONTEXT_BYTES, cases.max_context_bytes);
  assert.deepEqual([...STATUS_CALLBACK_EVENTS], cases.status_callback_events);
});

for (const { name, dial, form } of cases.forms) {
  Deno.test(`the Calls API form: ${name}`, () => {
    const built = dialForm({
      to: dial.to,
      from: dial.from,
      functionUrl: cases.function_url,
      context: dial.context,
      machineDetection: dial.machine_detection,
      record: dial.record,
    });
    assert.deepEqual(built, form);
    // What the function reads back from the signed Url is the context that was sent.
    const url = new URL(built.find(([key]) => key === "Url")![1]);
    assert.deepEqual(contextFromUrl(url), dial.context);
  });
}

for (const { name, context, ok } of cases.contexts) {
  Deno.test(`a context: ${name}`, () => {
    const checked = parseDialRequest({ ...VALID, context });
    assert.equal(checked.ok, ok, checked.ok ? "accepted" : checked.problem);
    if (!checked.ok) assert.match(checked.problem, /^context /);
  });
}

for (const { number, ok } of cases.numbers) {
  Deno.test(`an E.164 number: ${JSON.stringify(number)}`, () => {
    assert.equal(parseDialRequest({ ...VALID, to: number }).ok, ok);
    assert.equal(parseDialRequest({ ...VALID, from: number }).ok, ok);
  });
}

Deno.test("a dial names what is wrong: unknown fields, a missing tenant, a non-boolean AMD", () => {
  const problemOf = (body: unknown) => {
    const checked = parseDialRequest(body);
    assert.equal(checked.ok, false);
    return checked.ok ? "" : checked.problem;
  };
  assert.match(problemOf({ ...VALID, record: true }), /unknown fields: record/);
  assert.match(problemOf({ to: VALID.to, from: VALID.from }), /tenant/);
  assert.match(problemOf({ ...VALID, machine_detection: "yes" }), /machine_detection/);
  assert.match(problemOf([VALID]), /JSON object/);
  assert.equal(parseDialRequest({ ...VALID, machine_detection: true }).ok, true);
});

Deno.test("compact JSON sorts keys at every depth, as supactl's json.dumps(sort_keys=True) does", () => {
  assert.equal(compactJson({ b: [{ d: 1, c: "é" }], a: null }), '{"a":null,"b":[{"c":"é","d":1}]}');
});

Deno.test("the bearer comparison is equality, whatever the lengths", async () => {
  assert.equal(await constantTimeEqual("service-role", "service-role"), true);
  assert.equal(await constantTimeEqual("service-rolf", "service-role"), false);
  assert.equal(await constantTimeEqual("service", "service-role"), false);
  assert.equal(await constantTimeEqual("", "service-role"), false);
});
