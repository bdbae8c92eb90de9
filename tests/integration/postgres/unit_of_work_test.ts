// PostgresUnitOfWork on the test database: embedded PGlite by default, a
// fresh database on the server when TEST_DATABASE_URL is set.
import assert from "node:assert/strict";
import type postgres from "postgres";
import {
  AggregateRoot,
  CommitError,
  DomainEvent,
  EventBus,
  PublishAfterCommitError,
} from "../../../mod.ts";
import { PostgresUnitOfWork } from "../../../src/adapters/postgres/mod.ts";
import { type AppDatabase, openAppDatabase } from "../../_helpers/app_db.ts";

class UserRegistered extends DomainEvent {
  constructor(readonly userId: string, readonly email: string) {
    super();
  }
}

class EmailChanged extends DomainEvent {
  constructor(readonly userId: string, readonly email: string) {
    super();
  }
}

class AuditNoted extends DomainEvent {
  constructor(readonly note: string) {
    super();
  }
}

class WelcomeQueued extends DomainEvent {
  constructor(readonly userId: string) {
    super();
  }
}

class User extends AggregateRoot {
  private constructor(readonly id: string, public email: string) {
    super();
  }

  static register(email: string): User {
    const user = new User(crypto.randomUUID(), email);
    user.recordEvent(new UserRegistered(user.id, email));
    return user;
  }

  changeEmail(email: string): void {
    this.email = email;
    this.recordEvent(new EmailChanged(this.id, email));
  }
}

/** A bus that remembers every event it published, in order. */
function recordingBus(): { bus: EventBus; published: object[] } {
  const published: object[] = [];
  const bus = new EventBus();
  for (const type of [UserRegistered, EmailChanged, AuditNoted]) {
    bus.register(type, (event: object) => {
      published.push(event);
    });
  }
  return { bus, published };
}

function describeEvent(event: object): string {
  const e = event as { constructor: { name: string }; email?: string };
  return `${e.constructor.name}:${
    "email" in e ? e.email : (event as AuditNoted).note
  }`;
}

async function countUsers(db: AppDatabase, id: string): Promise<number> {
  const [row] = await db.observer<{ n: number }[]>`
    select count(*)::int as n from users where id = ${id}`;
  return row!.n;
}

async function insertUser(
  sql: postgres.TransactionSql,
  user: User,
): Promise<void> {
  await sql`insert into users (id, email) values (${user.id}, ${user.email})`;
}

