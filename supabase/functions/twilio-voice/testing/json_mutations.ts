// Seeded generators of valid, near-valid and hostile JSON text, shared by the codecs' agreement tests
// (a fast path against its full decoder). Seeded, so a failing case is the same case on the next run.

/** mulberry32: a small seeded generator of numbers in [0, 1). */
export function random(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// Characters and escapes that matter to a JSON reader, one at a time.
export const AWKWARD_PIECES = [
  ...'"\\ \t\n\r\u0000\u001f\u00e9\u2028=-_{}[]:,0Az+/',
  "\\/",
  "\\u0022",
  "\\u0041",
  "\\n",
  "\ud83d\ude00",
  "\ud800",
  "\udfff",
];

/** Random values and text edits drawn from one seeded generator. */
export function jsonMutations(next: () => number) {
  const int = (below: number) => Math.floor(next() * below);
  const pick = <T>(items: readonly T[]): T => items[int(items.length)];
  const bytes = (size: number) => String.fromCharCode(...Array.from({ length: size }, () => int(256)));
  const at = (text: string) => int(text.length + 1);
  return {
    int,
    pick,
    base64: (size: number) => btoa(bytes(size)),
    hex: (size: number) => Array.from({ length: size }, () => "0123456789abcdef"[int(16)]).join(""),
    shuffle(object: Record<string, unknown>): Record<string, unknown> {
      const entries = Object.entries(object);
      for (let i = entries.length - 1; i > 0; i--) {
        const j = int(i + 1);
        [entries[i], entries[j]] = [entries[j], entries[i]];
      }
      return Object.fromEntries(entries);
    },
    insert(text: string, piece: string): string {
      const i = at(text);
      return text.slice(0, i) + piece + text.slice(i);
    },
    replaceOne(text: string, piece: string): string {
      const i = int(text.length);
      return text.slice(0, i) + piece + text.slice(i + 1);
    },
    // Where a mistake in a reader shows: just inside or outside a quote (an escaped closing quote, a
    // backslash before it, a control character at the edge of a value).
    insertAtQuote(text: string, piece: string): string {
      const quotes = [...text.matchAll(/"/g)].map((found) => found.index ?? 0);
      const i = pick(quotes) + int(2);
      return text.slice(0, i) + piece + text.slice(i);
    },
    // A string value re-spelled with an escape JSON.parse reads back as the same character.
    escapeOne(text: string): string {
      const quoted = [...text.matchAll(/"([A-Za-z0-9+/=_]+)"/g)];
      if (quoted.length === 0) return text;
      const found = pick(quoted);
      const value = found[1];
      const i = int(value.length);
      const escape = pick([
        `\\u${value.charCodeAt(i).toString(16).padStart(4, "0")}`,
        value[i] === "/" ? "\\/" : `\\u00${value.charCodeAt(i).toString(16)}`,
      ]);
      const start = (found.index ?? 0) + 1 + i;
      return text.slice(0, start) + escape + text.slice(start + 1);
    },
    /** Payloads that look like base64 to a careless reader, or smuggle JSON. */
    hostileBase64(): string {
      const body = btoa(bytes(160));
      return pick([
        'AAAA"},"event":"mark","mark":{"name":"x',
        "AAAA\\u0022",
        "AA\\/A",
        "AAA",
        "A===",
        "====",
        "AA==AA==",
        "AA=A",
        "-_-_",
        "AA A",
        "AAAA\n",
        body.replace("A", "\u00c1"),
        body + "=",
        "\ud800AAA",
      ]);
    },
  };
}

/** An agreement test's inputs: 35 % valid, 55 % mutated, 10 % noise of JSON-ish tokens. */
export function agreementMix(
  next: () => number,
  count: number,
  make: { valid: () => string; mutant: () => string; tokens: readonly string[] },
): string[] {
  const { int, pick } = jsonMutations(next);
  const tokens = [...AWKWARD_PIECES, "true", "null", "1e3", ...make.tokens];
  const noise = () => Array.from({ length: int(40) }, () => pick(tokens)).join("");
  return Array.from({ length: count }, () => {
    const kind = next();
    if (kind < 0.35) return make.valid();
    if (kind < 0.9) return make.mutant();
    return noise();
  });
}
