// deno-lint-ignore-file no-console -- the tests report their figures
// The dev server under bursts and under database restarts: every request is
// answered, the process stays up, and every registration answered 201 gets
// its welcome email (after recovery, when a database was down).
import assert from "node:assert/strict";
import postgres from "postgres";
import { startCluster } from "../_helpers/cluster.ts";
import {
  type DevServer,
  request,
  startDevServer,
} from "../_helpers/dev_server.ts";

const ANSWER_MS = 60_000;

interface Answer {
  status: number;
  id?: string;
  /** How long the answer (or, for status 0, the failure) took. */
  ms?: number;
  /** Why no answer came (status 0). */
  error?: string;
}

// POST /users; status 0 when no answer came (ANSWER_MS passed, or the
// connection failed): `error` says which, `ms` after how long.
async function post(
  server: DevServer,
  email: string,
  client?: Deno.HttpClient,
): Promise<Answer> {
  const started = performance.now();
  try {
    const res = await fetch(`${server.url}/users`, {
      ...(client === undefined ? {} : { client }),
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ email, name: "Fault Test" }),
      signal: AbortSignal.timeout(ANSWER_MS),
    });
    const body = await res.json().catch(() => ({}));
    const ms = Math.round(performance.now() - started);
    return { status: res.status, id: body.id, ms };
  } catch (e) {
    const ms = Math.round(performance.now() - started);
    return { status: 0, ms, error: String(e) };
  }
}

function tally(answers: readonly Answer[]): Record<number, number> {
  const counts: Record<number, number> = {};
  for (const a of answers) counts[a.status] = (counts[a.status] ?? 0) + 1;
  return counts;
}

