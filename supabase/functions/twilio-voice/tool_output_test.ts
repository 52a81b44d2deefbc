import assert from "node:assert/strict";
import { capToolOutput, errorOutput, TOOL_OUTPUT_MAX_CHARS } from "./tool_output.ts";

Deno.test("outputs up to the cap pass unchanged; longer ones are cut in characters, marked", () => {
  assert.equal(capToolOutput('{"ok":true}'), '{"ok":true}');
  const exact = "x".repeat(TOOL_OUTPUT_MAX_CHARS);
  assert.equal(capToolOutput(exact), exact);
  const cut = capToolOutput("x".repeat(TOOL_OUTPUT_MAX_CHARS + 10));
  assert.equal(Array.from(cut).length, TOOL_OUTPUT_MAX_CHARS);
  assert.ok(cut.endsWith("…"));
});

Deno.test("the cap counts characters as Postgres does, not UTF-16 units", () => {
  const emoji = "😀".repeat(TOOL_OUTPUT_MAX_CHARS);
  assert.equal(capToolOutput(emoji), emoji, "8192 emoji are 8192 characters");
  const over = capToolOutput("😀".repeat(TOOL_OUTPUT_MAX_CHARS + 1));
  assert.equal(Array.from(over).length, TOOL_OUTPUT_MAX_CHARS);
});

Deno.test("an error output is JSON with the reason", () => {
  assert.deepEqual(JSON.parse(errorOutput("the tool timed out")), { error: "the tool timed out" });
});
