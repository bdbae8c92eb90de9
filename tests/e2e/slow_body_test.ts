// Requests whose body does not arrive: the dev server answers 408 once the
// bound (BODY_TIMEOUT_MS) has passed and closes the connection, so clients
// that never finish their body cannot hold connections open. Raw TCP
// clients, since fetch always sends the whole body.
import assert from "node:assert/strict";
import {
  openDevDatabases,
  register,
  startDevServer,
} from "../_helpers/dev_server.ts";

const BOUND_MS = 1000;
const CONNECTIONS = 200;

interface RawResult {
  /** Everything the server sent before it closed the connection. */
  text: string;
  /** From the request's start to the server closing the connection. */
  closedAfterMs: number;
}

/** The head of a POST /users and part of its body. */
const PARTIAL_POST = "POST /users HTTP/1.1\r\nhost: 127.0.0.1\r\n" +
  "content-type: application/json\r\ncontent-length: 100\r\n\r\n" +
  '{"email":';

/**
 * Sends `sent`, then waits for the server to close the connection (or gives
 * up after `giveUpMs`).
 */
async function partialPost(
  port: number,
  giveUpMs: number,
  halfClose = false,
  sent = PARTIAL_POST,
): Promise<RawResult> {
  const started = performance.now();
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const timer = setTimeout(() => conn.close(), giveUpMs);
  let text = "";
  try {
    await conn.write(new TextEncoder().encode(sent));
    if (halfClose) await conn.closeWrite();
    const buffer = new Uint8Array(4096);
    const decoder = new TextDecoder();
    for (;;) {
      const n = await conn.read(buffer).catch(() => null);
      if (n === null) break;
      text += decoder.decode(buffer.subarray(0, n), { stream: true });
    }
    return { text, closedAfterMs: performance.now() - started };
  } finally {
    clearTimeout(timer);
    try {
      conn.close();
    } catch {
      // Closed by the timer.
    }
  }
}

Deno.test({
  name:
    "a request body that does not arrive within the bound gets 408 and its connection is closed, 200 at once",
  async fn(t) {
    await using dbs = await openDevDatabases();
    await using server = await startDevServer({
      ...dbs.env,
      BODY_TIMEOUT_MS: String(BOUND_MS),
    });
    const port = Number(new URL(server.url).port);
    // A connection still open at 10 × the bound counts as held.
    const giveUpMs = 10 * BOUND_MS;

    await t.step(
      `${CONNECTIONS} slow bodies: each 408, each closed`,
      async () => {
        const results = await Promise.all(
          Array.from(
            { length: CONNECTIONS },
            () => partialPost(port, giveUpMs),
          ),
        );
        const held = results.filter((r) => r.closedAfterMs >= giveUpMs - 50);
        assert.equal(held.length, 0, `${held.length} connections were held`);
        for (const r of results) {
          assert.match(r.text, /^HTTP\/1\.1 408 /);
          assert.match(r.text, /request body must arrive within 1000 ms/);
          // Not closed before the bound: the client had its time.
          assert.ok(r.closedAfterMs >= BOUND_MS - 50, `${r.closedAfterMs} ms`);
        }
      },
    );

    await t.step(
      "a body cut short by the client (half-closed): closed at once, never a 5xx",
      async () => {
        const r = await partialPost(port, giveUpMs, true);
        assert.ok(r.closedAfterMs < BOUND_MS, `${r.closedAfterMs} ms`);
        // node:http drops a request whose body ends early; an answer, if
        // any, is a 400 saying so.
        if (r.text !== "") {
          assert.match(r.text, /^HTTP\/1\.1 400 /);
          assert.match(r.text, /request body ended before all of it arrived/);
        }
      },
    );

    await t.step(
      `${CONNECTIONS} request heads that never end: each closed after the bound`,
      async () => {
        const results = await Promise.all(
          Array.from(
            { length: CONNECTIONS },
            () =>
              partialPost(
                port,
                giveUpMs,
                false,
                "GET /health HTTP/1.1\r\nhost: 127.0.0.1\r\n",
              ),
          ),
        );
        const held = results.filter((r) => r.closedAfterMs >= giveUpMs - 50);
        assert.equal(held.length, 0, `${held.length} connections were held`);
        for (const r of results) {
          assert.equal(r.text, "", "no answer to a request never sent");
          assert.ok(r.closedAfterMs >= BOUND_MS - 50, `${r.closedAfterMs} ms`);
        }
      },
    );

    await t.step("the server still serves whole requests", async () => {
      const res = await register(server, {
        email: `slow.${crypto.randomUUID().slice(0, 8)}@example.org`,
        name: "Not Slow",
      });
      assert.equal(res.status, 201);
      assert.doesNotMatch(server.output(), /\[(ERR|FTL)\]/);
    });
  },
});
