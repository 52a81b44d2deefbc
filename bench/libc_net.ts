// Non-blocking IPv4 TCP sockets and epoll, straight from libc through Deno's FFI, for the load side
// of the bridge benchmark only (Linux).
//
// Why: the load generator plays hundreds of callers and their model at once, tens of thousands of
// small messages a second, and it must stay well under its core so the figures describe the server.
// Through Deno.Conn every read and write is an async op with a promise, and a read is followed by a
// second one that finds nothing; here one epoll_wait reports every ready socket, each is read once
// (level-triggered: anything left is reported again), and a write is one syscall. Everything is
// synchronous: the caller runs one loop and sleeps only in `Poller.wait`.
// https://man7.org/linux/man-pages/man7/epoll.7.html

const libc = Deno.dlopen("libc.so.6", {
  socket: { parameters: ["i32", "i32", "i32"], result: "i32" },
  connect: { parameters: ["i32", "buffer", "u32"], result: "i32" },
  bind: { parameters: ["i32", "buffer", "u32"], result: "i32" },
  listen: { parameters: ["i32", "i32"], result: "i32" },
  accept4: { parameters: ["i32", "pointer", "pointer", "i32"], result: "i32" },
  setsockopt: { parameters: ["i32", "i32", "i32", "buffer", "u32"], result: "i32" },
  getsockopt: { parameters: ["i32", "i32", "i32", "buffer", "buffer"], result: "i32" },
  // ssize_t results are read as i32: the low half of the register, exact for any count below 2 GiB.
  read: { parameters: ["i32", "buffer", "usize"], result: "i32" },
  write: { parameters: ["i32", "buffer", "usize"], result: "i32" },
  close: { parameters: ["i32"], result: "i32" },
  epoll_create1: { parameters: ["i32"], result: "i32" },
  epoll_ctl: { parameters: ["i32", "i32", "i32", "buffer"], result: "i32" },
  epoll_wait: { parameters: ["i32", "buffer", "i32", "i32"], result: "i32" },
  __errno_location: { parameters: [], result: "pointer" },
  clock_gettime: { parameters: ["i32", "buffer"], result: "i32" },
});
const sys = libc.symbols;

// Linux values, the same on x86_64 and aarch64 (asm-generic).
const AF_INET = 2;
const SOCK_STREAM = 1;
const SOCK_NONBLOCK = 0o4000;
const SOCK_CLOEXEC = 0o2000000;
const SOL_SOCKET = 1;
const SO_REUSEADDR = 2;
const SO_ERROR = 4;
const IPPROTO_TCP = 6;
const TCP_NODELAY = 1;
const EPOLL_CTL_ADD = 1;
const EPOLL_CTL_DEL = 2;
const EPOLL_CTL_MOD = 3;
export const EPOLLIN = 0x1;
export const EPOLLOUT = 0x4;
export const EPOLLERR = 0x8;
export const EPOLLHUP = 0x10;
const EINTR = 4;
const EAGAIN = 11;
const EINPROGRESS = 115;

// struct epoll_event is packed on x86_64 (4 + 8 bytes), naturally aligned elsewhere (4 + 4 + 8).
const EVENT_SIZE = Deno.build.arch === "x86_64" ? 12 : 16;
const DATA_OFFSET = Deno.build.arch === "x86_64" ? 4 : 8;

export class NetError extends Error {
  constructor(call: string, readonly errno: number) {
    super(`${call} failed: errno ${errno}`);
  }
}

const errnoView = () => new Deno.UnsafePointerView(sys.__errno_location()!);
const errno = (): number => errnoView().getInt32();

const ONE = new Uint8Array(new Int32Array([1]).buffer);

/** A size_t argument: Deno takes a number for it (as for any integer within 2^53), though its
 * types say bigint, and converting every count to a bigint would cost more than the call. */
const size = (count: number) => count as unknown as bigint;

function check(call: string, result: number): number {
  if (result < 0) throw new NetError(call, errno());
  return result;
}

/** struct sockaddr_in for an IPv4 literal. */
function socketAddress(ip: string, port: number): Uint8Array {
  const parts = ip.split(".").map(Number);
  if (parts.length !== 4 || parts.some((part) => !(part >= 0 && part <= 255))) {
    throw new Error(`not an IPv4 address: ${ip}`);
  }
  const address = new Uint8Array(16);
  new DataView(address.buffer).setUint16(0, AF_INET, true);
  address[2] = port >> 8;
  address[3] = port & 0xff;
  address.set(parts, 4);
  return address;
}

function tcpSocket(): number {
  const fd = check("socket", sys.socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  check("setsockopt(TCP_NODELAY)", sys.setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, ONE, 4));
  return fd;
}

