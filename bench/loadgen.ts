// The load side of the bridge benchmark, in one Deno process (pinned to its own core, apart from
// the bridge under test): N simulated Twilio Media Streams at real time, and the fast Realtime
// peer the bridge connects to. Both ends live here so one clock times every frame:
//
//   Twilio stream --media--> bridge --input_audio_buffer.append--> peer      (uplink, timed at the peer)
//   Twilio stream <--media-- bridge <--response.output_audio.delta-- peer    (downlink, timed here)
//
// Each caller frame's payload carries its send time in its first 16 base64 characters (digits are
// base64 characters, so the payload stays valid base64 and the bridge relays it untouched); the
// peer echoes the payload as an audio delta with its own send time in the next 16.
//
// Sockets are ws_wire.ts's (TCP_NODELAY, see there). Usage: deno run -A bench/loadgen.ts '<json options>'.
// Progress and the result are JSON lines on stdout: {"phase":"peer_listening"}, "ramped",
// "window_start", "window_end", "result".

import {
  connect,
  listen,
  Slab,
  textHeaderSize,
  type UpgradeRequest,
  type WireSocket,
  writeTextHeader,
} from "./ws_wire.ts";

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
  peerPort: number;
}

const options: Options = {
  fromNumber: "+15005550006",
  rampPerSecond: 50,
  warmSeconds: 5,
  windowSeconds: 20,
  graceSeconds: 2,
  ...JSON.parse(Deno.args[0] ?? "{}"),
};

// Twilio Media Streams: 20 ms of 8 kHz µ-law = 160 bytes = 216 base64 characters per frame.
// https://www.twilio.com/docs/voice/media-streams/websocket-messages#media-message
const FRAME_MS = 20;
const STAMP_CHARS = 16;
const PAYLOAD_TAIL = "/".repeat(216 - 2 * STAMP_CHARS - 4) + "/w==";
const PEER_STAMP_PLACEHOLDER = "0".repeat(STAMP_CHARS);
// Calls are spread over the 20 ms period in this many phases, as real streams are not in step.
const PHASES = 10;

// Absolute microseconds, so a peer in another process stamps on the same clock.
const nowUs = (): number => Math.round((performance.timeOrigin + performance.now()) * 1000);
const emit = (line: Record<string, unknown>) => console.log(JSON.stringify(line));

// ---- bytes: the per-frame path neither encodes nor decodes text (see ws_wire.ts) ----

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const ascii = (text: string) => encoder.encode(text);
const slab = new Slab();

const digitCount = (value: number): number => {
  let count = 1;
  while (value >= 10) {
    value = Math.floor(value / 10);
    count++;
  }
  return count;
};

/** Writes `value` as exactly `width` decimal digits ending at `at + width` (zero-padded). */
function writeDigits(out: Uint8Array, at: number, value: number, width: number): void {
  for (let i = at + width - 1; i >= at; i--) {
    out[i] = 48 + (value % 10);
    value = Math.floor(value / 10);
  }
}

/** The number in `width` digits at `at`; NaN if any is not a digit (as Number() of the text). */
function readDigits(bytes: Uint8Array, at: number, width: number): number {
  let value = 0;
  for (let i = at; i < at + width; i++) {
    const digit = bytes[i] - 48;
    if (digit < 0 || digit > 9) return NaN;
    value = value * 10 + digit;
  }
  return value;
}

/** A few hundred bytes are copied faster by a loop than through a subarray view made for `set`. */
function copyBytes(out: Uint8Array, at: number, bytes: Uint8Array, from: number, to: number): void {
  for (let i = from; i < to; i++) out[at++] = bytes[i];
}

function startsWith(bytes: Uint8Array, start: number, end: number, prefix: Uint8Array): boolean {
  if (end - start < prefix.length) return false;
  for (let i = 0; i < prefix.length; i++) {
    if (bytes[start + i] !== prefix[i]) return false;
  }
  return true;
}

function indexOfBytes(bytes: Uint8Array, pattern: Uint8Array, from: number, end: number): number {
  for (
    let at = bytes.indexOf(pattern[0], from);
    at >= 0 && at + pattern.length <= end;
  ) {
    if (startsWith(bytes, at, end, pattern)) return at;
    at = bytes.indexOf(pattern[0], at + 1);
  }
  return -1;
}

// ---- what is measured ----

