import assert from "node:assert/strict";
import { ToolCalls } from "./tool_calls.ts";

const call = (callId: string) => ({ itemId: `item_${callId}`, callId, name: "lookup", arguments: "{}" });

Deno.test("calls of a completed response run once it is done, in the order written", () => {
  const calls = new ToolCalls();
  calls.itemDone("r1", call("a"));
  calls.itemDone("r1", call("b"));
  assert.equal(calls.running, 0, "nothing runs before response.done");
  assert.deepEqual(calls.responseDone("r1", "completed", [call("a"), call("b")]).map((c) => c.callId), [
    "a",
    "b",
  ]);
  assert.equal(calls.running, 2);
});

Deno.test("calls of a cancelled, incomplete or failed response never run", () => {
  const calls = new ToolCalls();
  for (const status of ["cancelled", "incomplete", "failed"]) {
    calls.itemDone(`r_${status}`, call(status));
    assert.deepEqual(calls.responseDone(`r_${status}`, status, []), []);
  }
  assert.equal(calls.running, 0);
});

Deno.test("the last answer of a response is the one that owes the model its next response", () => {
  const calls = new ToolCalls();
  calls.responseDone("r1", "completed", [call("a"), call("b")]);
  assert.equal(calls.answered("b"), "more");
  assert.equal(calls.answered("b"), "unknown", "answered once");
  assert.equal(calls.answered("a"), "last");
  assert.equal(calls.running, 0);
});

Deno.test("a call missed by item.done still runs from response.done; none runs twice", () => {
  const calls = new ToolCalls();
  calls.itemDone("r1", call("a"));
  assert.deepEqual(calls.responseDone("r1", "completed", [call("a"), call("b")]).map((c) => c.callId), [
    "a",
    "b",
  ]);
  assert.deepEqual(calls.responseDone("r2", "completed", [call("a")]), []);
});
