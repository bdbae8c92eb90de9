// Inbox.once called concurrently on one transaction (Promise.all in a unit
// of work), and from inside another call's work: each call keeps its own
// savepoint, so a failed call rolls back its effects and record only.
import assert from "node:assert/strict";
import { DomainEvent } from "../../../mod.ts";
import {
  Inbox,
  migrateInbox,
  PostgresUnitOfWork,
} from "../../../src/adapters/postgres/mod.ts";
import { openAppDatabase } from "../../_helpers/app_db.ts";
import { waitFor } from "../../_helpers/poll.ts";

class OrderPaid extends DomainEvent {}

Deno.test("Inbox.once calls in flight together on one transaction", async (t) => {
  await using db = await openAppDatabase();
  const { sql } = db;
  const uow = new PostgresUnitOfWork(sql);

  async function fresh(): Promise<
    { inbox: Inbox; ledger: string; table: string }
  > {
    const suffix = crypto.randomUUID().replaceAll("-", "").slice(0, 12);
    const table = `inbox_${suffix}`;
    const ledger = `ledger_${suffix}`;
    await migrateInbox(sql, { table });
    await sql`create table ${sql(ledger)} (what text not null)`;
    return { inbox: new Inbox({ table }), ledger, table };
  }

  // What committed: the ledger's rows and the inbox's handlers, sorted.
  async function committed(
    ledger: string,
    table: string,
  ): Promise<{ effects: string[]; records: string[] }> {
    const effects = await db.observer`select what from ${
      sql(ledger)
    } order by what`;
    const records = await db.observer`select handler from ${
      sql(table)
    } order by handler`;
    return {
      effects: effects.map((r) => r.what),
      records: records.map((r) => r.handler),
    };
  }

  function message(result: PromiseSettledResult<unknown>): unknown {
    return result.status === "rejected"
      ? (result.reason as Error).message
      : result.value;
  }

  await t.step(
    "two calls, one failing after the other finished: the other's effects and record commit",
    async () => {
      const { inbox, ledger, table } = await fresh();
      const event = new OrderPaid();
      const results = await uow.run((tx) => {
        const book = (what: string) =>
          tx.sql`insert into ${tx.sql(ledger)} values (${what})`;
        const a = inbox.once(tx.sql, event, "A", async () => {
          await book("a");
          return "a";
        });
        const b = inbox.once(tx.sql, event, "B", async () => {
          await book("b");
          await a; // B fails once A has released its savepoint
          throw new Error("B failed");
        });
        return Promise.allSettled([a, b]);
      });
      assert.deepEqual(results.map(message), [
        { ran: true, value: "a" },
        "B failed",
      ]);
      assert.deepEqual(await committed(ledger, table), {
        effects: ["a"],
        records: ["A"],
      });
    },
  );

  await t.step(
    "three calls in sql.begin(), the middle one failing: the others commit",
    async () => {
      const { inbox, ledger, table } = await fresh();
      const event = new OrderPaid();
      const results = await sql.begin((tx) => {
        const book = (what: string) =>
          tx`insert into ${tx(ledger)} values (${what})`;
        const a = inbox.once(tx, event, "A", async () => {
          await book("a");
          return "a";
        });
        const b = inbox.once(tx, event, "B", async () => {
          await book("b");
          await a;
          throw new Error("B failed");
        });
        const c = inbox.once(tx, event, "C", async () => {
          await book("c");
          await b.catch(() => {});
          return "c";
        });
        return Promise.allSettled([a, b, c]);
      });
      assert.deepEqual(results.map(message), [
        { ran: true, value: "a" },
        "B failed",
        { ran: true, value: "c" },
      ]);
      assert.deepEqual(await committed(ledger, table), {
        effects: ["a", "c"],
        records: ["A", "C"],
      });
    },
  );

  await t.step(
    "a call inside another's work runs nested, without waiting for it",
    async () => {
      const { inbox, ledger, table } = await fresh();
      const event = new OrderPaid();
      const result = await waitFor(
        uow.run((tx) =>
          inbox.once(tx.sql, event, "Outer", async () => {
            await tx.sql`insert into ${tx.sql(ledger)} values ('outer')`;
            return await inbox.once(tx.sql, event, "Inner", async () => {
              await tx.sql`insert into ${tx.sql(ledger)} values ('inner')`;
              return "inner";
            });
          })
        ),
        "the nested once() to finish",
      );
      assert.deepEqual(result, {
        ran: true,
        value: { ran: true, value: "inner" },
      });
      assert.deepEqual(await committed(ledger, table), {
        effects: ["inner", "outer"],
        records: ["Inner", "Outer"],
      });
    },
  );

  await t.step(
    "nested calls in flight together: a failing one rolls back alone",
    async () => {
      const { inbox, ledger, table } = await fresh();
      const event = new OrderPaid();
      const results = await uow.run((tx) =>
        inbox.once(tx.sql, event, "Outer", () => {
          const book = (what: string) =>
            tx.sql`insert into ${tx.sql(ledger)} values (${what})`;
          const a = inbox.once(tx.sql, event, "A", () => book("a"));
          const b = inbox.once(tx.sql, event, "B", async () => {
            await book("b");
            await a;
            throw new Error("B failed");
          });
          return Promise.allSettled([a, b]);
        })
      );
      assert.equal(results.ran, true);
      assert.deepEqual(
        results.ran && results.value.map((r) => r.status),
        ["fulfilled", "rejected"],
      );
      assert.deepEqual(await committed(ledger, table), {
        effects: ["a"],
        records: ["A", "Outer"],
      });
    },
  );

  await t.step(
    "a nested call still in flight when the outer work fails is rolled back with it",
    async () => {
      const { inbox, ledger, table } = await fresh();
      const event = new OrderPaid();
      let late: Promise<unknown> | undefined;
      await uow.run(async (tx) => {
        await assert.rejects(
          inbox.once(tx.sql, event, "Outer", () => {
            late = inbox.once(tx.sql, event, "Late", async () => {
              await tx.sql`insert into ${tx.sql(ledger)} values ('late')`;
            });
            throw new Error("Outer failed");
          }),
          /Outer failed/,
        );
        assert.deepEqual(await late, { ran: true, value: undefined });
      });
      assert.deepEqual(await committed(ledger, table), {
        effects: [],
        records: [],
      });
    },
  );

  await t.step(
    "a nested call still in flight when the outer work returns finishes before the outer commits",
    async () => {
      const { inbox, ledger, table } = await fresh();
      const event = new OrderPaid();
      let late: Promise<unknown> | undefined;
      const result = await uow.run(async (tx) => {
        const outer = await inbox.once(tx.sql, event, "Outer", async () => {
          late = inbox.once(tx.sql, event, "Late", async () => {
            await tx.sql`insert into ${tx.sql(ledger)} values ('late')`;
            throw new Error("Late failed");
          });
          late.catch(() => {});
          await tx.sql`insert into ${tx.sql(ledger)} values ('outer')`;
          return "outer";
        });
        await assert.rejects(late!, /Late failed/);
        return outer;
      });
      assert.deepEqual(result, { ran: true, value: "outer" });
      assert.deepEqual(await committed(ledger, table), {
        effects: ["outer"],
        records: ["Outer"],
      });
    },
  );

  await t.step(
    "the same event and handler twice at once runs the work once",
    async () => {
      const { inbox, ledger, table } = await fresh();
      const event = new OrderPaid();
      const results = await uow.run((tx) =>
        Promise.all(
          [1, 2].map((n) =>
            inbox.once(tx.sql, event, "Ledger.book", async () => {
              await tx.sql`insert into ${tx.sql(ledger)} values ('book')`;
              return n;
            })
          ),
        )
      );
      assert.deepEqual(results, [{ ran: true, value: 1 }, { ran: false }]);
      assert.deepEqual(await committed(ledger, table), {
        effects: ["book"],
        records: ["Ledger.book"],
      });
    },
  );
});
