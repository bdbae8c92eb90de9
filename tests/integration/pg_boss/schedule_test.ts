// deno-lint-ignore-file no-explicit-any -- misuse tests pass wrong types on purpose
// Delayed jobs (startAfter: seconds or a Date) and cron schedules
// (schedule, unschedule, schedules) through the pg-boss adapter, on the
// test's jobs database: embedded PGlite by default, a fresh database on the
// server when TEST_JOB_QUEUE_DATABASE_URL is set.
import assert from "node:assert/strict";
import {
  Collector,
  openJobsDatabase,
  uniqueQueueName,
} from "../../_helpers/jobs_db.ts";

Deno.test("pg-boss job queue: startAfter and cron schedules", async (t) => {
  await using db = await openJobsDatabase();
  await using jobs = await db.connect();

  async function startTimes(
    queue: string,
    count: number,
  ): Promise<Map<string, number>> {
    const started = new Collector<[string, number]>();
    await jobs.work<{ n: string }>(queue, (job) => {
      started.push([job.data.n, Date.now()]);
    }, { pollingIntervalSeconds: 0.5 });
    return new Map(await started.atLeast(count, `${count} jobs of ${queue}`));
  }

  await t.step(
    "startAfter in seconds or as a Date: the job starts no earlier",
    async () => {
      const queue = uniqueQueueName("delayed");
      const before = Date.now();
      const at = new Date(before + 1200);
      await jobs.enqueue(queue, { n: "seconds" }, { startAfter: 1.5 });
      await jobs.enqueue(queue, { n: "date" }, { startAfter: at });
      await jobs.enqueue(queue, { n: "now" }, { startAfter: 0 });
      const ids = await jobs.enqueueMany([
        {
          name: queue,
          data: { n: "many-seconds" },
          options: { startAfter: 1 },
        },
        { name: queue, data: { n: "many-date" }, options: { startAfter: at } },
      ]);
      assert.equal(ids.filter((id) => typeof id === "string").length, 2);
      const started = await startTimes(queue, 5);
      assert.ok(started.get("seconds")! >= before + 1500, "1.5 s");
      assert.ok(started.get("date")! >= at.getTime(), "at the Date");
      assert.ok(started.get("many-seconds")! >= before + 1000, "1 s, batched");
      assert.ok(started.get("many-date")! >= at.getTime(), "Date, batched");
      assert.ok(
        started.get("now")! < started.get("date")!,
        "startAfter: 0 starts at once",
      );
    },
  );

  await t.step(
    "a bad startAfter is a TypeError or RangeError that says what to do, and nothing is written",
    async () => {
      const queue = uniqueQueueName("bad-delay");
      const cases: [unknown, ErrorConstructor, RegExp][] = [
        [
          { startAfter: -1 },
          RangeError,
          /options\.startAfter must be 0 or more seconds, received -1; a delay cannot point into the past/,
        ],
        [
          { startAfter: NaN },
          RangeError,
          /options\.startAfter must be a finite number of seconds, received NaN/,
        ],
        [
          { startAfter: Infinity },
          RangeError,
          /must be a finite number of seconds, received Infinity/,
        ],
        [
          { startAfter: 3_600_000_000 },
          RangeError,
          /options\.startAfter must be at most 3155760000 seconds \(100 years\)/,
        ],
        [
          { startAfter: new Date("tomorrow") },
          RangeError,
          /options\.startAfter is an invalid Date; build it from a valid time/,
        ],
        [
          { startAfter: new Date(Date.now() - 5000) },
          RangeError,
          /options\.startAfter is in the past \(.*\); pass a moment that has not come yet/,
        ],
        [
          { startAfter: "2030-01-01" },
          TypeError,
          /options\.startAfter must be a number of seconds or a Date, received a string/,
        ],
        [
          { startAfter: 5, startAfterSeconds: 5 },
          TypeError,
          /pass options\.startAfter or options\.startAfterSeconds, not both/,
        ],
      ];
      for (const [options, type, message] of cases) {
        const check = (error: Error) => {
          assert.ok(error instanceof type, `${String(error)}`);
          assert.match(error.message, message);
          return true;
        };
        await assert.rejects(
          jobs.enqueue(queue, { n: 1 }, options as any),
          check,
        );
        await assert.rejects(
          jobs.enqueueMany([{
            name: queue,
            data: {},
            options: options as any,
          }]),
          check,
        );
        assert.throws(
          () =>
            jobs.prepare({ name: queue, data: {}, options: options as any }),
          check,
        );
      }
      // Had a bad job been written, it would run before this one.
      await jobs.enqueue(queue, { n: "sentinel" });
      const started = await startTimes(queue, 1);
      assert.deepEqual([...started.keys()], ["sentinel"]);
    },
  );

  await t.step(
    "schedule() saves a schedule, replaces it when set again, and unschedule() removes it",
    async () => {
      const queue = uniqueQueueName("nightly");
      await jobs.schedule(queue, "0 3 * * *", { kind: "report" }, {
        timeZone: "Europe/Paris",
      });
      await jobs.schedule(queue, "30 3 * * *", { kind: "report" }, {
        timeZone: "Europe/Paris",
      });
      await jobs.schedule(queue, "0 18 * * *", { region: "eu" }, {
        key: "eu",
      });
      assert.deepEqual(
        (await jobs.schedules(queue)).toSorted((a, b) =>
          a.key.localeCompare(b.key)
        ),
        [
          {
            name: queue,
            key: "",
            cron: "30 3 * * *",
            timeZone: "Europe/Paris",
          },
          { name: queue, key: "eu", cron: "0 18 * * *", timeZone: "UTC" },
        ],
      );
      // The unnamed schedule's key, as schedules() lists it.
      await jobs.unschedule(queue, { key: "" });
      assert.deepEqual((await jobs.schedules(queue)).map((s) => s.key), ["eu"]);
      await jobs.unschedule(queue, { key: "eu" });
      await jobs.unschedule(queue, { key: "eu" }); // gone: nothing to do
      assert.deepEqual(await jobs.schedules(queue), []);
    },
  );

  await t.step(
    "a cron expression or time zone pg-boss rejects, and other bad arguments, are TypeErrors that say what to do; nothing is saved",
    async () => {
      const queue = uniqueQueueName("bad-cron");
      const cases: [() => Promise<void>, RegExp][] = [
        [
          () => jobs.schedule(queue, "61 * * * *"),
          /Cannot schedule jobs on queue "bad-cron-[0-9a-f]+": pg-boss rejects the cron expression "61 \* \* \* \*" \(.+\); pass five fields \(minute hour day month weekday\) such as "0 3 \* \* \*"/,
        ],
        [
          () => jobs.schedule(queue, "every day"),
          /pg-boss rejects the cron expression "every day"/,
        ],
        [
          () => jobs.schedule(queue, "FREQ=DAILY;UNTIL=20200101T000000Z"),
          /: the rule "FREQ=DAILY;UNTIL=20200101T000000Z" has no occurrence left, so the schedule would never send a job; pass a rule whose next occurrence is still to come$/,
        ],
        [
          () => jobs.schedule(queue, ""),
          /expected a cron expression, received an empty string; pass five fields such as "0 3 \* \* \*"/,
        ],
        [
          () => jobs.schedule(queue, 5 as any),
          /expected a cron expression, received a number/,
        ],
        [
          () =>
            jobs.schedule(queue, "0 3 * * *", null, {
              timeZone: "Mars/Olympus",
            }),
          /pg-boss rejects the time zone "Mars\/Olympus" \(.+\); pass an IANA name such as "Europe\/Paris"/,
        ],
        [
          () => jobs.schedule(queue, "0 3 * * *", null, { timeZone: 2 as any }),
          /options\.timeZone must be an IANA time zone name such as "Europe\/Paris", received a number/,
        ],
        [
          () => jobs.schedule(queue, "0 3 * * *", null, { key: "a b" }),
          /options\.key must be a name of letters, digits/,
        ],
        [
          () => jobs.schedule(queue, "0 3 * * *", { at: new Date() }),
          /data is not JSON-serialisable: data\.at is a Date/,
        ],
        [
          () => jobs.schedule("bad name", "0 3 * * *"),
          /Cannot schedule jobs: invalid queue name "bad name"/,
        ],
        [
          () => jobs.unschedule(queue, { key: 5 as any }),
          /Cannot unschedule jobs on queue "bad-cron-[0-9a-f]+": options\.key must be a name/,
        ],
      ];
      for (const [call, message] of cases) {
        await assert.rejects(call, (error: Error) => {
          assert.ok(error instanceof TypeError, String(error));
          assert.match(error.message, message);
          return true;
        });
      }
      assert.deepEqual(await jobs.schedules(queue), []);
      const created = await db.query(
        "select name from pgboss.queue where name like $1",
        [`${queue}%`],
      );
      assert.deepEqual(created, [], "no queue was created");
    },
  );

  await t.step(
    "a process connected with runSchedules sends the scheduled jobs to the workers",
    async () => {
      await using cron = await db.connect({
        runSchedules: true,
        scheduleCheckIntervalSeconds: 1,
      });
      const queue = uniqueQueueName("every-minute");
      const seen = new Collector<unknown>();
      await cron.work(queue, (job) => {
        seen.push(job.data);
      }, { pollingIntervalSeconds: 0.5 });
      // Every minute: the current minute is always due, so the first pass
      // sends one job.
      await cron.schedule(queue, "* * * * *", { n: 1 });
      // One job per minute: a pass that crosses a minute sends a second one.
      const sent = await seen.atLeast(1, "the scheduled job");
      assert.ok(sent.length >= 1);
      for (const data of sent) assert.deepEqual(data, { n: 1 });
      await cron.unschedule(queue);
    },
  );

  await t.step("bad connect options for schedules are rejected", async () => {
    await assert.rejects(
      db.connect({ runSchedules: "yes" as any }),
      /options\.runSchedules must be a boolean, received a string/,
    );
    await assert.rejects(
      db.connect({ scheduleCheckIntervalSeconds: 60 }),
      (error: Error) =>
        error instanceof RangeError &&
        /options\.scheduleCheckIntervalSeconds must be between 1 and 45, received 60/
          .test(error.message),
    );
  });
});
