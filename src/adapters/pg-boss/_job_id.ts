// Deterministic job ids for idempotent enqueue: a UUID version 5 (RFC 9562:
// SHA-1 of a namespace and a name) of the queue name and the idempotency key.
//
// node:crypto's createHash is synchronous (crypto.subtle.digest is async and
// costs tens of microseconds a call, more than inserting a 1,000-job batch).
// SHA-1 serves only as a stable mix here, as RFC 9562 prescribes for
// version 5, not for security.
import { createHash } from "node:crypto";

// The aftercommit job namespace. Changing it changes every derived id, which
// would let a redelivered event create a second job: never change it.
const NAMESPACE = uuidBytes("4b0f3c39-6b0e-4d36-9c55-0f3c1ad52f8e");

function uuidBytes(uuid: string): Uint8Array {
  const hex = uuid.replaceAll("-", "");
  const bytes = new Uint8Array(16);
  for (let i = 0; i < 16; i++) {
    bytes[i] = parseInt(hex.slice(i * 2, i * 2 + 2), 16);
  }
  return bytes;
}

/**
 * The job id for `key` on queue `name`: the same inputs always give the same
 * UUID, different queue names give different ones. Queue names cannot hold a
 * newline, so joining with one is unambiguous.
 */
export function jobIdFor(name: string, key: string): string {
  const joined = `${name}\n${key}`;
  const cached = recent.get(joined);
  if (cached !== undefined) return cached;
  const id = deriveId(joined);
  // First in, first out: a batch of a few thousand jobs fits.
  if (recent.size >= RECENT_MAX) recent.delete(recent.keys().next().value!);
  recent.set(joined, id);
  return id;
}

// The ids derived last: a BatchingJobQueue derives each keyed job's id when
// it buffers the job, and enqueueMany derives it again when it writes it.
const RECENT_MAX = 4096;
const recent = new Map<string, string>();

function deriveId(joined: string): string {
  const hash = createHash("sha1").update(NAMESPACE).update(joined).digest();
  hash[6] = (hash[6]! & 0x0f) | 0x50; // version 5
  hash[8] = (hash[8]! & 0x3f) | 0x80; // RFC 9562 variant
  const hex = hash.toString("hex");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${
    hex.slice(16, 20)
  }-${hex.slice(20, 32)}`;
}
