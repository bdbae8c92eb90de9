// Jobs enqueued for a queue this process works start at their insert (the
// row is written claimed and handed to the worker, with no fetch); they are
// then pg-boss jobs like any other.
import assert from "node:assert/strict";
import { fromPglite, PgBoss } from "pg-boss";
import type { PGlite } from "@electric-sql/pglite";
import type { EnqueueOptions } from "../../../mod.ts";
import { PgBossJobQueue } from "../../../src/adapters/pg-boss/mod.ts";
import {
  Collector,
  openJobsDatabase,
  uniqueQueueName,
  waitFor,
} from "../../_helpers/jobs_db.ts";
import { waitUntil } from "../../_helpers/poll.ts";
import { createServerDatabase } from "../../_helpers/server_database.ts";
import { killChildWhenReady } from "../../_helpers/kill_child.ts";
import { fromFileUrl } from "../../unit/_paths.ts";

// Enqueues and tells whether the handler started before enqueue()
// resolved: only a job handed over at its insert can (a fetched one waits
// for a wake-up and a round trip after it).
async function enqueueWatched(
  jobs: PgBossJobQueue,
  queue: string,
  data: unknown,
  started: () => number,
  options?: EnqueueOptions,
): Promise<{ id: string | null; startedFirst: boolean }> {
  const before = started();
  const id = await jobs.enqueue(queue, data, options);
  return { id, startedFirst: started() > before };
}

// What pg-boss's insert writes from the queue's settings, and the claim.
const ROW = `select name, data, priority, state, retry_count, retry_limit,
  retry_delay, retry_backoff, retry_delay_max, expire_seconds,
  deletion_seconds, keep_until - start_after as retention, policy,
  dead_letter, heartbeat_seconds, singleton_key, singleton_on, group_id,
  blocked, blocking, pending_dependencies, source_id, upsert_by_key,
  started_on is not null as started, heartbeat_on is not null as heartbeat,
  created_on = start_after as ready, output
  from pgboss.job where id = $1`;

