// Deterministic job ids for idempotent enqueue: a UUID version 5 (RFC 9562:
// SHA-1 of a namespace and a name) of the queue name and the idempotency key.
//
// SHA-1 is computed here rather than with crypto.subtle.digest: that one is
// asynchronous and costs tens of microseconds a call, so deriving the ids of
// a 1,000-job batch took longer than inserting it. SHA-1 serves only as a
// stable mix here, as RFC 9562 prescribes for version 5, not for security.

// The aftercommit job namespace. Changing it changes every derived id, which
// would let a redelivered event create a second job: never change it.
const NAMESPACE = uuidBytes("4b0f3c39-6b0e-4d36-9c55-0f3c1ad52f8e");

const encoder = new TextEncoder();

function uuidBytes(uuid: string): Uint8Array {
  const hex = uuid.replaceAll("-", "");
  const bytes = new Uint8Array(16);
  for (let i = 0; i < 16; i++) {
    bytes[i] = parseInt(hex.slice(i * 2, i * 2 + 2), 16);
  }
  return bytes;
}

const HEX = Array.from(
  { length: 256 },
  (_, i) => i.toString(16).padStart(2, "0"),
);

const W = new Uint32Array(80);

/** SHA-1 (FIPS 180-4) of `bytes`, 20 bytes. */
export function sha1(bytes: Uint8Array): Uint8Array {
  const length = bytes.length;
  const padded = ((length + 8) >>> 6 << 6) + 64;
  const block = new Uint8Array(padded);
  block.set(bytes);
  block[length] = 0x80;
  const view = new DataView(block.buffer);
  view.setUint32(padded - 8, Math.floor(length / 0x20000000));
  view.setUint32(padded - 4, (length * 8) >>> 0);
  let h0 = 0x67452301;
  let h1 = 0xefcdab89;
  let h2 = 0x98badcfe;
  let h3 = 0x10325476;
  let h4 = 0xc3d2e1f0;
  for (let offset = 0; offset < padded; offset += 64) {
    for (let i = 0; i < 16; i++) W[i] = view.getUint32(offset + i * 4);
    for (let i = 16; i < 80; i++) {
      const x = W[i - 3]! ^ W[i - 8]! ^ W[i - 14]! ^ W[i - 16]!;
      W[i] = (x << 1) | (x >>> 31);
    }
    let a = h0, b = h1, c = h2, d = h3, e = h4;
    for (let i = 0; i < 80; i++) {
      let f: number, k: number;
      if (i < 20) {
        f = (b & c) | (~b & d);
        k = 0x5a827999;
      } else if (i < 40) {
        f = b ^ c ^ d;
        k = 0x6ed9eba1;
      } else if (i < 60) {
        f = (b & c) | (b & d) | (c & d);
        k = 0x8f1bbcdc;
      } else {
        f = b ^ c ^ d;
        k = 0xca62c1d6;
      }
      const t = (((a << 5) | (a >>> 27)) + f + e + k + W[i]!) | 0;
      e = d;
      d = c;
      c = (b << 30) | (b >>> 2);
      b = a;
      a = t;
    }
    h0 = (h0 + a) | 0;
    h1 = (h1 + b) | 0;
    h2 = (h2 + c) | 0;
    h3 = (h3 + d) | 0;
    h4 = (h4 + e) | 0;
  }
  const out = new Uint8Array(20);
  const outView = new DataView(out.buffer);
  outView.setUint32(0, h0);
  outView.setUint32(4, h1);
  outView.setUint32(8, h2);
  outView.setUint32(12, h3);
  outView.setUint32(16, h4);
  return out;
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
  const text = encoder.encode(joined);
  const input = new Uint8Array(NAMESPACE.length + text.length);
  input.set(NAMESPACE);
  input.set(text, NAMESPACE.length);
  const hash = sha1(input);
  hash[6] = (hash[6]! & 0x0f) | 0x50; // version 5
  hash[8] = (hash[8]! & 0x3f) | 0x80; // RFC 9562 variant
  let out = "";
  for (let i = 0; i < 16; i++) {
    if (i === 4 || i === 6 || i === 8 || i === 10) out += "-";
    out += HEX[hash[i]!];
  }
  return out;
}
