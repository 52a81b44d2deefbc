// The callers of the bridge benchmark, in one Deno process pinned to the load side's core (apart
// from the bridge under test): N simulated Twilio Media Streams at real time. The model they talk
// to is bench/model_peer.ts, in its own process, so each side's CPU is its own figure:
//
//   Twilio stream --media--> bridge --input_audio_buffer.append--> peer      (uplink, timed at the peer)
//   Twilio stream <--media-- bridge <--response.output_audio.delta-- peer    (downlink, timed here)
//
// Each caller frame's payload carries its send time in its first 16 base64 characters (digits are
// base64 characters, so the payload stays valid base64 and the bridge relays it untouched); the
// peer echoes the payload as an audio delta with its own send time in the next 16, both on the
// machine's monotonic clock (load_common.ts).
//
// Everything runs in one synchronous loop over raw non-blocking sockets (epoll_ws.ts on
// libc_net.ts, TCP_NODELAY): the process sleeps only in epoll_wait, until a socket is ready or the
// next phase of frames is due, so its own cost per message is little more than the read or write.
// Usage: deno run -A bench/loadgen.ts '<json options>'. Progress and the result are JSON lines on
// stdout: "ramped", "window_start" and "window_end" (with `at_us`), "result".

import { createHmac } from "node:crypto";
import {
  connectWebSocket,
  EventLoop,
  httpRequest,
  Slab,
  textHeaderSize,
  type WebSocket,
  writeTextHeader,
} from "./epoll_ws.ts";
import {
  ascii,
  digitCount,
  emit,
  Failures,
  indexOfBytes,
  nowUs,
  readDigits,
  round,
  Samples,
  STAMP_CHARS,
  startsWith,
  writeDigits,
} from "./load_common.ts";

interface Options {
  functionUrl: string; // the webhook URL Twilio posts to (signed as is)
  authToken: string;
  toNumber: string;
  fromNumber: string;
  calls: number;
  rampPerSecond: number;
  warmSeconds: number;
  windowSeconds: number;
  graceSeconds: number;
}

const options: Options = {
  fromNumber: "+15005550006",
  rampPerSecond: 50,
  warmSeconds: 5,
  windowSeconds: 20,
  graceSeconds: 2,
  ...JSON.parse(Deno.args[0] ?? "{}"),
};

const FRAME_MS = 20;
const PAYLOAD_TAIL = "/".repeat(216 - 2 * STAMP_CHARS - 4) + "/w==";
const PEER_STAMP_PLACEHOLDER = "0".repeat(STAMP_CHARS);
// Calls are spread over the 20 ms period in this many phases, as real streams are not in step.
const PHASES = 10;

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const slab = new Slab();

const window = { startUs: Infinity, endUs: Infinity };
const inWindow = (sentUs: number) => sentUs >= window.startUs && sentUs < window.endUs;
const downlink = new Samples();
const roundTrip = new Samples();
const schedulingLag = new Samples();
const counts = {
  framesSent: 0,
  downlinkReceived: 0,
  marksReceived: 0,
  marksEchoed: 0,
  clears: 0,
};
const failures = new Failures();
const fail = (reason: string) => failures.add(reason);

const loop = new EventLoop();

// ---- Twilio ----

/** X-Twilio-Signature: base64(HMAC-SHA1(token, url + sorted name+value)). */
function twilioSignature(url: string, params: Record<string, string> = {}): string {
  const data = url + Object.keys(params).sort().map((name) => name + params[name]).join("");
  return createHmac("sha1", options.authToken).update(data).digest("base64");
}

const sid = (prefix: string) => prefix + crypto.randomUUID().replaceAll("-", "");
const unescapeXml = (text: string) =>
  text.replace(
    /&(lt|gt|quot|apos|amp);/g,
    (_, name) => ({ lt: "<", gt: ">", quot: '"', apos: "'", amp: "&" } as Record<string, string>)[name],
  );

interface Call {
  callSid: string;
  streamSid: string;
  socket: WebSocket;
  sequence: number;
  chunk: number;
  /** Names of marks played, to echo: each a JSON string's bytes, quotes included. */
  pendingMarks: Uint8Array[];
  markMiddle: Uint8Array;
  media: MediaTemplate;
  live: boolean;
  closed: boolean;
}

/** One stream's media frame, header included, encoded once per width of its counters: a frame is
 * this copied and its four numbers written over their places. */
class MediaTemplate {
  readonly frame: Uint8Array;
  readonly sequenceAt: number;
  readonly chunkAt: number;
  readonly timestampAt: number;
  readonly stampAt: number;

