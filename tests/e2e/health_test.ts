// GET /health under load: on an embedded database every query waits for
// the one connection, so a probe would queue behind the registrations and
// report "down". The server answers from its recent successful queries.
import assert from "node:assert/strict";
import {
  openDevDatabases,
  request,
  startDevServer,
} from "../_helpers/dev_server.ts";

const BURST = 500;

Deno.test({
  name:
    "GET /health answers 200 with both databases ok during a burst of 500 concurrent registrations",
  async fn() {
    await using dbs = await openDevDatabases();
    await using server = await startDevServer({
      ...dbs.env,
      LOG_LEVEL: "warning",
    });
    const tag = crypto.randomUUID().slice(0, 8);
    for (let round = 1; round <= 2; round++) {
      let done = 0;
      const served = Promise.withResolvers<void>();
      const statuses = new Map<number, number>();
      const burst = Promise.all(
        Array.from({ length: BURST }, async (_, i) => {
          const res = await fetch(`${server.url}/users`, {
            method: "POST",
            headers: { "content-type": "application/json" },
            body: JSON.stringify({
              email: `health.${tag}.${round}.${i}@example.org`,
              name: "Health",
            }),
          });
          await res.body?.cancel();
          statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
          done++;
          served.resolve();
        }),
      );
      // Wait until the burst is being served, then ask while it runs.
      await served.promise;
      const answers = [];
      while (done < BURST * 0.8 && answers.length < 5) {
        const health = await request(`${server.url}/health`);
        answers.push({ ...health, inFlight: BURST - done });
      }
      await burst;
      assert.ok(answers.length > 0, `round ${round}: the burst ended first`);
      for (const answer of answers) {
        assert.equal(answer.status, 200, JSON.stringify(answer));
        assert.deepEqual(answer.body, {
          status: "ok",
          databases: { app: "ok", jobs: "ok" },
        });
      }
      assert.ok(answers.some((a) => a.inFlight > 0));
      assert.deepEqual([...statuses], [[201, BURST]]);
    }
  },
});
