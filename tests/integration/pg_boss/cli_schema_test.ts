// The CLI changes no pg-boss schema: on a schema without pg-boss (a mistyped
// --schema or --jobs-url) or of an older pg-boss, every dead-letter command
// exits 2 naming the schema, and the schema stays as it was. And it sends
// the --type it checked: trimmed.
import assert from "node:assert/strict";
import postgres from "postgres";
import { EventBus } from "../../../mod.ts";
import { PgBossJobQueue } from "../../../src/adapters/pg-boss/mod.ts";
import { startEmbeddedPostgres } from "../../../src/adapters/pglite/mod.ts";
import {
  OutboxAdmin,
  OutboxRelay,
} from "../../../src/adapters/postgres/mod.ts";
import { main } from "../../../src/cli/mod.ts";
import { fakeIo } from "../../_helpers/cli_io.ts";
import { openAppDatabase } from "../../_helpers/app_db.ts";
import { createServerDatabase } from "../../_helpers/server_database.ts";
import { freshOutbox, insertUndone, Noted } from "../outbox/_helpers.ts";

// A database with a URL, without pg-boss: a fresh one on the server, or an
// embedded PostgreSQL (one connection at a time: close one before the next).
async function urlDatabase() {
  const server = Deno.env.get("TEST_JOB_QUEUE_DATABASE_URL");
  if (server) {
    const db = await createServerDatabase(server, "aftercommit_cli_test");
    return { url: db.url, [Symbol.asyncDispose]: () => db.drop() };
  }
  const db = await startEmbeddedPostgres();
  return { url: db.url, [Symbol.asyncDispose]: () => db.close() };
}

Deno.test({
  name: "CLI: no pg-boss schema, or an older one: exits 2, changes nothing",
  sanitizeOps: true,
  sanitizeResources: true,
  async fn(t) {
    await using db = await urlDatabase();
    const query = async (text: string) => {
      const sql = postgres(db.url, { max: 1, onnotice: () => {} });
      try {
        return (await sql.unsafe(text)).map((row) => ({ ...row }));
      } finally {
        await sql.end();
      }
    };
    const commands = [
      ["dead-letters"],
      ["dead-letters", "list", "--queue", "send-email", "--data"],
      ["dead-letters", "retry", "--all", "--yes"],
      ["dead-letters", "delete", "--queue", "send-email"],
      ["dead-letters", "delete", "--id", crypto.randomUUID(), "--yes"],
    ];

    await t.step("a schema without pg-boss is not created", async () => {
      for (
        const [schema, flags] of [["pgbos", ["--schema", "pgbos"]], [
          "pgboss",
          [],
        ]] as const
      ) {
        for (const command of commands) {
          const io = fakeIo();
          const args = [...command, ...flags, "--jobs-url", db.url];
          assert.equal(await main(args, io), 2, args.join(" "));
          assert.match(
            io.stderr,
            new RegExp(
              `^aftercommit: Cannot connect job queue: the schema "${schema}" on .* holds no pg-boss tables; check --schema \\(default pgboss\\) and --jobs-url`,
            ),
          );
          assert.equal(io.stdout, "");
        }
      }
      assert.deepEqual(
        await query(
          "select nspname from pg_namespace where nspname in ('pgbos', 'pgboss')",
        ),
        [],
      );
    });

    await t.step("an older pg-boss schema is not migrated", async () => {
      // connect() installs it, as before.
      const jobs = await PgBossJobQueue.connect(db.url, {
        schema: "jobs",
        supervise: false,
        maxConnections: 1,
      });
      await jobs.stop();
      const [{ version }] = await query(
        "update jobs.version set version = version - 1 returning version",
      ) as unknown as [{ version: number }];
      for (const command of commands) {
        const io = fakeIo();
        const args = [...command, "--schema", "jobs", "--jobs-url", db.url];
        assert.equal(await main(args, io), 2, args.join(" "));
        assert.match(
          io.stderr,
          /the schema "jobs" on .* holds the tables of another pg-boss version; check --schema/,
        );
      }
      assert.deepEqual(await query("select version from jobs.version"), [{
        version,
      }]);

      // A newer one (an application upgraded first): refused, with the hint.
      await query("update jobs.version set version = version + 2");
      const newer = fakeIo();
      const dl = ["dead-letters", "--schema", "jobs", "--jobs-url", db.url];
      assert.equal(await main(dl, newer), 2);
      assert.match(
        newer.stderr,
        /another pg-boss version; .*run the CLI of the application's release/,
      );
      await query("update jobs.version set version = version - 1");
      const io = fakeIo();
      const args = ["dead-letters", "--schema", "jobs", "--jobs-url", db.url];
      assert.equal(await main(args, io), 0, io.stderr);
      assert.equal(io.stdout, "No dead letters.\n");
    });
  },
});

Deno.test({
  name: "CLI: a --type with spaces around it selects as it was checked",
  sanitizeOps: true,
  sanitizeResources: true,
  async fn() {
    await using db = await openAppDatabase();
    const options = await freshOutbox(db.sql, { maxAttempts: 1 });
    const event = new Noted(1);
    await insertUndone(db.sql, options, [event]);
    const bus = new EventBus();
    bus.register(Noted, () => {
      throw new Error("no");
    });
    await new OutboxRelay(db.sql, { ...options, bus }).runOnce();
    const deps = {
      openOutbox: () =>
        Promise.resolve({
          admin: new OutboxAdmin(db.sql, { table: options.table }),
          close: () => Promise.resolve(),
        }),
    };
    const table = ["--table", options.table];
    const type = " test.outbox.noted ";

    let io = fakeIo([false]);
    assert.equal(
      await main(["requeue", "--type", type, ...table], io, deps),
      1,
    );
    assert.deepEqual(io.asked, [
      "Requeue 1 parked event (type test.outbox.noted)? [y/N] ",
    ]);

    io = fakeIo();
    assert.equal(await main(["parked", "--type", type, ...table], io, deps), 0);
    assert.match(io.stdout, new RegExp(event.eventId));

    io = fakeIo();
    assert.equal(
      await main(["requeue", "--type", type, "--yes", ...table], io, deps),
      0,
      io.stderr,
    );
    assert.equal(
      io.stdout,
      "Requeued 1 parked event; the relay dispatches them at its next pass.\n",
    );
  },
});