Deno.test("pg-boss job queue: jobs start at their insert on a free local worker", async (t) => {
  await using db = await openJobsDatabase();

  await t.step(
    "a job starts at its insert, written as pg-boss's fetch leaves it, and completes through pg-boss",
    async () => {
      const queue = uniqueQueueName("local");
      await using jobs = await db.connect();
      let started = 0;
      const release = Promise.withResolvers<void>();
      const seen = new Collector<unknown>();
      const first = PgBossJobQueue.jobIdFor(queue, "first");
      await jobs.work(queue, async (job) => {
        started++;
        seen.push(job.data);
        if (job.id === first) await release.promise;
      }, { concurrency: 2 });
      const handed = await enqueueWatched(
        jobs,
        queue,
        { n: 1 },
        () => started,
        {
          key: "first",
        },
      );
      assert.equal(
        handed.startedFirst,
        true,
        "started before enqueue resolved",
      );
      const [claimed] = await db.query(ROW, [handed.id]);
      // A job inserted as usual (a delay), and claimed by pg-boss's fetch.
      const delayed = await jobs.enqueue(queue, { n: 1 }, { startAfter: 1 });
      await seen.atLeast(2, "the delayed job");
      const [fetched] = await db.query(ROW, [delayed]);
      assert.deepEqual(
        { ...claimed },
        { ...fetched, state: "active", output: null, ready: true },
        "the same row but for its state (the delayed one has completed) and its delay",
      );
      assert.equal(claimed!.state, "active");
      assert.equal(claimed!.started, true);
      assert.equal(claimed!.heartbeat, true);
      assert.equal(claimed!.retry_count, 0);
      assert.equal(claimed!.policy, "standard");
      assert.equal(claimed!.dead_letter, queue + "__dead");
      release.resolve();
      let state = claimed!.state;
      while (state === "active") {
        [{ state }] = await db.query(ROW, [handed.id]) as [{ state: string }];
      }
      assert.equal(state, "completed");
      assert.deepEqual(seen.items, [{ n: 1 }, { n: 1 }]);
    },
  );

  await t.step(
    "a failed attempt of such a job is retried by pg-boss at once (not at the next poll), then dead-lettered with its error",
    async () => {
      const queue = uniqueQueueName("local-failing");
      await using jobs = await db.connect({
        queueDefaults: {
          retryLimit: 1,
          retryDelaySeconds: 0,
          retryBackoff: false,
        },
      });
      const attempts = new Collector<number>();
      // A poll far beyond waitFor's 15 s: only a wake-up starts the retry.
      await jobs.work(queue, (job) => {
        attempts.push(job.attempt);
        throw new RangeError("no such mailbox");
      }, { pollingIntervalSeconds: 60 });
      const handed = await enqueueWatched(
        jobs,
        queue,
        {},
        () => attempts.items.length,
      );
      assert.equal(handed.startedFirst, true);
      assert.deepEqual(await attempts.atLeast(2, "the retry"), [1, 2]);
      let letters = await jobs.deadLetters({ queue });
      while (letters.length === 0) letters = await jobs.deadLetters({ queue });
      assert.equal(letters[0]!.id !== handed.id, true, "a copy");
      assert.equal(letters[0]!.attempts, 2);
      assert.match(letters[0]!.error ?? "", /RangeError: no such mailbox/);
    },
  );

  await t.step(
    "the same id twice is inserted once and started once",
    async () => {
      const queue = uniqueQueueName("local-dup");
      await using jobs = await db.connect();
      const seen = new Collector<string>();
      await jobs.work(queue, (job) => {
        seen.push(job.id);
      }, { concurrency: 3 });
      // Twice in one call, twice at once, and again once it is done: one
      // job each time, as pg-boss's ON CONFLICT DO NOTHING.
      const [first, again] = await jobs.enqueueMany([
        { name: queue, data: {}, options: { key: "a" } },
        { name: queue, data: {}, options: { key: "a" } },
      ]);
      assert.equal(again, null);
      const both = await Promise.all([
        jobs.enqueue(queue, {}, { key: "b" }),
        jobs.enqueue(queue, {}, { key: "b" }),
      ]);
      assert.equal(both.filter((id) => id === null).length, 1);
      await seen.atLeast(2, "the two jobs");
      assert.equal(await jobs.enqueue(queue, {}, { key: "a" }), null);
      // A last job, enqueued after the duplicates: when it has run, any
      // start of theirs would have too.
      const last = await jobs.enqueue(queue, {}, { key: "c" });
      await seen.atLeast(3, "the last job");
      assert.deepEqual(
        seen.items.toSorted(),
        [first, both.find((id) => id !== null), last].toSorted(),
      );
    },
  );

  await t.step(
    "jobs go the usual way when the fast path does not fit: a delay, a busy worker, a batch over its batch size, a queue of another policy",
    async () => {
      const queue = uniqueQueueName("local-usual");
      await using jobs = await db.connect();
      let started = 0;
      const order: string[] = [];
      const release = Promise.withResolvers<void>();
      await jobs.work<{ n: string }>(queue, async (job) => {
        started++;
        order.push(`start ${job.data.n}${job.attempt > 1 ? " again" : ""}`);
        if (job.data.n === "busy") await release.promise;
        order.push(`end ${job.data.n}`);
      }, { concurrency: 1, batchSize: 2, pollingIntervalSeconds: 0.5 });
      const count = () => started;

      const delayed = await enqueueWatched(jobs, queue, { n: "delay" }, count, {
        startAfter: 1,
      });
      assert.equal(delayed.startedFirst, false, "a delayed job waits");
      const [row] = await db.query(ROW, [delayed.id]);
      assert.equal(row!.state, "created");

      const batch = started;
      const ids = await jobs.enqueueMany(
        ["x", "y", "z"].map((n) => ({ name: queue, data: { n } })),
      );
      assert.equal(started, batch, "three jobs are more than one fetch takes");
      assert.equal(ids.length, 3);

      // The worker is free for the next job once all four have settled:
      // its loop is released when the handlers return, but until pg-boss's
      // complete() lands their rows are active and not running here, which
      // the insert takes for a job on its way to a loop (it goes first).
      const four = [delayed.id, ...ids];
      const settled = async () => {
        const [{ n }] = await db.query(
          `select count(*)::int as n from pgboss.job
          where id = any($1) and state = 'completed'`,
          [four],
        ) as [{ n: number }];
        return n === four.length;
      };
      await waitUntil("the four jobs to be completed", settled, 30_000, 20);
      const busy = await enqueueWatched(jobs, queue, { n: "busy" }, count);
      assert.equal(busy.startedFirst, true, "a free worker takes it");
      const queued = await enqueueWatched(jobs, queue, { n: "queued" }, count);
      assert.equal(queued.startedFirst, false, "its only loop is taken");
      // Not beside it either: the worker runs one batch at a time (a fetch
      // meanwhile gives the job back, unsettled: it runs once, as attempt 1).
      await new Promise((r) => setTimeout(r, 700));
      assert.equal(order.at(-1), "start busy");
      release.resolve();
      while (!order.includes("end queued")) {
        await new Promise((r) => setTimeout(r, 20));
      }
      assert.deepEqual(order.slice(-4), [
        "start busy",
        "end busy",
        "start queued",
        "end queued",
      ]);

      // A policy with a unique index over active jobs.
      const singleton = uniqueQueueName("local-singleton");
      await jobs.work(singleton, () => {
        started++;
      });
      await db.query(
        `update pgboss.queue set policy = 'singleton'
        where name = $1`,
        [singleton],
      );
      const other = await enqueueWatched(jobs, singleton, {}, count);
      assert.equal(other.startedFirst, false);
      const [policy] = await db.query(ROW, [other.id]);
      assert.equal(policy!.policy, "singleton");
    },
  );

  await t.step(
    "stop() waits for a job that started at its insert",
    async () => {
      const queue = uniqueQueueName("local-stop");
      const jobs = await db.connect();
      const order: string[] = [];
      const release = Promise.withResolvers<void>();
      let id: string | null = null;
      try {
        await jobs.work(queue, async (job) => {
          order.push("start");
          await release.promise;
          order.push(job.signal.aborted ? "aborted" : "finish");
        });
        ({ id } = await enqueueWatched(jobs, queue, {}, () => order.length));
        assert.deepEqual(order, ["start"]);
        const stopped = jobs.stop().then(() => order.push("stopped"));
        await new Promise((resolve) => setTimeout(resolve, 200));
        release.resolve();
        await waitFor(stopped, "stop()");
      } finally {
        release.resolve();
        await jobs.stop();
      }
      assert.deepEqual(order, ["start", "finish", "stopped"]);
      const [row] = await db.query(ROW, [id]);
      assert.equal(row!.state, "completed");
    },
  );

  await t.step(
    "stop() past its timeout fails such a job as pg-boss fails a fetched one, and aborts its signal",
    async () => {
      const queue = uniqueQueueName("local-stop-late");
      const jobs = await db.connect({ stopTimeoutSeconds: 1 });
      const signals: AbortSignal[] = [];
      let id: string | null = null;
      try {
        await jobs.work(queue, (job) => {
          signals.push(job.signal);
          return new Promise<void>(() => {}); // ignores its signal
        });
        ({ id } = await enqueueWatched(jobs, queue, {}, () => signals.length));
        assert.equal(signals.length, 1);
      } finally {
        await jobs.stop();
      }
      assert.equal(signals[0]!.aborted, true);
      const [row] = await db.query(ROW, [id]);
      assert.equal(row!.state, "retry");
      assert.deepEqual(row!.output, {
        value: "pg-boss shut down while active",
      });
    },
  );
});