Deno.test({
  name: "PostgresUnitOfWork on the test database",
  async fn(t) {
    await using db = await openAppDatabase();
    await db.sql`create table users (id text primary key, email text not null)`;
    await db.sql`
      create table ledger (
        id text primary key,
        slot int not null unique deferrable initially deferred
      )`;
    await db.sql`create table welcome (user_id text primary key)`;

    await t.step(
      "subclass hooks: a beforeCommit value of its own reaches publishCommitted, and a body that returns nothing commits",
      async () => {
        type Tx = postgres.TransactionSql;
        // A value with an `insert` field is the subclass's, not an outbox write.
        class Audited extends PostgresUnitOfWork<postgres.Sql> {
          handed: unknown[] = [];
          protected override beforeCommit(tx: Tx): object {
            return { insert: 1, tx: typeof tx };
          }
          protected override publishCommitted(
            events: readonly object[],
            written: object | undefined,
          ): Promise<void> {
            this.handed.push(written);
            return super.publishCommitted(events, written);
          }
          // The protected transaction() with a body that returns nothing.
          bare(id: string): Promise<unknown> {
            return this.transaction(async (tx) => {
              await tx`insert into users (id, email) values (${id}, 'b')`;
              return undefined as unknown as { written: undefined };
            });
          }
        }
        const { bus, published } = recordingBus();
        const uow = new Audited(db.sql, { bus });
        const user = User.register("audited@example.com");
        await uow.run((tx) => insertUser(tx.sql, tx.track(user)));
        assert.equal(await countUsers(db, user.id), 1);
        assert.deepEqual(uow.handed, [{ insert: 1, tx: "function" }]);
        assert.equal(published.length, 1);
        const id = crypto.randomUUID();
        await uow.bare(id);
        assert.equal(await countUsers(db, id), 1, "committed");
        // The connection went back with no transaction open.
        await uow.run((tx) => insertUser(tx.sql, User.register("c@x.org")));
      },
    );

    await t.step(
      "run() publishes only after COMMIT: a handler that reads the row sees it committed",
      async () => {
        const bus = new EventBus();
        const seen: number[] = [];
        bus.register(UserRegistered, async (event) => {
          seen.push(await countUsers(db, event.userId));
        });
        const uow = new PostgresUnitOfWork(db.sql, { bus });
        const id = await uow.run(async (tx) => {
          const user = tx.track(User.register("ada@example.com"));
          await insertUser(tx.sql, user);
          await new Promise((resolve) => setTimeout(resolve, 5));
          assert.deepEqual(seen, [], "nothing is published before the commit");
          return user.id;
        });
        assert.deepEqual(seen, [1]);
        assert.equal(await countUsers(db, id), 1);
      },
    );

    await t.step(
      "run() rolls back, rethrows work's own error and publishes nothing when work throws",
      async () => {
        const { bus, published } = recordingBus();
        const uow = new PostgresUnitOfWork(db.sql, { bus });
        const boom = new Error("validation failed");
        const user = User.register("grace@example.com");
        await assert.rejects(
          uow.run(async (tx) => {
            await insertUser(tx.sql, tx.track(user));
            tx.publishAfterCommit(new AuditNoted("never"));
            throw boom;
          }),
          (error) => error === boom,
        );
        assert.equal(await countUsers(db, user.id), 0);
        assert.deepEqual(published, []);
        assert.deepEqual(
          user.peekEvents(),
          [],
          "a rolled-back run drops the events, so a retry cannot publish them",
        );
      },
    );

    await t.step(
      "run() throws CommitError with the driver's error as cause and publishes nothing when COMMIT fails",
      async () => {
        const { bus, published } = recordingBus();
        const uow = new PostgresUnitOfWork(db.sql, { bus });
        const user = User.register("linus@example.com");
        let workFinished = false;
        const error = await uow.run(async (tx) => {
          await insertUser(tx.sql, tx.track(user));
          // The unique constraint is deferred: the duplicate fails at COMMIT.
          await tx.sql`insert into ledger values (${user.id + "a"}, 1)`;
          await tx.sql`insert into ledger values (${user.id + "b"}, 1)`;
          workFinished = true;
        }).then(() => undefined, (e: unknown) => e);
        assert.ok(workFinished, "work itself succeeded");
        assert.ok(error instanceof CommitError, `got ${error}`);
        assert.equal(error.committed, false);
        assert.match(error.message, /COMMIT failed/);
        assert.equal((error.cause as { code?: string }).code, "23505");
        assert.equal(await countUsers(db, user.id), 0);
        assert.deepEqual(published, []);
      },
    );

    await t.step(
      "run() throws PublishAfterCommitError (committed: true) with the handler's error as cause when a handler fails after COMMIT",
      async () => {
        const bus = new EventBus();
        const handlerError = new Error("mail server down");
        const later: object[] = [];
        bus.register(UserRegistered, () => {
          throw handlerError;
        });
        bus.register(AuditNoted, (event) => {
          later.push(event);
        });
        const uow = new PostgresUnitOfWork(db.sql, { bus });
        const user = User.register("barbara@example.com");
        const error = await uow.run(async (tx) => {
          await insertUser(tx.sql, tx.track(user));
          tx.publishAfterCommit(new AuditNoted("after the failing one"));
        }).then(() => undefined, (e: unknown) => e);
        assert.ok(error instanceof PublishAfterCommitError, `got ${error}`);
        assert.equal(error.committed, true);
        assert.equal(error.cause, handlerError);
        assert.equal(await countUsers(db, user.id), 1, "the data is committed");
        assert.deepEqual(
          later,
          [],
          "fail-fast: later events are not published",
        );
      },
    );

    await t.step(
      "run() publishes the events of several aggregates and explicit events in the order they were recorded",
      async () => {
        const { bus, published } = recordingBus();
        const uow = new PostgresUnitOfWork(db.sql, { bus });
        await uow.run(async (tx) => {
          const a = User.register("a1@example.com");
          const b = User.register("b1@example.com");
          tx.track(b); // tracking order is not publishing order
          tx.track(a);
          tx.track(b); // tracked once
          tx.publishAfterCommit(new AuditNoted("between"));
          a.changeEmail("a2@example.com");
          b.changeEmail("b2@example.com");
          await insertUser(tx.sql, a);
          await insertUser(tx.sql, b);
        });
        assert.deepEqual(published.map(describeEvent), [
          "UserRegistered:a1@example.com",
          "UserRegistered:b1@example.com",
          "AuditNoted:between",
          "EmailChanged:a2@example.com",
          "EmailChanged:b2@example.com",
        ]);
      },
    );

    await t.step(
      "publishAfterCommit() events are published after COMMIT and dropped on rollback",
      async () => {
        const { bus, published } = recordingBus();
        const uow = new PostgresUnitOfWork(db.sql, { bus });
        await uow.run((tx) => {
          tx.publishAfterCommit(new AuditNoted("kept"));
          assert.deepEqual(published, []);
        });
        await assert.rejects(
          uow.run((tx) => {
            tx.publishAfterCommit(new AuditNoted("dropped"));
            throw new Error("rolled back");
          }),
          /rolled back/,
        );
        assert.deepEqual(published.map(describeEvent), ["AuditNoted:kept"]);
      },
    );

    await t.step(
      "50 concurrent run()s on one client each publish exactly their own events",
      async () => {
        const bus = new EventBus();
        bus.register(UserRegistered, () => {});
        const batches: object[][] = [];
        const recording = {
          publishAll(events: Iterable<object>): Promise<void> {
            const batch = [...events];
            batches.push(batch);
            return bus.publishAll(batch);
          },
        };
        const uow = new PostgresUnitOfWork(db.sql, { bus: recording });
        const results = await Promise.all(
          Array.from({ length: 50 }, (_, i) =>
            uow.run(async (tx) => {
              const user = tx.track(User.register(`c${i}@example.com`));
              await new Promise((r) => setTimeout(r, (i * 7) % 5));
              await insertUser(tx.sql, user);
              user.changeEmail(`c${i}.new@example.com`);
              tx.publishAfterCommit(new AuditNoted(`run ${i}`));
              return i;
            })),
        );
        assert.deepEqual(results, Array.from({ length: 50 }, (_, i) => i));
        assert.equal(batches.length, 50);
        const runs = new Set<number>();
        for (const batch of batches) {
          const names = batch.map(describeEvent);
          const i = Number(/^UserRegistered:c(\d+)@/.exec(names[0]!)?.[1]);
          assert.deepEqual(names, [
            `UserRegistered:c${i}@example.com`,
            `EmailChanged:c${i}.new@example.com`,
            `AuditNoted:run ${i}`,
          ]);
          runs.add(i);
        }
        assert.equal(runs.size, 50, "every run published its own batch once");
      },
    );

    await t.step(
      "a handler may start a follow-on run() whose events publish after its own COMMIT",
      async () => {
        const bus = new EventBus();
        const uow = new PostgresUnitOfWork(db.sql, { bus });
        const log: string[] = [];
        bus.register(UserRegistered, async (event) => {
          log.push("UserRegistered");
          await uow.run(async (tx) => {
            await tx.sql`insert into welcome values (${event.userId})`;
            tx.publishAfterCommit(new WelcomeQueued(event.userId));
          });
          log.push("follow-on committed and published");
        });
        bus.register(WelcomeQueued, async (event) => {
          const [row] = await db.observer<{ n: number }[]>`
            select count(*)::int as n from welcome where user_id = ${event.userId}`;
          log.push(`WelcomeQueued sees ${row!.n} row`);
        });
        await uow.run(async (tx) => {
          await insertUser(tx.sql, tx.track(User.register("f@example.com")));
        });
        assert.deepEqual(log, [
          "UserRegistered",
          "WelcomeQueued sees 1 row",
          "follow-on committed and published",
        ]);
      },
    );

    await t.step(
      "run() inside an open transaction is refused with a TypeError, not a deadlock",
      async () => {
        const { bus, published } = recordingBus();
        const uow = new PostgresUnitOfWork(db.sql, { bus });
        const sameClient = new PostgresUnitOfWork(db.sql, { bus });
        for (const inner of [uow, sameClient]) {
          const user = User.register("nested@example.com");
          await assert.rejects(
            uow.run(async (tx) => {
              await insertUser(tx.sql, tx.track(user));
              await inner.run((tx2) => {
                tx2.publishAfterCommit(new AuditNoted("inner"));
              });
            }),
            (error: unknown) =>
              error instanceof TypeError &&
              /inside another one's open transaction/.test(error.message),
          );
          assert.equal(
            await countUsers(db, user.id),
            0,
            "the outer run rolled back",
          );
        }
        assert.deepEqual(published, []);
      },
    );

    await t.step(
      "the isolationLevel option sets the level of every transaction",
      async () => {
        const uow = new PostgresUnitOfWork(db.sql, {
          bus: new EventBus(),
          isolationLevel: "serializable",
        });
        const level = await uow.run(async (tx) => {
          const [row] = await tx.sql<{ transaction_isolation: string }[]>`
            show transaction_isolation`;
          return row!.transaction_isolation;
        });
        assert.equal(level, "serializable");
        assert.throws(
          () =>
            new PostgresUnitOfWork(db.sql, {
              // @ts-expect-error: not an isolation level
              isolationLevel: "read uncommitted please",
            }),
          TypeError,
        );
      },
    );
  },
});
