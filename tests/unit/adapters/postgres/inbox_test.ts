// deno-lint-ignore-file no-explicit-any -- misuse tests pass wrong types on purpose
// The Inbox's checks that need no database: its quoted table name, and a
// `sql` that is not a postgres.js query function. Inbox.once on a database:
// tests/integration/inbox/.
import assert from "node:assert/strict";
import { DomainEvent } from "../../../../mod.ts";
import { Inbox } from "../../../../src/adapters/postgres/mod.ts";

class OrderPaid extends DomainEvent {
  constructor(readonly orderId: string) {
    super();
  }
}

Deno.test("Inbox.table is the quoted table name, with its schema if given", () => {
  assert.equal(new Inbox().table, '"aftercommit_inbox"');
  assert.equal(new Inbox({ table: "ledger_inbox" }).table, '"ledger_inbox"');
  assert.equal(new Inbox({ table: "ops.inbox" }).table, '"ops"."inbox"');
});

Deno.test("Inbox.once(): a sql that is not a function is a TypeError naming tx.sql, and calls nothing", async () => {
  const inbox = new Inbox();
  let ran = false;
  for (
    const [sql, received] of [
      [undefined, "undefined"],
      [{ savepoint: () => {} }, "a plain object"],
      ["select 1", "a string"],
    ] as const
  ) {
    await assert.rejects(
      inbox.once(sql as any, new OrderPaid("o1"), "Ledger.book", () => {
        ran = true;
      }),
      (error: Error) => {
        assert.ok(error instanceof TypeError, String(error));
        assert.equal(
          error.message,
          `Cannot run once: expected the transaction's sql (tx.sql inside uow.run()), received ${received}`,
        );
        return true;
      },
    );
  }
  assert.equal(ran, false);
});
