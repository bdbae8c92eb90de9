// The embedded PostgreSQL adapter itself: PGlite behind pglite-socket.
import assert from "node:assert/strict";
import postgres from "postgres";
import {
  EmbeddedPostgres,
  startEmbeddedPostgres,
} from "../../../src/adapters/pglite/mod.ts";

async function portIsClosed(port: number): Promise<boolean> {
  try {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    conn.close();
    return false;
  } catch (error) {
    return error instanceof Deno.errors.ConnectionRefused;
  }
}

Deno.test({
  name:
    "startEmbeddedPostgres() serves an in-memory database to npm:postgres on a free loopback port until disposed",
  async fn() {
    let port: number;
    {
      await using db = await startEmbeddedPostgres();
      assert.ok(db instanceof EmbeddedPostgres);
      port = db.port;
      assert.ok(port > 0);
      assert.equal(db.url, `postgres://postgres@127.0.0.1:${port}/postgres`);
      assert.equal(db.dataDir, undefined);
      const sql = db.connect(postgres);
      const [row] = await sql<{ version: string }[]>`select version()`;
      assert.match(row!.version, /^PostgreSQL \d+/);
      await sql`create table t (n int)`;
      await sql.begin(async (tx) => {
        await tx`insert into t values (1), (2)`;
      });
      const [count] = await sql<{ n: number }[]>`
        select count(*)::int as n from t`;
      assert.equal(count!.n, 2);
    }
    assert.ok(await portIsClosed(port), "the port is released on dispose");
  },
});

Deno.test({
  name:
    "startEmbeddedPostgres({ dataDir }) keeps the data across a restart, and close() is idempotent",
  async fn() {
    const dataDir = await Deno.makeTempDir({ prefix: "aftercommit_pglite_" });
    try {
      const first = await startEmbeddedPostgres({ dataDir });
      assert.equal(first.dataDir, dataDir);
      const sql = first.connect(postgres);
      await sql`create table notes (body text not null)`;
      await sql`insert into notes values ('kept')`;
      await Promise.all([first.close(), first.close()]);
      await first.close();
      await assert.rejects(sql`select 1`, "close() ended the client");
      assert.throws(() => first.connect(postgres), {
        name: "TypeError",
        message: /it is closed/,
      });

      await using second = await startEmbeddedPostgres({ dataDir });
      const rows = await second.connect(postgres)<{ body: string }[]>`
        select body from notes`;
      assert.deepEqual(rows.map((r) => r.body), ["kept"]);
    } finally {
      await Deno.remove(dataDir, { recursive: true });
    }
  },
});

Deno.test({
  name:
    "the embedded URL works for a client of one's own (one connection at a time)",
  async fn() {
    await using db = await startEmbeddedPostgres();
    const own = postgres(db.url, { max: 1, onnotice: () => {} });
    try {
      const [row] = await own<{ answer: number }[]>`select 42 as answer`;
      assert.equal(row!.answer, 42);
    } finally {
      await own.end();
    }
  },
});

Deno.test("startEmbeddedPostgres() rejects bad options before starting anything", async () => {
  await assert.rejects(
    // @ts-expect-error: not a string
    startEmbeddedPostgres({ dataDir: 42 }),
    {
      name: "TypeError",
      message:
        /options\.dataDir must be a non-empty string, received a number; leave it out/,
    },
  );
  await assert.rejects(startEmbeddedPostgres({ dataDir: "" }), TypeError);
  await assert.rejects(startEmbeddedPostgres({ port: 70000 }), {
    name: "RangeError",
    message: /options\.port must be between 0 and 65535, received 70000/,
  });
});

Deno.test({
  name:
    "connect() refuses a second client while the first is open (it would wait forever), and connects one once the first has ended",
  async fn() {
    await using db = await startEmbeddedPostgres();
    const first = db.connect(postgres);
    await first`select 1`;
    assert.throws(() => db.connect(postgres), {
      name: "TypeError",
      message:
        /Cannot connect to embedded PostgreSQL: a client of connect\(\) is still open, and the server serves one connection at a time .*; share that client, or await its end\(\) first/,
    });
    const ending = first.end();
    assert.throws(() => db.connect(postgres), /still open/, "until it ends");
    await ending;
    const second = db.connect(postgres);
    const [row] = await second<{ n: number }[]>`select 2 as n`;
    assert.equal(row!.n, 2);
    await second.end();
    // A client whose end() answers at once still counts as ended.
    const sync = db.connect(() => ({ end: () => undefined as never }));
    await sync.end();
    // @ts-expect-error: a promise of a client, which the types refuse
    assert.throws(() => db.connect(async () => await Promise.resolve(second)), {
      name: "TypeError",
      message:
        /expected the factory to return a client with an end\(\) method, received an instance of Promise; return the client itself/,
    });
    // A client whose end() cannot be replaced is not counted as open: the
    // rule cannot see it end, and must not refuse every later connect.
    const frozen = db.connect(() => Object.freeze({ end: async () => {} }));
    await frozen.end();
    db.connect(postgres); // none of them is left open
  },
});

Deno.test({
  name: "connect() rejects a factory that is not a function",
  async fn() {
    await using db = await startEmbeddedPostgres();
    // @ts-expect-error: not a function
    assert.throws(() => db.connect("postgres://"), {
      name: "TypeError",
      message: /factory \(postgres, from npm:postgres\) must be a function/,
    });
  },
});

Deno.test({
  name:
    "startEmbeddedPostgres() on a port in use rejects with the listen error and closes the database it opened",
  async fn() {
    const dataDir = await Deno.makeTempDir({ prefix: "aftercommit_pglite_" });
    try {
      {
        using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
        const { port } = listener.addr as Deno.NetAddr;
        await assert.rejects(startEmbeddedPostgres({ port, dataDir }), {
          code: "EADDRINUSE",
        });
      }
      // PostgreSQL removes its lock file when the database is closed: one
      // left behind would mean the PGlite instance was abandoned open.
      await assert.rejects(
        Deno.stat(`${dataDir}/postmaster.pid`),
        Deno.errors.NotFound,
      );
      await using db = await startEmbeddedPostgres({ dataDir });
      const [row] = await db.connect(postgres)<{ n: number }[]>`select 1 as n`;
      assert.equal(row!.n, 1);
    } finally {
      await Deno.remove(dataDir, { recursive: true });
    }
  },
});
