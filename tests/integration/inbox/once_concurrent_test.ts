// Inbox.once called while another call on the same transaction has not
// finished: refused before it writes anything (their savepoints would undo
// each other); a call made from inside another's work nests, and a nested
// call still in flight ends inside the outer call's savepoint.
import assert from "node:assert/strict";
import { DomainEvent } from "../../../mod.ts";
import { PostgresUnitOfWork } from "../../../src/adapters/postgres/mod.ts";
import { openAppDatabase } from "../../_helpers/app_db.ts";
import { freshInbox } from "./_helpers.ts";
import { waitFor } from "../../_helpers/poll.ts";

class OrderPaid extends DomainEvent {}

Deno.test("Inbox.once calls that overlap on one transaction", async (t) => {
  await using db = await openAppDatabase();
  const { sql } = db;
  const uow = new PostgresUnitOfWork(sql);

  const fresh = () => freshInbox(sql, "what text not null");

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

  const OVERLAP =
    /^Cannot run once: another once\(\) on this transaction has not finished, and their savepoints would undo each other; await each call before the next/;

  await t.step(
    "a second call while the first runs is refused, writes nothing, and the first commits",
    async () => {
      const { inbox, ledger, table } = await fresh();
      const event = new OrderPaid();
      const results = await uow.run((tx) => {
        const book = (what: string) =>
          tx.sql`insert into ${tx.sql(ledger)} values (${what})`;
        return Promise.allSettled([
          inbox.once(tx.sql, event, "A", async () => {
            await book("a");
            return "a";
          }),
          inbox.once(tx.sql, event, "B", () => book("b")),
        ]);
      });
      assert.deepEqual(results[0], {
        status: "fulfilled",
        value: { ran: true, value: "a" },
      });
      assert.match(String(message(results[1]!)), OVERLAP);
      assert.ok(
        results[1]!.status === "rejected" &&
          results[1].reason instanceof TypeError,
      );
      assert.deepEqual(await committed(ledger, table), {
        effects: ["a"],
        records: ["A"],
      });
    },
  );

  await t.step(
    "a work that awaits a later call gets the refusal instead of waiting forever",
    async () => {
      const { inbox, ledger, table } = await fresh();
      const event = new OrderPaid();
      const error = await waitFor(
        uow.run((tx) => {
          const calls: Promise<unknown>[] = [];
          calls.push(inbox.once(tx.sql, event, "A", async () => {
            await calls[1]; // the call made after this one
          }));
          calls.push(inbox.once(tx.sql, event, "B", () => {}));
          calls[1]!.catch(() => {}); // awaited by A's work, after a round trip
          return calls[0];
        }).catch((e) => e),
        "the run to settle",
      );
      assert.match(String((error as Error | undefined)?.message), OVERLAP);
      assert.deepEqual((await committed(ledger, table)).records, []);
    },
  );

  await t.step(
    "calls awaited one after another all commit",
    async () => {
      const { inbox, ledger, table } = await fresh();
      const event = new OrderPaid();
      await uow.run(async (tx) => {
        for (const name of ["A", "B", "C"]) {
          await inbox.once(tx.sql, event, name, async () => {
            await tx.sql`insert into ${tx.sql(ledger)} values (${name})`;
          }).catch(() => {});
        }
      });
      assert.deepEqual(await committed(ledger, table), {
        effects: ["A", "B", "C"],
        records: ["A", "B", "C"],
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
    "two nested calls that overlap: the second is refused, the first commits with the outer",
    async () => {
      const { inbox, ledger, table } = await fresh();
      const event = new OrderPaid();
      const results = await uow.run((tx) =>
        inbox.once(tx.sql, event, "Outer", () => {
          const book = (what: string) =>
            tx.sql`insert into ${tx.sql(ledger)} values (${what})`;
          return Promise.allSettled([
            inbox.once(tx.sql, event, "A", () => book("a")),
            inbox.once(tx.sql, event, "B", () => book("b")),
          ]);
        })
      );
      assert.equal(results.ran, true);
      const [a, b] = results.ran ? results.value : [];
      assert.equal(a?.status, "fulfilled");
      assert.match(String(message(b!)), OVERLAP);
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
          await tx.sql`insert into ${tx.sql(ledger)} values ('outer')`;
          // Not awaited, and the last thing the work does (a statement of
          // the work sent meanwhile would land in its savepoint).
          late = inbox.once(tx.sql, event, "Late", async () => {
            await tx.sql`insert into ${tx.sql(ledger)} values ('late')`;
            throw new Error("Late failed");
          });
          late.catch(() => {});
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
    "a call made later in a finished call's context (a promise reaction) while another runs is refused",
    async () => {
      const { inbox, ledger, table } = await fresh();
      const event = new OrderPaid();
      const late = Promise.withResolvers<unknown>();
      await uow.run(async (tx) => {
        const book = (what: string) =>
          tx.sql`insert into ${tx.sql(ledger)} values (${what})`;
        // A reaction keeps the context it was registered in: A's.
        const fire = Promise.withResolvers<void>();
        await inbox.once(tx.sql, event, "A", () => {
          fire.promise.then(() =>
            inbox.once(tx.sql, event, "Late", () => book("late"))
          ).then(late.resolve, late.resolve);
        });
        await inbox.once(tx.sql, event, "C", async () => {
          fire.resolve();
          await late.promise;
          await book("c");
        });
      });
      assert.match(String((await late.promise as Error).message), OVERLAP);
      assert.deepEqual(await committed(ledger, table), {
        effects: ["c"],
        records: ["A", "C"],
      });
    },
  );

  await t.step(
    "a call made just after the work that made it returned is refused, saying so",
    async () => {
      const { inbox, ledger, table } = await fresh();
      const event = new OrderPaid();
      const late = Promise.withResolvers<unknown>();
      await uow.run(async (tx) => {
        await inbox.once(tx.sql, event, "Outer", () => {
          // Runs a few microtasks after the work returned, in its context,
          // while the outer call releases its savepoint.
          Promise.resolve().then().then().then(() =>
            inbox.once(tx.sql, event, "Late", () => {})
          ).then(late.resolve, late.resolve);
        });
      });
      assert.match(
        String((await late.promise as Error).message),
        /^Cannot run once: the work of the once\(\) that makes this call has already settled, and its savepoint is being released; make the call before that work returns, and await it$/,
      );
      assert.deepEqual((await committed(ledger, table)).records, ["Outer"]);
    },
  );
});
