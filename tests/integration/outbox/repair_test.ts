// See and repair: OutboxAdmin and the CLI over parked events and dead
// letters. Park events, list them, requeue them, see them delivered;
// dead-letter a job, retry it, see it complete; bad input changes nothing.
import assert from "node:assert/strict";
import { EventBus } from "../../../mod.ts";
import {
  OutboxAdmin,
  OutboxRelay,
} from "../../../src/adapters/postgres/mod.ts";
import { main } from "../../../src/cli/mod.ts";
import { fakeIo } from "../../_helpers/cli_io.ts";
import { openAppDatabase } from "../../_helpers/app_db.ts";
import {
  Collector,
  openJobsDatabase,
  uniqueQueueName,
} from "../../_helpers/jobs_db.ts";
import { countWhere, freshOutbox, insertUndone, Noted } from "./_helpers.ts";
import { waitUntil } from "../../_helpers/poll.ts";

const EMAIL = "grace.hopper@example.org";

Deno.test({
  name: "Outbox repair: OutboxAdmin and the CLI",
  sanitizeOps: true,
  sanitizeResources: true,
  async fn(t) {
    await using db = await openAppDatabase();

    // Parks `count` events of a fresh table whose handler fails until
    // `healed.value` is true; returns the options and the delivered ids.
    async function parked(count: number) {
      const options = await freshOutbox(db.sql, {
        maxAttempts: 1,
        retryDelaySeconds: 0,
      });
      const events = Array.from(
        { length: count },
        (_, i) => new Noted(i, EMAIL),
      );
      await insertUndone(db.sql, options, events);
      const healed = { value: false };
      const delivered = new Set<string>();
      const bus = new EventBus();
      bus.register(Noted, (event) => {
        if (!healed.value) throw new TypeError("template missing");
        delivered.add(event.eventId);
      });
      const relay = new OutboxRelay(db.sql, { ...options, bus });
      while ((await relay.runOnce()).claimed > 0) { /* until all parked */ }
      assert.equal(
        await countWhere(db.observer, options.table, "parked_at is not null"),
        count,
      );
      return { options, events, healed, delivered, bus };
    }

    await t.step(
      "stats() counts by state; listParked() shows type, attempts, error and age, no fields unless asked",
      async () => {
        const { options, events } = await parked(3);
        await insertUndone(db.sql, options, [new Noted(99)]);
        const admin = new OutboxAdmin(db.sql, options);
        const stats = await admin.stats();
        assert.deepEqual(
          { ...stats, oldestPendingAgeSeconds: undefined },
          {
            pending: 1,
            inFlight: 0,
            parked: 3,
            done: 0,
            oldestPendingAgeSeconds: undefined,
          },
        );
        assert.ok(stats.oldestPendingAgeSeconds! >= 0);
        const list = await admin.listParked();
        assert.deepEqual(list.map((e) => e.id), events.map((e) => e.eventId));
        for (const event of list) {
          assert.equal(event.type, "test.outbox.noted");
          assert.equal(event.attempts, 1);
          assert.equal(event.lastError, "TypeError: template missing");
          assert.ok(event.ageSeconds >= 0);
          assert.equal("payload" in event, false);
        }
        assert.ok(!JSON.stringify(list).includes(EMAIL));
        const withPayload = await admin.listParked({
          limit: 1,
          includePayload: true,
        });
        assert.equal(withPayload.length, 1);
        const payload = withPayload[0]!.payload as { n: number; email: string };
        assert.deepEqual([payload.n, payload.email], [0, EMAIL]);
        assert.deepEqual(await admin.listParked({ type: "other.type" }), []);
      },
    );

    await t.step(
      "requeueParked() by id, then by type: the relay delivers them; purgeParked() deletes",
      async () => {
        const { options, events, healed, delivered, bus } = await parked(4);
        const admin = new OutboxAdmin(db.sql, options);
        healed.value = true;
        assert.equal(
          await admin.requeueParked({ ids: [events[0]!.eventId] }),
          1,
        );
        await using _relay = new OutboxRelay(db.sql, {
          ...options,
          bus,
          pollIntervalSeconds: 0.02,
        }).start();
        await waitUntil("the first delivery", () => delivered.size === 1);
        assert.equal(await admin.countParked({ type: "test.outbox.noted" }), 3);
        assert.equal(
          await admin.purgeParked({ ids: [events[1]!.eventId] }),
          1,
        );
        assert.equal(
          await admin.requeueParked({ type: "test.outbox.noted" }),
          2,
        );
        await waitUntil("every delivery", () => delivered.size === 3);
        // The relay marks what it dispatched done at the end of its pass.
        await waitUntil(
          "the deliveries marked done",
          async () => (await admin.stats()).done === 3,
        );
        const stats = await admin.stats();
        assert.deepEqual([stats.parked, stats.done], [0, 3]);
      },
    );

    await t.step("bad selections throw and change nothing", async () => {
      const { options } = await parked(2);
      const admin = new OutboxAdmin(db.sql, options);
      for (
        const selection of [
          undefined,
          null,
          {},
          { all: false },
          { all: true, type: "x" },
          { ids: [] },
          { ids: [""] },
          { ids: "id" },
          { type: "" },
          { queue: "x" },
        ]
      ) {
        await assert.rejects(
          admin.requeueParked(selection as never),
          TypeError,
          JSON.stringify(selection),
        );
        await assert.rejects(
          admin.purgeParked(selection as never),
          TypeError,
          JSON.stringify(selection),
        );
      }
      await assert.rejects(admin.listParked({ limit: 0 }), RangeError);
      assert.throws(
        () => new OutboxAdmin(db.sql, { table: "bad name" }),
        /options\.table must be a table name/,
      );
      assert.equal((await admin.stats()).parked, 2);
    });

    await t.step(
      "CLI: stats, parked, requeue asks first and says how many; a no changes nothing; bad arguments change nothing",
      async () => {
        const { options, events, healed, delivered, bus } = await parked(3);
        const deps = {
          openOutbox: (table: string | undefined) => {
            assert.equal(table, options.table);
            return Promise.resolve({
              admin: new OutboxAdmin(db.sql, { table }),
              close: () => Promise.resolve(),
            });
          },
        };
        const table = ["--table", options.table];

        let io = fakeIo();
        assert.equal(await main(["stats", "--json", ...table], io, deps), 0);
        assert.equal(JSON.parse(io.stdout).parked, 3);

        io = fakeIo();
        assert.equal(await main(["parked", ...table], io, deps), 0);
        for (const event of events) {
          assert.match(io.stdout, new RegExp(event.eventId));
        }
        assert.match(io.stdout, /TypeError: template missing/);
        assert.ok(!io.stdout.includes(EMAIL), "no event fields by default");

        for (
          const bad of [
            ["requeue", ...table],
            ["requeue", "--all", "--type", "test.outbox.noted", ...table],
            ["requeue", "--id", "", ...table],
            ["purge", "--type", "test.outbox.noted", "--limit", "5", ...table],
            ["parked", "--limit", "0", ...table],
            ["parked", "--limit", "ten", ...table],
            ["requeue", "--all", "--frobnicate", ...table],
            ["dead-letters", "retry", "--type", "x"],
            ["unknown-command"],
            [
              "requeue",
              "--type",
              "a.b",
              "--type",
              "test.outbox.noted",
              ...table,
            ],
          ]
        ) {
          io = fakeIo([true]);
          assert.equal(await main(bad, io, deps), 2, bad.join(" "));
          assert.match(io.stderr, /^aftercommit: /);
          assert.deepEqual(io.asked, [], "nothing asked");
        }
        // What the last two said: the rule and what to pass instead.
        assert.match(io.stderr, /--type was given twice; pass it once/);
        io = fakeIo([]);
        await main(["parked", "--limit", "ten", ...table], io, deps);
        assert.match(
          io.stderr,
          /--limit must be a whole number from 1 to 10000, received "ten"/,
        );

        io = fakeIo([false]);
        assert.equal(await main(["requeue", "--all", ...table], io, deps), 1);
        assert.deepEqual(io.asked, [
          "Requeue 3 parked events (all)? [y/N] ",
        ]);
        assert.match(io.stderr, /nothing changed/);
        assert.equal(
          await countWhere(db.observer, options.table, "parked_at is not null"),
          3,
          "a no changes nothing",
        );

        healed.value = true;
        io = fakeIo([true]);
        assert.equal(
          await main(
            [
              "requeue",
              "--id",
              events[0]!.eventId,
              "--id",
              events[1]!.eventId,
              ...table,
            ],
            io,
            deps,
          ),
          0,
        );
        assert.deepEqual(io.asked, ["Requeue 2 parked events (2 ids)? [y/N] "]);
        assert.match(io.stdout, /^Requeued 2 parked events/);

        io = fakeIo();
        assert.equal(
          await main(["purge", "--all", "--yes", ...table], io, deps),
          0,
        );
        assert.deepEqual(io.asked, [], "--yes does not ask");
        assert.match(io.stdout, /^Purged 1 parked event\./);

        await using _relay = new OutboxRelay(db.sql, {
          ...options,
          bus,
          pollIntervalSeconds: 0.02,
        }).start();
        await waitUntil("the requeued deliveries", () => delivered.size === 2);
        assert.deepEqual(
          [...delivered].sort(),
          [events[0]!.eventId, events[1]!.eventId].sort(),
        );
        io = fakeIo();
        assert.equal(
          await main(["requeue", "--all", ...table], io, deps),
          0,
        );
        assert.match(io.stdout, /No parked events match; nothing changed/);
      },
    );
  },
});

