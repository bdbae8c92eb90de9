// Delayed events: publishAfterCommit(event, { delaySeconds | at }) in outbox
// mode writes the event with a "not before", leaves it out of the dispatch
// after the commit, and the relay delivers it no earlier than asked. On the
// test database: embedded PGlite by default, a fresh database on the server
// when TEST_DATABASE_URL is set.
import assert from "node:assert/strict";
import {
  DomainEvent,
  EventBus,
  EventRegistry,
  PublishAfterCommitError,
} from "../../../mod.ts";
import {
  migrateOutbox,
  type OutboxOptions,
  OutboxRelay,
  PostgresUnitOfWork,
} from "../../../src/adapters/postgres/mod.ts";
import { type AppDatabase, openAppDatabase } from "../../_helpers/app_db.ts";
import { waitUntil } from "../../_helpers/poll.ts";

class Reminder extends DomainEvent {
  constructor(readonly n: number) {
    super();
  }
}

const registry = new EventRegistry();
registry.register("test.delayed.reminder", Reminder);

interface Row {
  id: string;
  done: boolean;
  leased: boolean;
  /** not_before - created_at, in seconds (null without a not_before). */
  delay: number | null;
  /** not_before, in ms since the epoch. */
  not_before_ms: number | null;
  due: boolean | null;
}

async function rows(db: AppDatabase, table: string): Promise<Row[]> {
  return [
    ...await db.observer.unsafe(
      `select id, done_at is not null as done,
        locked_until is not null as leased,
        extract(epoch from not_before - created_at)::float8 as delay,
        (extract(epoch from not_before) * 1000)::float8 as not_before_ms,
        not_before <= clock_timestamp() as due
      from "${table}" order by seq`,
    ),
  ] as unknown as Row[];
}

