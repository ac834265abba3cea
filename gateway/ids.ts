/**
 * Time-sortable ids: 10 chars of millisecond time + 16 random chars, base32 lowercase.
 * Sorting ids sorts by creation time, so list cursors are plain ids (no OFFSET).
 */
const ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz";

function encodeTime(ms: number): string {
  let out = "";
  let rest = ms;
  for (let i = 0; i < 10; i++) {
    out = ALPHABET[rest % 32] + out;
    rest = Math.floor(rest / 32);
  }
  return out;
}

function randomChars(count: number): string {
  const bytes = crypto.getRandomValues(new Uint8Array(count));
  let out = "";
  for (const byte of bytes) {
    out += ALPHABET[byte % 32];
  }
  return out;
}

let lastMs = 0;
let lastRandom = "";

/** A monotonic id: within one millisecond the random part increases, so order is kept. */
export function newId(prefix: string, now: number = Date.now()): string {
  if (now <= lastMs) {
    lastRandom = increment(lastRandom);
    return `${prefix}_${encodeTime(lastMs)}${lastRandom}`;
  }
  lastMs = now;
  lastRandom = randomChars(16);
  return `${prefix}_${encodeTime(now)}${lastRandom}`;
}

function increment(value: string): string {
  const chars = value.split("");
  for (let i = chars.length - 1; i >= 0; i--) {
    const index = ALPHABET.indexOf(chars[i] ?? "0");
    if (index < 31) {
      chars[i] = ALPHABET[index + 1] ?? "0";
      return chars.join("");
    }
    chars[i] = "0";
  }
  return chars.join("");
}
