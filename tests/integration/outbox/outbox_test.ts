// Outbox mode of PostgresUnitOfWork and the OutboxRelay on the test
// database: embedded PGlite by default, a fresh database on the server when
// TEST_DATABASE_URL is set.
import assert from "node:assert/strict";
import postgres from "postgres";
import {
  AggregateRoot,
  BatchingJobQueue,
  CommitError,
  DomainEvent,
  EventBus,
  EventRegistry,
  type JobRequest,
  PublishAfterCommitError,
} from "../../../mod.ts";
import {
  migrateInbox,
  migrateOutbox,
  type OutboxOptions,
  OutboxRelay,
  PostgresUnitOfWork,
} from "../../../src/adapters/postgres/mod.ts";
import { Outbox } from "../../../src/adapters/postgres/_outbox.ts";
import { InMemoryJobQueue } from "../../../src/testing/mod.ts";
import { type AppDatabase, openAppDatabase } from "../../_helpers/app_db.ts";
import { captureLogs, recordText } from "../../_helpers/logs.ts";
import { waitUntil } from "../../_helpers/poll.ts";

class UserRegistered extends DomainEvent {
  constructor(readonly userId: string, readonly email: string) {
    super();
  }
}

class Noted extends DomainEvent {
  constructor(readonly n: number) {
    super();
  }
}

class Unregistered extends DomainEvent {}

class Anonymous {
  constructor(readonly note: string) {}
}

class User extends AggregateRoot {
  private constructor(readonly id: string, readonly email: string) {
    super();
  }
  static register(email: string): User {
    const user = new User(crypto.randomUUID(), email);
    user.recordEvent(new UserRegistered(user.id, email));
    return user;
  }
}

const registry = new EventRegistry();
registry.register("test.outbox.user-registered", UserRegistered);
registry.register("test.outbox.noted", Noted);
registry.register("test.outbox.anonymous", Anonymous);

/** Every test gets its own table, so none sees another's rows. */
function freshOptions(extra: OutboxOptions = {}): OutboxOptions & {
  table: string;
} {
  return {
    table: `outbox_${crypto.randomUUID().replaceAll("-", "").slice(0, 12)}`,
    registry,
    leaseSeconds: 1,
    retryDelaySeconds: 0.02,
    ...extra,
  };
}

interface Row {
  id: string;
  type: string;
  attempts: number;
  last_error: string | null;
  done: boolean;
  parked: boolean;
}

/** The statements the client sends (postgres.js calls options.debug for each) until stop(). */
function sentStatements(db: AppDatabase): {
  statements: string[];
  stop(): void;
} {
  const options = db.sql.options as { debug: unknown };
  const debug = options.debug;
  const statements: string[] = [];
  options.debug = (_connection: number, query: string) => {
    statements.push(query);
  };
  return { statements, stop: () => void (options.debug = debug) };
}

async function rows(db: AppDatabase, table: string): Promise<Row[]> {
  return [
    ...await db.observer.unsafe(
      `select id, type, attempts, last_error, done_at is not null as done,
       parked_at is not null as parked
     from "${table}" order by seq`,
    ),
  ] as unknown as Row[];
}

async function insertUser(sql: postgres.TransactionSql, user: User) {
  await sql`insert into users (id, email) values (${user.id}, ${user.email})`;
}

