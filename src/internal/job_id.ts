// Job ids for idempotent enqueue: a UUID v5 (RFC 9562) of queue name and key.
// SHA-1 is done here, with reused buffers: crypto.subtle is asynchronous and
// node:crypto's createHash costs ~7 µs a call, more than the job's INSERT.

// The namespace 4b0f3c39-6b0e-4d36-9c55-0f3c1ad52f8e must never change: every
// id would, and a redelivered event would create a second job. Parsed by hand:
// Node 22 (a JSR user's runtime) lacks Uint8Array.fromHex.
const NAMESPACE = Uint8Array.from(
  "4b0f3c396b0e4d369c550f3c1ad52f8e".match(/../g)!,
  (hex) => parseInt(hex, 16),
);
// Each byte's two hex digits as UTF-16 codes; where the bytes go in a UUID.
const HEX = Uint16Array.from(
  { length: 512 },
  (_, i) => (i >> 1).toString(16).padStart(2, "0").charCodeAt(i & 1),
);
const AT = [0, 2, 4, 6, 9, 11, 14, 16, 19, 21, 24, 26, 28, 30, 32, 34];
const CODES = new Uint16Array(36).fill(0x2d); // "-"
const encoder = new TextEncoder();
const W = new Int32Array(80);
const H = new Int32Array(5);
// deno-fmt-ignore
const H0 = Int32Array.of(0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476, 0xc3d2e1f0);
// The message block (namespace, name, padding, length), grown for long keys.
let block = new Uint8Array(128);
let view = new DataView(block.buffer);

/** The job id for `key` on queue `name` (names hold no newline). */
export function jobIdFor(name: string, key: string): string {
  const text = `${name}\n${key}`;
  // UTF-8 needs at most 3 bytes per UTF-16 code unit.
  const room = ((16 + text.length * 3 + 8) >>> 6 << 6) + 64;
  if (block.length < room) {
    view = new DataView((block = new Uint8Array(room)).buffer);
  }
  const b = block;
  b.set(NAMESPACE, 0);
  // ASCII is copied here: the encoder's call into the runtime costs a third
  // of the whole derivation.
  let length = 16 + text.length;
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code > 0x7f) {
      length = 16 + encoder.encodeInto(text, b.subarray(16)).written;
      break;
    }
    b[16 + i] = code;
  }
  const padded = ((length + 8) >>> 6 << 6) + 64;
  b.fill(0, length, padded);
  b[length] = 0x80;
  b[padded - 5] = length / 0x20000000; // the bit length's 5th byte
  view.setUint32(padded - 4, length * 8);
  H.set(H0);
  for (let o = 0; o < padded; o += 64) {
    for (let i = 0; i < 16; i++) W[i] = view.getInt32(o + i * 4);
    for (let i = 16; i < 80; i++) {
      const x = W[i - 3]! ^ W[i - 8]! ^ W[i - 14]! ^ W[i - 16]!;
      W[i] = (x << 1) | (x >>> 31);
    }
    let a = H[0]!, bb = H[1]!, c = H[2]!, d = H[3]!, e = H[4]!;
    for (let i = 0; i < 80; i++) {
      const f = i < 20
        ? ((bb & c) | (~bb & d)) + 0x5a827999
        : i < 40
        ? (bb ^ c ^ d) + 0x6ed9eba1
        : i < 60
        ? ((bb & c) | (bb & d) | (c & d)) + 0x8f1bbcdc
        : (bb ^ c ^ d) + 0xca62c1d6;
      const t = (((a << 5) | (a >>> 27)) + f + e + W[i]!) | 0;
      e = d;
      d = c;
      c = (bb << 30) | (bb >>> 2);
      bb = a;
      a = t;
    }
    H[0] = H[0]! + a, H[1] = H[1]! + bb, H[2] = H[2]! + c;
    H[3] = H[3]! + d, H[4] = H[4]! + e;
  }
  // The UUID is the digest's first 16 bytes, with its version (5) and variant.
  // One flat string, not a rope: later Set lookups and JSON need no flattening.
  for (let i = 0; i < 16; i++) {
    let byte = (H[i >> 2]! >>> (24 - 8 * (i & 3))) & 0xff;
    if (i === 6) byte = (byte & 0x0f) | 0x50;
    if (i === 8) byte = (byte & 0x3f) | 0x80;
    CODES[AT[i]!] = HEX[byte * 2]!;
    CODES[AT[i]! + 1] = HEX[byte * 2 + 1]!;
  }
  return String.fromCharCode.apply(null, CODES as unknown as number[]);
}
