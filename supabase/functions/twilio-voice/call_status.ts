// Twilio's own view of a call: its status callbacks (StatusCallback) and recording status
// callbacks (RecordingStatusCallback), read from a form whose signature app.ts already verified.
// https://www.twilio.com/docs/voice/api/call-resource#statuscallback
// https://www.twilio.com/docs/voice/api/recording#recordingstatuscallback
// Both arrive retried and out of order; the database (record_twilio_call_status,
// record_call_recording) only moves a row forward, so each callback is written as it comes.

/** Marks a call's status callback apart from the voice webhook. */
export const CALL_STATUS_QUERY = "event=call-status";
/** Marks a recording's status callback. */
export const RECORDING_STATUS_QUERY = "event=recording-status";

const CALL_SID = /^CA[0-9A-Za-z]{32}$/;
const RECORDING_SID = /^RE[0-9a-fA-F]{32}$/;
const CALL_STATUSES = new Set([
  "queued",
  "initiated",
  "ringing",
  "in-progress",
  "completed",
  "busy",
  "no-answer",
  "failed",
  "canceled",
]);
const RECORDING_STATUSES = new Set(["in-progress", "completed", "absent", "failed"]);
// AnsweredBy values Twilio documents (human, machine_start, machine_end_beep, ..., fax, unknown).
const ANSWERED_BY = /^[a-z_]{1,32}$/;
// A day: no call lasts longer (Twilio's own cap is 24 h), and a bigger number is not Twilio's.
const MAX_DURATION_S = 86_400;

export interface TwilioCallStatus {
  callSid: string;
  status: string;
  durationS: number | null;
  answeredBy: string | null;
}

export interface RecordingStatus {
  callSid: string;
  recordingSid: string;
  status: string;
  channels: number | null;
  durationS: number | null;
}

export type Parsed<T> = { ok: true; value: T } | { ok: false; problem: string };

export function parseCallStatus(params: Map<string, string>): Parsed<TwilioCallStatus> {
  const callSid = params.get("CallSid") ?? "";
  const status = params.get("CallStatus") ?? "";
  if (!CALL_SID.test(callSid)) return { ok: false, problem: "CallSid is missing or malformed" };
  if (!CALL_STATUSES.has(status)) return { ok: false, problem: "CallStatus is not one of Twilio's" };
  const durationS = optionalSeconds(params.get("CallDuration"));
  if (durationS === undefined) return { ok: false, problem: "CallDuration is not a number of seconds" };
  const answeredBy = params.get("AnsweredBy") ?? null;
  if (answeredBy !== null && !ANSWERED_BY.test(answeredBy)) {
    return { ok: false, problem: "AnsweredBy is malformed" };
  }
  return { ok: true, value: { callSid, status, durationS, answeredBy } };
}

export function parseRecordingStatus(params: Map<string, string>): Parsed<RecordingStatus> {
  const callSid = params.get("CallSid") ?? "";
  const recordingSid = params.get("RecordingSid") ?? "";
  const status = params.get("RecordingStatus") ?? "";
  if (!CALL_SID.test(callSid)) return { ok: false, problem: "CallSid is missing or malformed" };
  if (!RECORDING_SID.test(recordingSid)) {
    return { ok: false, problem: "RecordingSid is missing or malformed" };
  }
  if (!RECORDING_STATUSES.has(status)) {
    return { ok: false, problem: "RecordingStatus is not one of Twilio's" };
  }
  const durationS = optionalSeconds(params.get("RecordingDuration"));
  if (durationS === undefined) return { ok: false, problem: "RecordingDuration is not a number of seconds" };
  const channelsText = params.get("RecordingChannels");
  const channels = channelsText === undefined
    ? null
    : channelsText === "1"
    ? 1
    : channelsText === "2"
    ? 2
    : 0;
  if (channels === 0) return { ok: false, problem: "RecordingChannels is not 1 or 2" };
  return { ok: true, value: { callSid, recordingSid, status, channels, durationS } };
}

/** null when absent, undefined when not a whole number of seconds within a day. */
function optionalSeconds(text: string | undefined): number | null | undefined {
  if (text === undefined || text === "") return null;
  if (!/^\d{1,6}$/.test(text)) return undefined;
  const seconds = Number(text);
  return seconds <= MAX_DURATION_S ? seconds : undefined;
}
