// A saved registration is never answered 5xx: with the jobs database gone
// after the commit, POST /users answers 201 and says what happens to the
// welcome email. In plain mode (OUTBOX=false) nothing retries it; with the
// outbox the relay sends it once the jobs database is back.
//
// The jobs database is reached through a TCP proxy in this process, which
// the test takes down and brings back; so this needs a server
// (TEST_JOB_QUEUE_DATABASE_URL or TEST_DATABASE_URL).
import assert from "node:assert/strict";
import {
  openDevDatabases,
  register,
  request,
  startDevServer,
  waitForWelcomeEmail,
} from "../_helpers/dev_server.ts";

const serverUrl = Deno.env.get("TEST_JOB_QUEUE_DATABASE_URL") ||
  Deno.env.get("TEST_DATABASE_URL") || undefined;

/** A TCP proxy to `target` that can be taken down and brought back. */
class Proxy implements AsyncDisposable {
  #listener: Deno.Listener | undefined;
  readonly #conns = new Set<Deno.Conn>();
  readonly #pipes = new Set<Promise<unknown>>();
  #port = 0;
  #down = false;

  constructor(readonly target: { hostname: string; port: number }) {}

  get port(): number {
    return this.#port;
  }

  up(): void {
    this.#down = false;
    this.#listener = Deno.listen({ hostname: "127.0.0.1", port: this.#port });
    this.#port = (this.#listener.addr as Deno.NetAddr).port;
    const listener = this.#listener;
    const accepting = (async () => {
      for await (const client of listener) {
        this.#conns.add(client);
        const pipe = (async () => {
          let upstream: Deno.Conn | undefined;
          try {
            upstream = await Deno.connect(this.target);
            this.#conns.add(upstream);
            // Taken down while this connection was being made: cut it too.
            if (this.#down) throw new Error("proxy is down");
            await Promise.race([
              client.readable.pipeTo(upstream.writable),
              upstream.readable.pipeTo(client.writable),
            ]);
          } catch {
            // A side closed.
          } finally {
            for (const c of [client, upstream]) {
              if (c === undefined) continue;
              this.#conns.delete(c);
              try {
                c.close();
              } catch {
                // Already closed.
              }
            }
          }
        })();
        this.#pipes.add(pipe);
        pipe.finally(() => this.#pipes.delete(pipe));
      }
    })();
    this.#pipes.add(accepting.catch(() => {}));
  }

  /** Refuses new connections and cuts the open ones. */
  async down(): Promise<void> {
    this.#down = true;
    this.#listener?.close();
    this.#listener = undefined;
    for (const c of this.#conns) {
      try {
        c.close();
      } catch {
        // Already closed.
      }
    }
    this.#conns.clear();
    await Promise.allSettled([...this.#pipes]);
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.down();
  }
}

async function withJobsBehindProxy(
  outbox: boolean,
  fn: (
    server: Awaited<ReturnType<typeof startDevServer>>,
    proxy: Proxy,
  ) => Promise<void>,
): Promise<void> {
  await using dbs = await openDevDatabases();
  const jobsUrl = new URL(dbs.env.JOB_QUEUE_DATABASE_URL ?? serverUrl!);
  if (dbs.env.JOB_QUEUE_DATABASE_URL === undefined) {
    // Embedded app database: the jobs database is a fresh one on the server.
    jobsUrl.pathname = `/aftercommit_jobs_down_${
      crypto.randomUUID().replaceAll("-", "").slice(0, 12)
    }`;
  }
  await using proxy = new Proxy({
    hostname: jobsUrl.hostname,
    port: Number(jobsUrl.port || 5432),
  });
  proxy.up();
  const proxied = new URL(jobsUrl);
  proxied.hostname = "127.0.0.1";
  proxied.port = String(proxy.port);
  await using server = await startDevServer({
    ...dbs.env,
    JOB_QUEUE_DATABASE_URL: proxied.href,
    OUTBOX: String(outbox),
  });
  try {
    await fn(server, proxy);
  } finally {
    await server.stop("SIGKILL");
    if (dbs.env.JOB_QUEUE_DATABASE_URL === undefined) {
      const { default: postgres } = await import("postgres");
      const admin = postgres(serverUrl!, { max: 1, onnotice: () => {} });
      const name = jobsUrl.pathname.slice(1);
      await admin`drop database if exists ${admin(name)} with (force)`;
      await admin.end();
    }
  }
}

Deno.test({
  name:
    "jobs database down, OUTBOX=false: a registration is answered 201 and says the welcome email is not sent",
  ignore: serverUrl === undefined,
  async fn() {
    await withJobsBehindProxy(false, async (server, proxy) => {
      await proxy.down();
      const address = `down.${crypto.randomUUID().slice(0, 8)}@example.org`;
      const res = await register(server, { email: address, name: "Down" });
      assert.equal(res.status, 201, JSON.stringify(res.body));
      assert.match(
        String(res.body.welcomeEmail),
        /^not sent: .*OUTBOX=false nothing retries it/,
      );
      // Saved: it can be read, and registering again is a 409, not a 201.
      const user = await request(`${server.url}/users/${res.body.id}`);
      assert.equal(user.status, 200);
      const again = await register(server, { email: address, name: "Down" });
      assert.equal(again.status, 409);
      await server.waitForOutput(/welcome email is not sent/);
      assert.ok(!server.output().includes(address));
      // /health tells the truth about the jobs database.
      const health = await request(`${server.url}/health`);
      assert.equal(health.status, 503);
      assert.deepEqual(health.body.databases, { app: "ok", jobs: "down" });
    });
  },
});

Deno.test({
  name:
    "jobs database down with the outbox: 201, the email is delayed, and sent once the database is back",
  ignore: serverUrl === undefined,
  async fn() {
    await withJobsBehindProxy(true, async (server, proxy) => {
      await proxy.down();
      const res = await register(server, {
        email: `later.${crypto.randomUUID().slice(0, 8)}@example.org`,
        name: "Later",
      });
      assert.equal(res.status, 201, JSON.stringify(res.body));
      assert.match(String(res.body.welcomeEmail), /^delayed: .*relay retries/);
      proxy.up();
      const user = await waitForWelcomeEmail(
        server,
        String(res.body.id),
        60_000,
      );
      assert.notEqual(user.body.welcomeEmailSentAt, null);
    });
  },
});
