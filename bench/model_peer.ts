// The model side of the bridge benchmark's load, in its own process: a GA Realtime peer, just
// enough of it (subprotocol auth, session.update, append -> delta), that answers every
// `input_audio_buffer.append` with a `response.output_audio.delta` of the same audio at once.
//
// It times the uplink (caller -> bridge -> model) from the caller's stamp in the payload, and
// writes its own send time into the payload's second stamp for the callers to time the downlink.
// It runs apart from the callers (bench/loadgen.ts) so each side's CPU is its own figure.
//
// Usage: deno run -A bench/model_peer.ts '{"port": N}'. Lines on stdout: {"phase":"peer_listening"};
// then, once a line {"window":{"start_us":S,"end_us":E}} arrives on stdin, the result for frames
// sent in that window, and it exits.

import {
  Connection,
  EventLoop,
  listenWebSocket,
  Slab,
  textHeaderSize,
  type UpgradeRequest,
  type WebSocket,
  writeTextHeader,
} from "./epoll_ws.ts";
import {
  ascii,
  copyBytes,
  emit,
  Failures,
  nowUs,
  readDigits,
  Samples,
  STAMP_CHARS,
  startsWith,
  writeDigits,
} from "./load_common.ts";

const options: { port: number } = JSON.parse(Deno.args[0] ?? "{}");
const decoder = new TextDecoder();
const slab = new Slab();
const loop = new EventLoop();
const uplink = new Samples();
const failures = new Failures();
const counts = { sessions: 0, refused: 0 };

const APPEND_PREFIX = ascii('{"type":"input_audio_buffer.append","audio":"');
const JSON_STRING_END = ascii('"}');

function peerSession(socket: WebSocket, sessionNo: number): void {
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
      return failures.add("peer_not_json");
    }
    if (message.type === "input_audio_buffer.append") {
      if (typeof message.audio !== "string") return failures.add("peer_bad_audio");
      const audio = ascii(message.audio);
      answerAppend(audio, 0, audio.length);
    } else if (message.type === "session.update") {
      answerSessionUpdate(socket, message, responseId, itemId);
    }
  };
  /** The append's audio is `bytes[start, end)`: its caller stamp, then room for the peer's. */
  const answerAppend = (bytes: Uint8Array, start: number, end: number) => {
    if (end - start < 2 * STAMP_CHARS) return failures.add("peer_bad_audio");
    const received = nowUs();
    const sentUs = readDigits(bytes, start, STAMP_CHARS);
    uplink.push(sentUs, (received - sentUs) / 1000);
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
  socket: WebSocket,
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
    counts.refused++;
    return null;
  }
  return { protocol: "realtime" };
}

const stop = listenWebSocket(loop, options.port, acceptRealtime, (socket) => peerSession(socket, ++counts.sessions));
emit({ phase: "peer_listening", port: options.port });

let window: { start_us: number; end_us: number } | null = null;
const control = new Connection(loop, 0, false);
let line = "";
control.onBytes = (bytes, start, end) => {
  line += decoder.decode(bytes.subarray(start, end));
  const newline = line.indexOf("\n");
  if (newline >= 0) window = JSON.parse(line.slice(0, newline)).window;
  return end - start;
};
control.onClose = () => {
  window ??= { start_us: -Infinity, end_us: Infinity };
};

while (!window) loop.turn(performance.now() + 1000);
const { start_us: startUs, end_us: endUs } = window as { start_us: number; end_us: number };
const summary = uplink.summary(startUs, endUs);
emit({
  phase: "result",
  uplink: summary,
  uplink_received: summary.count,
  peer_sessions: counts.sessions,
  peer_refused: counts.refused,
  failures: failures.counts,
});
stop();
Deno.exit(0);
