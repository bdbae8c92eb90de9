import assert from "node:assert/strict";
import {
  DEFAULT_QUEUE_SETTINGS,
  PgBossJobQueue,
} from "../../../src/adapters/pg-boss/mod.ts";
import {
  Collector,
  openJobsDatabase,
  uniqueQueueName,
} from "../../_helpers/jobs_db.ts";
import { captureLogs, recordText } from "../../_helpers/logs.ts";

// Data a log must never show.
const EMAIL = "grace.hopper@example.org";
const SECRET = "s3cret-token-do-not-log";

// Retries without delay keep the file fast; the defaults are checked in
// pg-boss's queue table below.
const fastRetries = {
  retryLimit: 2,
  retryDelaySeconds: 0,
  retryBackoff: false,
} as const;

Deno.test("pg-boss job queue: retries, dead letters and error logs", async (t) => {
  await using db = await openJobsDatabase();

  await t.step(
    "a queue gets retries with backoff, an expiry and a dead-letter queue by default; options override them per adapter and per queue",
    async () => {
      const plain = uniqueQueueName("defaults");
      const tuned = uniqueQueueName("tuned");
      await using jobs = await db.connect({
        queueDefaults: { retryLimit: 3 },
        queues: { [tuned]: { expireInSeconds: 30, deadLetter: false } },
      });
      await jobs.enqueue(plain, {});
      await jobs.enqueue(tuned, {});
      const rows = await db.query(
        `select name, retry_limit, retry_delay, retry_backoff, retry_delay_max,
           expire_seconds, retention_seconds, deletion_seconds, dead_letter
         from pgboss.queue where name = any($1::text[]) order by name`,
        [[plain, tuned]],
      );
      const expected = {
        retry_limit: 3,
        retry_delay: 1,
        retry_backoff: true,
        retry_delay_max: 300,
        expire_seconds: 900,
        retention_seconds: 1_209_600,
        deletion_seconds: 604_800,
      };
      assert.deepEqual(rows, [
        { name: plain, ...expected, dead_letter: plain + "__dead" },
        { name: tuned, ...expected, expire_seconds: 30, dead_letter: null },
      ]);
    },
  );

  await t.step(
    "with no options a queue gets DEFAULT_QUEUE_SETTINGS: the README's 5 retries with backoff, and a dead-letter queue",
    async () => {
      const queue = uniqueQueueName("untouched");
      await using jobs = await db.connect();
      await jobs.enqueue(queue, {});
      const rows = await db.query(
        `select retry_limit, retry_delay, retry_backoff, retry_delay_max,
           expire_seconds, dead_letter from pgboss.queue where name = $1`,
        [queue],
      );
      const d = DEFAULT_QUEUE_SETTINGS;
      assert.equal(d.retryLimit, 5);
      assert.deepEqual(rows, [{
        retry_limit: d.retryLimit,
        retry_delay: d.retryDelaySeconds,
        retry_backoff: d.retryBackoff,
        retry_delay_max: d.retryDelayMaxSeconds,
        expire_seconds: d.expireInSeconds,
        dead_letter: queue + "__dead",
      }]);
    },
  );

  await t.step(
    "a job that fails once is retried and then succeeds",
    async () => {
      const queue = uniqueQueueName("flaky");
      await using jobs = await db.connect({ queueDefaults: fastRetries });
      const attempts = new Collector<number>();
      const succeeded = new Collector<string>();
      await jobs.work<{ email: string }>(queue, (job) => {
        attempts.push(job.attempt);
        if (job.attempt === 1) throw new Error("mail server unavailable");
        succeeded.push(job.id);
      });
      const id = await jobs.enqueue(queue, { email: EMAIL });
      assert.deepEqual(await succeeded.atLeast(1, "the retried job"), [id]);
      assert.deepEqual(attempts.items, [1, 2]);
    },
  );

  await t.step(
    "a job that always fails lands in the dead-letter queue after its retries",
    async () => {
      const queue = uniqueQueueName("doomed");
      const dead = PgBossJobQueue.deadLetterQueueName(queue);
      assert.equal(dead, `${queue}__dead`);
      await using jobs = await db.connect({
        queueDefaults: { ...fastRetries, retryLimit: 1 },
      });
      const attempts = new Collector<number>();
      await jobs.work(queue, (job) => {
        attempts.push(job.attempt);
        throw new Error("always fails");
      });
      const deadLetters = new Collector<unknown>();
      await jobs.work(dead, (job) => {
        deadLetters.push(job.data);
      }, { pollingIntervalSeconds: 0.5 });
      await jobs.enqueue(queue, { email: EMAIL, n: 7 }, { key: "evt-doomed" });
      assert.deepEqual(await deadLetters.atLeast(1, "the dead letter"), [
        { email: EMAIL, n: 7 },
      ]);
      assert.deepEqual(attempts.items, [1, 2]);
    },
  );

  await t.step(
    "a queue with deadLetter: false fails without a dead letter",
    async () => {
      const queue = uniqueQueueName("no-dead-letter");
      const dead = PgBossJobQueue.deadLetterQueueName(queue);
      const options = {
        queues: {
          [queue]: { ...fastRetries, retryLimit: 0, deadLetter: false },
        },
      };
      const attempts = new Collector<number>();
      {
        await using jobs = await db.connect(options);
        await jobs.work(queue, (job) => {
          attempts.push(job.attempt);
          throw new Error("fails once, for good");
        });
        await jobs.enqueue(queue, { n: 1 });
        await attempts.atLeast(1, "the only attempt");
      } // stop() waits until the failure is recorded
      await using jobs = await db.connect(options);
      const deadLetters = new Collector<unknown>();
      await jobs.work(dead, (job) => {
        deadLetters.push(job.data);
      });
      // Oldest first: a dead letter, had there been one, would come first.
      await jobs.enqueue(dead, { sentinel: true });
      assert.deepEqual(await deadLetters.atLeast(1, "the sentinel"), [
        { sentinel: true },
      ]);
      assert.deepEqual(attempts.items, [1]);
    },
  );

  await t.step(
    "a failed attempt is logged with the job name, id and attempt, never the data",
    async () => {
      const queue = uniqueQueueName("logged");
      const { records } = await captureLogs(async () => {
        await using jobs = await db.connect({ queueDefaults: fastRetries });
        const done = new Collector<string>();
        await jobs.work<{ email: string; token: string }>(queue, (job) => {
          if (job.attempt < 3) {
            throw new TypeError("upstream rejected the call");
          }
          done.push(job.id);
        });
        await jobs.enqueue(queue, { email: EMAIL, token: SECRET });
        await done.atLeast(1, "the job's third attempt");
      });

      const failures = records.filter((r) =>
        r.level === "error" && r.category.join(".") === "aftercommit.jobs"
      );
      assert.equal(failures.length, 2);
      const [id] = new Set(failures.map((r) => r.properties.jobId));
      assert.equal(typeof id, "string");
      assert.deepEqual(failures.map((r) => r.properties.attempt), [1, 2]);
      for (const record of failures) {
        assert.equal(record.properties.jobName, queue);
        assert.equal(record.properties.jobId, id);
        // Name, message and stack of the handler's error; not its other fields.
        const logged = record.properties.error as Error;
        assert.ok(logged instanceof Error);
        assert.equal(logged.name, "TypeError");
      }
      for (const record of records) {
        const text = recordText(record);
        assert.ok(
          !text.includes(EMAIL),
          `a log record shows the email: ${text}`,
        );
        assert.ok(
          !text.includes(SECRET),
          `a log record shows the token: ${text}`,
        );
      }
    },
  );
});
