// Load through the dev server's HTTP API: 5,000 registrations from 20
// concurrent clients. Every one is answered 201, every user gets exactly one
// welcome email and one audit row, and nothing answers 5xx.
import assert from "node:assert/strict";
import {
  openDevDatabases,
  request,
  startDevServer,
} from "../_helpers/dev_server.ts";

const REGISTRATIONS = 5_000;
const CLIENTS = 20;

Deno.test({
  name:
    "5,000 registrations from 20 concurrent clients: 5,000 users, 5,000 welcome emails, no duplicate, no 5xx",
  async fn() {
    await using dbs = await openDevDatabases();
    await using server = await startDevServer({
      ...dbs.env,
      LOG_LEVEL: "warning",
    });
    const statuses = new Map<number, number>();
    let next = 0;
    const tag = crypto.randomUUID().slice(0, 8);
    const client = async () => {
      for (let i = next++; i < REGISTRATIONS; i = next++) {
        const res = await fetch(`${server.url}/users`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({
            email: `load.${tag}.${i}@example.org`,
            name: `Load ${i}`,
          }),
        });
        await res.body?.cancel();
        statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
      }
    };
    await Promise.all(Array.from({ length: CLIENTS }, client));
    assert.deepEqual([...statuses], [[201, REGISTRATIONS]]);

    // Wait until the work has settled: every email sent, the outbox drained
    // and no job left waiting, running or retrying, so no duplicate can
    // still show up after the counts are taken.
    const settled = (s: Record<string, unknown>) =>
      s.welcomeEmailsSent === REGISTRATIONS && s.jobsWaiting === 0 &&
      s.outboxPending === 0 && s.outboxInFlight === 0;
    const deadline = Date.now() + 120_000;
    let stats = (await request(`${server.url}/stats`)).body;
    while (!settled(stats) && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 200));
      stats = (await request(`${server.url}/stats`)).body;
    }
    assert.ok(settled(stats), `not settled: ${JSON.stringify(stats)}`);
    assert.equal(stats.users, REGISTRATIONS);
    assert.equal(stats.welcomeEmailsSent, REGISTRATIONS);
    assert.equal(
      stats.mailboxMessages,
      REGISTRATIONS,
      "one email per user, no duplicate",
    );
    assert.equal(stats.mailboxRecipients, REGISTRATIONS);
    assert.equal(stats.auditRows, REGISTRATIONS);
    // The dev server runs with the outbox: every event was marked done.
    assert.equal(stats.outboxPending, 0);
    assert.equal(stats.outboxParked, 0);
    // Every response was a 201 (checked above); the server logged no error.
    assert.doesNotMatch(server.output(), /\[(ERR|FTL)\]/);
  },
});
