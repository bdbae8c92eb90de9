import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { jobIdFor } from "../../../../src/internal/job_id.ts";

// The reference: RFC 9562 UUID v5 from node:crypto's SHA-1.
function reference(name: string, key: string): string {
  const namespace = Uint8Array.from(
    "4b0f3c396b0e4d369c550f3c1ad52f8e".match(/../g)!,
    (h) => parseInt(h, 16),
  );
  const hash = createHash("sha1").update(namespace).update(`${name}\n${key}`)
    .digest();
  hash[6] = (hash[6]! & 0x0f) | 0x50;
  hash[8] = (hash[8]! & 0x3f) | 0x80;
  const hex = hash.toString("hex");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${
    hex.slice(16, 20)
  }-${hex.slice(20, 32)}`;
}

Deno.test("jobIdFor() gives node:crypto's SHA-1 UUID v5 for keys of every length and script", () => {
  const keys = [
    "e",
    crypto.randomUUID(),
    "évènement-ü-日本語-🎉",
    // Around the 55/56-byte boundary where the padding needs a second block.
    ...Array.from({ length: 24 }, (_, i) => "k".repeat(30 + i)),
    "x".repeat(1_000),
    "🎉".repeat(300),
  ];
  for (const key of keys) {
    for (const name of ["q", "send-welcome-email", "a/b.c_d-e"]) {
      assert.equal(
        jobIdFor(name, key),
        reference(name, key),
        `${name} / ${key.length}`,
      );
    }
  }
  // A short key after a long one: the reused buffer holds nothing stale.
  assert.equal(jobIdFor("q", "e"), reference("q", "e"));
});
