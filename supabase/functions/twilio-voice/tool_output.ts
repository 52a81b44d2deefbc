// What a tool answers the model with, and what is stored of it: the same text, capped.

// call_tool_calls.output's check (migration 20261203090100_tenant_tools.sql): char_length <= 8192,
// counted in characters (code points) as Postgres counts them, not UTF-16 units.
export const TOOL_OUTPUT_MAX_CHARS = 8192;

/** `output` cut to TOOL_OUTPUT_MAX_CHARS characters, the cut marked with a final "…". */
export function capToolOutput(output: string): string {
  // Cheap test first: a string of at most 8192 UTF-16 units has at most 8192 code points.
  if (output.length <= TOOL_OUTPUT_MAX_CHARS) return output;
  const chars = Array.from(output);
  if (chars.length <= TOOL_OUTPUT_MAX_CHARS) return output;
  return chars.slice(0, TOOL_OUTPUT_MAX_CHARS - 1).join("") + "…";
}

/** The output of a tool that failed, in a shape the model can read and apologise for. */
export function errorOutput(message: string): string {
  return JSON.stringify({ error: message });
}
