// RFC 6455 WebSocket framing for the bridge benchmark, and a server over Deno.Conn with
// TCP_NODELAY for the minimal relay's RELAY_TWILIO_SOCKET=nodelay variant.
//
// Why a socket of its own: in Deno 2.4.5 neither `new WebSocket` nor `Deno.upgradeWebSocket`
// sockets set TCP_NODELAY (checked with strace), so two messages written back to back wait for the
// other side's delayed ACK (up to 40 ms on Linux); the relay variant shows what that costs. The
// framing helpers here (headers written in place, `Slab`, `parseFrames`, the handshake's head and
// accept value) are shared with the load side's own sockets (epoll_ws.ts).
// https://www.rfc-editor.org/rfc/rfc6455#section-5.2

import { createHash } from "node:crypto";

const GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
const encoder = new TextEncoder();
const decoder = new TextDecoder();
const EMPTY = new Uint8Array(0);
const READ_CHUNK = 64 * 1024;

/** Header bytes of a text frame of `length` payload bytes (masked: the client side). */
export function textHeaderSize(length: number, masked: boolean): number {
  return (length < 126 ? 2 : length < 65536 ? 4 : 10) + (masked ? 4 : 0);
}

/** Writes a final text frame's header at `at` and returns where its payload starts. Client frames
 * must be masked; the key written is all zero, a valid key that leaves the payload as it is, which
 * keeps the load side from spending its CPU on XOR. */
export function writeTextHeader(
  out: Uint8Array,
  at: number,
  length: number,
  masked: boolean,
  opcode = 0x1,
): number {
  const maskBit = masked ? 0x80 : 0;
  out[at] = 0x80 | opcode;
  let head = at + 2;
  if (length < 126) out[at + 1] = maskBit | length;
  else if (length < 65536) {
    out[at + 1] = maskBit | 126;
    out[at + 2] = length >> 8;
    out[at + 3] = length & 0xff;
    head = at + 4;
  } else {
    out[at + 1] = maskBit | 127;
    new DataView(out.buffer, out.byteOffset).setBigUint64(at + 2, BigInt(length));
    head = at + 10;
  }
  if (masked) {
    out.fill(0, head, head + 4);
    head += 4;
  }
  return head;
}

const SLAB_BYTES = 256 * 1024;

/** Bump allocation of outgoing frames: each frame is a view of a big buffer no other frame shares,
 * so a write still in flight is never overwritten, and a new buffer is taken when one is used up
 * (the old one is freed with the last view on it). One allocation per ~700 frames, not per frame. */
export class Slab {
  bytes = new Uint8Array(SLAB_BYTES);
  at = 0;

  /** Makes room for `size` bytes at `this.bytes[this.at]`. */
  reserve(size: number): void {
    if (this.at + size > this.bytes.length) {
      this.bytes = new Uint8Array(Math.max(SLAB_BYTES, size));
      this.at = 0;
    }
  }

  /** Hands over the bytes written from `this.at` to `end`. */
  take(end: number): Uint8Array {
    const taken = this.bytes.subarray(this.at, end);
    this.at = end;
    return taken;
  }
}

export class WireSocket {
  onText: (text: string) => void = () => {};
  /** If set, text frames come here instead of onText: the payload is `bytes[start, end)`, a view of
   * the read buffer that is reused once this returns. */
  onFrame: ((bytes: Uint8Array, start: number, end: number) => void) | null = null;
  onClose: () => void = () => {};
  closed = false;
  #queue: Uint8Array[] = [];
  #writing = false;
  #parsing = false;
  #closing = false;
  #shutdownWhenWritten = false;
  #buffer: Uint8Array = EMPTY;

  constructor(private readonly conn: Deno.Conn, readonly masked: boolean, leftover: Uint8Array) {
    this.#buffer = leftover;
  }

  send(text: string): void {
    this.sendOwned(textFrame(text, this.masked));
  }