Deno.test({
  name: "CLI: dead-letter a job, list it, retry it, see it complete",
  sanitizeOps: true,
  sanitizeResources: true,
  async fn() {
    await using db = await openJobsDatabase();
    await using jobs = await db.connect({
      queueDefaults: {
        retryLimit: 0,
        retryDelaySeconds: 0,
        retryBackoff: false,
      },
    });
    const queue = uniqueQueueName("cli-dl");
    let healed = false;
    const completed = new Collector<string>();
    await jobs.work<{ email: string }>(queue, (job) => {
      if (!healed) throw new Error("smtp refused the message");
      completed.push(job.data.email);
    }, { pollingIntervalSeconds: 0.5 });
    await jobs.enqueue(queue, { email: EMAIL });
    await waitUntil(
      "the dead letter",
      async () => (await jobs.deadLetters({ queue })).length === 1,
    );
    const deps = {
      openJobs: () => Promise.resolve({ jobs, close: () => Promise.resolve() }),
    };

    let io = fakeIo();
    assert.equal(await main(["dead-letters", "--queue", queue], io, deps), 0);
    assert.match(io.stdout, new RegExp(queue));
    assert.match(io.stdout, /Error: smtp refused the message/);
    assert.ok(!io.stdout.includes(EMAIL), "no job data by default");

    io = fakeIo([true]);
    assert.equal(
      await main(["dead-letters", "retry", "--queue", "bad name!"], io, deps),
      2,
      "a bad queue name is refused by the adapter",
    );
    assert.equal((await jobs.deadLetters({ queue })).length, 1);

    healed = true;
    io = fakeIo([true]);
    assert.equal(
      await main(["dead-letters", "retry", "--queue", queue], io, deps),
      0,
    );
    assert.deepEqual(io.asked, [
      `Retry 1 dead letter (queue ${queue}) in their original queues? [y/N] `,
    ]);
    assert.deepEqual(await completed.atLeast(1, "the retried job"), [EMAIL]);
    assert.deepEqual(await jobs.deadLetters({ queue }), []);

    io = fakeIo();
    assert.equal(
      await main(["dead-letters", "delete", "--all", "--yes"], io, deps),
      0,
    );
  },
});

