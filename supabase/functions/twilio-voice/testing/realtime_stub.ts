// A scripted OpenAI Realtime peer for the function's in-process tests. It refuses what the real
// service refuses (no key subprotocol, a wrong key, the beta shape, unknown session fields, client
// events the GA API does not have) and otherwise lets the test decide what the model says.

export interface RealtimeStub {
  url: string;
  /** Every client event received, in order, parsed. */
  received: Record<string, unknown>[];
  connections: number;
  /** Close codes of finished model sockets, as the server saw them. */
  closed: number[];
  send(event: Record<string, unknown>): void;
  waitFor<T>(probe: () => T | undefined | false, what: string, timeoutMs?: number): Promise<T>;
  close(): Promise<void>;
}

const CLIENT_EVENTS = new Set([
  "session.update",
  "input_audio_buffer.append",
  "input_audio_buffer.commit",
  "input_audio_buffer.clear",
  "conversation.item.create",
  "conversation.item.truncate",
  "conversation.item.delete",
  "response.create",
  "response.cancel",
]);
const SESSION_KEYS = new Set([
  "type",
  "instructions",
  "output_modalities",
  "audio",
  "model",
  "tools",
  "tool_choice",
  "max_output_tokens",
  "tracing",
  "truncation",
  "prompt",
  "include",
]);
const AUDIO_INPUT_KEYS = new Set(["format", "transcription", "turn_detection", "noise_reduction"]);
const AUDIO_OUTPUT_KEYS = new Set(["format", "voice", "speed"]);

type Json = Record<string, unknown>;

function unknownKeys(value: unknown, allowed: Set<string>): string[] {
  if (typeof value !== "object" || value === null) return [];
  return Object.keys(value).filter((key) => !allowed.has(key));
}

/** Problems a GA server would refuse the session.update for (empty: accepted). */
export function sessionUpdateProblems(session: Json): string[] {
  const audio = (session.audio ?? {}) as Json;
  return [
    ...(session.type === "realtime" ? [] : ["session.type"]),
    ...unknownKeys(session, SESSION_KEYS).map((key) => `session.${key}`),
    ...unknownKeys(audio, new Set(["input", "output"])).map((key) => `session.audio.${key}`),
    ...unknownKeys(audio.input, AUDIO_INPUT_KEYS).map((key) => `session.audio.input.${key}`),
    ...unknownKeys(audio.output, AUDIO_OUTPUT_KEYS).map((key) => `session.audio.output.${key}`),
  ];
}

export function startRealtimeStub(apiKey: string): RealtimeStub {
  let socket: WebSocket | null = null;
  const received: Json[] = [];
  const closed: number[] = [];
  let formats = { input: "audio/pcm", output: "audio/pcm" };
  const stub = {} as RealtimeStub;

  const serverEvent = (event: Json) => {
    if (socket?.readyState === WebSocket.OPEN) {
      socket.send(JSON.stringify({ event_id: crypto.randomUUID(), ...event }));
    }
  };
  const refuse = (code: string, message: string) =>
    serverEvent({ type: "error", error: { type: "invalid_request_error", code, message } });

  const onClientEvent = (event: Json) => {
    received.push(event);
    if (typeof event.type !== "string" || !CLIENT_EVENTS.has(event.type)) {
      return refuse("invalid_event", `unknown client event ${String(event.type)}`);
    }
    if (event.type === "session.update") {
      const session = (event.session ?? {}) as Json;
      if (session.type === undefined && ("modalities" in session || "input_audio_format" in session)) {
        // The beta shape: refused and the socket closed, as the service does since 2026-05.
        refuse("beta_api_shape_disabled", "beta session shape");
        socket?.close(4000, "beta_api_shape_disabled");
        return;
      }
      const problems = sessionUpdateProblems(session);
      if (problems.length > 0) return refuse("unknown_parameter", `Unknown parameter: ${problems[0]}`);
      const audio = session.audio as {
        input?: { format?: { type: string } };
        output?: { format?: { type: string } };
      };
      formats = {
        input: audio?.input?.format?.type ?? formats.input,
        output: audio?.output?.format?.type ?? formats.output,
      };
      serverEvent({
        type: "session.updated",
        session: {
          ...session,
          audio: { input: { format: { type: formats.input } }, output: { format: { type: formats.output } } },
        },
      });
    }
  };

  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, (request) => {
    const url = new URL(request.url);
    if (url.pathname !== "/v1/realtime" || !url.searchParams.get("model")) {
      return new Response("not found", { status: 404 });
    }
    const protocols = (request.headers.get("sec-websocket-protocol") ?? "").split(",").map((p) => p.trim());
    const keyProtocol = protocols.find((p) => p.startsWith("openai-insecure-api-key."));
    if (!protocols.includes("realtime") || !keyProtocol || request.headers.has("authorization")) {
      return new Response("missing realtime subprotocols", { status: 400 });
    }
    const { socket: accepted, response } = Deno.upgradeWebSocket(request, { protocol: "realtime" });
    stub.connections++;
    socket = accepted;
    accepted.onopen = () => {
      if (keyProtocol !== `openai-insecure-api-key.${apiKey}`) {
        refuse("invalid_api_key", "Incorrect API key provided");
        accepted.close(3000, "invalid_api_key");
        return;
      }
      serverEvent({
        type: "session.created",
        session: { type: "realtime", audio: { output: { format: { type: "audio/pcm" } } } },
      });
    };
    accepted.onmessage = (message) => onClientEvent(JSON.parse(String(message.data)));
    accepted.onclose = (event) => closed.push(event.code);
    return response;
  });

  return Object.assign(stub, {
    url: `ws://127.0.0.1:${server.addr.port}/v1/realtime`,
    received,
    connections: 0,
    closed,
    send: serverEvent,
    waitFor: <T>(probe: () => T | undefined | false, what: string, timeoutMs = 5_000) =>
      waitFor(probe, what, timeoutMs),
    close: async () => {
      socket?.close();
      await server.shutdown();
    },
  });
}

/** Polls `probe` until it returns a value, failing with `what` after the timeout. */
export async function waitFor<T>(
  probe: () => T | undefined | false,
  what: string,
  timeoutMs = 5_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  while (true) {
    const value = probe();
    if (value !== undefined && value !== false) return value as T;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}