Deno.test("delayed events in outbox mode", async (t) => {
  await using db = await openAppDatabase();

  async function setUp(): Promise<{
    options: OutboxOptions & { table: string };
    bus: EventBus;
    delivered: Map<number, number>;
    uow: PostgresUnitOfWork<typeof db.sql>;
  }> {
    const options = {
      table: `outbox_${crypto.randomUUID().replaceAll("-", "").slice(0, 12)}`,
      registry,
      leaseSeconds: 30,
    };
    await migrateOutbox(db.sql, options);
    const bus = new EventBus();
    const delivered = new Map<number, number>();
    bus.register(Reminder, (e) => {
      delivered.set(e.n, Date.now());
    });
    const uow = new PostgresUnitOfWork(db.sql, { bus, outbox: options });
    return { options, bus, delivered, uow };
  }

  await t.step(
    "a delayed event is written with its not-before, skipped after the commit, and delivered by the relay no earlier",
    async () => {
      const { options, bus, delivered, uow } = await setUp();
      const now = new Reminder(1);
      const later = new Reminder(2);
      await uow.run((tx) => {
        tx.publishAfterCommit(now);
        tx.publishAfterCommit(later, { delaySeconds: 1.5 });
      });
      await uow.flush(); // the dispatched row is marked done in the background
      assert.deepEqual([...delivered.keys()], [1], "only the undelayed one");
      const [first, second] = await rows(db, options.table);
      assert.equal(first!.id, now.eventId);
      assert.deepEqual([first!.done, first!.delay], [true, null]);
      assert.equal(second!.id, later.eventId);
      assert.equal(second!.done, false);
      assert.equal(second!.leased, false, "no lease: the relay may take it");
      assert.ok(
        Math.abs(second!.delay! - 1.5) < 0.5,
        `not_before is 1.5 s after the write, was ${second!.delay} s`,
      );

      const relay = new OutboxRelay(db.sql, {
        ...options,
        bus,
        pollIntervalSeconds: 0.05,
      });
      // The claim and the check read the same clock: while not due, the
      // relay takes nothing.
      const [{ due }] = await db.observer.unsafe<{ due: boolean }[]>(
        `select not_before > clock_timestamp() as due from "${options.table}" where id = $1`,
        [later.eventId],
      ) as unknown as [{ due: boolean }];
      const early = await relay.runOnce();
      if (due) assert.equal(early.claimed, 0, "not claimed before its time");

      relay.start();
      try {
        await waitUntil("the delayed delivery", () => delivered.has(2));
      } finally {
        await relay.stop();
      }
      assert.ok(
        delivered.get(2)! >= second!.not_before_ms!,
        `delivered ${
          second!.not_before_ms! - delivered.get(2)!
        } ms before its not-before`,
      );
      const after = await rows(db, options.table);
      assert.deepEqual(after.map((r) => r.done), [true, true]);
    },
  );

  await t.step("{ at } sets the not-before to that moment", async () => {
    const { options, bus, delivered, uow } = await setUp();
    const at = new Date(Date.now() + 1000);
    const event = new Reminder(3);
    await uow.run((tx) => {
      tx.publishAfterCommit(event, { at });
    });
    assert.equal(delivered.size, 0, "nothing dispatched at the commit");
    const [row] = await rows(db, options.table);
    assert.equal(row!.not_before_ms, at.getTime());
    await using _relay = new OutboxRelay(db.sql, {
      ...options,
      bus,
      pollIntervalSeconds: 0.05,
    }).start();
    await waitUntil("the delivery at its moment", () => delivered.has(3));
    assert.ok(delivered.get(3)! >= at.getTime());
  });

  await t.step(
    "delaySeconds: 0 is no delay: dispatched right after the commit",
    async () => {
      const { options, delivered, uow } = await setUp();
      await uow.run((tx) => {
        tx.publishAfterCommit(new Reminder(4), { delaySeconds: 0 });
      });
      assert.deepEqual([...delivered.keys()], [4]);
      await uow.flush();
      const [row] = await rows(db, options.table);
      assert.deepEqual([row!.done, row!.delay], [true, null]);
    },
  );

  await t.step(
    "a failing handler of the undelayed events still leaves the delayed one to the relay",
    async () => {
      const { options, uow, bus } = await setUp();
      bus.register(Reminder, (e) => {
        if (e.n === 5) throw new Error("boom");
      });
      const error = await uow.run((tx) => {
        tx.publishAfterCommit(new Reminder(5));
        tx.publishAfterCommit(new Reminder(6), { delaySeconds: 60 });
      }).then(() => undefined, (e) => e);
      assert.ok(error instanceof PublishAfterCommitError);
      assert.match(error.message, /1 of its 1 events/);
      const stored = await rows(db, options.table);
      assert.deepEqual(stored.map((r) => [r.done, r.due]), [
        [false, null],
        [false, false],
      ]);
    },
  );

  await t.step(
    "migrateOutbox() adds not_before to a table created without it",
    async () => {
      const table = `outbox_${
        crypto.randomUUID().replaceAll("-", "").slice(0, 12)
      }`;
      await migrateOutbox(db.sql, { table });
      await db.sql.unsafe(`alter table "${table}" drop column not_before`);
      await migrateOutbox(db.sql, { table });
      const [column] = await db.sql`
        select data_type from information_schema.columns
        where table_name = ${table} and column_name = 'not_before'`;
      assert.equal(column?.data_type, "timestamp with time zone");
    },
  );

  await t.step(
    "without an outbox, a delay is a TypeError that says to use outbox mode, and nothing is committed",
    async () => {
      const bus = new EventBus();
      const delivered: number[] = [];
      bus.register(Reminder, (e) => {
        delivered.push(e.n);
      });
      const uow = new PostgresUnitOfWork(db.sql, { bus });
      await db.sql`create table if not exists delayed_plain (n int)`;
      for (
        const options of [{ delaySeconds: 5 }, {
          at: new Date(Date.now() + 60_000),
        }]
      ) {
        await assert.rejects(
          uow.run(async (tx) => {
            await tx.sql`insert into delayed_plain values (1)`;
            tx.publishAfterCommit(new Reminder(7), options);
          }),
          (error: Error) => {
            assert.ok(error instanceof TypeError);
            assert.match(error.message, /outbox mode/);
            assert.match(error.message, /outbox: true/);
            return true;
          },
        );
      }
      const [{ count }] = await db.sql`
        select count(*)::int as count from delayed_plain` as unknown as [
        { count: number },
      ];
      assert.equal(count, 0, "rolled back");
      assert.deepEqual(delivered, []);
      // No delay is still fine without an outbox.
      await uow.run((tx) => {
        tx.publishAfterCommit(new Reminder(8), { delaySeconds: 0 });
      });
      assert.deepEqual(delivered, [8]);
    },
  );
});
