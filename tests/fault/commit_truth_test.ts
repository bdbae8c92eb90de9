// deno-lint-ignore-file no-console -- the sweeps report their figures
// Fault tests on throwaway clusters: backends killed and servers restarted
// under concurrent runs, and connections dropped during COMMIT itself. Every
// run must settle, and what it reports must match the table.
import assert from "node:assert/strict";
import postgres from "postgres";
import {
  CommitError,
  CommitOutcomeUnknownError,
  DomainEvent,
  EventBus,
  EventType,
  PublishAfterCommitError,
} from "../../mod.ts";
import {
  migrateOutbox,
  PostgresUnitOfWork,
} from "../../src/adapters/postgres/mod.ts";
import { type Cluster, startCluster } from "../_helpers/cluster.ts";
import { captureLogs } from "../_helpers/logs.ts";

@EventType("fault.item-added")
class ItemAdded extends DomainEvent {
  constructor(readonly itemId: string) {
    super();
  }
}

const quiet = { onnotice: () => {}, connect_timeout: 5 } as const;

type Outcome =
  | "resolved"
  | "publish-failed"
  | "not-committed"
  | "work-failed"
  | "unknown"
  | "unknown-after-crash"
  | "hang";

function classify(error: unknown): Outcome {
  if (error instanceof PublishAfterCommitError) return "publish-failed";
  if (error instanceof CommitOutcomeUnknownError) {
    // After a crash, "committed" may be a reused id's: the one case where a
    // reachable database still leaves the outcome unknown.
    return error.message.includes("the server crashed since")
      ? "unknown-after-crash"
      : "unknown";
  }
  if (error instanceof CommitError) return "not-committed";
  return "work-failed";
}

const HANG_MS = 45_000;