// Waits until /stats counts `sent` welcome emails, and returns the stats.
async function waitForEmails(
  server: DevServer,
  sent: number,
  timeoutMs: number,
): Promise<Record<string, unknown>> {
  const deadline = Date.now() + timeoutMs;
  let stats: Record<string, unknown> = {};
  while (Date.now() < deadline) {
    try {
      stats = (await request(`${server.url}/stats`)).body;
      if (Number(stats.welcomeEmailsSent) >= sent) return stats;
    } catch {
      // The server answers again once its database is back.
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  return stats;
}

async function bursts(env: Record<string, string>, label: string) {
  await using server = await startDevServer({ ...env, LOG_LEVEL: "warning" });
  const tag = crypto.randomUUID().slice(0, 8);
  let created = 0;
  for (let burst = 0; burst < 5; burst++) {
    const started = performance.now();
    const answers = await Promise.all(
      Array.from(
        { length: 1000 },
        (_, i) => post(server, `burst.${tag}.${burst}.${i}@example.org`),
      ),
    );
    console.log(
      `${label} burst ${burst + 1}: ${JSON.stringify(tally(answers))} in ${
        Math.round(performance.now() - started)
      } ms`,
    );
    assert.deepEqual(tally(answers), { 201: 1000 });
    created += 1000;
  }
  const stats = await waitForEmails(server, created, 120_000);
  assert.equal(stats.users, created);
  assert.equal(stats.welcomeEmailsSent, created);
  assert.equal(stats.mailboxMessages, created, "one email per user");
  assert.doesNotMatch(server.output(), /\[FTL\]|Uncaught|panicked/);
  assert.equal(await server.stop("SIGTERM"), 0);
}

Deno.test({
  name:
    "the dev server answers five bursts of 1,000 concurrent POST /users, and every 201 gets its welcome email",
  async fn(t) {
    await t.step("embedded databases", async () => {
      const dataDir = await Deno.makeTempDir({ prefix: "aftercommit-fault-" });
      try {
        await bursts({ DATA_DIR: dataDir }, "embedded");
      } finally {
        await Deno.remove(dataDir, { recursive: true });
      }
    });
    await t.step("PostgreSQL server (a throwaway cluster)", async () => {
      await using cluster = await startCluster();
      await cluster.psql("create database app");
      await cluster.psql("create database jobs");
      const dataDir = await Deno.makeTempDir({ prefix: "aftercommit-fault-" });
      try {
        await bursts({
          DATA_DIR: dataDir,
          DATABASE_URL: cluster.url.replace(/\/postgres$/, "/app"),
          JOB_QUEUE_DATABASE_URL: cluster.url.replace(/\/postgres$/, "/jobs"),
        }, "server");
      } finally {
        await Deno.remove(dataDir, { recursive: true });
      }
    });
  },
});

Deno.test({
  name:
    "the dev server survives restarts of the app and jobs databases under load: the process stays up, every request is answered, every 201 is emailed after recovery",
  async fn() {
    await using app = await startCluster();
    await using jobs = await startCluster();
    const dataDir = await Deno.makeTempDir({ prefix: "aftercommit-fault-" });
    try {
      await using server = await startDevServer({
        DATA_DIR: dataDir,
        DATABASE_URL: app.url,
        JOB_QUEUE_DATABASE_URL: jobs.url,
        LOG_LEVEL: "warning",
      });
      const tag = crypto.randomUUID().slice(0, 8);
      const answers: Answer[] = [];
      let stop = false;
      let n = 0;
      // A connection per request: a pooled keep-alive connection that the
      // server closes as idle just as the client reuses it fails in the
      // client (status 0) with no request sent. That race is HTTP's, not
      // the server dropping an answer, which is what this test counts.
      using fresh = Deno.createHttpClient({ poolMaxIdlePerHost: 0 });
      const clients = Array.from({ length: 10 }, async () => {
        while (!stop) {
          const answer = await post(
            server,
            `restart.${tag}.${n++}@example.org`,
            fresh,
          );
          answers.push(answer);
          if (answer.status !== 201) {
            await new Promise((r) => setTimeout(r, 50));
          }
        }
      });
      const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));
      const faults: [string, () => Promise<unknown>][] = [
        ["app: restart -m fast", () => app.restart("fast")],
        ["jobs: restart -m fast", () => jobs.restart("fast")],
        ["app: terminate backends", () => app.terminateBackends()],
        ["app: restart -m immediate", () => app.restart("immediate")],
        ["jobs: restart -m immediate", () => jobs.restart("immediate")],
        ["jobs: terminate backends", () => jobs.terminateBackends()],
        ["both: stop 3 s, start", async () => {
          await Promise.all([app.stop("fast"), jobs.stop("fast")]);
          await pause(3000);
          await Promise.all([app.start(), jobs.start()]);
        }],
        ["app: restart -m fast", () => app.restart("fast")],
      ];
      for (const [, fault] of faults) {
        await pause(700);
        await fault();
      }
      await pause(1500);
      stop = true;
      await Promise.all(clients);
      const counts = tally(answers);
      const ok = answers.filter((a) => a.status === 201);
      console.log(
        `restarts under load: ${faults.length} faults, ${answers.length} requests ${
          JSON.stringify(counts)
        }, slowest ${Math.max(...answers.map((a) => a.ms ?? 0))} ms`,
      );
      assert.equal(
        counts[0] ?? 0,
        0,
        `every request got an answer: ${
          JSON.stringify(answers.filter((a) => a.status === 0))
        }\n${server.output().slice(-4000)}`,
      );
      assert.ok(ok.length > 0, "registrations succeeded between faults");
      // Recovered without a restart: a registration now succeeds.
      const after = await post(server, `restart.${tag}.after@example.org`);
      assert.equal(after.status, 201);
      ok.push(after);
      assert.ok(
        answers.every((a) => a.status === 201 || a.status === 503),
        `only 201 or 503: ${JSON.stringify(counts)}`,
      );
      // After recovery every 201 gets its email, without a restart.
      const check = postgres(app.url, { max: 1, onnotice: () => {} });
      try {
        const deadline = Date.now() + 120_000;
        let missing = ok.length;
        while (Date.now() < deadline) {
          const ids = ok.map((a) => a.id!);
          const [row] = await check<{ n: number }[]>`
            select count(*)::int as n from users
            where id = any(${ids}::uuid[]) and welcome_email_sent_at is not null`;
          missing = ok.length - row!.n;
          if (missing === 0) break;
          await pause(250);
        }
        if (missing > 0) {
          // Where each missing registration stands, for the failure message.
          const ids = ok.map((a) => a.id!);
          const users = await check<{ id: string }[]>`
            select id from users where id = any(${ids}::uuid[])
            and welcome_email_sent_at is null`;
          const outbox = await check`
            select type, attempts, last_error, done_at, parked_at, locked_until
            from aftercommit_outbox where payload::text like any(${
            users.map((u) => `%${u.id}%`)
          })`;
          const jobsSql = postgres(jobs.url, { max: 1, onnotice: () => {} });
          const jobRows = await jobsSql`
            select name, state, retry_count, output from pgboss.job
            where data::text like any(${users.map((u) => `%${u.id}%`)})`
            .catch((e) => [{ error: String(e) }]);
          await jobsSql.end();
          assert.fail(
            `${missing} of ${ok.length} registrations answered 201 were not emailed: ${
              JSON.stringify({ users, outbox, jobRows })
            }\n${server.output().slice(-4000)}`,
          );
        }
        const [dupes] = await check<{ n: number }[]>`
          select count(*)::int as n from (
            select user_id from dev_mailbox group by user_id having count(*) > 1
          ) d`;
        assert.equal(dupes!.n, 0, "no duplicate email");
      } finally {
        await check.end();
      }
      assert.doesNotMatch(server.output(), /Uncaught|panicked/);
      assert.equal(await server.stop("SIGTERM"), 0);
    } finally {
      await Deno.remove(dataDir, { recursive: true });
    }
  },
});