Deno.test({
  name: "Outbox mode and the outbox relay on the test database",
  async fn(t) {
    await using db = await openAppDatabase();
    await db.sql`create table users (id text primary key, email text not null)`;

    async function migrated(extra?: OutboxOptions) {
      const options = freshOptions(extra);
      await migrateOutbox(db.sql, options);
      return options;
    }

    await t.step(
      "migrateOutbox() is idempotent and safe when run concurrently",
      async () => {
        const options = freshOptions();
        await Promise.all(
          Array.from({ length: 5 }, () => migrateOutbox(db.sql, options)),
        );
        await migrateOutbox(db.sql, options);
        assert.deepEqual(await rows(db, options.table), []);
      },
    );

    // A server client of the test's own, on the test database.
    const ownClient = (onnotice: (notice: postgres.Notice) => void) => {
      const { host, port, database, user } = db.sql.options;
      return postgres({
        host: host[0]!,
        port: port[0]!,
        database,
        user,
        max: 1,
        onnotice,
      });
    };

    await t.step({
      name:
        "migrateOutbox() and migrateInbox() send no notices to the client's log, on a new table and again",
      // A client of the user's own (postgres.js logs notices by default);
      // embedded PGlite's connect() already passes them to the logger.
      ignore: db.backend !== "server",
      fn: async () => {
        const notices: string[] = [];
        const own = ownClient((notice) => notices.push(String(notice.message)));
        try {
          const options = freshOptions();
          const inbox = { table: `inbox_${options.table}` };
          for (let i = 0; i < 2; i++) {
            await migrateOutbox(own, options);
            await migrateInbox(own, inbox);
          }
          await own`create table if not exists ${own(options.table)} (x int)`;
        } finally {
          await own.end();
        }
        // The control: a notice does reach the client.
        assert.deepEqual(notices.length, 1, notices.join("; "));
        assert.match(notices[0]!, /already exists, skipping/);
      },
    });

    await t.step({
      name:
        "sql.end() before uow.flush(): the marks waiting fail with a warning that says to flush first, and the rows stay for the relay",
      ignore: db.backend !== "server", // a client of its own
      fn: async () => {
        const options = await migrated();
        const own = ownClient(() => {});
        const bus = new EventBus();
        bus.register(Noted, () => {});
        const uow = new PostgresUnitOfWork(own, { bus, outbox: options });
        const { records } = await captureLogs(async () => {
          await uow.run((tx) => tx.publishAfterCommit(new Noted(1)));
          await own.end();
          await uow.flush(); // writes what waits now: on the ended client
        });
        assert.deepEqual(
          records.filter((r) => r.level === "warning").map((r) =>
            r.message.join("")
          ),
          [
            "Could not mark 1 dispatched outbox events done: the client was ended first (await uow.flush() and relay.stop() before sql.end()); the relay will dispatch them again",
          ],
        );
        assert.deepEqual(
          (await rows(db, options.table)).map((r) => r.done),
          [false],
        );
      },
    });

    await t.step(
      "run() in outbox mode writes the events in the transaction, dispatches them after COMMIT in order, then marks them done",
      async () => {
        const options = await migrated();
        const bus = new EventBus();
        const seen: string[] = [];
        bus.register(UserRegistered, async (event) => {
          const [row] = await db.observer.unsafe(
            `select done_at is null as undone from "${options.table}" where id = $1`,
            [event.eventId],
          );
          seen.push(`user:${row?.undone}`);
        });
        bus.register(Noted, (event) => {
          seen.push(`noted:${event.n}`);
        });
        const uow = new PostgresUnitOfWork(db.sql, { bus, outbox: options });
        assert.equal(uow.outboxMode, true);
        const user = User.register("ada@example.com");
        const registered = user.peekEvents()[0] as UserRegistered;
        await uow.run(async (tx) => {
          await insertUser(tx.sql, tx.track(user));
          tx.publishAfterCommit(new Noted(1));
        });
        assert.deepEqual(
          seen,
          ["user:true", "noted:1"],
          "dispatched before marked done",
        );
        // run() returns once the events are dispatched; the mark is written
        // in the background, and flush() waits for it.
        await uow.flush();
        const stored = await rows(db, options.table);
        assert.deepEqual(stored.map((r) => [r.type, r.done, r.attempts]), [
          ["test.outbox.user-registered", true, 1],
          ["test.outbox.noted", true, 1],
        ]);
        assert.equal(
          stored[0]!.id,
          registered.eventId,
          "the row id is the eventId",
        );
      },
    );

    await t.step(
      "outbox mode adds one insert to the transaction and one update after it, for many events",
      async () => {
        const options = await migrated();
        const sent = sentStatements(db);
        const bus = new EventBus();
        let dispatched = 0;
        bus.register(Noted, () => {
          dispatched++;
        });
        const uow = new PostgresUnitOfWork(db.sql, { bus, outbox: options });
        await uow.run((tx) => {
          for (let i = 0; i < 50; i++) tx.publishAfterCommit(new Noted(i));
        });
        assert.equal(dispatched, 50);
        await uow.flush();
        sent.stop();
        assert.deepEqual(
          sent.statements.filter((q) => q.includes(options.table))
            .map((q) => q.trim().split(/\s+/)[0]),
          ["insert", "update"],
        );
        assert.equal(
          (await rows(db, options.table)).filter((r) => r.done).length,
          50,
        );
      },
    );

    await t.step(
      "an event recorded twice is dispatched twice, as publishAll would, and the failure counts it once",
      async () => {
        const options = await migrated();
        const bus = new EventBus();
        let calls = 0;
        bus.register(Noted, () => {
          calls++;
          throw new Error("mailer down");
        });
        const uow = new PostgresUnitOfWork(db.sql, { bus, outbox: options });
        const event = new Noted(1);
        const error = await uow.run((tx) => {
          tx.publishAfterCommit(event);
          tx.publishAfterCommit(event);
        }).catch((e) => e);
        assert.ok(error instanceof PublishAfterCommitError, String(error));
        assert.match(error.message, /dispatching 1 of its 1 events failed/);
        assert.equal(calls, 2);
        const [row, ...more] = await rows(db, options.table);
        assert.deepEqual(more, []);
        assert.equal(row?.done, false);
      },
    );

    await t.step({
      name:
        "run() does not wait for the mark: with the first row locked, the window's UPDATE waits, a later run returns, and its mark goes out in the next UPDATE",
      // The lock needs a second connection: embedded PGlite serves one.
      ignore: db.backend !== "server",
      fn: async () => {
        const options = await migrated();
        const sent = sentStatements(db);
        const updates = () =>
          sent.statements.filter((q) => q.trimStart().startsWith("update"));
        const locker = await db.sql.reserve();
        try {
          const bus = new EventBus();
          bus.register(Noted, async (event) => {
            if (event.n !== 0) return;
            // Between the COMMIT and the mark: lock the row the mark needs.
            await locker`begin`;
            await locker.unsafe(
              `select 1 from "${options.table}" where id = $1 for update`,
              [event.eventId],
            );
          });
          const uow = new PostgresUnitOfWork(db.sql, { bus, outbox: options });
          for (let n = 0; n <= 5; n++) {
            await uow.run((tx) => tx.publishAfterCommit(new Noted(n)));
          }
          // The window's UPDATE goes out and waits on the lock.
          await waitUntil("the first mark", () => updates().length === 1);
          await uow.run((tx) => tx.publishAfterCommit(new Noted(6)));
          assert.equal(updates().length, 1, "one UPDATE in flight at a time");
          assert.equal(
            (await rows(db, options.table)).filter((r) => r.done).length,
            0,
            "the mark still waits on the lock, and run() returned",
          );
          await locker`commit`;
          await uow.flush();
          assert.equal(
            updates().length,
            2,
            "what waited meanwhile: one UPDATE",
          );
          assert.equal(
            (await rows(db, options.table)).filter((r) => r.done).length,
            7,
          );
        } finally {
          sent.stop();
          locker.release();
        }
      },
    });

    await t.step(
      "an event whose class has no type name, or that has no eventId, fails the run before COMMIT: nothing is saved",
      async () => {
        const options = await migrated();
        const bus = new EventBus();
        const uow = new PostgresUnitOfWork(db.sql, { bus, outbox: options });
        for (
          const [event, pattern] of [
            [
              new Unregistered(),
              /Unregistered: its class has no registered type name/,
            ],
            [new Anonymous("x"), /Anonymous: it has no eventId/],
          ] as const
        ) {
          const user = User.register(`${crypto.randomUUID()}@example.com`);
          const error = await uow.run(async (tx) => {
            await insertUser(tx.sql, tx.track(user));
            tx.publishAfterCommit(event);
          }).then(() => undefined, (e: unknown) => e);
          assert.ok(error instanceof CommitError, `got ${error}`);
          assert.ok(error.cause instanceof TypeError);
          assert.match(error.cause.message, pattern);
          const [found] = await db.observer`
            select count(*)::int as n from users where id = ${user.id}`;
          assert.equal(found!.n, 0, "the transaction rolled back");
        }
        assert.deepEqual(await rows(db, options.table), []);
      },
    );

    await t.step(
      "an outbox table never migrated: the insert sent with COMMIT fails the run with an error that says to run migrateOutbox (the server's error as its cause); nothing is saved or published; the relay's log says the same",
      async () => {
        const options = freshOptions(); // not migrated
        const bus = new EventBus();
        const seen: string[] = [];
        bus.register(UserRegistered, (e) => void seen.push(e.userId));
        const uow = new PostgresUnitOfWork(db.sql, { bus, outbox: options });
        const user = User.register(`${crypto.randomUUID()}@example.com`);
        const error = await uow.run(async (tx) => {
          await insertUser(tx.sql, tx.track(user));
        }).then(() => undefined, (e: unknown) => e);
        assert.ok(error instanceof CommitError, `got ${error}`);
        assert.equal(error.committed, false);
        const cause = error.cause as Error;
        const missing =
          `the outbox table "${options.table}" does not exist (SQLSTATE 42P01); run migrateOutbox(sql) with the same table option at start-up, before outbox mode or the relay uses it`;
        assert.equal(
          cause.message,
          `Cannot write the events to the outbox: ${missing}`,
        );
        assert.equal(cause.name, "OutboxTableMissingError");
        assert.equal((cause.cause as { code?: string }).code, "42P01");
        const { records } = await captureLogs(async (records) => {
          await using _relay = new OutboxRelay(db.sql, {
            ...options,
            bus,
            pollIntervalSeconds: 0.02,
          }).start();
          await waitUntil(
            "the relay's error",
            () => records.some((r) => r.level === "error"),
          );
        });
        assert.equal(
          records.find((r) => r.level === "error")!.message.join(""),
          `Outbox relay pass failed: ${missing}`,
        );
        const [found] = await db.observer`
          select count(*)::int as n from users where id = ${user.id}`;
        assert.equal(found!.n, 0, "the transaction rolled back");
        assert.deepEqual(seen, []);
        // The connection went back to the pool in a usable state.
        await migrateOutbox(db.sql, options);
        await uow.run((tx) => tx.track(User.register("b@example.com")));
        assert.equal(seen.length, 1);
      },
    );

    await t.step(
      "a missing relation other than the outbox table (a trigger's) keeps the server's error as the cause",
      async () => {
        const options = await migrated();
        const nowhere = `nowhere_${crypto.randomUUID().slice(0, 8)}`;
        await db.sql.unsafe(`
          create function ${nowhere}() returns trigger language plpgsql as
            $$ begin insert into ${nowhere} values (1); return new; end $$;
          create trigger ${nowhere} before insert on "${options.table}"
            for each row execute function ${nowhere}();`);
        const uow = new PostgresUnitOfWork(db.sql, {
          bus: new EventBus(),
          outbox: options,
        });
        const error = await uow.run((tx) => tx.track(User.register("x@a.io")))
          .then(() => undefined, (e: unknown) => e);
        assert.ok(error instanceof CommitError, `got ${error}`);
        const cause = error.cause as Error & { code?: string };
        assert.equal(cause.code, "42P01");
        assert.match(cause.message, new RegExp(`"${nowhere}" does not exist`));
      },
    );

    await t.step(
      "a subclass whose beforeCommit drops super's value: the rows still commit, and the run says which rule it broke",
      async () => {
        const options = await migrated();
        class Forgetful extends PostgresUnitOfWork<postgres.Sql> {
          protected override beforeCommit(
            ...args: Parameters<
              PostgresUnitOfWork<postgres.Sql>["beforeCommit"]
            >
          ): undefined {
            super.beforeCommit(...args);
            return undefined;
          }
        }
        const uow = new Forgetful(db.sql, {
          bus: new EventBus(),
          outbox: options,
        });
        const error = await uow.run((tx) => tx.publishAfterCommit(new Noted(1)))
          .then(() => undefined, (e: unknown) => e);
        assert.ok(error instanceof PublishAfterCommitError, `got ${error}`);
        assert.match(
          String(error.cause),
          /an override of beforeCommit must return what super\.beforeCommit\(\) returned/,
        );
        const [row] = await rows(db, options.table);
        assert.equal(row?.type, "test.outbox.noted", "committed for the relay");
      },
    );

    await t.step(
      "rows written by a committing process start leased: a relay does not take them while it dispatches",
      async () => {
        const options = await migrated({ leaseSeconds: 30 });
        const bus = new EventBus();
        const relay = new OutboxRelay(db.sql, { ...options, bus });
        const claims: number[] = [];
        bus.register(Noted, async () => {
          claims.push((await relay.runOnce()).claimed);
        });
        const uow = new PostgresUnitOfWork(db.sql, { bus, outbox: options });
        await uow.run((tx) => tx.publishAfterCommit(new Noted(1)));
        assert.deepEqual(claims, [0]);
        await uow.flush();
        assert.equal((await rows(db, options.table))[0]!.done, true);
      },
    );

    await t.step(
      "a handler failing three times then succeeding: run() reports it, the relay retries, the event is delivered once with its attempts recorded",
      async () => {
        const options = await migrated();
        const bus = new EventBus();
        let calls = 0;
        let deliveries = 0;
        bus.register(UserRegistered, () => {
          calls++;
          if (calls <= 3) throw new Error(`mail server down ${calls}`);
          deliveries++;
        });
        const uow = new PostgresUnitOfWork(db.sql, { bus, outbox: options });
        const user = User.register("grace@example.com");
        const error = await uow.run(async (tx) => {
          await insertUser(tx.sql, tx.track(user));
        }).then(() => undefined, (e: unknown) => e);
        assert.ok(error instanceof PublishAfterCommitError, `got ${error}`);
        assert.equal(error.committed, true);
        assert.equal(error.relayWillRetry, true);
        assert.match(error.message, /the relay will dispatch them again/);
        let [row] = await rows(db, options.table);
        assert.deepEqual(
          [row!.attempts, row!.done, row!.last_error],
          [1, false, "Error: mail server down 1"],
        );

        await using _relay = new OutboxRelay(db.sql, {
          ...options,
          bus,
          pollIntervalSeconds: 0.02,
        }).start();
        await waitUntil("the delivery", async () => {
          [row] = await rows(db, options.table);
          return row!.done;
        });
        assert.equal(deliveries, 1);
        assert.equal(calls, 4);
        assert.deepEqual(
          [row!.attempts, row!.parked, row!.last_error],
          [4, false, "Error: mail server down 3"],
        );
      },
    );

    await t.step(
      "a handler that always fails: the event is parked after maxAttempts, logged with its type and id only, and kept",
      async () => {
        const options = await migrated({ maxAttempts: 3 });
        const bus = new EventBus();
        let calls = 0;
        bus.register(UserRegistered, () => {
          calls++;
          throw new TypeError("template missing");
        });
        const email = "secret-address@example.com";
        const user = User.register(email);
        const { records } = await captureLogs(async () => {
          const uow = new PostgresUnitOfWork(db.sql, { bus, outbox: options });
          await assert.rejects(
            uow.run(async (tx) => {
              await insertUser(tx.sql, tx.track(user));
            }),
            PublishAfterCommitError,
          );
          await using relay = new OutboxRelay(db.sql, {
            ...options,
            bus,
            pollIntervalSeconds: 0.02,
          }).start();
          await waitUntil(
            "the event to be parked",
            async () => (await rows(db, options.table))[0]!.parked,
          );
          await relay.stop();
          // A parked event is never claimed again.
          assert.equal((await relay.runOnce()).claimed, 0);
        });
        assert.equal(calls, 3, "not retried after parking");
        const [row] = await rows(db, options.table);
        assert.deepEqual(
          [row!.attempts, row!.done, row!.parked, row!.last_error],
          [3, false, true, "TypeError: template missing"],
        );
        const parked = records.filter((r) =>
          r.category.join(".") === "aftercommit.outbox" &&
          r.level === "error" && String(r.message.join("")).includes("Parked")
        );
        assert.equal(parked.length, 1);
        assert.equal(
          parked[0]!.properties.eventType,
          "test.outbox.user-registered",
        );
        assert.equal(parked[0]!.properties.eventId, row!.id);
        assert.equal(
          records.filter((r) =>
            r.category.join(".") === "aftercommit.outbox" &&
            r.level === "warning"
          ).length,
          2,
          "attempts 1 and 2 are warnings",
        );
        for (const record of records) {
          const text = recordText(record);
          assert.ok(!text.includes(email), `a log holds the email: ${text}`);
          assert.ok(
            !text.includes(user.id),
            `a log holds the user id: ${text}`,
          );
          if (record.category.join(".") === "aftercommit.outbox") {
            assert.ok(
              !text.includes("template missing"),
              `an outbox log holds the error message: ${text}`,
            );
          }
        }
      },
    );

    await t.step(
      "maxAttempts: 1 parks at the first failure, and run() says the relay will not retry",
      async () => {
        const options = await migrated({ maxAttempts: 1 });
        const bus = new EventBus();
        bus.register(Noted, () => {
          throw new Error("no");
        });
        const error = await new PostgresUnitOfWork(db.sql, {
          bus,
          outbox: options,
        })
          .run((tx) => tx.publishAfterCommit(new Noted(1)))
          .then(() => undefined, (e: unknown) => e);
        assert.ok(error instanceof PublishAfterCommitError);
        assert.equal(error.relayWillRetry, false);
        assert.equal((await rows(db, options.table))[0]!.parked, true);
      },
    );

    await t.step(
      "the relay marks dispatched events done in groups of at most 20, or every 200 ms",
      async () => {
        const options = await migrated();
        const outbox = new Outbox(options, "test");
        const write = async (count: number) => {
          const events = Array.from({ length: count }, (_, n) => new Noted(n));
          const { json } = outbox.prepare(events);
          await db.sql.begin((tx) => outbox.table.insert(tx, json, 0));
        };
        // Each UPDATE is its own transaction: rows marked together share xmin.
        const groups = async () =>
          (await db.observer.unsafe(
            `select count(*)::int as n from "${options.table}"
             where done_at is not null group by xmin::text order by min(seq)`,
          )).map((r) => r.n as number);
        const bus = new EventBus();
        let slow = false;
        bus.register(Noted, async () => {
          if (slow) await new Promise((ok) => setTimeout(ok, 250));
        });
        const relay = new OutboxRelay(db.sql, { ...options, bus });
        await write(50);
        assert.equal((await relay.runOnce()).dispatched, 50);
        const fast = await groups();
        assert.equal(fast.reduce((a, b) => a + b), 50);
        assert.ok(fast.length >= 3 && fast.every((n) => n <= 20), `${fast}`);
        slow = true;
        await write(3);
        assert.equal((await relay.runOnce()).dispatched, 3);
        assert.deepEqual((await groups()).slice(fast.length), [2, 1]);
      },
    );

    await t.step(
      "a pass whose lease ran out while a handler blocked the event loop leaves the rest for the next claim, which dispatches them",
      async () => {
        const options = await migrated({ leaseSeconds: 0.5 });
        const outbox = new Outbox(options, "test");
        const batch = outbox.prepare([1, 2, 3].map((n) => new Noted(n)));
        await db.sql.begin((tx) => outbox.table.insert(tx, batch.json, 0));
        const bus = new EventBus();
        const seen: number[] = [];
        bus.register(Noted, (event) => {
          seen.push(event.n);
          // Synchronous: no timer can extend the pass's lease meanwhile.
          const end = performance.now() + 700;
          while (event.n === 1 && performance.now() < end);
        });
        const relay = new OutboxRelay(db.sql, { ...options, bus });
        assert.deepEqual(await relay.runOnce(), {
          claimed: 3,
          dispatched: 1,
          failed: 0,
          parked: 0,
          skipped: 2,
          deferred: 0,
          outage: false,
        });
        assert.deepEqual(seen, [1]);
        const second = await relay.runOnce();
        assert.deepEqual([second.claimed, second.dispatched], [2, 2]);
        assert.deepEqual(seen, [1, 2, 3]);
        const states = (await rows(db, options.table)).map((r) => r.done);
        assert.deepEqual(states, [true, true, true]);
      },
    );

    await t.step(
      "a row whose type name no class is registered for gets the error recorded, is parked at the limit, and is never deleted",
      async () => {
        const options = await migrated({
          maxAttempts: 2,
          retryDelaySeconds: 0,
        });
        const other = new EventRegistry();
        other.register("test.outbox.renamed-away", Noted);
        const outbox = new Outbox({ ...options, registry: other }, "test");
        const batch = outbox.prepare([new Noted(7)]);
        await db.sql.begin((tx) => outbox.table.insert(tx, batch.json, 0));
        const relay = new OutboxRelay(db.sql, {
          ...options,
          bus: new EventBus(),
          retentionSeconds: 0,
        });
        const first = await relay.runOnce();
        assert.deepEqual(first, {
          claimed: 1,
          dispatched: 0,
          failed: 1,
          parked: 0,
          skipped: 0,
          deferred: 0,
          outage: false,
        });
        let [row] = await rows(db, options.table);
        assert.equal(row!.attempts, 1);
        assert.match(
          row!.last_error!,
          /^UnknownEventTypeError: .*"test\.outbox\.renamed-away"/,
        );
        const second = await relay.runOnce();
        assert.equal(second.parked, 1);
        await relay.cleanup();
        [row] = await rows(db, options.table);
        assert.deepEqual([row!.attempts, row!.parked, row!.done], [
          2,
          true,
          false,
        ]);
      },
    );

    await t.step(
      "done rows are deleted after the retention period; undone and parked rows are kept",
      async () => {
        const options = await migrated({ maxAttempts: 1 });
        const bus = new EventBus();
        bus.register(Noted, (event) => {
          if (event.n === 2) throw new Error("parked");
        });
        const uow = new PostgresUnitOfWork(db.sql, { bus, outbox: options });
        await uow.run((tx) => {
          tx.publishAfterCommit(new Noted(1));
        });
        await uow.run((tx) => tx.publishAfterCommit(new Noted(2))).catch(
          () => {},
        );
        await uow.flush(); // the first row is marked done in the background
        const outbox = new Outbox(options, "test");
        await db.sql.begin((tx) =>
          outbox.table.insert(tx, outbox.prepare([new Noted(3)]).json, 60)
        );
        const keep = new OutboxRelay(db.sql, {
          ...options,
          bus,
          retentionSeconds: 3600,
        });
        assert.equal(await keep.cleanup(), 0, "within the retention");
        const relay = new OutboxRelay(db.sql, {
          ...options,
          bus,
          retentionSeconds: 0,
        });
        assert.equal(await relay.cleanup(), 1);
        const left = await rows(db, options.table);
        assert.deepEqual(left.map((r) => [r.done, r.parked]), [[false, true], [
          false,
          false,
        ]]);
      },
    );

    await t.step(
      "handlers may run units of work of their own, in the committing process and in the relay (one connection is enough)",
      async () => {
        const options = await migrated();
        const bus = new EventBus();
        const uow = new PostgresUnitOfWork(db.sql, { bus, outbox: options });
        const chain: number[] = [];
        bus.register(Noted, async (event) => {
          chain.push(event.n);
          if (event.n < 3) {
            await uow.run((tx) =>
              tx.publishAfterCommit(new Noted(event.n + 1))
            );
          }
        });
        await uow.run((tx) => tx.publishAfterCommit(new Noted(1)));
        assert.deepEqual(chain, [1, 2, 3]);
        await uow.flush();

        const outbox = new Outbox(options, "test");
        await db.sql.begin((tx) =>
          outbox.table.insert(tx, outbox.prepare([new Noted(1)]).json, 0)
        );
        chain.length = 0;
        const pass = await new OutboxRelay(db.sql, { ...options, bus })
          .runOnce();
        assert.equal(pass.dispatched, 1);
        assert.deepEqual(chain, [1, 2, 3]);
        await uow.flush();
        assert.ok((await rows(db, options.table)).every((r) => r.done));
      },
    );

    await t.step(
      "stop() is graceful: the pass under way dispatches and marks its events before stop() resolves",
      async () => {
        const options = await migrated();
        const bus = new EventBus();
        const { promise: started, resolve: onStart } = Promise.withResolvers<
          void
        >();
        bus.register(Noted, async () => {
          onStart();
          await new Promise((resolve) => setTimeout(resolve, 200));
        });
        const outbox = new Outbox(options, "test");
        await db.sql.begin((tx) =>
          outbox.table.insert(tx, outbox.prepare([new Noted(1)]).json, 0)
        );
        const relay = new OutboxRelay(db.sql, { ...options, bus }).start();
        assert.equal(relay.running, true);
        await started;
        await relay.stop();
        assert.equal(relay.running, false);
        assert.equal((await rows(db, options.table))[0]!.done, true);
        assert.throws(() => relay.start(), TypeError);
      },
    );

    await t.step(
      "two relays at once over 1,000 undone events: every event dispatched, none twice",
      async () => {
        const options = await migrated({ leaseSeconds: 30 });
        const outbox = new Outbox(options, "test");
        const events = Array.from({ length: 1000 }, (_, i) => new Noted(i));
        await db.sql.begin((tx) =>
          outbox.table.insert(tx, outbox.prepare(events).json, 0)
        );
        const counts = new Map<string, number>();
        const byRelay = [0, 0];
        const buses = [0, 1].map((i) => {
          const bus = new EventBus();
          bus.register(Noted, async (event) => {
            counts.set(event.eventId, (counts.get(event.eventId) ?? 0) + 1);
            byRelay[i]!++;
            await new Promise((resolve) => setTimeout(resolve, 0));
          });
          return bus;
        });
        const relays = [db.sql, db.observer].map((sql, i) =>
          new OutboxRelay(sql, {
            ...options,
            bus: buses[i]!,
            batchSize: 50,
            pollIntervalSeconds: 0.02,
          }).start()
        );
        try {
          await waitUntil("every event to be done", async () => {
            const [row] = await db.observer.unsafe(
              `select count(*)::int as n from "${options.table}" where done_at is null`,
            );
            return row!.n === 0;
          }, 60_000);
        } finally {
          await Promise.all(relays.map((r) => r.stop()));
        }
        assert.equal(counts.size, 1000, "every event dispatched");
        const twice = [...counts.values()].filter((n) => n !== 1).length;
        assert.equal(twice, 0, "none dispatched twice");
        assert.deepEqual(
          events.map((e) => counts.get(e.eventId)),
          events.map(() => 1),
        );
        assert.ok(
          byRelay[0]! > 0 && byRelay[1]! > 0,
          `both relays worked: ${byRelay}`,
        );
        assert.ok(
          (await rows(db, options.table)).every((r) => r.attempts === 1),
        );
      },
    );

    await t.step(
      "a bus with batch(): the run's events are dispatched in one batch; a failed batch write leaves them to the relay",
      async () => {
        const options = await migrated();
        const inner = new EventBus();
        let handled = 0;
        inner.register(Noted, () => {
          handled++;
        });
        let batches = 0;
        let writeFails = false;
        const bus = {
          publishAll: (events: Iterable<object>) => inner.publishAll(events),
          async batch<T>(work: () => Promise<T>): Promise<T> {
            batches++;
            const result = await work();
            if (writeFails) throw new Error("the batch write failed");
            return result;
          },
        };
        const uow = new PostgresUnitOfWork(db.sql, { bus, outbox: options });
        await uow.run((tx) => {
          for (let i = 0; i < 3; i++) tx.publishAfterCommit(new Noted(i));
        });
        assert.deepEqual([batches, handled], [1, 3]);
        await uow.flush();
        assert.ok((await rows(db, options.table)).every((r) => r.done));

        writeFails = true;
        const error = await uow.run((tx) => tx.publishAfterCommit(new Noted(9)))
          .then(() => undefined, (e: unknown) => e);
        assert.ok(error instanceof PublishAfterCommitError);
        assert.equal(error.relayWillRetry, true);
        const last = (await rows(db, options.table)).at(-1)!;
        assert.deepEqual(
          [last.done, last.parked, last.attempts, last.last_error],
          [false, false, 1, "Error: the batch write failed"],
        );
      },
    );

    await t.step(
      "a batching publisher: the 10 events of one run are one write to the job queue",
      async () => {
        const options = await migrated();
        const writes: number[] = [];
        class CountingQueue extends InMemoryJobQueue {
          override enqueueMany(jobs: readonly JobRequest[]) {
            writes.push(jobs.length);
            return super.enqueueMany(jobs);
          }
        }
        const jobs = new BatchingJobQueue(new CountingQueue());
        const inner = new EventBus();
        inner.register(Noted, (event) => {
          jobs.enqueue("note", { n: event.n });
        });
        const uow = new PostgresUnitOfWork(db.sql, {
          bus: jobs.publisher(inner),
          outbox: options,
        });
        await uow.run((tx) => {
          for (let i = 0; i < 10; i++) tx.publishAfterCommit(new Noted(i));
        });
        assert.deepEqual(writes, [10]);
        await uow.flush();
        assert.ok((await rows(db, options.table)).every((r) => r.done));
      },
    );

    await t.step("bad options get a clear error", () => {
      const bus = new EventBus();
      assert.throws(
        () => new PostgresUnitOfWork(db.sql, { bus, outbox: "yes" as never }),
        {
          name: "TypeError",
          message:
            "Cannot create PostgresUnitOfWork: expected options.outbox to be true or an options object, received a string",
        },
      );
      assert.throws(
        () => new PostgresUnitOfWork(db.sql, { bus, outbox: [] as never }),
        /expected options\.outbox to be true or an options object, received an array/,
      );
      assert.throws(
        () =>
          new PostgresUnitOfWork(db.sql, {
            bus,
            outbox: { table: "bad name" },
          }),
        /options\.outbox\.table must be a table name/,
      );
      assert.throws(
        () =>
          new PostgresUnitOfWork(db.sql, { bus, outbox: { leaseSeconds: 0 } }),
        RangeError,
      );
      assert.throws(
        () => new OutboxRelay(db.sql, { maxAttempts: 0 }),
        RangeError,
      );
      assert.throws(
        () => new OutboxRelay(db.sql, { maxAttempts: 1.5 }),
        /options\.maxAttempts must be an integer, received 1\.5/,
      );
      assert.throws(
        () => new OutboxRelay(db.sql, { dispatchTimeoutSeconds: 0 }),
        /options\.dispatchTimeoutSeconds must be greater than 0, received 0/,
      );
      assert.throws(
        () =>
          new PostgresUnitOfWork(db.sql, {
            bus,
            outbox: { dispatchTimeoutSeconds: "10" as unknown as number },
          }),
        TypeError,
      );
      assert.throws(
        () => new OutboxRelay(db.sql, { outageDelaySeconds: -1 }),
        RangeError,
      );
      assert.throws(
        () => new OutboxRelay(db.sql, { maxOutageDelaySeconds: Infinity }),
        /options\.maxOutageDelaySeconds must be a finite number, received Infinity/,
      );
      assert.throws(
        () => new OutboxRelay(db.sql, { batchSize: "10" as unknown as number }),
        TypeError,
      );
      assert.throws(
        () => new OutboxRelay(db.sql, { registry: {} as EventRegistry }),
        /options\.registry must be an instance of EventRegistry/,
      );
      assert.throws(
        () => new OutboxRelay({} as never),
        /expected a postgres\.js client/,
      );
      assert.throws(
        () => new OutboxRelay(db.sql, { bus: {} as EventBus }),
        /publishAll/,
      );
    });
  },
});