const CHILD = fromFileUrl(
  new URL("./_local_start_child.ts", import.meta.url),
);
const ROOT = fromFileUrl(new URL("../../../", import.meta.url));

Deno.test({
  name:
    "pg-boss job queue: a job started at its insert whose process is SIGKILLed is retried after its expiry, once",
  async fn() {
    const serverUrl = Deno.env.get("TEST_JOB_QUEUE_DATABASE_URL");
    const server = serverUrl
      ? await createServerDatabase(serverUrl, "aftercommit_local_start")
      : undefined;
    const dataDir = server ? undefined : await Deno.makeTempDir({
      prefix: "aftercommit_local_start_",
    });
    try {
      const queue = uniqueQueueName("local-killed");
      const [id, startedFirst] = await killChildWhenReady(
        CHILD,
        [server?.url ?? dataDir!, queue],
        ROOT,
        "its handler",
      );
      assert.equal(startedFirst, "true", "the child's job started at insert");

      // Another process: its worker, and a supervisor pass once the
      // attempt has expired.
      let pglite: PGlite | undefined;
      if (dataDir !== undefined) {
        const { PGlite } = await import("@electric-sql/pglite");
        pglite = await PGlite.create(dataDir);
      }
      const jobs = await PgBossJobQueue.connect(pglite ?? server!.url, {
        supervise: false,
        stopTimeoutSeconds: 5,
      });
      const boss = new PgBoss(
        pglite
          ? { backend: "pglite", db: fromPglite(pglite), supervise: false }
          : { connectionString: server!.url, max: 2, supervise: false },
      );
      boss.on("error", () => {});
      await boss.start();
      try {
        const query = async (text: string) =>
          (await boss.getDb().executeSql(text, [id]))
            .rows[0] as Record<string, unknown>;
        assert.deepEqual(
          await query(
            `select state, retry_count from pgboss.job where id = $1`,
          ),
          { state: "active", retry_count: 0 },
        );
        const attempts = new Collector<[string, number]>();
        await jobs.work(queue, (job) => {
          attempts.push([job.id, job.attempt]);
        }, { pollingIntervalSeconds: 0.5 });
        while (
          !(await query(`select started_on + expire_seconds * interval '1s'
            < now() as due from pgboss.job where id = $1`)).due
        ) {
          await new Promise((resolve) => setTimeout(resolve, 100));
        }
        await boss.supervise(queue);
        assert.deepEqual(await attempts.atLeast(1, "the retry"), [[id, 2]]);
        let row = await query(
          `select state, retry_count from pgboss.job where id = $1`,
        );
        while (row.state !== "completed") {
          row = await query(
            `select state, retry_count from pgboss.job where id = $1`,
          );
        }
        assert.deepEqual(row, { state: "completed", retry_count: 1 });
        // A sentinel after it: when it has run, a second retry would have.
        const sentinel = await jobs.enqueue(queue, {});
        await attempts.atLeast(2, "the sentinel");
        assert.deepEqual(attempts.items, [[id, 2], [sentinel, 1]]);
      } finally {
        await jobs.stop();
        await boss.stop({ graceful: false });
        await pglite?.close();
      }
    } finally {
      await server?.drop();
      if (dataDir !== undefined) {
        await Deno.remove(dataDir, { recursive: true });
      }
    }
  },
});
