// A minimal RFC 6455 WebSocket, client and server, over Deno.Conn with TCP_NODELAY, for the load
// side of the bridge benchmark only.
//
// Why not Deno's own WebSocket: in Deno 2.4.5 neither `new WebSocket` nor `Deno.upgradeWebSocket`
// sockets set TCP_NODELAY (checked with strace), so two messages written back to back wait for the
// other side's delayed ACK (up to 40 ms on Linux). The load side must not add such stalls to what
// it measures; the process under test keeps whatever its runtime does. `new WebSocket` also cannot
// send the x-twilio-signature header Twilio puts on the upgrade.
// https://www.rfc-editor.org/rfc/rfc6455#section-5.2

const GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
const encoder = new TextEncoder();
const decoder = new TextDecoder();

export class WireSocket {
  onText: (text: string) => void = () => {};
  onClose: () => void = () => {};
  closed = false;
  #queue: Uint8Array[] = [];
  #writing = false;
  #buffer: Uint8Array<ArrayBufferLike> = new Uint8Array(0);

  constructor(private readonly conn: Deno.Conn, private readonly masked: boolean, leftover: Uint8Array) {
    this.#buffer = leftover;
  }

  send(text: string): void {
    if (this.closed) return;
    this.#queue.push(this.#frame(0x1, encoder.encode(text)));
    if (!this.#writing) this.#flush();
  }

  close(code = 1000): void {
    if (this.closed) return;
    const payload = new Uint8Array([code >> 8, code & 0xff]);
    this.#queue.push(this.#frame(0x8, payload));
    if (!this.#writing) this.#flush().finally(() => this.#shutdown());
    else setTimeout(() => this.#shutdown(), 200);
  }

  #shutdown(): void {
    if (this.closed) return;
    this.closed = true;
    try {
      this.conn.close();
    } catch { /* already closed */ }
    this.onClose();
  }

  // Client frames must be masked; an all-zero key is a valid key and leaves the payload as is,
  // which keeps the load side from spending its CPU on XOR.
  #frame(opcode: number, payload: Uint8Array): Uint8Array {
    const length = payload.length;
    const extended = length < 126 ? 0 : length < 65536 ? 2 : 8;
    const head = 2 + extended + (this.masked ? 4 : 0);
    const frame = new Uint8Array(head + length);
    frame[0] = 0x80 | opcode;
    const maskBit = this.masked ? 0x80 : 0;
    if (extended === 0) frame[1] = maskBit | length;
    else if (extended === 2) {
      frame[1] = maskBit | 126;
      frame[2] = length >> 8;
      frame[3] = length & 0xff;
    } else {
      frame[1] = maskBit | 127;
      new DataView(frame.buffer).setBigUint64(2, BigInt(length));
    }
    frame.set(payload, head);
    return frame;
  }

  async #flush(): Promise<void> {
    this.#writing = true;
    try {
      while (this.#queue.length) {
        let chunk = this.#queue[0];
        if (this.#queue.length > 1) {
          const total = this.#queue.reduce((sum, part) => sum + part.length, 0);
          chunk = new Uint8Array(total);
          let at = 0;
          for (const part of this.#queue) {
            chunk.set(part, at);
            at += part.length;
          }
        }
        this.#queue.length = 0;
        for (let written = 0; written < chunk.length;) {
          written += await this.conn.write(chunk.subarray(written));
        }
      }
    } catch {
      this.#shutdown();
    } finally {
      this.#writing = false;
    }
  }

  async readLoop(): Promise<void> {
    const chunk = new Uint8Array(64 * 1024);
    try {
      this.#parse();
      while (!this.closed) {
        const n = await this.conn.read(chunk);
        if (n === null) break;
        this.#buffer = this.#buffer.length ? concat(this.#buffer, chunk.subarray(0, n)) : chunk.slice(0, n);
        this.#parse();
      }
    } catch { /* reset by peer */ }
    this.#shutdown();
  }

  #parse(): void {
    let buffer = this.#buffer;
    let at = 0;
    while (buffer.length - at >= 2) {
      const opcode = buffer[at] & 0x0f;
      const isMasked = (buffer[at + 1] & 0x80) !== 0;
      let length = buffer[at + 1] & 0x7f;
      let head = 2;
      if (length === 126) {
        if (buffer.length - at < 4) break;
        length = (buffer[at + 2] << 8) | buffer[at + 3];
        head = 4;
      } else if (length === 127) {
        if (buffer.length - at < 10) break;
        length = Number(new DataView(buffer.buffer, buffer.byteOffset + at + 2, 8).getBigUint64(0));
        head = 10;
      }
      const maskAt = at + head;
      if (isMasked) head += 4;
      if (buffer.length - at < head + length) break;
      const payload = buffer.subarray(at + head, at + head + length);
      if (isMasked) {
        for (let i = 0; i < length; i++) payload[i] ^= buffer[maskAt + (i & 3)];
      }
      at += head + length;
      if (opcode === 0x1) this.onText(decoder.decode(payload));
      else if (opcode === 0x8) this.close();
      else if (opcode === 0x9) {
        this.#queue.push(this.#frame(0xa, payload.slice()));
        if (!this.#writing) this.#flush();
      }
    }
    this.#buffer = at === buffer.length ? new Uint8Array(0) : buffer.subarray(at);
    buffer = this.#buffer;
  }
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const joined = new Uint8Array(a.length + b.length);
  joined.set(a);
  joined.set(b, a.length);
  return joined;
}

