// A TCP relay between the store and Postgres that a test can cut and restore, to stand for a
// database that goes away mid-call (failover, network blip). While down it resets every open
// connection and every new one, as a refused or dropped connection would.

export interface TcpProxy {
  port: number;
  down(): void;
  up(): void;
  close(): Promise<void>;
}

export function startTcpProxy(targetPort: number): TcpProxy {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const open = new Set<Deno.Conn>();
  const relays = new Set<Promise<unknown>>();
  let isDown = false;

  const closeQuietly = (conn: Deno.Conn) => {
    open.delete(conn);
    try {
      conn.close();
    } catch {
      // Already closed by the other side.
    }
  };

  const relay = async (client: Deno.Conn) => {
    let server: Deno.Conn;
    try {
      server = await Deno.connect({ hostname: "127.0.0.1", port: targetPort });
    } catch {
      closeQuietly(client);
      return;
    }
    open.add(client);
    open.add(server);
    const pipe = (from: Deno.Conn, to: Deno.Conn) =>
      from.readable.pipeTo(to.writable).catch(() => {}).finally(() => {
        closeQuietly(from);
        closeQuietly(to);
      });
    await Promise.all([pipe(client, server), pipe(server, client)]);
  };

  const accepting = (async () => {
    for await (const client of listener) {
      if (isDown) {
        closeQuietly(client);
        continue;
      }
      const task = relay(client);
      relays.add(task);
      task.finally(() => relays.delete(task));
    }
  })().catch(() => {});

  return {
    port: (listener.addr as Deno.NetAddr).port,
    down() {
      isDown = true;
      [...open].forEach(closeQuietly);
    },
    up() {
      isDown = false;
    },
    async close() {
      listener.close();
      [...open].forEach(closeQuietly);
      await accepting;
      await Promise.all(relays);
    },
  };
}
