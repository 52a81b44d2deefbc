// The floor for the bridge benchmark: the least a Twilio <-> Realtime relay can do on the same
// Deno. Parse each frame, re-wrap its audio, forward it. No state beyond the stream id, no marks,
// no turn store, no signature or token checks, no buffering before the model is ready.
//
// Same wire protocol and environment names as the function (PORT, PUBLIC_URL, OPENAI_API_KEY,
// OPENAI_REALTIME_URL, OPENAI_REALTIME_MODEL), so the same load generator and peer drive both.
//
// RELAY_TWILIO_SOCKET=nodelay serves the Twilio side from ws_wire.ts (a Deno.listen socket with
// TCP_NODELAY) instead of Deno.serve + Deno.upgradeWebSocket, whose accepted sockets keep Nagle
// on: the difference between the two is what the runtime's server socket adds to model->caller audio.

import { listen, type WireSocket } from "./ws_wire.ts";

const port = Number(Deno.env.get("PORT") ?? 8000);
const publicUrl = Deno.env.get("PUBLIC_URL") ?? `http://127.0.0.1:${port}/functions/v1/twilio-voice`;
const streamUrl = publicUrl.replace(/^http/, "ws");
const realtimeUrl = (Deno.env.get("OPENAI_REALTIME_URL") ?? "wss://api.openai.com/v1/realtime") +
  `?model=${Deno.env.get("OPENAI_REALTIME_MODEL") ?? "gpt-realtime"}`;
const apiKey = Deno.env.get("OPENAI_API_KEY") ?? "";

const SESSION_UPDATE = JSON.stringify({
  type: "session.update",
  session: {
    type: "realtime",
    output_modalities: ["audio"],
    audio: { input: { format: { type: "audio/pcmu" } }, output: { format: { type: "audio/pcmu" } } },
  },
});

/** The part of a WebSocket the relay uses, so either server socket can carry the Twilio side. */
interface TwilioSide {
  readonly open: boolean;
  send(text: string): void;
  close(): void;
  onmessage: ((event: { data: string }) => void) | null;
  onclose: (() => void) | null;
}

let badFrames = 0;

// Even the floor must survive a frame it cannot read; the count is printed when the process ends.
// deno-lint-ignore no-explicit-any
function parse(data: unknown): any {
  try {
    const value = typeof data === "string" ? JSON.parse(data) : null;
    if (value !== null && typeof value === "object") return value;
  } catch { /* counted below */ }
  if (++badFrames === 1) {
    console.error(JSON.stringify({ event: "relay.bad_frame", sample: String(data).slice(0, 200) }));
  }
  return null;
}

Deno.addSignalListener("SIGTERM", () => {
  console.error(JSON.stringify({ event: "relay.exit", bad_frames: badFrames }));
  Deno.exit(0);
});

function relay(twilio: TwilioSide): void {
  const model = new WebSocket(realtimeUrl, ["realtime", `openai-insecure-api-key.${apiKey}`]);
  let streamSid = "";
  model.onopen = () => model.send(SESSION_UPDATE);
  twilio.onmessage = (event) => {
    const frame = parse(event.data);
    if (frame === null) return;
    if (frame.event === "media") {
      if (model.readyState === WebSocket.OPEN) {
        model.send(JSON.stringify({ type: "input_audio_buffer.append", audio: frame.media.payload }));
      }
    } else if (frame.event === "start") streamSid = frame.start.streamSid;
    else if (frame.event === "stop") model.close();
  };
  model.onmessage = (event) => {
    const message = parse(event.data);
    if (message?.type === "response.output_audio.delta" && twilio.open) {
      twilio.send(JSON.stringify({ event: "media", streamSid, media: { payload: message.delta } }));
    }
  };
  twilio.onclose = () => model.close();
  model.onclose = () => twilio.open && twilio.close();
  model.onerror = () => {};
}

function fromDenoSocket(socket: WebSocket): TwilioSide {
  const side: TwilioSide = {
    get open() {
      return socket.readyState === WebSocket.OPEN;
    },
    send: (text) => socket.send(text),
    close: () => socket.close(),
    onmessage: null,
    onclose: null,
  };
  socket.onmessage = (event) => side.onmessage?.(event);
  socket.onclose = () => side.onclose?.();
  socket.onerror = () => {};
  return side;
}

function fromWireSocket(socket: WireSocket): TwilioSide {
  const side: TwilioSide = {
    get open() {
      return !socket.closed;
    },
    send: (text) => socket.send(text),
    close: () => socket.close(),
    onmessage: null,
    onclose: null,
  };
  socket.onText = (data) => side.onmessage?.({ data });
  socket.onClose = () => side.onclose?.();
  return side;
}

const twiml = `<?xml version="1.0" encoding="UTF-8"?><Response><Connect><Stream url="${streamUrl}">` +
  `<Parameter name="relay" value="minimal"/></Stream></Connect></Response>`;

if (Deno.env.get("RELAY_TWILIO_SOCKET") === "nodelay") {
  listen(port, () => ({}), (socket) => relay(fromWireSocket(socket)), () => ({
    status: 200,
    contentType: "text/xml",
    body: twiml,
  }));
} else {
  Deno.serve({ hostname: "127.0.0.1", port }, (request) => {
    if (request.headers.get("upgrade")?.toLowerCase() === "websocket") {
      const { socket, response } = Deno.upgradeWebSocket(request);
      relay(fromDenoSocket(socket));
      return response;
    }
    return new Response(twiml, { headers: { "content-type": "text/xml" } });
  });
}