  /** Queues complete frame bytes the caller no longer touches (from a Slab, or its own). */
  sendOwned(frames: Uint8Array): void {
    if (this.closed || this.#closing) return;
    this.#queue.push(frames);
    // Frames sent while a read is being parsed leave together once it is.
    if (!this.#parsing) this.#pump();
  }

  close(code = 1000): void {
    if (this.closed || this.#closing) return;
    const frame = new Uint8Array(textHeaderSize(2, this.masked) + 2);
    frame.set([code >> 8, code & 0xff], writeTextHeader(frame, 0, 2, this.masked, 0x8));
    // With nothing else on its way the socket ends once the close frame is written; behind other
    // frames it waits a little for the other side's close (a peer that stops reading must not
    // hold it open).
    if (this.#writing || this.#queue.length) setTimeout(() => this.#shutdown(), 200);
    else this.#shutdownWhenWritten = true;
    this.#queue.push(frame);
    this.#closing = true;
    this.#pump();
  }

  #shutdown(): void {
    if (this.closed) return;
    this.closed = true;
    this.#queue.length = 0;
    try {
      this.conn.close();
    } catch { /* already closed */ }
    this.onClose();
  }

  // One write per call for everything queued, no await per frame: the write's completion starts
  // the next one (a short write continues with the rest first).
  #pump(): void {
    if (this.#writing || this.closed) return;
    if (!this.#queue.length) {
      if (this.#shutdownWhenWritten) this.#shutdown();
      return;
    }
    const chunk = this.#queue.length === 1 ? this.#queue[0] : concatAll(this.#queue);
    this.#queue.length = 0;
    this.#writing = true;
    this.#write(chunk);
  }

  #write(chunk: Uint8Array): void {
    this.conn.write(chunk).then((written) => {
      if (written < chunk.length) return this.#write(chunk.subarray(written));
      this.#writing = false;
      this.#pump();
    }, () => {
      this.#writing = false;
      this.#shutdown();
    });
  }

  async readLoop(): Promise<void> {
    const chunk = new Uint8Array(READ_CHUNK);
    try {
      if (this.#buffer.length) this.#buffer = this.#parse(this.#buffer);
      while (!this.closed) {
        const n = await this.conn.read(chunk);
        if (n === null) break;
        // Frames are parsed where they were read; only an incomplete tail is copied, to be
        // joined with the next read.
        this.#buffer = this.#parse(
          this.#buffer.length ? concatAll([this.#buffer, chunk.subarray(0, n)]) : chunk.subarray(0, n),
        );
      }
    } catch { /* reset by peer */ }
    this.#shutdown();
  }

  /** Handles every complete frame in `buffer`; returns a copy of the incomplete rest. */
  #parse(buffer: Uint8Array): Uint8Array {
    let at = 0;
    this.#parsing = true;
    this.#reading = buffer;
    try {
      at = parseFrames(buffer, 0, buffer.length, this.#onFrame, this.#isClosed);
    } finally {
      this.#parsing = false;
    }
    this.#pump();
    return at === buffer.length ? EMPTY : buffer.slice(at);
  }

  #reading: Uint8Array = EMPTY;
  readonly #isClosed = () => this.closed;
  readonly #onFrame = (opcode: number, start: number, end: number) => {
    const buffer = this.#reading;
    if (opcode === 0x1) {
      if (this.onFrame) this.onFrame(buffer, start, end);
      else this.onText(decoder.decode(buffer.subarray(start, end)));
    } else if (opcode === 0x8) this.close();
    else if (opcode === 0x9) this.#queue.push(pongFor(buffer, start, end, this.masked));
  };
}

/** A final text frame carrying `text`. */
export function textFrame(text: string, masked: boolean): Uint8Array {
  const payload = encoder.encode(text);
  const frame = new Uint8Array(textHeaderSize(payload.length, masked) + payload.length);
  frame.set(payload, writeTextHeader(frame, 0, payload.length, masked));
  return frame;
}

/** The pong answering a ping whose payload is `buffer[start, end)`. */
export function pongFor(buffer: Uint8Array, start: number, end: number, masked: boolean): Uint8Array {
  const pong = new Uint8Array(textHeaderSize(end - start, masked) + end - start);
  pong.set(buffer.subarray(start, end), writeTextHeader(pong, 0, end - start, masked, 0xa));
  return pong;
}

/**
 * Calls `onFrame(opcode, start, end)` for every complete frame in `buffer[from, to)`, its payload
 * unmasked in place, until `stopped()`; returns where the incomplete rest begins.
 */
export function parseFrames(
  buffer: Uint8Array,
  from: number,
  to: number,
  onFrame: (opcode: number, start: number, end: number) => void,
  stopped: () => boolean,
): number {
  let at = from;
  while (to - at >= 2 && !stopped()) {
    const opcode = buffer[at] & 0x0f;
    const isMasked = (buffer[at + 1] & 0x80) !== 0;
    let length = buffer[at + 1] & 0x7f;
    let head = 2;
    if (length === 126) {
      if (to - at < 4) break;
      length = (buffer[at + 2] << 8) | buffer[at + 3];
      head = 4;
    } else if (length === 127) {
      if (to - at < 10) break;
      length = Number(new DataView(buffer.buffer, buffer.byteOffset + at + 2, 8).getBigUint64(0));
      head = 10;
    }
    const maskAt = at + head;
    if (isMasked) head += 4;
    if (to - at < head + length) break;
    const start = at + head;
    const end = start + length;
    if (isMasked) unmask(buffer, start, end, maskAt);
    at = end;
    onFrame(opcode, start, end);
  }
  return at;
}

function unmask(buffer: Uint8Array, start: number, end: number, maskAt: number): void {
  const key0 = buffer[maskAt],
    key1 = buffer[maskAt + 1],
    key2 = buffer[maskAt + 2],
    key3 = buffer[maskAt + 3];
  if ((key0 | key1 | key2 | key3) === 0) return;
  let i = start;
  for (; i + 4 <= end; i += 4) {
    buffer[i] ^= key0;
    buffer[i + 1] ^= key1;
    buffer[i + 2] ^= key2;
    buffer[i + 3] ^= key3;
  }
  const key = [key0, key1, key2, key3];
  for (let k = 0; i < end; i++, k++) buffer[i] ^= key[k];
}

function concatAll(parts: Uint8Array[]): Uint8Array {
  const joined = new Uint8Array(parts.reduce((sum, part) => sum + part.length, 0));
  let at = 0;
  for (const part of parts) {
    joined.set(part, at);
    at += part.length;
  }
  return joined;
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  return concatAll([a, b]);
}

/** Sec-WebSocket-Accept for a Sec-WebSocket-Key. */
export const acceptValue = (key: string): string => createHash("sha1").update(key + GUID).digest("base64");

/** The index just past the blank line ending an HTTP head in `bytes[start, end)`, or -1. */
export function headEnd(bytes: Uint8Array, start: number, end: number): number {
  for (let i = start + 3; i < end; i++) {
    if (bytes[i] === 10 && bytes[i - 1] === 13 && bytes[i - 2] === 10 && bytes[i - 3] === 13) return i + 1;
  }
  return -1;
}

/** Reads an HTTP/1.1 head; returns it and whatever bytes followed it. */
async function readHead(conn: Deno.Conn): Promise<{ head: string; rest: Uint8Array }> {
  let data: Uint8Array = new Uint8Array(0);
  const chunk = new Uint8Array(16 * 1024);
  while (true) {
    const n = await conn.read(chunk);
    if (n === null) throw new Error("connection closed during the handshake");
    data = concat(data, chunk.subarray(0, n));
    const split = headEnd(data, 0, data.length);
    if (split >= 0) return { head: decoder.decode(data.subarray(0, split)), rest: data.slice(split) };
    if (data.length > 64 * 1024) throw new Error("handshake head too large");
  }
}

export function headerMap(lines: string[]): Map<string, string> {
  const headers = new Map<string, string>();
  for (const line of lines) {
    const colon = line.indexOf(":");
    if (colon > 0) headers.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim());
  }
  return headers;
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
      `Sec-WebSocket-Accept: ${acceptValue(key)}\r\n${protocol}\r\n`,
  ));
  const socket = new WireSocket(conn, false, rest);
  onSocket(socket, { path, headers });
  socket.readLoop();
}
