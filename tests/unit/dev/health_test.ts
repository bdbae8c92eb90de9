import assert from "node:assert/strict";
import { DatabaseHealth } from "../../../src/dev/health.ts";

Deno.test("DatabaseHealth answers from a recent success without probing", async () => {
  let probes = 0;
  const health = new DatabaseHealth(() => {
    probes++;
    return Promise.resolve();
  });
  health.succeeded();
  assert.equal(await health.check(), true);
  assert.equal(probes, 0);
});

Deno.test("DatabaseHealth shares one probe among concurrent checks", async () => {
  let probes = 0;
  let answer!: () => void;
  const health = new DatabaseHealth(() => {
    probes++;
    return new Promise<void>((resolve) => (answer = resolve));
  });
  const checks = [health.check(), health.check(), health.check()];
  answer();
  assert.deepEqual(await Promise.all(checks), [true, true, true]);
  assert.equal(probes, 1);
  // The probe's success now answers the next check.
  assert.equal(await health.check(), true);
  assert.equal(probes, 1);
});

Deno.test("DatabaseHealth reports down when the probe fails, answers false or hangs", async (t) => {
  await t.step("fails", async () => {
    const health = new DatabaseHealth(() => Promise.reject(new Error("gone")));
    assert.equal(await health.check(), false);
  });
  await t.step("answers false", async () => {
    const health = new DatabaseHealth(() => Promise.resolve(false));
    assert.equal(await health.check(), false);
  });
  await t.step("hangs past the deadline", async () => {
    let release!: () => void;
    const hung = new Promise<void>((resolve) => (release = resolve));
    const health = new DatabaseHealth(() => hung, { timeoutMs: 20 });
    assert.equal(await health.check(), false);
    release();
  });
  await t.step(
    "a failure after a success wins, and is remembered",
    async () => {
      let probes = 0;
      const health = new DatabaseHealth(() => {
        probes++;
        return Promise.resolve();
      });
      health.succeeded();
      health.failed();
      assert.equal(await health.check(), false);
      assert.equal(probes, 0, "a fresh failure answers without a probe");
    },
  );
});