class Samples {
  #data = new Float64Array(1 << 16);
  length = 0;
  push(value: number): void {
    if (this.length === this.#data.length) {
      const bigger = new Float64Array(this.#data.length * 2);
      bigger.set(this.#data);
      this.#data = bigger;
    }
    this.#data[this.length++] = value;
  }
  summary(): Record<string, number | null> {
    const sorted = this.#data.slice(0, this.length).sort();
    const at = (q: number) =>
      sorted.length ? round(sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]) : null;
    return {
      count: sorted.length,
      p50_ms: at(0.5),
      p90_ms: at(0.9),
      p99_ms: at(0.99),
      p999_ms: at(0.999),
      max_ms: sorted.length ? round(sorted[sorted.length - 1]) : null,
    };
  }
}

const round = (value: number) => Math.round(value * 1000) / 1000;

const window = { startUs: Infinity, endUs: Infinity };
const inWindow = (sentUs: number) => sentUs >= window.startUs && sentUs < window.endUs;
const uplink = new Samples();
const downlink = new Samples();
const roundTrip = new Samples();
const schedulingLag = new Samples();
const counts = {
  framesSent: 0,
  uplinkReceived: 0,
  downlinkReceived: 0,
  marksReceived: 0,
  marksEchoed: 0,
  clears: 0,
  peerSessions: 0,
  peerRefused: 0,
};
const failures: Record<string, number> = {};
const fail = (reason: string): void => {
  failures[reason] = (failures[reason] ?? 0) + 1;
};

// ---- the Realtime peer (GA, just enough: subprotocol auth, session.update, append -> delta) ----

const APPEND_PREFIX = ascii('{"type":"input_audio_buffer.append","audio":"');
const JSON_STRING_END = ascii('"}');

function peerSession(socket: WireSocket, sessionNo: number): void {
  const responseId = `resp_bench${sessionNo}`;
  const itemId = `item_bench${sessionNo}`;
  const deltaPrefix = ascii(
    `{"type":"response.output_audio.delta","event_id":"event_bench","response_id":"${responseId}","item_id":"${itemId}","output_index":0,"content_index":0,"delta":"`,
  );
  socket.send(
    JSON.stringify({
      type: "session.created",
      event_id: "event_created",
      session: { type: "realtime", id: `sess_${sessionNo}` },
    }),
  );
  // The bridge's append in its compact form is answered from its bytes; any other text the slow way.
  socket.onFrame = (bytes, start, end) => {
    if (startsWith(bytes, start, end, APPEND_PREFIX)) {
      answerAppend(bytes, start + APPEND_PREFIX.length, end - JSON_STRING_END.length);
    } else onText(decoder.decode(bytes.subarray(start, end)));
  };
  const onText = (data: string) => {
    let message;
    try {
      message = JSON.parse(data);
    } catch {
      return fail("peer_not_json");
    }
    if (message.type === "input_audio_buffer.append") {
      if (typeof message.audio !== "string") return fail("peer_bad_audio");
      const audio = ascii(message.audio);
      answerAppend(audio, 0, audio.length);
    } else if (message.type === "session.update") {
      answerSessionUpdate(socket, message, responseId, itemId);
    }
  };
  /** The append's audio is `bytes[start, end)`: its caller stamp, then room for the peer's. */
  const answerAppend = (bytes: Uint8Array, start: number, end: number) => {
    if (end - start < 2 * STAMP_CHARS) return fail("peer_bad_audio");
    const received = nowUs();
    const sentUs = readDigits(bytes, start, STAMP_CHARS);
    if (inWindow(sentUs)) {
      counts.uplinkReceived++;
      uplink.push((received - sentUs) / 1000);
    }
    // The delta: the same audio with the peer's send time in the second stamp.
    const length = deltaPrefix.length + (end - start) + JSON_STRING_END.length;
    slab.reserve(textHeaderSize(length, socket.masked) + length);
    const out = slab.bytes;
    let at = writeTextHeader(out, slab.at, length, socket.masked);
    out.set(deltaPrefix, at);
    at += deltaPrefix.length;
    copyBytes(out, at, bytes, start, start + STAMP_CHARS);
    // Sent within a microsecond of its arrival: the arrival time serves as the send time.
    writeDigits(out, at + STAMP_CHARS, received, STAMP_CHARS);
    copyBytes(out, at + 2 * STAMP_CHARS, bytes, start + 2 * STAMP_CHARS, end);
    at += end - start;
    out.set(JSON_STRING_END, at);
    socket.sendOwned(slab.take(at + JSON_STRING_END.length));
  };
}

function answerSessionUpdate(
  socket: WireSocket,
  message: { session?: Record<string, unknown> },
  responseId: string,
  itemId: string,
): void {
  const session = message.session;
  // The GA shape only: the beta one (no session.type) is refused as OpenAI does since 2026-05.
  if (!session || session.type !== "realtime") {
    socket.send(
      JSON.stringify({
        type: "error",
        error: { type: "invalid_request_error", code: "beta_api_shape_disabled", message: "beta shape" },
      }),
    );
    socket.close(4000);
    return;
  }
  socket.send(
    JSON.stringify({
      type: "session.updated",
      event_id: "event_updated",
      session: { ...session, id: "sess_bench", object: "realtime.session" },
    }),
  );
  socket.send(
    JSON.stringify({
      type: "response.created",
      event_id: "event_rc",
      response: { id: responseId, object: "realtime.response", status: "in_progress" },
    }),
  );
  socket.send(
    JSON.stringify({
      type: "response.output_item.added",
      event_id: "event_oia",
      response_id: responseId,
      output_index: 0,
      item: { id: itemId, type: "message", role: "assistant", status: "in_progress", content: [] },
    }),
  );
}

/** Subprotocol auth as OpenAI takes it where headers cannot be set: ["realtime", "openai-insecure-api-key.<key>"]. */
function acceptRealtime({ path, headers }: UpgradeRequest): { protocol: string } | null {
  const url = new URL(path, "http://peer");
  const protocols = (headers.get("sec-websocket-protocol") ?? "").split(",").map((p) => p.trim());
  const keyed = protocols.some((p) => p.startsWith("openai-insecure-api-key.") && p.length > 24);
  if (
    url.pathname !== "/v1/realtime" || !url.searchParams.get("model") || !protocols.includes("realtime") ||
    !keyed
  ) {
    counts.peerRefused++;
    return null;
  }
  return { protocol: "realtime" };
}

function startPeer(port: number): Deno.Listener {
  const listener = listen(port, acceptRealtime, (socket) => peerSession(socket, ++counts.peerSessions));
  emit({ phase: "peer_listening", port });
  return listener;
}

// ---- Twilio ----

const hmacKey = await crypto.subtle.importKey(
  "raw",
  encoder.encode(options.authToken),
  { name: "HMAC", hash: "SHA-1" },
  false,
  ["sign"],
);

/** X-Twilio-Signature: base64(HMAC-SHA1(token, url + sorted name+value)). */
async function twilioSignature(url: string, params: Record<string, string> = {}): Promise<string> {
  const data = url + Object.keys(params).sort().map((name) => name + params[name]).join("");
  const digest = new Uint8Array(await crypto.subtle.sign("HMAC", hmacKey, encoder.encode(data)));
  return btoa(String.fromCharCode(...digest));
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
  socket: WireSocket;
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

async function placeCall(index: number): Promise<void> {
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
  const webhook = await fetch(options.functionUrl, {
    method: "POST",
    headers: {
      "content-type": "application/x-www-form-urlencoded",
      "x-twilio-signature": await twilioSignature(options.functionUrl, params),
    },
    body: new URLSearchParams(params),
  });
  const twiml = await webhook.text();
  const streamUrl = /<Stream[^>]*\surl="([^"]*)"/.exec(twiml)?.[1];
  if (webhook.status !== 200 || !streamUrl) {
    return fail(`webhook_${webhook.status}${streamUrl ? "" : "_no_stream"}`);
  }
  const customParameters: Record<string, string> = {};
  for (const match of twiml.matchAll(/<Parameter\s+name="([^"]*)"\s+value="([^"]*)"\s*\/>/g)) {
    customParameters[unescapeXml(match[1])] = unescapeXml(match[2]);
  }
  const url = unescapeXml(streamUrl);
  const socket = await connect(url, {
    "x-twilio-signature": await twilioSignature(url),
  });
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
    downlink.push((received - peerUs) / 1000);
    roundTrip.push((received - sentUs) / 1000);
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
let pacing = true;

function pace(): void {
  if (!pacing) return;
  const now = performance.now();
  for (let phase = 0; phase < PHASES; phase++) {
    while (phaseDueMs[phase] <= now) {
      if (inWindow(nowUs())) schedulingLag.push(now - phaseDueMs[phase]);
      for (const call of calls[phase]) if (!call.closed) sendFrame(call);
      phaseDueMs[phase] += FRAME_MS;
    }
  }
  setTimeout(pace, 1);
}

// ---- the run ----

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const peer = startPeer(options.peerPort);
await sleep(50);
pace();

const rampStarted = performance.now();
const placing: Promise<void>[] = [];
for (let index = 0; index < options.calls; index++) {
  const due = rampStarted + (index * 1000) / options.rampPerSecond;
  const wait = due - performance.now();
  if (wait > 0) await sleep(wait);
  placing.push(placeCall(index).catch((error) => fail(`setup:${error?.name ?? "error"}`)));
}
await Promise.all(placing);
emit({
  phase: "ramped",
  seconds: round((performance.now() - rampStarted) / 1000),
  calls_live: callsLive,
  failures,
});

await sleep(options.warmSeconds * 1000);
window.startUs = nowUs();
emit({ phase: "window_start", calls_live: callsLive });
await sleep(options.windowSeconds * 1000);
window.endUs = nowUs();
emit({ phase: "window_end" });
await sleep(options.graceSeconds * 1000);

const result = {
  phase: "result",
  calls_requested: options.calls,
  calls_live: callsLive,
  window_s: round((window.endUs - window.startUs) / 1e6),
  frames_sent: counts.framesSent,
  uplink_lost: counts.framesSent - counts.uplinkReceived,
  downlink_lost: counts.framesSent - counts.downlinkReceived,
  uplink: uplink.summary(),
  downlink: downlink.summary(),
  round_trip: roundTrip.summary(),
  scheduling_lag: schedulingLag.summary(),
  marks_received: counts.marksReceived,
  marks_echoed: counts.marksEchoed,
  clears: counts.clears,
  peer_sessions: counts.peerSessions,
  peer_refused: counts.peerRefused,
  failures,
};

pacing = false;
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
await sleep(300);
peer.close();
Deno.exit(0);
