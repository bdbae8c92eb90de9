// How long DatabaseHealth remembers a failure: 1 s, as the README says
// ("a failure is remembered for 1 s"). Within the second a check answers
// "down" without a probe; after it, the next check probes (once), so
// /health sees a database come back. The clock is performance.now(), which
// the class reads; the test sets it instead of sleeping.
import assert from "node:assert/strict";
import { DatabaseHealth } from "../../../src/dev/health.ts";

/** Replaces performance.now() with a clock the test moves; `using` restores it. */
function fakeClock(start = 10_000) {
  const clock = {
    now: start,
    [Symbol.dispose]() {
      delete (performance as { now?: unknown }).now;
    },
  };
  Object.defineProperty(performance, "now", {
    configurable: true,
    value: () => clock.now,
  });
  return clock;
}

Deno.test("DatabaseHealth remembers a failure for 1 s: no probe within it, one probe after it", async (t) => {
  await t.step("a failure recorded by failed()", async () => {
    using clock = fakeClock();
    let probes = 0;
    const health = new DatabaseHealth(() => {
      probes++;
      return Promise.resolve();
    });
    health.failed();
    for (const after of [0, 500, 999]) {
      clock.now = 10_000 + after;
      assert.equal(await health.check(), false, `${after} ms after`);
      assert.equal(probes, 0, `${after} ms after: answered without a probe`);
    }
    clock.now = 10_000 + 1000;
    assert.equal(await health.check(), true, "1 s after: the probe answers");
    assert.equal(probes, 1);
    // The probe's success now answers, without another probe.
    assert.equal(await health.check(), true);
    assert.equal(probes, 1);
  });

  await t.step(
    "a failed probe: remembered for 1 s from its failure",
    async () => {
      using clock = fakeClock();
      let probes = 0;
      let up = false;
      const health = new DatabaseHealth(() => {
        probes++;
        return Promise.resolve(up);
      });
      assert.equal(await health.check(), false);
      assert.equal(probes, 1);
      up = true;
      clock.now += 999;
      assert.equal(await health.check(), false, "999 ms after: still down");
      assert.equal(probes, 1, "999 ms after: answered without a probe");
      clock.now += 1;
      assert.equal(await health.check(), true, "1 s after: probed again");
      assert.equal(probes, 2);
    },
  );

  await t.step("the clock is restored", () => {
    const [a, b] = [performance.now(), performance.now()];
    assert.ok(b >= a && a !== 10_000 && !Object.hasOwn(performance, "now"));
  });
});
