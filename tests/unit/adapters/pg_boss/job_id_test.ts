import assert from "node:assert/strict";
import {
  DEAD_LETTER_SUFFIX,
  PgBossJobQueue,
} from "../../../../src/adapters/pg-boss/mod.ts";

const UUID_V5 =
  /^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

Deno.test("jobIdFor() derives a stable UUID v5 from the queue name and the key", async (t) => {
  await t.step("the same name and key give the same id", () => {
    const a = PgBossJobQueue.jobIdFor("send-email", "evt-1");
    assert.match(a, UUID_V5);
    assert.equal(PgBossJobQueue.jobIdFor("send-email", "evt-1"), a);
  });

  await t.step("the id does not change between releases", () => {
    // A changed derivation would let a redelivered event enqueue a second job.
    // The value is RFC 9562's UUID v5, as Python computes it:
    // uuid.uuid5(UUID("4b0f3c39-6b0e-4d36-9c55-0f3c1ad52f8e"), "send-email\nevt-1")
    assert.equal(
      PgBossJobQueue.jobIdFor("send-email", "evt-1"),
      "c52e93c3-1235-5c8f-86cc-3f4ae1fcbbb1",
    );
  });

  await t.step("another key or another queue gives another id", () => {
    const ids = new Set([
      PgBossJobQueue.jobIdFor("send-email", "evt-1"),
      PgBossJobQueue.jobIdFor("send-email", "evt-2"),
      PgBossJobQueue.jobIdFor("send-sms", "evt-1"),
      // The separator cannot be forged: queue names have no newline.
      PgBossJobQueue.jobIdFor("send", "email\nevt-1"),
      PgBossJobQueue.jobIdFor("send-email", "evt-1:Welcome.enqueue"),
    ]);
    assert.equal(ids.size, 5);
  });

  await t.step(
    "the id stays the same once the cache of recent ids has moved on",
    () => {
      const first = PgBossJobQueue.jobIdFor("send-email", "evt-1");
      const many = new Set<string>();
      for (let i = 0; i < 5_000; i++) {
        many.add(PgBossJobQueue.jobIdFor("send-email", `other-${i}`));
      }
      assert.equal(many.size, 5_000);
      assert.equal(PgBossJobQueue.jobIdFor("send-email", "evt-1"), first);
      assert.equal(first, "c52e93c3-1235-5c8f-86cc-3f4ae1fcbbb1");
    },
  );
});

Deno.test("deadLetterQueueName() appends the dead-letter suffix", () => {
  assert.equal(
    PgBossJobQueue.deadLetterQueueName("send-email"),
    "send-email" + DEAD_LETTER_SUFFIX,
  );
});
