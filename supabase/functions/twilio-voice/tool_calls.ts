// Which of the model's function calls run, and when the model may go on. A call runs only once its
// function_call item is done (response.output_item.done) AND its response completed
// (response.done status "completed"): a response cancelled by a barge-in or cut short
// ("incomplete") may hold a call whose arguments were never finished, and the model has moved on.
// The next response.create is due once every call of that response is answered; the bridge sends
// it when no response is active (the server refuses one during an active response with
// conversation_already_has_active_response). No I/O, no clock: the bridge runs what this returns.
// https://platform.openai.com/docs/guides/realtime-conversations#function-calling

import type { FunctionCall } from "./realtime_events.ts";

export type Answered =
  /** The last outstanding call of its response: the model is owed one response.create. */
  | "last"
  /** Other calls of its response are still running. */
  | "more"
  /** Not a running call (answered already, never started, or from a cancelled response). */
  | "unknown";

export class ToolCalls {
  /** Calls whose item is done, by response, until that response is done. */
  readonly #itemsDone = new Map<string, FunctionCall[]>();
  /** Per response that completed with calls: those not yet answered. */
  readonly #outstanding = new Map<string, Set<string>>();
  readonly #responseOf = new Map<string, string>();
  /** Every call_id started once: a replayed done event never runs a call twice. */
  readonly #started = new Set<string>();

  /** response.output_item.done carried a function_call. */
  itemDone(responseId: string, call: FunctionCall): void {
    const calls = this.#itemsDone.get(responseId);
    if (calls) calls.push(call);
    else this.#itemsDone.set(responseId, [call]);
  }

  /**
   * response.done: the calls to run now, in the order the model wrote them (empty unless the
   * response completed). `fromOutput` are the completed calls response.done itself lists: a call
   * whose item.done event was missed still runs, none runs twice.
   */
  responseDone(responseId: string, status: string, fromOutput: readonly FunctionCall[]): FunctionCall[] {
    const seen = this.#itemsDone.get(responseId) ?? [];
    this.#itemsDone.delete(responseId);
    if (status !== "completed") return [];
    const toRun: FunctionCall[] = [];
    for (const call of [...seen, ...fromOutput]) {
      if (this.#started.has(call.callId)) continue;
      this.#started.add(call.callId);
      toRun.push(call);
    }
    if (toRun.length > 0) {
      this.#outstanding.set(responseId, new Set(toRun.map((call) => call.callId)));
      for (const call of toRun) this.#responseOf.set(call.callId, responseId);
    }
    return toRun;
  }

  /** A call's output went to the model. */
  answered(callId: string): Answered {
    const responseId = this.#responseOf.get(callId);
    if (responseId === undefined) return "unknown";
    this.#responseOf.delete(callId);
    const outstanding = this.#outstanding.get(responseId)!;
    outstanding.delete(callId);
    if (outstanding.size > 0) return "more";
    this.#outstanding.delete(responseId);
    return "last";
  }

  /** Calls started and not answered yet (a handoff waits for them). */
  get running(): number {
    return this.#responseOf.size;
  }
}