  constructor(
    streamSid: string,
    readonly sequenceWidth: number,
    readonly chunkWidth: number,
    readonly timestampWidth: number,
  ) {
    const parts = [
      '{"event":"media","sequenceNumber":"',
      "0".repeat(sequenceWidth),
      '","media":{"track":"inbound","chunk":"',
      "0".repeat(chunkWidth),
      '","timestamp":"',
      "0".repeat(timestampWidth),
      '","payload":"',
      "0".repeat(STAMP_CHARS),
      `${PEER_STAMP_PLACEHOLDER}${PAYLOAD_TAIL}"},"streamSid":"${streamSid}"}`,
    ];
    const json = parts.join("");
    const head = textHeaderSize(json.length, true);
    this.frame = new Uint8Array(head + json.length);
    encoder.encodeInto(json, this.frame.subarray(writeTextHeader(this.frame, 0, json.length, true)));
    // The text is ASCII: characters are bytes.
    const offsets: number[] = [];
    let at = head;
    for (const part of parts) {
      offsets.push(at);
      at += part.length;
    }
    [this.sequenceAt, this.chunkAt, this.timestampAt, this.stampAt] = [
      offsets[1],
      offsets[3],
      offsets[5],
      offsets[7],
    ];
  }

  fits(sequence: number, chunk: number, timestamp: number): boolean {
    return digitCount(sequence) === this.sequenceWidth &&
      digitCount(chunk) === this.chunkWidth &&
      digitCount(timestamp) === this.timestampWidth;
  }
}

const calls: Call[][] = Array.from({ length: PHASES }, () => []);
let callsLive = 0;

let callsSettled = 0;

/** Webhook, TwiML, then the signed stream upgrade, `connected` and `start`, as Twilio does it. */
function placeCall(index: number): void {
  const callSid = sid("CA");
  const accountSid = "AC" + "0".repeat(32);
  const params: Record<string, string> = {
    AccountSid: accountSid,
    ApiVersion: "2010-04-01",
    CallSid: callSid,
    CallStatus: "ringing",
    Direction: "inbound",
    From: options.fromNumber,
    To: options.toNumber,
  };
  const settle = (failure?: string) => {
    callsSettled++;
    if (failure) fail(failure);
  };
  httpRequest(
    loop,
    options.functionUrl,
    "POST",
    {
      "content-type": "application/x-www-form-urlencoded",
      "x-twilio-signature": twilioSignature(options.functionUrl, params),
    },
    new URLSearchParams(params).toString(),
    (answer) => {
      if (!answer) return settle("setup:webhook_connection");
      const streamUrl = /<Stream[^>]*\surl="([^"]*)"/.exec(answer.body)?.[1];
      if (answer.status !== 200 || !streamUrl) {
        return settle(`webhook_${answer.status}${streamUrl ? "" : "_no_stream"}`);
      }
      const customParameters: Record<string, string> = {};
      for (const match of answer.body.matchAll(/<Parameter\s+name="([^"]*)"\s+value="([^"]*)"\s*\/>/g)) {
        customParameters[unescapeXml(match[1])] = unescapeXml(match[2]);
      }
      const url = unescapeXml(streamUrl);
      connectWebSocket(loop, url, { "x-twilio-signature": twilioSignature(url) }, (socket, failure) => {
        if (!socket) return settle(`setup:${failure}`);
        startStream(index, callSid, accountSid, socket, customParameters);
        settle();
      });
    },
  );
}

function startStream(
  index: number,
  callSid: string,
  accountSid: string,
  socket: WebSocket,
  customParameters: Record<string, string>,
): void {
  const streamSid = sid("MZ");
  const call: Call = {
    callSid,
    socket,
    streamSid,
    media: new MediaTemplate(streamSid, 1, 1, 1),
    sequence: 0,
    chunk: 0,
    pendingMarks: [],
    markMiddle: ascii(`","streamSid":"${streamSid}","mark":{"name":`),
    live: false,
    closed: false,
  };
  socket.send(JSON.stringify({ event: "connected", protocol: "Call", version: "1.0.0" }));
  socket.send(JSON.stringify({
    event: "start",
    sequenceNumber: String(++call.sequence),
    start: {
      accountSid,
      streamSid: call.streamSid,
      callSid,
      tracks: ["inbound"],
      customParameters,
      mediaFormat: { encoding: "audio/x-mulaw", sampleRate: 8000, channels: 1 },
    },
    streamSid: call.streamSid,
  }));
  calls[index % PHASES].push(call);
  socket.onClose = () => {
    if (!call.closed) fail("stream_closed_by_function");
    call.closed = true;
  };
  socket.onFrame = (bytes, start, end) => receiveFrame(call, bytes, start, end);
}

