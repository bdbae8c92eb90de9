import assert from "node:assert/strict";
import { PgBossJobQueue } from "../../../src/adapters/pg-boss/mod.ts";
import {
  Collector,
  openJobsDatabase,
  uniqueQueueName,
} from "../../_helpers/jobs_db.ts";

class Money {
  constructor(readonly cents: number) {}
}

Deno.test("pg-boss job queue: bad input gets a clear error before anything is written", async (t) => {
  await t.step(
    "connect() rejects a missing or malformed database without echoing it",
    async () => {
      const cases: [unknown, RegExp][] = [
        ["", /the URL is empty; pass a URL such as postgresql:\/\//],
        ["   ", /the URL is empty/],
        ["not a url", /the URL is not a valid URL/],
        [
          "mysql://root:hunter2@db:3306/jobs",
          /scheme "mysql:", expected "postgres:" or "postgresql:"/,
        ],
        ["http://example.com/jobs", /scheme "http:"/],
        ["postgres:///jobs", /the URL names no host/],
        [
          undefined,
          /expected a postgres:\/\/ URL or a PGlite instance, received undefined/,
        ],
        [
          null,
          /expected a postgres:\/\/ URL or a PGlite instance, received null/,
        ],
        [5432, /received a number/],
        [
          { query: 1 },
          /expected a postgres:\/\/ URL or a PGlite instance, received a plain object/,
        ],
      ];
      for (const [url, message] of cases) {
        await assert.rejects(
          PgBossJobQueue.connect(url as string),
          (error: unknown) => {
            assert.ok(error instanceof TypeError, String(error));
            assert.match(error.message, /^Cannot connect job queue: /);
            assert.match(error.message, message);
            assert.ok(!error.message.includes("hunter2"), error.message);
            return true;
          },
        );
      }
    },
  );

  await t.step(
    "connect() to a server that is not there says where it tried (no password) and what to check",
    async () => {
      const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
      const { port } = listener.addr;
      listener.close(); // nothing listens there now
      const check =
        "check that the server is running and the URL's host, port, database and credentials";
      const cases: [string, string][] = [
        [
          `postgres://app:hunter2@127.0.0.1:${port}/jobs`,
          `the PostgreSQL jobs database on 127.0.0.1:${port}, database jobs`,
        ],
        [
          `postgres://127.0.0.1:5432?port=${port}`,
          `the PostgreSQL jobs database on 127.0.0.1:${port}`,
        ],
        // A password with an unencoded "/": the parser reads part of it as
        // the path, so no part of the URL is shown.
        [
          `postgres://127.0.0.1:${port}/hunter2@db.example/jobs`,
          "the PostgreSQL jobs database",
        ],
      ];
      for (const [url, where] of cases) {
        await assert.rejects(PgBossJobQueue.connect(url), (error: unknown) => {
          assert.ok(error instanceof Error, String(error));
          assert.equal(
            error.message,
            `Cannot connect job queue: pg-boss did not start on ${where}; ${check}`,
          );
          assert.match((error.cause as Error).message, /ECONNREFUSED|refused/i);
          return true;
        });
      }
    },
  );

  await t.step(
    "connect() reads no environment variable",
    async () => {
      const saved = Deno.env.get("JOB_QUEUE_DATABASE_URL");
      try {
        Deno.env.set("JOB_QUEUE_DATABASE_URL", "postgres://127.0.0.1:1/jobs");
        await assert.rejects(
          PgBossJobQueue.connect(undefined as never),
          /expected a postgres:\/\/ URL or a PGlite instance, received undefined/,
        );
      } finally {
        if (saved === undefined) Deno.env.delete("JOB_QUEUE_DATABASE_URL");
        else Deno.env.set("JOB_QUEUE_DATABASE_URL", saved);
      }
    },
  );

  await t.step("connect() rejects options that do not fit", async () => {
    const url = "postgres://postgres@127.0.0.1:1/jobs";
    const cases: [unknown, RegExp][] = [
      [{ schema: "job-s" }, /options.schema must be a plain identifier/],
      [
        { queueDefaults: { retryLimit: -1 } },
        /options.queueDefaults.retryLimit must be between 0 and/,
      ],
      [
        { queueDefaults: { retryDelaySeconds: 0.5 } },
        /retryDelaySeconds must be an integer, received 0.5/,
      ],
      [
        { queueDefaults: { expireInSeconds: 90_000 } },
        /expireInSeconds must be between 1 and 86400/,
      ],
      [{ queues: { "bad name": {} } }, /invalid queue name "bad name"/],
      [
        { queues: { ok: { deadLetter: "yes" } } },
        /options.queues\["ok"\].deadLetter must be a boolean/,
      ],
      [{ listenNotify: 1 }, /options.listenNotify must be a boolean/],
      ["fast", /options must be an object, received a string/],
    ];
    for (const [options, message] of cases) {
      await assert.rejects(
        PgBossJobQueue.connect(url, options as never),
        (error: unknown) => {
          assert.ok(
            error instanceof TypeError || error instanceof RangeError,
            String(error),
          );
          assert.match(error.message, message);
          return true;
        },
      );
    }
  });

  await using db = await openJobsDatabase();
  await using jobs = await db.connect();

  await t.step("enqueue() rejects invalid queue names", async () => {
    const cases: [unknown, RegExp][] = [
      ["", /expected a queue name, received an empty string/],
      [
        "send email",
        /invalid queue name "send email": use only letters, digits/,
      ],
      ["drop';--", /invalid queue name/],
      ["mäil", /invalid queue name/],
      [42, /expected a queue name, received a number/],
      [undefined, /expected a queue name, received undefined/],
    ];
    for (const [name, message] of cases) {
      await assert.rejects(
        jobs.enqueue(name as string, {}),
        (error: unknown) => {
          assert.ok(error instanceof TypeError, String(error));
          assert.match(error.message, /^Cannot enqueue job: /);
          assert.match(error.message, message);
          return true;
        },
      );
    }
  });

  await t.step(
    "enqueue() rejects data that is not JSON-serialisable, naming the path",
    async () => {
      const cyclic: Record<string, unknown> = { a: { b: {} } };
      (cyclic.a as { b: Record<string, unknown> }).b.back = cyclic.a;
      const self: Record<string, unknown> = {};
      self.self = self;
      const cases: [unknown, RegExp][] = [
        [undefined, /data is undefined; pass a JSON value/],
        [() => 1, /data is function \(anonymous\), which JSON drops/],
        [{ send() {} }, /data.send is function send, which JSON drops/],
        [
          { amount: 10n },
          /data.amount is a bigint, which JSON cannot represent; convert it to a string/,
        ],
        [{ ratio: NaN }, /data.ratio is NaN, which JSON turns into null/],
        [
          { at: new Date(0) },
          /data.at is a Date, which JSON turns into a string; pass date.toISOString\(\)/,
        ],
        [
          { tags: new Set(["a"]) },
          /data.tags is an instance of Set, which does not survive JSON/,
        ],
        [{ price: new Money(5) }, /data.price is an instance of Money/],
        [
          { list: [1, undefined] },
          /data.list\[1\] is undefined inside an array/,
        ],
        [{ s: Symbol("x") }, /data.s is a symbol/],
        [cyclic, /data.a.b.back refers back to data.a, a cycle/],
        [self, /data.self refers back to data, a cycle/],
        [{ "odd key": { n: Infinity } }, /data\["odd key"\].n is Infinity/],
        [
          { note: "a\u0000b" },
          /data.note is a string with a NUL character or a lone surrogate, which PostgreSQL's jsonb cannot store; remove it, or encode the text/,
        ],
        [["x\ud800"], /data\[0\] is a string with a NUL character or a lone/],
        [{ a: { "k\u0000": 1 } }, /data.a has a key with a NUL character/],
      ];
      for (const [data, message] of cases) {
        await assert.rejects(
          jobs.enqueue("bad-data", data),
          (error: unknown) => {
            assert.ok(error instanceof TypeError, String(error));
            assert.match(
              error.message,
              /^Cannot enqueue job on queue "bad-data": data/,
            );
            assert.match(error.message, message);
            return true;
          },
        );
      }
    },
  );

  await t.step(
    "enqueue() accepts every JSON value and undefined properties",
    async () => {
      const queue = uniqueQueueName("json-values");
      const seen = new Collector<unknown>();
      await jobs.work(queue, (job) => {
        seen.push(job.data);
      });
      const values = [
        null,
        "text",
        "ünïcödé 😀 \u2028",
        0,
        true,
        [1, "two", null],
        { nested: { list: [{ deep: true }] }, shared: [1] },
      ];
      for (const value of values) await jobs.enqueue(queue, value);
      await jobs.enqueue(queue, { kept: 1, dropped: undefined });
      const got = await seen.atLeast(values.length + 1, "every JSON value");
      assert.deepEqual(
        new Set(got.map((v) => JSON.stringify(v))),
        new Set([...values, { kept: 1 }].map((v) => JSON.stringify(v))),
      );
    },
  );

  await t.step("enqueue() rejects bad options", async () => {
    const cases: [unknown, RegExp][] = [
      [
        { key: "" },
        /options.key must be a non-empty string, received an empty string/,
      ],
      [{ key: 7 }, /options.key must be a non-empty string, received a number/],
      [{ priority: 1.5 }, /options.priority must be an integer, received 1.5/],
      [
        { startAfterSeconds: -1 },
        /options.startAfterSeconds must be at least 0, received -1/,
      ],
      ["later", /options must be an object, received a string/],
    ];
    for (const [options, message] of cases) {
      await assert.rejects(
        jobs.enqueue("bad-options", {}, options as never),
        (error: unknown) => {
          assert.ok(
            error instanceof TypeError || error instanceof RangeError,
            String(error),
          );
          assert.match(error.message, message);
          return true;
        },
      );
    }
  });

  await t.step(
    "enqueueMany() writes nothing when one request is bad",
    async () => {
      const queue = uniqueQueueName("all-or-nothing");
      const good = Array.from({ length: 3 }, (_, i) => ({
        name: queue,
        data: { n: i },
        options: { key: `k${i}` },
      }));
      await assert.rejects(
        jobs.enqueueMany([...good, { name: queue, data: { n: 10n } }]),
        new TypeError(
          `Cannot enqueue jobs[3] on queue "${queue}": data is not JSON-serialisable: data.n is a bigint, which JSON cannot represent; convert it to a string (String(n)) or a number`,
        ),
      );
      await assert.rejects(
        jobs.enqueueMany([...good, { name: "no spaces", data: {} }]),
        /Cannot enqueue jobs\[3\]: invalid queue name "no spaces"/,
      );
      await assert.rejects(
        jobs.enqueueMany([...good, null as never]),
        /Cannot enqueue jobs\[3\]: expected a \{ name, data, options \} request, received null/,
      );
      await assert.rejects(
        jobs.enqueueMany("jobs" as never),
        /expected an array of \{ name, data, options \} requests, received a string/,
      );
      // Had any of the good jobs been written, its key would now be used.
      const ids = await jobs.enqueueMany(good);
      assert.ok(ids.every((id) => typeof id === "string"), String(ids));
    },
  );

  await t.step("work() rejects a missing handler and bad options", async () => {
    await assert.rejects(
      jobs.work("q", "handler" as never),
      new TypeError(
        'Cannot start worker on queue "q": expected a handler function, received a string',
      ),
    );
    await assert.rejects(
      jobs.work("q", () => {}, { concurrency: 0 }),
      new RangeError(
        'Cannot start worker on queue "q": options.concurrency must be between 1 and 1000, received 0',
      ),
    );
    await assert.rejects(
      jobs.work("q", () => {}, { pollingIntervalSeconds: 0.1 }),
      /options.pollingIntervalSeconds must be at least 0.5, received 0.1/,
    );
    await assert.rejects(
      jobs.work("bad name", () => {}),
      /Cannot start worker: invalid queue name "bad name"/,
    );
    // Detached from its queue, work() still rejects rather than throws.
    const { work } = jobs;
    const detached = work.call(undefined, "q", () => {});
    await assert.rejects(detached, TypeError);
  });

  await t.step(
    "jobIdFor() and deadLetterQueueName() reject bad names and keys",
    () => {
      assert.throws(
        () => PgBossJobQueue.jobIdFor("q", ""),
        /options.key must be a non-empty string/,
      );
      assert.throws(
        () => PgBossJobQueue.deadLetterQueueName("a b"),
        /invalid queue name "a b"/,
      );
    },
  );
});