async function acceptValue(key: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-1", encoder.encode(key + GUID));
  return btoa(String.fromCharCode(...new Uint8Array(digest)));
}

/** Reads an HTTP/1.1 head; returns it and whatever bytes followed it. */
async function readHead(conn: Deno.Conn): Promise<{ head: string; rest: Uint8Array }> {
  let data: Uint8Array = new Uint8Array(0);
  const chunk = new Uint8Array(16 * 1024);
  while (true) {
    const n = await conn.read(chunk);
    if (n === null) throw new Error("connection closed during the handshake");
    data = concat(data, chunk.subarray(0, n));
    for (let i = 3; i < data.length; i++) {
      if (data[i] === 10 && data[i - 1] === 13 && data[i - 2] === 10 && data[i - 3] === 13) {
        return { head: decoder.decode(data.subarray(0, i + 1)), rest: data.slice(i + 1) };
      }
    }
    if (data.length > 64 * 1024) throw new Error("handshake head too large");
  }
}

function headerMap(lines: string[]): Map<string, string> {
  const headers = new Map<string, string>();
  for (const line of lines) {
    const colon = line.indexOf(":");
    if (colon > 0) headers.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim());
  }
  return headers;
}

export async function connect(url: string, headers: Record<string, string> = {}): Promise<WireSocket> {
  const target = new URL(url);
  if (target.protocol !== "ws:") throw new Error(`only ws:// is supported here, not ${target.protocol}`);
  const conn = await Deno.connect({ hostname: target.hostname, port: Number(target.port || 80) });
  conn.setNoDelay(true);
  const key = btoa(String.fromCharCode(...crypto.getRandomValues(new Uint8Array(16))));
  const extra = Object.entries(headers).map(([name, value]) => `${name}: ${value}\r\n`).join("");
  const request =
    `GET ${target.pathname}${target.search} HTTP/1.1\r\nHost: ${target.host}\r\nUpgrade: websocket\r\n` +
    `Connection: Upgrade\r\nSec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n${extra}\r\n`;
  await conn.write(encoder.encode(request));
  const { head, rest } = await readHead(conn);
  const [status, ...lines] = head.split("\r\n");
  if (!/^HTTP\/1\.1 101/.test(status)) {
    conn.close();
    throw new Error(`upgrade refused: ${status}`);
  }
  if (headerMap(lines).get("sec-websocket-accept") !== await acceptValue(key)) {
    conn.close();
    throw new Error("upgrade answered with a wrong Sec-WebSocket-Accept");
  }
  const socket = new WireSocket(conn, true, rest);
  socket.readLoop();
  return socket;
}

export interface UpgradeRequest {
  path: string;
  headers: Map<string, string>;
}

/** What a non-upgrade request gets (one response, then the connection closes). */
export type PlainResponder = (
  request: UpgradeRequest,
) => { status: number; contentType: string; body: string };

const refuse: PlainResponder = () => ({ status: 400, contentType: "text/plain", body: "" });

/** Serves WebSocket upgrades; `accept` answers a protocol to select, or null to refuse with 400. */
export function listen(
  port: number,
  accept: (request: UpgradeRequest) => { protocol?: string } | null,
  onSocket: (socket: WireSocket, request: UpgradeRequest) => void,
  onPlain: PlainResponder = refuse,
): Deno.Listener {
  const listener = Deno.listen({ hostname: "127.0.0.1", port });
  (async () => {
    for await (const conn of listener) {
      conn.setNoDelay(true);
      handshake(conn, accept, onSocket, onPlain).catch(() => {
        try {
          conn.close();
        } catch { /* closed */ }
      });
    }
  })().catch(() => {});
  return listener;
}

async function handshake(
  conn: Deno.Conn,
  accept: (request: UpgradeRequest) => { protocol?: string } | null,
  onSocket: (socket: WireSocket, request: UpgradeRequest) => void,
  onPlain: PlainResponder,
): Promise<void> {
  const { head, rest } = await readHead(conn);
  const [requestLine, ...lines] = head.split("\r\n");
  const path = requestLine.split(" ")[1] ?? "/";
  const headers = headerMap(lines);
  const key = headers.get("sec-websocket-key");
  const upgrade = key && headers.get("upgrade")?.toLowerCase() === "websocket";
  const verdict = upgrade ? accept({ path, headers }) : null;
  if (!upgrade || verdict === null) {
    // Read the body (unused) before answering: closing with unread input would reset the connection.
    let unread = Number(headers.get("content-length") ?? 0) - rest.length;
    const sink = new Uint8Array(16 * 1024);
    while (unread > 0) {
      const n = await conn.read(sink);
      if (n === null) break;
      unread -= n;
    }
    const answer = upgrade ? refuse({ path, headers }) : onPlain({ path, headers });
    const body = encoder.encode(answer.body);
    await conn.write(encoder.encode(
      `HTTP/1.1 ${answer.status} ${
        answer.status === 200 ? "OK" : "Bad Request"
      }\r\nContent-Type: ${answer.contentType}\r\n` +
        `Content-Length: ${body.length}\r\nConnection: close\r\n\r\n`,
    ));
    await conn.write(body);
    conn.close();
    return;
  }
  const protocol = verdict.protocol ? `Sec-WebSocket-Protocol: ${verdict.protocol}\r\n` : "";
  await conn.write(encoder.encode(
    `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
      `Sec-WebSocket-Accept: ${await acceptValue(key)}\r\n${protocol}\r\n`,
  ));
  const socket = new WireSocket(conn, false, rest);
  onSocket(socket, { path, headers });
  socket.readLoop();
}
