// HTTP/1.1 requests and RFC 6455 WebSockets, client and server, on libc_net.ts's sockets, driven by
// one synchronous loop (`EventLoop.run`), for the load side of the bridge benchmark only.
//
// The frame bytes are ws_wire.ts's (zero mask key, frames built in place and written as they are);
// what changes is the transport: no promise per read or write, one epoll_wait for every socket, one
// read per ready socket and one write per batch of frames. Received text frames are handed over as a
// view of the read buffer (`onFrame`), valid until the callback returns.
// https://www.rfc-editor.org/rfc/rfc6455#section-5.2

import {
  closeSocket,
  connectError,
  EPOLLERR,
  EPOLLHUP,
  EPOLLIN,
  EPOLLOUT,
  Poller,
  readSome,
  tcpAccept,
  tcpConnect,
  tcpListen,
  writeSome,
} from "./libc_net.ts";
import {
  acceptValue,
  headEnd,
  headerMap,
  parseFrames,
  pongFor,
  textFrame,
  textHeaderSize,
  writeTextHeader,
} from "./ws_wire.ts";

export { Slab, textHeaderSize, writeTextHeader } from "./ws_wire.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const EMPTY = new Uint8Array(0);
const MAX_HEAD = 64 * 1024;
/** How long a closing WebSocket waits for the other side's close frame before it just goes. */
const CLOSE_WAIT_MS = 300;

// One read buffer for every socket: the loop reads one socket at a time, and nothing keeps a view.
const readBuffer = new Uint8Array(256 * 1024);

interface Timer {
  at: number;
  run: () => void;
}

/** Sockets by file descriptor, timers, and the one place the process sleeps. */
export class EventLoop {
  readonly poller = new Poller();
  readonly #connections: (Connection | undefined)[] = [];
  #timers: Timer[] = [];
  #dispatch = (fd: number, events: number) => this.#connections[fd]?.handle(events);

  track(connection: Connection, events: number): void {
    this.#connections[connection.fd] = connection;
    this.poller.add(connection.fd, events);
  }

  untrack(fd: number): void {
    this.poller.remove(fd);
    this.#connections[fd] = undefined;
  }

  after(ms: number, run: () => void): void {
    this.#timers.push({ at: performance.now() + ms, run });
  }

