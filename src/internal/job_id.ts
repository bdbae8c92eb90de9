// Job ids for idempotent enqueue: a UUID v5 (RFC 9562) of queue name and key.
// SHA-1 is done here, with reused buffers: crypto.subtle is asynchronous and
// node:crypto's createHash costs ~7 µs a call, more than the job's INSERT.

// Never change it: every derived id would change, letting a redelivered event
// create a second job.
const NAMESPACE = uuidBytes("4b0f3c39-6b0e-4d36-9c55-0f3c1ad52f8e");

function uuidBytes(uuid: string): Uint8Array {
  const hex = uuid.replaceAll("-", "");
  const bytes = new Uint8Array(16);
  for (let i = 0; i < 16; i++) {
    bytes[i] = parseInt(hex.slice(i * 2, i * 2 + 2), 16);
  }
  return bytes;
}

// Each byte's two hex digits as UTF-16 codes; where the bytes go in a UUID.
const HEX = new Uint16Array(512);
for (let i = 0; i < 256; i++) {
  const hex = i.toString(16).padStart(2, "0");
  HEX[2 * i] = hex.charCodeAt(0);
  HEX[2 * i + 1] = hex.charCodeAt(1);
}
const AT = [0, 2, 4, 6, 9, 11, 14, 16, 19, 21, 24, 26, 28, 30, 32, 34];
const CODES = new Uint16Array(36).fill(0x2d); // "-"
const encoder = new TextEncoder();
const W = new Int32Array(80);
const OUT = new Uint8Array(16);
// The message block (namespace, name, padding, length), grown for long keys.
let block = new Uint8Array(128);

// Writes `text` as UTF-8 into `b` from offset 16; ASCII is copied here, as
// the encoder's call into the runtime costs a third of the whole derivation.
function utf8Into(text: string, b: Uint8Array): number {
  const n = text.length;
  for (let i = 0; i < n; i++) {
    const code = text.charCodeAt(i);
    if (code > 0x7f) return encoder.encodeInto(text, b.subarray(16)).written;
    b[16 + i] = code;
  }
  return n;
}

/** The job id for `key` on queue `name` (names hold no newline). */
export function jobIdFor(name: string, key: string): string {
  const text = `${name}\n${key}`;
  // UTF-8 needs at most 3 bytes per UTF-16 code unit.
  const room = ((16 + text.length * 3 + 8) >>> 6 << 6) + 64;
  if (block.length < room) block = new Uint8Array(room);
  const b = block;
  b.set(NAMESPACE, 0);
  const length = 16 + utf8Into(text, b);
  const padded = ((length + 8) >>> 6 << 6) + 64;
  b.fill(0, length, padded);
  b[length] = 0x80;
  const bits = length * 8;
  b[padded - 5] = bits / 0x100000000; // keys shorter than 512 MB
  b[padded - 4] = bits >>> 24;
  b[padded - 3] = bits >>> 16;
  b[padded - 2] = bits >>> 8;
  b[padded - 1] = bits;
  let h0 = 0x67452301, h1 = 0xefcdab89, h2 = 0x98badcfe;
  let h3 = 0x10325476, h4 = 0xc3d2e1f0;
  for (let o = 0; o < padded; o += 64) {
    for (let i = 0; i < 16; i++) {
      const j = o + i * 4;
      W[i] = (b[j]! << 24) | (b[j + 1]! << 16) | (b[j + 2]! << 8) | b[j + 3]!;
    }
    for (let i = 16; i < 80; i++) {
      const x = W[i - 3]! ^ W[i - 8]! ^ W[i - 14]! ^ W[i - 16]!;
      W[i] = (x << 1) | (x >>> 31);
    }
    let a = h0, bb = h1, c = h2, d = h3, e = h4;
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
    h0 = (h0 + a) | 0;
    h1 = (h1 + bb) | 0;
    h2 = (h2 + c) | 0;
    h3 = (h3 + d) | 0;
    h4 = (h4 + e) | 0;
  }
  // The UUID is the first 16 bytes of the digest.
  const out = OUT;
  out[0] = h0 >>> 24, out[1] = h0 >>> 16, out[2] = h0 >>> 8, out[3] = h0;
  out[4] = h1 >>> 24, out[5] = h1 >>> 16;
  out[6] = ((h1 >>> 8) & 0x0f) | 0x50; // version 5
  out[7] = h1;
  out[8] = ((h2 >>> 24) & 0x3f) | 0x80; // RFC 9562 variant
  out[9] = h2 >>> 16, out[10] = h2 >>> 8, out[11] = h2;
  out[12] = h3 >>> 24, out[13] = h3 >>> 16, out[14] = h3 >>> 8, out[15] = h3;
  // One flat string, not a rope: later Set lookups and JSON need no flattening.
  for (let i = 0; i < 16; i++) {
    const at = AT[i]!;
    const hex = out[i]! * 2;
    CODES[at] = HEX[hex]!;
    CODES[at + 1] = HEX[hex + 1]!;
  }
  return String.fromCharCode.apply(null, CODES as unknown as number[]);
}
