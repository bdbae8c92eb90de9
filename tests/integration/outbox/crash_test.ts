// deno-lint-ignore-file no-console -- the rounds report their duration
// Proofs 1 and 2 of the outbox: a process killed with SIGKILL between its
// COMMIT and the dispatch of its events, or between the dispatch (the
// welcome email enqueued) and marking the outbox row done, loses nothing and
// duplicates nothing: after a restart the relay dispatches the event and the
// welcome-email job runs exactly once.
//
// Embedded: the child and the takeover share PGlite data folders, one
// process at a time. Server: fresh databases on TEST_DATABASE_URL and
// TEST_JOB_QUEUE_DATABASE_URL.
import assert from "node:assert/strict";
import { createLocations } from "./_app.ts";
import { crashRound } from "./_crash.ts";

const ROUNDS = 20;
const DISPATCHED_ROUNDS = 5;

Deno.test({
  name:
    "a process killed after COMMIT and before dispatch: the welcome email is sent exactly once, 20 times over",
  async fn() {
    await using locations = await createLocations();
    const started = performance.now();
    let child = 0;
    let takeover = 0;
    for (let i = 1; i <= ROUNDS; i++) {
      const round = await crashRound("committed", locations);
      assert.equal(round.executions, 1, `round ${i}: one welcome email`);
      assert.equal(round.totalExecutions, i, `round ${i}: no other email`);
      assert.equal(round.enqueued.length, 1, `round ${i}: one dispatch`);
      assert.equal(typeof round.enqueued[0], "string", `round ${i}: a new job`);
      assert.deepEqual(round.row, { done: true, attempts: 1 });
      child += round.childMs;
      takeover += round.takeoverMs;
    }
    console.log(
      `${locations.backend}: ${ROUNDS} rounds in ${
        ((performance.now() - started) / 1000).toFixed(1)
      } s (child ${(child / ROUNDS).toFixed(0)} ms, takeover ${
        (takeover / ROUNDS).toFixed(0)
      } ms per round)`,
    );
  },
});

Deno.test({
  name:
    "a process killed after the enqueue and before marking the row done: the relay redelivers and still one job runs",
  async fn() {
    await using locations = await createLocations();
    const started = performance.now();
    for (let i = 1; i <= DISPATCHED_ROUNDS; i++) {
      const round = await crashRound("dispatched", locations);
      assert.equal(round.executions, 1, `round ${i}: one welcome email`);
      assert.equal(round.totalExecutions, i, `round ${i}: no other email`);
      assert.deepEqual(
        round.enqueued,
        [null],
        `round ${i}: the relay redelivered, and its enqueue found the child's job`,
      );
      assert.deepEqual(round.row, { done: true, attempts: 1 });
    }
    console.log(
      `${locations.backend}: ${DISPATCHED_ROUNDS} rounds in ${
        ((performance.now() - started) / 1000).toFixed(1)
      } s`,
    );
  },
});
