// deno-lint-ignore-file no-console -- the steps report their figures
// Deadlines and leases of the outbox: a handler that never settles holds
// nothing back, handlers slower than the lease are dispatched once, a
// transaction longer than the lease is dispatched once, and outages use up
// no attempts. Slow: about a minute on either backend.
import assert from "node:assert/strict";
import { EventBus, PublishAfterCommitError } from "../../../mod.ts";
import {
  DispatchTimeoutError,
  OutboxRelay,
  PostgresUnitOfWork,
} from "../../../src/adapters/postgres/mod.ts";
import { openAppDatabase } from "../../_helpers/app_db.ts";
import {
  countWhere,
  Dispatches,
  freshOutbox,
  insertUndone,
  Noted,
  rows,
  waitForDrain,
} from "./_helpers.ts";
import { waitFor, waitUntil } from "../../_helpers/poll.ts";

Deno.test({
  name: "Outbox deadlines and leases",
  // A never-settling handler's promise is abandoned on purpose.
  sanitizeOps: true,
  sanitizeResources: true,
  async fn(t) {
    await using db = await openAppDatabase();

    await t.step(
      "a never-settling handler among 1,000 events on two relays: the others are done within 30 s, the hanging one is a recorded failed attempt, stop() returns",
      async () => {
        const options = await freshOutbox(db.sql, {
          leaseSeconds: 2,
          dispatchTimeoutSeconds: 1,
          maxAttempts: 2,
        });
        const events = Array.from({ length: 1000 }, (_, i) => new Noted(i));
        const hanging = events[0]!;
        await insertUndone(db.sql, options, events);
        const dispatches = new Dispatches();
        const signals: AbortSignal[] = [];
        const relays = [db.sql, db.observer].map((sql) => {
          const bus = new EventBus();
          bus.register(Noted, (event, { signal }) => {
            dispatches.add(event.eventId);
            if (event.eventId === hanging.eventId) {
              signals.push(signal);
              return new Promise<void>(() => {}); // ignores its signal too
            }
          });
          return new OutboxRelay(sql, {
            ...options,
            bus,
            batchSize: 50,
            pollIntervalSeconds: 0.05,
          }).start();
        });
        const started = performance.now();
        try {
          await waitUntil(
            "every other event to be done",
            async () =>
              await countWhere(
                db.observer,
                options.table,
                `done_at is not null`,
              ) === 999,
            30_000,
          );
          const seconds = (performance.now() - started) / 1000;
          console.log(`999 of 1,000 events done in ${seconds.toFixed(1)} s`);
          await waitUntil(
            "the hanging event to be parked",
            async () => (await rows(db.observer, options.table))[0]!.parked,
          );
        } finally {
          await waitFor(
            Promise.all(relays.map((r) => r.stop())),
            "relay.stop()",
            10_000,
          );
        }
        const [row] = await rows(db.observer, options.table);
        assert.equal(row!.id, hanging.eventId);
        assert.equal(row!.done, false);
        assert.equal(row!.attempts, 2, "both attempts recorded");
        assert.match(row!.last_error!, /^DispatchTimeoutError: /);
        assert.ok(signals.length >= 1);
        for (const signal of signals) {
          assert.equal(signal.aborted, true);
          assert.ok(signal.reason instanceof DispatchTimeoutError);
        }
        assert.equal(dispatches.counts.size, 1000);
        assert.equal(dispatches.twice, 1, "only the hanging one twice");
      },
    );

    await t.step(
      "handlers slower than the lease, on two live relays: no event is dispatched twice",
      async () => {
        const options = await freshOutbox(db.sql, {
          leaseSeconds: 1,
          dispatchTimeoutSeconds: 10,
        });
        const events = Array.from({ length: 200 }, (_, i) => new Noted(i));
        await insertUndone(db.sql, options, events);
        const dispatches = new Dispatches();
        const relays = [db.sql, db.observer].map((sql) => {
          const bus = new EventBus();
          bus.register(Noted, async (event) => {
            dispatches.add(event.eventId);
            // One in twenty takes 1.5 leases.
            if (event.n % 20 === 0) {
              await new Promise((resolve) => setTimeout(resolve, 1500));
            }
          });
          return new OutboxRelay(sql, {
            ...options,
            bus,
            batchSize: 25,
            pollIntervalSeconds: 0.05,
          }).start();
        });
        try {
          await waitForDrain(
            db.observer,
            options.table,
            "every event to be done",
            60_000,
          );
        } finally {
          await Promise.all(relays.map((r) => r.stop()));
        }
        console.log(
          `dispatches per event: max ${dispatches.max} over ${dispatches.counts.size} events`,
        );
        assert.equal(dispatches.counts.size, 200);
        assert.equal(dispatches.twice, 0, "none dispatched twice");
      },
    );

    await t.step(
      "a transaction longer than the lease: its events are dispatched once, after the commit",
      async () => {
        const options = await freshOutbox(db.sql, { leaseSeconds: 1 });
        const dispatches = new Dispatches();
        const claimed: number[] = [];
        const bus = new EventBus();
        const relay = new OutboxRelay(db.sql, { ...options, bus });
        bus.register(Noted, async (event) => {
          dispatches.add(event.eventId);
          // While the committing process dispatches, a relay looks for
          // events whose lease is over: there must be none.
          if (event.n === 0) claimed.push((await relay.runOnce()).claimed);
        });
        const uow = new PostgresUnitOfWork(db.sql, { bus, outbox: options });
        await uow.run(async (tx) => {
          await tx.sql`select pg_sleep(2)`;
          for (let i = 0; i < 10; i++) tx.publishAfterCommit(new Noted(i));
        });
        await uow.flush(); // the rows are marked done in the background
        assert.deepEqual(claimed, [0], "the relay claimed nothing");
        assert.equal(
          await countWhere(db.observer, options.table, "done_at is not null"),
          10,
        );
        assert.equal(dispatches.counts.size, 10);
        assert.equal(dispatches.twice, 0);
      },
    );

    await t.step(
      "an inline dispatch that outlives the timeout: run() reports it, the attempt is recorded, and the relay delivers the event later",
      async () => {
        const options = await freshOutbox(db.sql, {
          dispatchTimeoutSeconds: 0.2,
        });
        const bus = new EventBus();
        let calls = 0;
        bus.register(Noted, () => {
          calls++;
          if (calls === 1) return new Promise<void>(() => {});
        });
        const uow = new PostgresUnitOfWork(db.sql, { bus, outbox: options });
        const error = await uow.run((tx) => tx.publishAfterCommit(new Noted(1)))
          .then(() => undefined, (e: unknown) => e);
        assert.ok(error instanceof PublishAfterCommitError, `got ${error}`);
        assert.equal(error.relayWillRetry, true);
        assert.ok(error.cause instanceof DispatchTimeoutError);
        let [row] = await rows(db.observer, options.table);
        assert.deepEqual([row!.attempts, row!.done], [1, false]);
        await using _relay = new OutboxRelay(db.sql, {
          ...options,
          bus,
          pollIntervalSeconds: 0.05,
        }).start();
        await waitUntil("the redelivery", async () => {
          [row] = await rows(db.observer, options.table);
          return row!.done;
        });
        assert.equal(calls, 2);
      },
    );

    await t.step(
      "right after the commit, an outage puts the transaction's events off without using attempts, and stops dispatching the rest",
      async () => {
        const options = await freshOutbox(db.sql, { maxAttempts: 1 });
        const bus = new EventBus();
        let calls = 0;
        bus.register(Noted, () => {
          calls++;
          throw Object.assign(new Error("Connection terminated unexpectedly"), {
            cause: Object.assign(new Error("read ECONNRESET"), {
              code: "ECONNRESET",
            }),
          });
        });
        const uow = new PostgresUnitOfWork(db.sql, { bus, outbox: options });
        const error = await uow.run((tx) => {
          for (let i = 0; i < 3; i++) tx.publishAfterCommit(new Noted(i));
        }).then(() => undefined, (e: unknown) => e);
        assert.ok(error instanceof PublishAfterCommitError, `got ${error}`);
        assert.equal(error.relayWillRetry, true);
        assert.equal(
          calls,
          1,
          "the others were not dispatched into the outage",
        );
        const stored = await rows(db.observer, options.table);
        assert.deepEqual(
          stored.map((r) => [r.attempts, r.parked, r.done]),
          [[0, false, false], [0, false, false], [0, false, false]],
        );
        assert.match(stored[0]!.last_error!, /Connection terminated/);
      },
    );

    await t.step(
      "a dependency that refuses connections uses up no attempts: nothing is parked, and everything is delivered once it is back",
      async () => {
        const options = await freshOutbox(db.sql, {
          maxAttempts: 2,
          retryDelaySeconds: 0.01,
        });
        const events = Array.from({ length: 30 }, (_, i) => new Noted(i));
        await insertUndone(db.sql, options, events);
        let down = true;
        let refused = 0;
        const dispatches = new Dispatches();
        const bus = new EventBus();
        bus.register(Noted, (event) => {
          if (down) {
            refused++;
            throw Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:1"), {
              code: "ECONNREFUSED",
            });
          }
          dispatches.add(event.eventId);
        });
        const relay = new OutboxRelay(db.sql, {
          ...options,
          bus,
          batchSize: 10,
          pollIntervalSeconds: 0.02,
          outageDelaySeconds: 0.05,
          maxOutageDelaySeconds: 0.2,
        }).start();
        try {
          await waitUntil("ten refused dispatches", () => refused >= 10);
          const during = await rows(db.observer, options.table);
          assert.ok(during.every((r) => r.attempts === 0 && !r.parked));
          assert.ok(
            during.some((r) => /ECONNREFUSED/.test(r.last_error ?? "")),
            "the outage is visible as the last error",
          );
          down = false;
          await waitForDrain(
            db.observer,
            options.table,
            "the backlog to drain",
          );
        } finally {
          await relay.stop();
        }
        assert.equal(
          await countWhere(db.observer, options.table, "parked_at is not null"),
          0,
        );
        assert.equal(dispatches.counts.size, 30);
        assert.equal(dispatches.twice, 0);
      },
    );
  },
});
