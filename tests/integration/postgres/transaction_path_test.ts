// The Unit of Work's own transaction path: a reserved connection (no other
// caller's query inside its transaction at any queue depth), savepoints, and
// the truth about a COMMIT that PostgreSQL turns into a ROLLBACK.
import assert from "node:assert/strict";
import { CommitError, EventBus } from "../../../mod.ts";
import { PostgresUnitOfWork } from "../../../src/adapters/postgres/mod.ts";
import { openAppDatabase } from "../../_helpers/app_db.ts";

class Noted {
  constructor(readonly id: number) {}
}

Deno.test("PostgresUnitOfWork's transaction path on a pool of one", async (t) => {
  await using db = await openAppDatabase(1);
  await db.sql`create table notes (id int primary key)`;
  const bus = new EventBus();
  const published: number[] = [];
  bus.register(Noted, (e) => {
    published.push(e.id);
  });
  const uow = new PostgresUnitOfWork(db.sql, { bus });

  for (const depth of [99, 100, 101, 250]) {
    await t.step(
      `${depth} queries queued before run(): none of them, nor any made while it is open, runs inside its transaction`,
      async () => {
        await db.sql`select 1`;
        const seen: Promise<string | null>[] = [];
        const probe = () =>
          seen.push(
            db.sql<{ x: string | null }[]>`
              select pg_current_xact_id_if_assigned()::text as x`
              .then((rows) => rows[0]!.x),
          );
        for (let i = 0; i < depth; i++) probe();
        const own = await uow.run(async (tx) => {
          const [row] = await tx.sql<{ x: string }[]>`
            select pg_current_xact_id()::text as x`;
          for (let i = 0; i < 20; i++) probe();
          await tx.sql`insert into notes (id) values (${depth})`;
          tx.publishAfterCommit(new Noted(depth));
          return row!.x;
        });
        const xids = await Promise.all(seen);
        assert.equal(xids.length, depth + 20);
        assert.equal(xids.filter((x) => x === own).length, 0);
        assert.ok(published.includes(depth));
      },
    );
  }

  await t.step("tx.sql.savepoint() rolls back only its own part", async () => {
    await uow.run(async (tx) => {
      await tx.sql`insert into notes (id) values (1000)`;
      await assert.rejects(
        tx.sql.savepoint(async (sp) => {
          await sp`insert into notes (id) values (1001)`;
          await sp`insert into notes (id) values (1000)`; // duplicate key
        }),
        (error: { code?: string }) => error.code === "23505",
      );
      await tx.sql.savepoint("named", async (sp) => {
        await sp`insert into notes (id) values (1002)`;
      });
    });
    const rows = await db.observer<{ id: number }[]>`
      select id from notes where id >= 1000 order by id`;
    assert.deepEqual(rows.map((r) => r.id), [1000, 1002]);
  });

  await t.step(
    "a failed statement whose error work caught: COMMIT turns into ROLLBACK, and run() throws CommitError, publishing nothing",
    async () => {
      const before = published.length;
      const error = await uow.run(async (tx) => {
        await tx.sql`insert into notes (id) values (2000)`;
        await tx.sql`insert into notes (id) values (2000)`.catch(() => {});
        tx.publishAfterCommit(new Noted(2000));
      }).then(() => undefined, (e) => e);
      assert.ok(error instanceof CommitError, String(error));
      assert.equal(error.committed, false);
      assert.match(String(error.cause), /rolled the transaction back/);
      const rows = await db.observer`select 1 from notes where id = 2000`;
      assert.equal(rows.length, 0);
      assert.equal(published.length, before);
      // The connection is back in the pool, usable.
      await uow.run((tx) => tx.sql`insert into notes (id) values (2001)`);
    },
  );

  await t.step("bad options are refused before anything runs", () => {
    assert.throws(
      () => new PostgresUnitOfWork(db.sql, { commitCheckSeconds: -1 }),
      (e: Error) =>
        e instanceof RangeError &&
        /commitCheckSeconds must be at least 0, received -1/.test(e.message),
    );
    for (const commitCheckSeconds of [Number.NaN, Infinity]) {
      assert.throws(
        () => new PostgresUnitOfWork(db.sql, { commitCheckSeconds }),
        /commitCheckSeconds must be a finite number/,
      );
    }
    const noReserve = Object.assign(() => {}, { begin: () => {} });
    assert.throws(
      // @ts-expect-error: not a postgres.js client
      () => new PostgresUnitOfWork(noReserve),
      (e: Error) => e instanceof TypeError && /reserve\(\)/.test(e.message),
    );
  });
});