Deno.test({
  name: "CLI as a process: deno task outbox stats, and a prompt answered no",
  ignore: (Deno.env.get("TEST_DATABASE_URL") ?? "") === "",
  sanitizeOps: true,
  sanitizeResources: true,
  async fn() {
    await using db = await openAppDatabase();
    const options = await freshOutbox(db.sql, { maxAttempts: 1 });
    await insertUndone(db.sql, options, [new Noted(1)]);
    const bus = new EventBus();
    bus.register(Noted, () => {
      throw new Error("no");
    });
    await new OutboxRelay(db.sql, { ...options, bus }).runOnce();
    const [row] = await db.sql<{ name: string }[]>`
      select current_database() as name`;
    const databaseUrl = new URL(Deno.env.get("TEST_DATABASE_URL")!);
    databaseUrl.pathname = `/${row!.name}`;
    const cli = new URL("../../../src/cli/mod.ts", import.meta.url).pathname;
    const run = async (args: string[], stdin = "") => {
      const child = new Deno.Command(Deno.execPath(), {
        args: ["run", "-A", "--frozen", cli, ...args, "--table", options.table],
        env: { DATABASE_URL: databaseUrl.href, NO_COLOR: "1" },
        stdin: "piped",
        stdout: "piped",
        stderr: "piped",
      }).spawn();
      const writer = child.stdin.getWriter();
      await writer.write(new TextEncoder().encode(stdin));
      await writer.close();
      const out = await child.output();
      return {
        code: out.code,
        stdout: new TextDecoder().decode(out.stdout),
        stderr: new TextDecoder().decode(out.stderr),
      };
    };
    const stats = await run(["stats", "--json"]);
    assert.equal(stats.code, 0, stats.stderr);
    assert.equal(JSON.parse(stats.stdout).parked, 1);
    const declined = await run(["requeue", "--all"], "n\n");
    assert.equal(declined.code, 1);
    assert.match(declined.stderr, /Requeue 1 parked event \(all\)\? \[y\/N\]/);
    assert.match(declined.stderr, /nothing changed/);
    const accepted = await run(["requeue", "--all"], "y\n");
    assert.equal(accepted.code, 0, accepted.stderr);
    assert.match(accepted.stdout, /Requeued 1 parked event/);
    assert.equal(
      await countWhere(db.observer, options.table, "parked_at is not null"),
      0,
    );
  },
});