/** Starts connecting; the socket turns writable once connected (then ask `connectError`). */
export function tcpConnect(ip: string, port: number): number {
  const fd = tcpSocket();
  const address = socketAddress(ip, port);
  if (sys.connect(fd, address, address.length) < 0) {
    const code = errno();
    if (code !== EINPROGRESS) {
      sys.close(fd);
      throw new NetError("connect", code);
    }
  }
  return fd;
}

/** 0 once a non-blocking connect succeeded, else its errno. */
export function connectError(fd: number): number {
  const value = new Uint8Array(4);
  const size = new Uint8Array(new Uint32Array([4]).buffer);
  check("getsockopt(SO_ERROR)", sys.getsockopt(fd, SOL_SOCKET, SO_ERROR, value, size));
  return new DataView(value.buffer).getInt32(0, true);
}

export function tcpListen(ip: string, port: number): number {
  const fd = tcpSocket();
  check("setsockopt(SO_REUSEADDR)", sys.setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, ONE, 4));
  const address = socketAddress(ip, port);
  check(`bind ${ip}:${port}`, sys.bind(fd, address, address.length));
  check("listen", sys.listen(fd, 1024));
  return fd;
}

/** The next pending connection (non-blocking, TCP_NODELAY), or -1 if none is waiting. */
export function tcpAccept(listener: number): number {
  const fd = sys.accept4(listener, null, null, SOCK_NONBLOCK | SOCK_CLOEXEC);
  if (fd < 0) {
    const code = errno();
    if (code === EAGAIN || code === EINTR) return -1;
    throw new NetError("accept4", code);
  }
  check("setsockopt(TCP_NODELAY)", sys.setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, ONE, 4));
  return fd;
}

/** Bytes read into `into` (0 at end of stream), or -1 if nothing is there yet. Throws on a reset. */
export function readSome(fd: number, into: Uint8Array): number {
  const n = sys.read(fd, into, size(into.length));
  if (n >= 0) return n;
  const code = errno();
  if (code === EAGAIN || code === EINTR) return -1;
  throw new NetError("read", code);
}

/** Bytes of `bytes` written now (possibly fewer, 0 if the socket is full). Throws if it is gone. */
export function writeSome(fd: number, bytes: Uint8Array): number {
  const n = sys.write(fd, bytes, size(bytes.length));
  if (n >= 0) return n;
  const code = errno();
  if (code === EAGAIN || code === EINTR) return 0;
  throw new NetError("write", code);
}

const CLOCK_MONOTONIC = 1;
const timespec = new BigInt64Array(2);

/** CLOCK_MONOTONIC in microseconds: one clock for every process on the machine. */
export function monotonicMicros(): number {
  check("clock_gettime", sys.clock_gettime(CLOCK_MONOTONIC, new Uint8Array(timespec.buffer)));
  return Number(timespec[0]) * 1e6 + Number(timespec[1]) / 1000;
}

export function closeSocket(fd: number): void {
  sys.close(fd);
}

/** Level-triggered epoll over file descriptors; `wait` hands back (fd, events) pairs. */
export class Poller {
  readonly #fd = check("epoll_create1", sys.epoll_create1(0));
  readonly #control = new Uint8Array(EVENT_SIZE);
  readonly #controlView = new DataView(this.#control.buffer);
  #ready = new Uint8Array(EVENT_SIZE * 1024);
  #readyView = new DataView(this.#ready.buffer);

  #ctl(op: number, fd: number, events: number): void {
    this.#controlView.setUint32(0, events, true);
    this.#controlView.setUint32(DATA_OFFSET, fd, true);
    this.#controlView.setUint32(DATA_OFFSET + 4, 0, true);
    check("epoll_ctl", sys.epoll_ctl(this.#fd, op, fd, this.#control));
  }

  add(fd: number, events: number): void {
    this.#ctl(EPOLL_CTL_ADD, fd, events);
  }

  modify(fd: number, events: number): void {
    this.#ctl(EPOLL_CTL_MOD, fd, events);
  }

  remove(fd: number): void {
    try {
      this.#ctl(EPOLL_CTL_DEL, fd, 0);
    } catch { /* already gone */ }
  }

  /** Sleeps up to `timeoutMs` (0: just look) for ready sockets; calls `each(fd, events)` for them. */
  wait(timeoutMs: number, each: (fd: number, events: number) => void): number {
    const capacity = this.#ready.length / EVENT_SIZE;
    const count = sys.epoll_wait(this.#fd, this.#ready, capacity, timeoutMs);
    if (count < 0) {
      if (errno() === EINTR) return 0;
      throw new NetError("epoll_wait", errno());
    }
    for (let index = 0; index < count; index++) {
      const at = index * EVENT_SIZE;
      each(this.#readyView.getUint32(at + DATA_OFFSET, true), this.#readyView.getUint32(at, true));
    }
    return count;
  }
}
