// deno-lint-ignore-file no-console -- the test reports the drain time
// The jobs database goes away for longer than maxAttempts × the retry delay
// would allow, then comes back: nothing is parked, and every event is
// delivered with no restart. The jobs database is a throwaway cluster
// (initdb/pg_ctl), never the shared server. Slow: about 20 s.
import assert from "node:assert/strict";
import {
  BatchingJobQueue,
  EventBus,
  type JobQueue,
  On,
  PublishAfterCommitError,
} from "../../../mod.ts";
import {
  OutboxAdmin,
  OutboxRelay,
  PostgresUnitOfWork,
} from "../../../src/adapters/postgres/mod.ts";
import { PgBossJobQueue } from "../../../src/adapters/pg-boss/mod.ts";
import { openAppDatabase } from "../../_helpers/app_db.ts";
import {
  clustersAvailable as canMakeClusters,
  startCluster as startThrowawayCluster,
} from "../../_helpers/cluster.ts";
import { countWhere, freshOutbox, Noted, waitForDrain } from "./_helpers.ts";
import { waitUntil } from "../../_helpers/poll.ts";

const QUEUE = "outage-welcome";

class Welcome {
  constructor(private readonly jobs: JobQueue) {}
  @On(Noted)
  async enqueue(event: Noted): Promise<void> {
    await this.jobs.enqueue(QUEUE, { eventId: event.eventId }, {
      key: `${event.eventId}:Welcome.enqueue`,
    });
  }
}

Deno.test({
  name:
    "Jobs database down longer than the attempts allow, then back: zero parked, every event delivered without a restart",
  ignore: !canMakeClusters(),
  sanitizeOps: true,
  sanitizeResources: true,
  async fn() {
    await using cluster = await startThrowawayCluster();
    await using db = await openAppDatabase();
    const options = await freshOutbox(db.sql, {
      maxAttempts: 3,
      retryDelaySeconds: 0.2,
      maxRetryDelaySeconds: 0.5,
    });
    await using jobs = await PgBossJobQueue.connect(cluster.url, {
      supervise: false,
      stopTimeoutSeconds: 5,
      maxConnections: 4,
    });
    const ran = new Map<string, number>();
    await jobs.work<{ eventId: string }>(QUEUE, (job) => {
      ran.set(job.data.eventId, (ran.get(job.data.eventId) ?? 0) + 1);
    }, { pollingIntervalSeconds: 0.5 });
    const batching = new BatchingJobQueue(jobs);
    const bus = new EventBus();
    bus.subscribe(new Welcome(batching));
    const publisher = batching.publisher(bus);
    const uow = new PostgresUnitOfWork(db.sql, {
      bus: publisher,
      outbox: options,
    });
    const relay = new OutboxRelay(db.sql, {
      ...options,
      bus: publisher,
      pollIntervalSeconds: 0.2,
      outageDelaySeconds: 0.5,
      maxOutageDelaySeconds: 2,
    });
    // Counts the passes that met the outage (the loop calls runOnce()).
    let outagePasses = 0;
    const runOnce = relay.runOnce.bind(relay);
    relay.runOnce = async () => {
      const pass = await runOnce();
      if (pass.outage) outagePasses++;
      return pass;
    };
    await using _relay = relay.start();
    const admin = new OutboxAdmin(db.sql, options);

    const before = Array.from({ length: 20 }, (_, i) => new Noted(i));
    for (const event of before) {
      await uow.run((tx) => tx.publishAfterCommit(event));
    }
    await uow.flush(); // their rows are marked done in the background
    await waitUntil("the first jobs", () => ran.size === 20);

    await cluster.stop("fast");
    const during = Array.from({ length: 100 }, (_, i) => new Noted(100 + i));
    let reported = 0;
    for (const event of during) {
      try {
        await uow.run((tx) => tx.publishAfterCommit(event));
      } catch (error) {
        assert.ok(error instanceof PublishAfterCommitError, `got ${error}`);
        assert.equal(error.relayWillRetry, true);
        reported++;
      }
    }
    assert.equal(reported, 100, "every run says the relay will retry");
    // Had an outage used up attempts, more relay passes over the backlog
    // than maxAttempts (3) would have parked it.
    await waitUntil(
      "the relay to meet the outage 4 times",
      () => outagePasses >= 4,
      30_000,
    );
    const down = await admin.stats();
    assert.equal(down.parked, 0, "nothing parked during the outage");
    assert.equal(down.pending + down.inFlight, 100);
    assert.equal(
      await countWhere(db.observer, options.table, "attempts > 0"),
      20,
      "no attempt used up by the outage (only the 20 done events count one)",
    );

    const restarted = performance.now();
    await cluster.start();
    await waitForDrain(
      db.observer,
      options.table,
      "the backlog to drain",
      60_000,
    );
    await waitUntil("every job to run", () => ran.size === 120, 60_000);
    const drainSeconds = (performance.now() - restarted) / 1000;
    console.log(
      `backlog of 100 events drained ${
        drainSeconds.toFixed(1)
      } s after the jobs database started again`,
    );
    const after = await admin.stats();
    assert.equal(after.parked, 0);
    assert.equal(after.done, 120);
    assert.deepEqual(
      [...ran.values()].filter((n) => n !== 1),
      [],
      "each job ran once",
    );
  },
});