const MEDIA_EVENT = ascii('{"event":"media",');
const PAYLOAD_KEY = ascii('"payload":"');
const MARK_EVENT = ascii('{"event":"mark",');
const NAME_KEY = ascii('"mark":{"name":');
const MARK_ECHO_HEAD = ascii('{"event":"mark","sequenceNumber":"');
const QUOTE = 34;
const BACKSLASH = 92;
const CLOSE_BRACE = 125;

/** The name of a mark the function sent in its compact form (`"mark":{"name":<string>}}` last), as
 * the JSON string's bytes, copied; null if the frame is not in that form. */
function markName(bytes: Uint8Array, start: number, end: number): Uint8Array | null {
  const key = indexOfBytes(bytes, NAME_KEY, start + MARK_EVENT.length, end);
  const name = key + NAME_KEY.length;
  if (key < 0 || bytes[name] !== QUOTE || bytes[end - 1] !== CLOSE_BRACE || bytes[end - 2] !== CLOSE_BRACE) {
    return null;
  }
  // The string must end exactly before the two braces: find its closing quote past any escapes.
  let at = name + 1;
  while (at < end && bytes[at] !== QUOTE) at += bytes[at] === BACKSLASH ? 2 : 1;
  return at === end - 3 ? bytes.slice(name, end - 2) : null;
}

function markPlayed(call: Call, name: Uint8Array): void {
  counts.marksReceived++;
  call.pendingMarks.push(name);
}

/** The function's media frames are timed from their bytes; anything else is read as text. */
function receiveFrame(call: Call, bytes: Uint8Array, start: number, end: number): void {
  if (startsWith(bytes, start, end, MARK_EVENT)) {
    const name = markName(bytes, start, end);
    if (name) return markPlayed(call, name);
  }
  const key = startsWith(bytes, start, end, MEDIA_EVENT)
    ? indexOfBytes(bytes, PAYLOAD_KEY, start + MEDIA_EVENT.length, end)
    : -1;
  if (key < 0 || key + PAYLOAD_KEY.length + 2 * STAMP_CHARS > end) {
    return receive(call, decoder.decode(bytes.subarray(start, end)));
  }
  const payload = key + PAYLOAD_KEY.length;
  timeDownlink(
    call,
    readDigits(bytes, payload, STAMP_CHARS),
    readDigits(bytes, payload + STAMP_CHARS, STAMP_CHARS),
  );
}

function timeDownlink(call: Call, sentUs: number, peerUs: number): void {
  const received = nowUs();
  if (!call.live) {
    call.live = true;
    callsLive++;
  }
  if (inWindow(sentUs)) {
    counts.downlinkReceived++;
    downlink.push(sentUs, (received - peerUs) / 1000);
    roundTrip.push(sentUs, (received - sentUs) / 1000);
  }
}

function receive(call: Call, data: string): void {
  const at = data.indexOf('"payload":"');
  if (at >= 0) {
    const start = at + 11;
    const sentUs = Number(data.slice(start, start + STAMP_CHARS));
    return timeDownlink(call, sentUs, Number(data.slice(start + STAMP_CHARS, start + 2 * STAMP_CHARS)));
  }
  const message = JSON.parse(data);
  if (message.event === "mark") markPlayed(call, encoder.encode(JSON.stringify(message.mark.name)));
  else if (message.event === "clear") {
    counts.clears++;
    // Twilio echoes every pending mark at once after a clear.
    sendFrames(call, false);
  }
}

/** An echo: {"event":"mark","sequenceNumber":"<number>","streamSid":"<sid>","mark":{"name":<name>}} */
const echoLength = (call: Call, name: Uint8Array, number: number) =>
  MARK_ECHO_HEAD.length + digitCount(number) + call.markMiddle.length + name.length + 2;