  /** One turn: sleep until a socket is ready or `untilMs` (performance.now()) or a timer is due. */
  turn(untilMs: number): void {
    let wake = untilMs;
    for (const timer of this.#timers) wake = Math.min(wake, timer.at);
    this.poller.wait(Math.max(0, Math.ceil(wake - performance.now())), this.#dispatch);
    if (this.#timers.length) {
      const now = performance.now();
      const due = this.#timers.filter((timer) => timer.at <= now);
      if (due.length) {
        this.#timers = this.#timers.filter((timer) => timer.at > now);
        for (const timer of due) timer.run();
      }
    }
  }
}

/** A TCP connection: writes go out at once (the rest queued until the socket drains), reads are
 * handed to `onBytes`, which answers how many bytes it used; the rest waits for more. */
export class Connection {
  closed = false;
  onConnect: () => void = () => {};
  onBytes: (bytes: Uint8Array, start: number, end: number) => number = (_b, start, end) => end - start;
  onClose: () => void = () => {};
  #connecting: boolean;
  #queued: Uint8Array[] = [];
  #waitingToWrite = false;
  #pending: Uint8Array = EMPTY;

  constructor(readonly loop: EventLoop, readonly fd: number, connecting: boolean) {
    this.#connecting = connecting;
    loop.track(this, connecting ? EPOLLOUT : EPOLLIN);
  }

  static connect(loop: EventLoop, ip: string, port: number): Connection {
    return new Connection(loop, tcpConnect(ip, port), true);
  }

  write(bytes: Uint8Array): void {
    if (this.closed) return;
    this.#queued.push(bytes);
    // Behind other bytes (or before the connection is up) it waits its turn; else it goes now.
    if (this.#queued.length === 1 && !this.#connecting) this.#flush();
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.loop.untrack(this.fd);
    closeSocket(this.fd);
    this.#queued.length = 0;
    this.onClose();
  }

  handle(events: number): void {
    if (this.#connecting) {
      if (connectError(this.fd) !== 0) return this.close();
      this.#connecting = false;
      this.loop.poller.modify(this.fd, EPOLLIN);
      this.onConnect();
      if (this.#queued.length) this.#flush();
      return;
    }
    if (events & EPOLLOUT) this.#flush();
    if (events & (EPOLLIN | EPOLLERR | EPOLLHUP)) this.#read();
  }

  /** Writes what is queued until the socket is full; then waits for it to drain (EPOLLOUT). */
  #flush(): void {
    while (this.#queued.length) {
      const head = this.#queued[0];
      let written: number;
      try {
        written = writeSome(this.fd, head);
      } catch {
        return this.close();
      }
      if (written < head.length) {
        this.#queued[0] = head.subarray(written);
        if (!this.#waitingToWrite) this.loop.poller.modify(this.fd, EPOLLIN | EPOLLOUT);
        this.#waitingToWrite = true;
        return;
      }
      this.#queued.shift();
    }
    if (this.#waitingToWrite && !this.closed) this.loop.poller.modify(this.fd, EPOLLIN);
    this.#waitingToWrite = false;
  }

  #read(): void {
    let n: number;
    try {
      n = readSome(this.fd, readBuffer);
    } catch {
      return this.close();
    }
    if (n < 0) return;
    if (n === 0) return this.close();
    let bytes = readBuffer;
    let end = n;
    if (this.#pending.length) {
      bytes = new Uint8Array(this.#pending.length + n);
      bytes.set(this.#pending);
      bytes.set(readBuffer.subarray(0, n), this.#pending.length);
      end = bytes.length;
    }
    const used = this.onBytes(bytes, 0, end);
    if (this.closed) return;
    this.#pending = used === end ? EMPTY : bytes.slice(used, end);
    if (this.#pending.length > MAX_HEAD && used === 0) this.close();
  }
}

function ipOf(hostname: string): string {
  return hostname === "localhost" ? "127.0.0.1" : hostname;
}

export interface HttpAnswer {
  status: number;
  body: string;
}

/** One HTTP/1.1 request with `Connection: close`; `done` gets the answer once the server closes
 * (or null if the connection failed). */
export function httpRequest(
  loop: EventLoop,
  url: string,
  method: string,
  headers: Record<string, string>,
  body: string,
  done: (answer: HttpAnswer | null) => void,
): void {
  const target = new URL(url);
  const payload = encoder.encode(body);
  const extra = Object.entries(headers).map(([name, value]) => `${name}: ${value}\r\n`).join("");
  const request = encoder.encode(
    `${method} ${target.pathname}${target.search} HTTP/1.1\r\nHost: ${target.host}\r\n${extra}` +
      `Content-Length: ${payload.length}\r\nConnection: close\r\n\r\n`,
  );
  const received: Uint8Array[] = [];
  let connection: Connection;
  try {
    connection = Connection.connect(loop, ipOf(target.hostname), Number(target.port || 80));
  } catch {
    return done(null);
  }
  connection.onConnect = () => {
    connection.write(request);
    connection.write(payload);
  };
  connection.onBytes = (bytes, start, end) => {
    received.push(bytes.slice(start, end));
    return end - start;
  };
  connection.onClose = () => {
    const all = new Uint8Array(received.reduce((sum, part) => sum + part.length, 0));
    let at = 0;
    for (const part of received) {
      all.set(part, at);
      at += part.length;
    }
    const split = headEnd(all, 0, all.length);
    if (split < 0) return done(null);
    const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(decoder.decode(all.subarray(0, split)))?.[1] ?? 0);
    done({ status, body: decoder.decode(all.subarray(split)) });
  };
}

export class WebSocket {
  /** Text frames: the payload is `bytes[start, end)`, a view reused once this returns. */
  onFrame: (bytes: Uint8Array, start: number, end: number) => void = () => {};
  onClose: () => void = () => {};
  closed = false;
  #closing = false;

  constructor(readonly connection: Connection, readonly masked: boolean) {
    connection.onBytes = (bytes, start, end) => this.#parse(bytes, start, end);
    connection.onClose = () => {
      if (this.closed) return;
      this.closed = true;
      this.onClose();
    };
  }

  send(text: string): void {
    this.sendOwned(textFrame(text, this.masked));
  }

  /** Complete frame bytes the caller no longer touches, written as they are. */
  sendOwned(frames: Uint8Array): void {
    if (!this.#closing) this.connection.write(frames);
  }

  close(code = 1000): void {
    if (this.#closing || this.closed) return;
    this.#closing = true;
    const frame = new Uint8Array(textHeaderSize(2, this.masked) + 2);
    frame.set([code >> 8, code & 0xff], writeTextHeader(frame, 0, 2, this.masked, 0x8));
    this.connection.write(frame);
    // The socket ends when the other side's close arrives, or after a short wait for it: closing
    // with unread input would reset the connection instead.
    this.connection.loop.after(CLOSE_WAIT_MS, () => this.connection.close());
  }

  #parse(buffer: Uint8Array, from: number, to: number): number {
    this.#reading = buffer;
    return parseFrames(buffer, from, to, this.#onFrame, this.#isClosed) - from;
  }

  #reading: Uint8Array = EMPTY;
  readonly #isClosed = () => this.closed;
  readonly #onFrame = (opcode: number, start: number, end: number) => {
    if (opcode === 0x1) this.onFrame(this.#reading, start, end);
    else if (opcode === 0x8) {
      if (!this.#closing) this.close();
      this.connection.close();
    } else if (opcode === 0x9) this.sendOwned(pongFor(this.#reading, start, end, this.masked));
  };
}

/** Opens a client WebSocket (masked frames) to a ws:// URL; `done` gets it, or the reason it failed. */
export function connectWebSocket(
  loop: EventLoop,
  url: string,
  headers: Record<string, string>,
  done: (socket: WebSocket | null, failure?: string) => void,
): void {
  const target = new URL(url);
  if (target.protocol !== "ws:") return done(null, "not_ws_url");
  const key = btoa(String.fromCharCode(...crypto.getRandomValues(new Uint8Array(16))));
  const extra = Object.entries(headers).map(([name, value]) => `${name}: ${value}\r\n`).join("");
  const request = encoder.encode(
    `GET ${target.pathname}${target.search} HTTP/1.1\r\nHost: ${target.host}\r\nUpgrade: websocket\r\n` +
      `Connection: Upgrade\r\nSec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n${extra}\r\n`,
  );
  let connection: Connection;
  try {
    connection = Connection.connect(loop, ipOf(target.hostname), Number(target.port || 80));
  } catch {
    return done(null, "connect");
  }
  let settled = false;
  connection.onConnect = () => connection.write(request);
  connection.onClose = () => {
    if (!settled) done(null, "closed_during_upgrade");
    settled = true;
  };
  connection.onBytes = (bytes, start, end) => {
    const split = headEnd(bytes, start, end);
    if (split < 0) return 0;
    const [status, ...lines] = decoder.decode(bytes.subarray(start, split)).split("\r\n");
    settled = true;
    if (!/^HTTP\/1\.1 101/.test(status)) {
      connection.close();
      done(null, `upgrade_${status.split(" ")[1] ?? "bad"}`);
      return end - start;
    }
    if (headerMap(lines).get("sec-websocket-accept") !== acceptValue(key)) {
      connection.close();
      done(null, "upgrade_bad_accept");
      return end - start;
    }
    const socket = new WebSocket(connection, true);
    done(socket);
    // Frames that came with the 101 are parsed at once.
    return split - start + connection.onBytes(bytes, split, end);
  };
}

export interface UpgradeRequest {
  path: string;
  headers: Map<string, string>;
}

/** Serves WebSocket upgrades on 127.0.0.1:port; `accept` answers a protocol to select, or null
 * to refuse with 400. */
export function listenWebSocket(
  loop: EventLoop,
  port: number,
  accept: (request: UpgradeRequest) => { protocol?: string } | null,
  onSocket: (socket: WebSocket, request: UpgradeRequest) => void,
): () => void {
  const fd = tcpListen("127.0.0.1", port);
  const listener = new Connection(loop, fd, false);
  listener.handle = () => {
    for (let client = tcpAccept(fd); client >= 0; client = tcpAccept(fd)) {
      serveHandshake(new Connection(loop, client, false), accept, onSocket);
    }
  };
  return () => listener.close();
}

function serveHandshake(
  connection: Connection,
  accept: (request: UpgradeRequest) => { protocol?: string } | null,
  onSocket: (socket: WebSocket, request: UpgradeRequest) => void,
): void {
  connection.onBytes = (bytes, start, end) => {
    const split = headEnd(bytes, start, end);
    if (split < 0) return 0;
    const [requestLine, ...lines] = decoder.decode(bytes.subarray(start, split)).split("\r\n");
    const path = requestLine.split(" ")[1] ?? "/";
    const headers = headerMap(lines);
    const key = headers.get("sec-websocket-key");
    const verdict = key && headers.get("upgrade")?.toLowerCase() === "websocket" ? accept({ path, headers }) : null;
    if (!key || verdict === null) {
      connection.write(encoder.encode("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"));
      connection.loop.after(CLOSE_WAIT_MS, () => connection.close());
      return end - start;
    }
    const protocol = verdict.protocol ? `Sec-WebSocket-Protocol: ${verdict.protocol}\r\n` : "";
    connection.write(encoder.encode(
      `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
        `Sec-WebSocket-Accept: ${acceptValue(key)}\r\n${protocol}\r\n`,
    ));
    const socket = new WebSocket(connection, false);
    onSocket(socket, { path, headers });
    return split - start + connection.onBytes(bytes, split, end);
  };
}