// Runs `fn`; "hang" if it has not settled within HANG_MS.
async function settle(fn: () => Promise<unknown>): Promise<Outcome> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const hang = new Promise<Outcome>((resolve) => {
    timer = setTimeout(() => resolve("hang"), HANG_MS);
  });
  try {
    return await Promise.race([
      fn().then((): Outcome => "resolved", classify),
      hang,
    ]);
  } finally {
    clearTimeout(timer);
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

interface SweepResult {
  outcomes: Map<string, Outcome>;
  published: Set<string>;
  rows: Set<string>;
  kills: number;
}

// Concurrent runs while `rounds` faults hit the server, then the truth.
async function sweep(
  cluster: Cluster,
  options: { outbox: boolean; rounds: number },
): Promise<SweepResult> {
  const sql = postgres(cluster.url, { ...quiet, max: 8 });
  try {
    await sql`create table if not exists items (id uuid primary key)`;
    if (options.outbox) await migrateOutbox(sql);
    const bus = new EventBus();
    const published = new Set<string>();
    bus.register(ItemAdded, (event) => {
      published.add(event.itemId);
    });
    const uow = new PostgresUnitOfWork(sql, {
      bus,
      outbox: options.outbox,
      commitCheckSeconds: 20,
    });
    const outcomes = new Map<string, Outcome>();
    let stop = false;
    const loops = Array.from({ length: 16 }, async (_, n) => {
      while (!stop) {
        const id = crypto.randomUUID();
        outcomes.set(
          id,
          await settle(() =>
            uow.run(async (tx) => {
              await tx.sql`insert into items (id) values (${id})`;
              // Widen the window in which a kill finds the transaction open.
              if (n % 4 === 0) await tx.sql`select pg_sleep(0.002)`;
              tx.publishAfterCommit(new ItemAdded(id));
            })
          ),
        );
        if (outcomes.get(id) !== "resolved") await sleep(20);
      }
    });
    let kills = 0;
    for (let round = 0; round < options.rounds; round++) {
      await sleep(120 + Math.random() * 200);
      switch (round % 4) {
        case 0:
        case 2:
          kills += await cluster.terminateBackends();
          break;
        case 1:
          await cluster.restart("fast");
          break;
        case 3:
          await cluster.restart("immediate");
          break;
      }
    }
    await sleep(500);
    stop = true;
    await Promise.all(loops);
    // The pool recovers by itself: a run after the faults commits.
    const after = crypto.randomUUID();
    await uow.run(async (tx) => {
      await tx.sql`insert into items (id) values (${after})`;
    });
    const rows = new Set(
      (await sql<{ id: string }[]>`select id from items`).map((r) => r.id),
    );
    assert.ok(rows.has(after), "a run after the faults commits");
    await sql`truncate items`;
    return { outcomes, published, rows, kills };
  } finally {
    await sql.end({ timeout: 5 });
  }
}

function check(result: SweepResult): Record<Outcome, number> {
  const counts: Record<Outcome, number> = {
    "resolved": 0,
    "publish-failed": 0,
    "not-committed": 0,
    "work-failed": 0,
    "unknown": 0,
    "unknown-after-crash": 0,
    "hang": 0,
  };
  for (const [id, outcome] of result.outcomes) {
    counts[outcome]++;
    const saved = result.rows.has(id);
    const published = result.published.has(id);
    switch (outcome) {
      case "resolved":
        assert.ok(saved, `run ${id} resolved: its row must be saved`);
        assert.ok(published, `run ${id} resolved: its event must be published`);
        break;
      case "publish-failed":
        assert.ok(saved, `run ${id} reported committed: its row must be saved`);
        break;
      case "not-committed":
      case "work-failed":
        assert.ok(
          !saved,
          `run ${id} reported ${outcome}, but its row is saved`,
        );
        assert.ok(!published, `run ${id} reported ${outcome}, but published`);
        break;
      case "unknown":
      case "unknown-after-crash":
        assert.ok(!published, `run ${id}: outcome unknown, but published`);
        break;
      case "hang":
        assert.fail(`run ${id} did not settle within ${HANG_MS} ms`);
    }
  }
  return counts;
}

Deno.test({
  name:
    "kill sweeps: backends killed and servers restarted (fast, immediate) under 16 concurrent runs; every run settles and its outcome matches the table",
  async fn(t) {
    await using cluster = await startCluster();
    for (const outbox of [false, true]) {
      await t.step(outbox ? "outbox mode" : "plain mode", async () => {
        const { records, result } = await captureLogs(() =>
          sweep(cluster, { outbox, rounds: 24 })
        );
        const counts = check(result);
        const resolvedByAsking = records.filter((r) =>
          String(r.message.join("")).includes("the database says")
        ).length;
        console.log(
          `${
            outbox ? "outbox" : "plain"
          }: ${result.outcomes.size} runs, ${result.kills} backends killed, 12 restarts; ${
            JSON.stringify(counts)
          }; COMMIT outcomes resolved by asking the database: ${resolvedByAsking}`,
        );
        assert.equal(
          counts.unknown,
          0,
          "the database was reachable again within the bound",
        );
        assert.ok(counts.resolved > 100, "runs committed between the faults");
        assert.ok(
          counts["not-committed"] + counts["work-failed"] > 0,
          "the faults hit open transactions",
        );
      });
    }
  },
});

// Waits until the COMMIT is the statement in flight, waiting on `event`.
async function waitForWait(cluster: Cluster, event: string): Promise<void> {
  for (let i = 0;; i++) {
    const out = await cluster.psql(
      `select count(*) from pg_stat_activity where wait_event = '${event}'`,
    );
    if (out.trim() === "1") return;
    assert.ok(i < 500, `COMMIT never reached ${event}`);
    await sleep(10);
  }
}

// A cluster whose sync-replication wait never ends, and a deferred trigger
// that sleeps: COMMIT stays in flight until the test kills its backend.
async function commitInFlight(
  cluster: Cluster,
  outbox: boolean,
  how: "sync-wait" | "deferred-trigger",
  kill: () => Promise<void>,
  commitCheckSeconds = 20,
  afterOutcome: () => Promise<void> = () => Promise.resolve(),
): Promise<
  { outcome: Outcome; error: unknown; saved: boolean; published: boolean }
> {
  const sql = postgres(cluster.url, { ...quiet, max: 4 });
  try {
    await sql`create table if not exists slow_items (id uuid primary key)`;
    await sql`create or replace function slow_check() returns trigger language plpgsql as $$
      begin perform pg_sleep(30); return null; end $$`;
    await sql`drop trigger if exists slow_check on slow_items`;
    if (how === "deferred-trigger") {
      await sql`create constraint trigger slow_check after insert on slow_items
        deferrable initially deferred for each row execute function slow_check()`;
    }
    if (outbox) await migrateOutbox(sql);
    const bus = new EventBus();
    const published = new Set<string>();
    bus.register(ItemAdded, (event) => {
      published.add(event.itemId);
    });
    const uow = new PostgresUnitOfWork(sql, {
      bus,
      outbox,
      commitCheckSeconds,
    });
    const id = crypto.randomUUID();
    let error: unknown;
    const running = settle(() =>
      uow.run(async (tx) => {
        if (how === "sync-wait") {
          await tx.sql`set local synchronous_commit = on`;
        }
        await tx.sql`insert into slow_items (id) values (${id})`;
        tx.publishAfterCommit(new ItemAdded(id));
      }).catch((e) => {
        error = e;
        throw e;
      })
    );
    await waitForWait(cluster, how === "sync-wait" ? "SyncRep" : "PgSleep");
    await kill();
    const outcome = await running;
    await afterOutcome();
    const check = postgres(cluster.url, { ...quiet, max: 1 });
    try {
      const rows = await check`select 1 from slow_items where id = ${id}`;
      return {
        outcome,
        error,
        saved: rows.length === 1,
        published: published.has(id),
      };
    } finally {
      await check.end();
    }
  } finally {
    await sql.end({ timeout: 5 });
  }
}

Deno.test({
  name:
    "a connection lost during COMMIT is resolved by asking the database: committed is published, aborted is a CommitError",
  async fn(t) {
    // Sync replication to a standby that never comes: COMMIT is durable
    // locally, then waits. Sessions that do not ask for it do not wait.
    await using cluster = await startCluster([
      "synchronous_standby_names = 'nobody'",
      "synchronous_commit = local",
    ]);
    for (const outbox of [false, true]) {
      const mode = outbox ? "outbox" : "plain";
      // The server stopped ("immediate" is a crash) and started again while
      // the COMMIT is in flight.
      const restartedDuringCommit = (how: "immediate" | "fast") =>
        commitInFlight(cluster, outbox, "sync-wait", async () => {
          await cluster.stop(how);
          await cluster.start();
        });
      await t.step(
        `${mode}: backend killed while COMMIT waits after the local commit → resolves, event published`,
        async () => {
          const r = await commitInFlight(
            cluster,
            outbox,
            "sync-wait",
            async () => {
              assert.equal(await cluster.terminateBackends(), 1);
            },
          );
          assert.equal(r.outcome, "resolved", `run threw ${r.error}`);
          assert.ok(r.saved);
          assert.ok(r.published);
        },
      );
      await t.step(
        `${mode}: backend killed while a deferred trigger runs in COMMIT → CommitError, nothing saved or published`,
        async () => {
          const r = await commitInFlight(
            cluster,
            outbox,
            "deferred-trigger",
            async () => {
              assert.equal(await cluster.terminateBackends(), 1);
            },
          );
          assert.equal(r.outcome, "not-committed", `run threw ${r.error}`);
          assert.ok(
            r.error instanceof CommitError && r.error.committed === false,
          );
          assert.ok(!r.saved);
          assert.ok(!r.published);
        },
      );
      await t.step(
        `${mode}: server crashed (immediate stop) during COMMIT and back within the bound → CommitOutcomeUnknownError naming the crash, not "committed"`,
        async () => {
          // Crash recovery may hand a lost transaction's id out again, so a
          // "committed" after it cannot be trusted: the run must say so.
          const r = await restartedDuringCommit("immediate");
          assert.equal(
            r.outcome,
            "unknown-after-crash",
            `run threw ${r.error}`,
          );
          assert.equal(
            (r.error as CommitOutcomeUnknownError).relayWillRetry,
            outbox,
          );
          assert.ok(r.saved);
          assert.ok(!r.published);
        },
      );
      await t.step(
        `${mode}: server restarted cleanly (fast stop) during COMMIT → resolves as committed, event published`,
        async () => {
          const r = await restartedDuringCommit("fast");
          assert.equal(r.outcome, "resolved", `run threw ${r.error}`);
          assert.ok(r.saved);
          assert.ok(r.published);
        },
      );
      await t.step(
        `${mode}: server stopped during COMMIT and not back within the bound → CommitOutcomeUnknownError (committed undefined)`,
        async () => {
          const r = await commitInFlight(
            cluster,
            outbox,
            "sync-wait",
            () => cluster.stop("immediate"),
            1,
            () => cluster.start(),
          );
          assert.equal(r.outcome, "unknown", `run threw ${r.error}`);
          const error = r.error as CommitOutcomeUnknownError;
          assert.equal(error.committed, undefined);
          assert.equal(error.relayWillRetry, outbox);
          assert.ok(!r.published);
          // Stopped after the local commit: the row is there, which is why
          // the outcome could not be reported as "not committed".
          assert.ok(r.saved);
        },
      );
    }
  },
});

// A TCP proxy whose target can move: the address a client uses, pointed at
// another server as a failover (a DNS or virtual-IP switch) would.
function movableAddress(target: number) {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const open = new Set<Deno.Conn>();
  const address = {
    target,
    port: (listener.addr as Deno.NetAddr).port,
    dropClients(): void {
      for (const conn of open) {
        try {
          conn.close();
        } catch { /* closed from the other side already */ }
      }
      open.clear();
    },
    close(): void {
      listener.close();
      address.dropClients();
    },
  };
  (async () => {
    for await (const conn of listener) {
      const up = await Deno.connect({ port: address.target }).catch(() => {
        conn.close();
      });
      if (up === undefined) continue;
      open.add(conn).add(up);
      conn.readable.pipeTo(up.writable).catch(() => {});
      up.readable.pipeTo(conn.writable).catch(() => {});
    }
  })().catch(() => {});
  return address;
}

Deno.test({
  name:
    "a COMMIT lost while the address moves to another server (a failover) is not reported committed, even where that server's transaction of the same id committed",
  async fn() {
    await using primary = await startCluster();
    await using other = await startCluster();
    // The other server started before the run and is past its transaction id.
    await other.psql(
      "do $$ begin for i in 1..3000 loop perform pg_current_xact_id(); commit; end loop; end $$",
    );
    const address = movableAddress(primary.port);
    const sql = postgres(
      `postgres://postgres@127.0.0.1:${address.port}/postgres`,
      { ...quiet, max: 4 },
    );
    try {
      await sql`create table slow_items (id uuid primary key)`;
      await sql`create function slow_check() returns trigger language plpgsql
        as $$ begin perform pg_sleep(30); return null; end $$`;
      await sql`create constraint trigger slow_check after insert on slow_items
        deferrable initially deferred for each row execute function slow_check()`;
      const bus = new EventBus();
      const published: string[] = [];
      bus.register(ItemAdded, (event) => {
        published.push(event.itemId);
      });
      const uow = new PostgresUnitOfWork(sql, { bus });
      const id = crypto.randomUUID();
      const outcome = settle(() =>
        uow.run(async (tx) => {
          await tx.sql`insert into slow_items (id) values (${id})`;
          tx.publishAfterCommit(new ItemAdded(id));
        })
      );
      await waitForWait(primary, "PgSleep");
      // The failover: new connections reach the other server, and the
      // primary's transaction dies with its backend (it never commits).
      address.target = other.port;
      address.dropClients();
      await primary.terminateBackends();
      assert.equal(await outcome, "not-committed");
      assert.deepEqual(published, []);
      assert.equal(
        (await primary.psql(
          `select count(*) from slow_items where id = '${id}'`,
        )).trim(),
        "0",
      );
    } finally {
      await sql.end({ timeout: 1 });
      address.close();
    }
  },
});
