// deno-lint-ignore-file no-explicit-any -- misuse tests pass wrong types on purpose
// Inbox.once, migrateInbox and Inbox.purge on the test database: embedded
// PGlite by default, a fresh database on the server when TEST_DATABASE_URL
// is set.
import assert from "node:assert/strict";
import { DomainEvent, EventBus } from "../../../mod.ts";
import {
  Inbox,
  migrateInbox,
  PostgresUnitOfWork,
} from "../../../src/adapters/postgres/mod.ts";
import { openAppDatabase } from "../../_helpers/app_db.ts";
import { freshInbox } from "./_helpers.ts";

class OrderPaid extends DomainEvent {
  constructor(readonly orderId: string) {
    super();
  }
}

Deno.test("the inbox runs a handler's effects once per event and handler", async (t) => {
  await using db = await openAppDatabase();
  const { sql } = db;
  const uow = new PostgresUnitOfWork(sql);

  const fresh = () => freshInbox(sql, "event_id text not null, what text");

  async function count(table: string, eventId?: string): Promise<number> {
    const [row] = eventId === undefined
      ? await db.observer`select count(*)::int as n from ${sql(table)}`
      : await db.observer`select count(*)::int as n from ${sql(table)}
          where event_id = ${eventId}`;
    return row!.n as number;
  }

  await t.step(
    "migrateInbox() is idempotent and safe when run concurrently",
    async () => {
      const table = `inbox_${
        crypto.randomUUID().replaceAll("-", "").slice(0, 12)
      }`;
      await Promise.all(
        Array.from({ length: 4 }, () => migrateInbox(sql, { table })),
      );
      await migrateInbox(sql, { table });
      assert.equal(await count(table), 0);
    },
  );

  await t.step(
    "once() runs the work the first time and skips it on redelivery",
    async () => {
      const { inbox, ledger, table } = await fresh();
      const event = new OrderPaid("o1");
      const book = () =>
        uow.run((tx) =>
          inbox.once(tx.sql, event, "Ledger.book", async () => {
            await tx.sql`insert into ${
              tx.sql(ledger)
            } values (${event.eventId}, 'book')`;
            return "booked";
          })
        );
      assert.deepEqual(await book(), { ran: true, value: "booked" });
      assert.deepEqual(await book(), { ran: false });
      assert.deepEqual(await book(), { ran: false });
      assert.equal(await count(ledger, event.eventId), 1);
      assert.equal(await count(table, event.eventId), 1);
    },
  );

  await t.step(
    "once(): when the rollback to its savepoint fails, that error reaches the caller",
    async () => {
      const { inbox } = await fresh();
      const error = await uow.run((tx) =>
        inbox.once(tx.sql, new OrderPaid("o9"), "Ledger.book", async () => {
          await tx.sql`release savepoint aftercommit_inbox`;
          throw new Error("work failed");
        })
      ).then(() => undefined, (e: unknown) => e);
      assert.equal((error as { code?: string }).code, "3B001", String(error));
    },
  );

  await t.step("each handler of one event gets its own record", async () => {
    const { inbox, ledger } = await fresh();
    const event = new OrderPaid("o2");
    for (const handler of ["Ledger.book", "Stats.count", "Ledger.book"]) {
      await uow.run((tx) =>
        inbox.once(tx.sql, event, handler, async () => {
          await tx.sql`insert into ${
            tx.sql(ledger)
          } values (${event.eventId}, ${handler})`;
        })
      );
    }
    const rows = await db.observer`select what from ${
      sql(ledger)
    } order by what`;
    assert.deepEqual(rows.map((r) => r.what), ["Ledger.book", "Stats.count"]);
  });

  await t.step(
    "a work that throws leaves no record, even when the caller catches and commits, so a redelivery runs it",
    async () => {
      const { inbox, ledger, table } = await fresh();
      const event = new OrderPaid("o3");
      await uow.run(async (tx) => {
        await assert.rejects(
          inbox.once(tx.sql, event, "Ledger.book", async () => {
            await tx.sql`insert into ${
              tx.sql(ledger)
            } values (${event.eventId}, 'half')`;
            throw new Error("the bank said no");
          }),
          /the bank said no/,
        );
        await tx.sql`insert into ${
          tx.sql(ledger)
        } values (${event.eventId}, 'after')`;
      });
      assert.equal(await count(table, event.eventId), 0, "no record");
      const rows = await db.observer`select what from ${sql(ledger)}`;
      assert.deepEqual(
        rows.map((r) => r.what),
        ["after"],
        "the work's insert rolled back",
      );
      const again = await uow.run((tx) =>
        inbox.once(tx.sql, event, "Ledger.book", () => "ran")
      );
      assert.deepEqual(again, { ran: true, value: "ran" });
    },
  );

  await t.step(
    "a rolled-back transaction takes its record with it",
    async () => {
      const { inbox, table } = await fresh();
      const event = new OrderPaid("o4");
      await assert.rejects(
        uow.run(async (tx) => {
          await inbox.once(tx.sql, event, "Ledger.book", () => {});
          throw new Error("later step failed");
        }),
        /later step failed/,
      );
      assert.equal(await count(table, event.eventId), 0);
    },
  );

  await t.step(
    "concurrent deliveries of one event to one handler apply the effect once",
    async () => {
      const { inbox, ledger } = await fresh();
      const event = new OrderPaid("o5");
      const results = await Promise.all(
        Array.from(
          { length: 8 },
          () =>
            uow.run((tx) =>
              inbox.once(tx.sql, event, "Ledger.book", async () => {
                await tx.sql`insert into ${
                  tx.sql(ledger)
                } values (${event.eventId}, 'book')`;
                // Hold the transaction open so the others queue on the record.
                await new Promise((resolve) => setTimeout(resolve, 20));
              })
            ),
        ),
      );
      assert.equal(results.filter((r) => r.ran).length, 1);
      assert.equal(await count(ledger, event.eventId), 1);
    },
  );

  await t.step(
    "events redelivered through a bus run the handler once",
    async () => {
      const { inbox, ledger } = await fresh();
      const bus = new EventBus();
      bus.register(OrderPaid, async (event) => {
        await uow.run((tx) =>
          inbox.once(tx.sql, event, "Ledger.book", async () => {
            await tx.sql`insert into ${
              tx.sql(ledger)
            } values (${event.eventId}, 'book')`;
          })
        );
      });
      const a = new OrderPaid("a");
      const b = new OrderPaid("b");
      await bus.publishAll([a, b, a, a, b]);
      assert.equal(await count(ledger, a.eventId), 1);
      assert.equal(await count(ledger, b.eventId), 1);
    },
  );

  await t.step(
    "purge() deletes records older than the retention, and only those",
    async () => {
      const { inbox, table } = await fresh();
      const old = new OrderPaid("old");
      const recent = new OrderPaid("recent");
      for (const event of [old, recent]) {
        await uow.run((tx) =>
          inbox.once(tx.sql, event, "Ledger.book", () => {})
        );
      }
      await sql`update ${
        sql(table)
      } set processed_at = now() - interval '40 days'
      where event_id = ${old.eventId}`;
      assert.equal(
        await inbox.purge(sql, { olderThanSeconds: 30 * 86_400 }),
        1,
      );
      assert.equal(await count(table, old.eventId), 0);
      assert.equal(await count(table, recent.eventId), 1);
      assert.equal(
        await inbox.purge(sql, { olderThanSeconds: 30 * 86_400 }),
        0,
      );
      // Purged: a redelivery of the old event runs again.
      const again = await uow.run((tx) =>
        inbox.once(tx.sql, old, "Ledger.book", () => 1)
      );
      assert.equal(again.ran, true);
    },
  );

  await t.step(
    "misuse is a TypeError or RangeError that says what to do, and writes nothing",
    async () => {
      const { inbox, table } = await fresh();
      const event = new OrderPaid("o6");
      await uow.run(async (tx) => {
        const cases: [() => Promise<unknown>, ErrorConstructor, RegExp][] = [
          [
            () => inbox.once(tx.sql, event, "Ledger.book", "book" as any),
            TypeError,
            /work must be a function that makes the handler's database effects, received a string; pass async \(\) => \{ … \}/,
          ],
          [
            () => inbox.once(tx.sql, event, "Ledger.book", undefined as any),
            TypeError,
            /work must be a function/,
          ],
          [
            () => inbox.once(tx.sql, event, "", () => {}),
            TypeError,
            /handler must be a name of 1 to 200 characters such as "Stats.countSignup", received a string of 0 characters/,
          ],
          [
            () => inbox.once(tx.sql, event, "x".repeat(201), () => {}),
            TypeError,
            /received a string of 201 characters/,
          ],
          [
            () =>
              inbox.once(tx.sql, event, ((e: unknown) => e) as any, () => {}),
            TypeError,
            /handler must be a name .*received function/,
          ],
          [
            () =>
              inbox.once(
                tx.sql,
                { orderId: "o6" } as any,
                "Ledger.book",
                () => {},
              ),
            TypeError,
            /expected an event with a string eventId \(a DomainEvent\), received a plain object whose eventId is undefined; pass the event the handler received/,
          ],
          [
            () => inbox.once(tx.sql, null as any, "Ledger.book", () => {}),
            TypeError,
            /expected an event with a string eventId/,
          ],
          [
            () => inbox.once(sql as any, event, "Ledger.book", () => {}),
            TypeError,
            /expected the transaction's sql \(tx\.sql inside uow\.run\(\), or the sql that sql\.begin\(\) gives\), received a client that is not in a transaction/,
          ],
        ];
        for (const [call, type, message] of cases) {
          await assert.rejects(call, (error: Error) => {
            assert.ok(error instanceof type, String(error));
            assert.match(error.message, message);
            return true;
          });
        }
      });
      assert.equal(await count(table), 0);
      for (
        const [options, type, message] of [
          [{ olderThanSeconds: -1 }, RangeError, /at least 0, received -1/],
          [
            { olderThanSeconds: NaN },
            RangeError,
            /options\.olderThanSeconds must be a finite number, received NaN/,
          ],
          [
            { olderThanSeconds: "30d" },
            TypeError,
            /options\.olderThanSeconds must be a number of seconds, received a string; pass the retention/,
          ],
          [
            undefined,
            TypeError,
            /options\.olderThanSeconds must be a number of seconds, received undefined/,
          ],
        ] as const
      ) {
        await assert.rejects(
          inbox.purge(sql, options as any),
          (error: Error) => {
            assert.ok(error instanceof type, String(error));
            assert.match(error.message, message);
            return true;
          },
        );
      }
      assert.throws(
        () => new Inbox({ table: "bad name" }),
        /Cannot create Inbox: options\.table must be a table name or schema\.name/,
      );
      await assert.rejects(
        migrateInbox({} as any),
        /Cannot migrate inbox: expected a postgres\.js client/,
      );
      // The client is checked first, as before the trim round.
      await assert.rejects(
        migrateInbox({} as any, { table: "1bad" }),
        /Cannot migrate inbox: expected a postgres\.js client/,
      );
    },
  );
});