/** Writes the next media frame (if `media`) and then the echo of every pending mark, in one write. */
function sendFrames(call: Call, media: boolean): void {
  const sequence = media ? ++call.sequence : 0;
  const chunk = media ? ++call.chunk : 0;
  if (media && !call.media.fits(sequence, chunk, chunk * FRAME_MS)) {
    call.media = new MediaTemplate(
      call.streamSid,
      digitCount(sequence),
      digitCount(chunk),
      digitCount(chunk * FRAME_MS),
    );
  }
  const template = call.media;
  let size = media ? template.frame.length : 0;
  for (let index = 0; index < call.pendingMarks.length; index++) {
    const length = echoLength(call, call.pendingMarks[index], call.sequence + 1 + index);
    size += textHeaderSize(length, true) + length;
  }
  if (!size) return;
  slab.reserve(size);
  const out = slab.bytes;
  let at = slab.at;
  if (media) {
    out.set(template.frame, at);
    writeDigits(out, at + template.sequenceAt, sequence, template.sequenceWidth);
    writeDigits(out, at + template.chunkAt, chunk, template.chunkWidth);
    writeDigits(out, at + template.timestampAt, chunk * FRAME_MS, template.timestampWidth);
    const sentUs = nowUs();
    if (inWindow(sentUs)) counts.framesSent++;
    writeDigits(out, at + template.stampAt, sentUs, STAMP_CHARS);
    at += template.frame.length;
  }
  for (const name of call.pendingMarks) {
    const number = ++call.sequence;
    const width = digitCount(number);
    at = writeTextHeader(out, at, echoLength(call, name, number), true);
    out.set(MARK_ECHO_HEAD, at);
    writeDigits(out, at += MARK_ECHO_HEAD.length, number, width);
    out.set(call.markMiddle, at += width);
    out.set(name, at += call.markMiddle.length);
    at += name.length;
    out[at++] = CLOSE_BRACE;
    out[at++] = CLOSE_BRACE;
    counts.marksEchoed++;
  }
  call.pendingMarks.length = 0;
  call.socket.sendOwned(slab.take(at));
}

// Marks are echoed once the audio before them has played: a frame period later, with the next frame.
const sendFrame = (call: Call) => sendFrames(call, true);

// ---- real-time pacing: every call sends one frame per 20 ms, phases spread over the period ----

const phaseDueMs = Array.from(
  { length: PHASES },
  (_, phase) => performance.now() + (phase * FRAME_MS) / PHASES,
);

/** Sends the frames of every phase that is due; answers when the next one is. */
function pace(): number {
  const now = performance.now();
  let next = Infinity;
  for (let phase = 0; phase < PHASES; phase++) {
    while (phaseDueMs[phase] <= now) {
      schedulingLag.push(nowUs(), now - phaseDueMs[phase]);
      for (const call of calls[phase]) if (!call.closed) sendFrame(call);
      phaseDueMs[phase] += FRAME_MS;
    }
    next = Math.min(next, phaseDueMs[phase]);
  }
  return next;
}

// ---- the run: one loop, steps on a timeline ----

/** Runs the loop until `untilMs`, sending every call's frames on time if `pacing`. */
function runUntil(untilMs: number, pacing: boolean): void {
  while (performance.now() < untilMs) loop.turn(Math.min(untilMs, pacing ? pace() : untilMs));
}

const rampStarted = performance.now();
let placed = 0;
while (callsSettled < options.calls) {
  while (placed < options.calls && rampStarted + (placed * 1000) / options.rampPerSecond <= performance.now()) {
    placeCall(placed++);
  }
  const nextCallAt = placed < options.calls ? rampStarted + (placed * 1000) / options.rampPerSecond : Infinity;
  loop.turn(Math.min(nextCallAt, pace(), performance.now() + 100));
}
emit({
  phase: "ramped",
  seconds: round((performance.now() - rampStarted) / 1000),
  calls_live: callsLive,
  failures: failures.counts,
});

runUntil(performance.now() + options.warmSeconds * 1000, true);
window.startUs = nowUs();
emit({ phase: "window_start", at_us: window.startUs, calls_live: callsLive });
runUntil(performance.now() + options.windowSeconds * 1000, true);
window.endUs = nowUs();
emit({ phase: "window_end", at_us: window.endUs });
runUntil(performance.now() + options.graceSeconds * 1000, true);

const result = {
  phase: "result",
  calls_requested: options.calls,
  calls_live: callsLive,
  window_s: round((window.endUs - window.startUs) / 1e6),
  frames_sent: counts.framesSent,
  downlink_lost: counts.framesSent - counts.downlinkReceived,
  downlink: downlink.summary(window.startUs, window.endUs),
  round_trip: roundTrip.summary(window.startUs, window.endUs),
  scheduling_lag: schedulingLag.summary(window.startUs, window.endUs),
  marks_received: counts.marksReceived,
  marks_echoed: counts.marksEchoed,
  clears: counts.clears,
  failures: failures.counts,
};

for (const phase of calls) {
  for (const call of phase) {
    call.closed = true;
    const stop = {
      event: "stop",
      sequenceNumber: String(++call.sequence),
      streamSid: call.streamSid,
      stop: { accountSid: "AC" + "0".repeat(32), callSid: call.callSid },
    };
    call.socket.send(JSON.stringify(stop));
    call.socket.close(1000);
  }
}
emit(result);
runUntil(performance.now() + 400, false);
Deno.exit(0);
