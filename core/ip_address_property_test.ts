/**
 * Properties of address parsing, formatting and range matching on generated
 * addresses, each checked against an independent reference: IPv6 text written
 * every legal way (any run compressed, upper or lower case, leading zeros,
 * an embedded IPv4 tail) parses to the same bytes; formatting follows RFC 5952
 * rule by rule; and CIDR membership equals a bit-by-bit comparison.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { cidrContains, formatCidr, formatIp, parseCidr, parseIp } from "./ip_address.ts";

/** Whether `address` is in the range `range` (both as text), as TrustedProxies asks it. */
const inRange = (range: string, address: string) => cidrContains(parseCidr(range)!, parseIp(address)!);

const RUNS = { numRuns: 400 };

/** IPv6 groups, biased towards zeros so that runs (and ties between runs) are common. */
const groups = fc.array(fc.oneof(fc.constant(0), fc.constant(0), fc.integer({ min: 0, max: 0xffff })), {
  minLength: 8,
  maxLength: 8,
});
const v4 = fc.uint8Array({ minLength: 4, maxLength: 4 });

const bytesOf = (g: number[]) => Uint8Array.from(g.flatMap((x) => [x >> 8, x & 0xff]));
const isMapped = (g: number[]) => g.slice(0, 5).every((x) => x === 0) && g[5] === 0xffff;

/** Some legal spelling of the groups: any zero run (or none) compressed, any case, optional leading zeros. */
function spell(g: number[], run: number, upper: boolean, pad: boolean): string {
  const hex = (x: number) => {
    const s = pad ? x.toString(16).padStart(4, "0") : x.toString(16);
    return upper ? s.toUpperCase() : s;
  };
  // Zero runs of length >= 1 that could be written "::" (RFC 4291 allows compressing any run).
  const runs: Array<[number, number]> = [];
  for (let i = 0; i < 8;) {
    if (g[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    runs.push([i, j]);
    i = j;
  }
  if (runs.length === 0 || run % (runs.length + 1) === runs.length) return g.map(hex).join(":");
  const [a, b] = runs[run % (runs.length + 1)];
  return `${g.slice(0, a).map(hex).join(":")}::${g.slice(b).map(hex).join(":")}`;
}

/** RFC 5952 written from its rules: lowercase, no leading zeros, the longest run of 2+ zero groups (first on a tie) as "::". */
function rfc5952(g: number[]): string {
  let best = -1, bestLen = 0;
  for (let i = 0; i < 8; i++) {
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i >= 2 && j - i > bestLen) [best, bestLen] = [i, j - i];
  }
  const hex = (xs: number[]) => xs.map((x) => x.toString(16)).join(":");
  return best < 0 ? hex(g) : `${hex(g.slice(0, best))}::${hex(g.slice(best + bestLen))}`;
}

Deno.test("IPv6: every legal spelling parses to the same bytes, and formats as RFC 5952", () => {
  fc.assert(
    fc.property(groups, fc.nat(), fc.boolean(), fc.boolean(), (g, run, upper, pad) => {
      const text = spell(g, run, upper, pad);
      const parsed = parseIp(text);
      if (isMapped(g)) {
        // ::ffff:a.b.c.d is the IPv4 client of a dual-stack socket.
        assert.deepEqual(parsed, bytesOf(g).slice(12), text);
        return;
      }
      assert.deepEqual(parsed, bytesOf(g), text);
      assert.equal(formatIp(parsed!), rfc5952(g), text);
      // Formatting is canonical: parsing it again changes nothing.
      assert.equal(formatIp(parseIp(formatIp(parsed!))!), formatIp(parsed!));
      assert.deepEqual(parseIp(`[${text}]`), parsed, "brackets");
      assert.deepEqual(parseIp(`${text}%eth0`), parsed, "a zone");
    }),
    RUNS,
  );
});

Deno.test("IPv6 with an IPv4 tail equals the same groups in hex", () => {
  fc.assert(
    fc.property(groups, v4, (g, tail) => {
      const six = [...g.slice(0, 6), (tail[0] << 8) | tail[1], (tail[2] << 8) | tail[3]];
      const text = `${g.slice(0, 6).map((x) => x.toString(16)).join(":")}:${tail.join(".")}`;
      assert.deepEqual(parseIp(text), isMapped(six) ? tail : bytesOf(six), text);
    }),
    RUNS,
  );
});

Deno.test("IPv4: dotted decimal with no leading zeros, each octet 0 to 255", () => {
  fc.assert(
    fc.property(
      fc.array(fc.integer({ min: 0, max: 300 }), { minLength: 4, maxLength: 4 }),
      fc.nat(3),
      (o, z) => {
        const text = o.join(".");
        const valid = o.every((x) => x <= 255);
        assert.deepEqual(parseIp(text), valid ? Uint8Array.from(o) : undefined, text);
        if (valid) assert.equal(formatIp(parseIp(text)!), text);
        // A leading zero (010 is octal to inet_aton) is refused rather than guessed.
        const padded = o.map((x, i) => (i === z ? `0${x}` : String(x))).join(".");
        assert.equal(parseIp(padded), undefined, padded);
      },
    ),
    RUNS,
  );
});

Deno.test("malformed IPv6 is refused: too many groups, two ::, a :: standing for nothing", () => {
  fc.assert(
    fc.property(groups, fc.integer({ min: 1, max: 7 }), (g, at) => {
      const hex = g.map((x) => x.toString(16));
      assert.equal(parseIp([...hex, "1"].join(":")), undefined, "nine groups");
      assert.equal(
        parseIp([...hex.slice(0, at), "", ...hex.slice(at)].join(":")),
        undefined,
        ":: for no group",
      );
      assert.equal(
        parseIp(`${hex.slice(0, at).join(":")}::1::${hex.slice(at + 1).join(":")}`),
        undefined,
        "two ::",
      );
      assert.equal(parseIp(hex.slice(0, 7).join(":")), undefined, "seven groups");
      assert.equal(parseIp([...hex.slice(0, 7), "10000"].join(":")), undefined, "a group of five digits");
    }),
    RUNS,
  );
});

/** The reference: the first `prefix` bits of two addresses are equal. */
function sameBits(a: Uint8Array, b: Uint8Array, prefix: number): boolean {
  for (let bit = 0; bit < prefix; bit++) {
    const m = 0x80 >> (bit & 7);
    if ((a[bit >> 3] & m) !== (b[bit >> 3] & m)) return false;
  }
  return true;
}

/** An address near `base`: equal up to some bit, then anything (so inside and outside both occur). */
const near = (len: 4 | 16) =>
  fc.tuple(
    fc.uint8Array({ minLength: len, maxLength: len }),
    fc.uint8Array({ minLength: len, maxLength: len }),
    fc.nat(len * 8),
  )
    .map(([base, noise, keep]) => {
      const other = Uint8Array.from(base);
      for (let bit = keep; bit < len * 8; bit++) {
        const m = 0x80 >> (bit & 7);
        other[bit >> 3] = (other[bit >> 3] & ~m) | (noise[bit >> 3] & m);
      }
      return [base, other] as const;
    });

Deno.test("CIDR membership equals a bit-by-bit comparison of the prefix, IPv4 and IPv6", () => {
  for (const len of [4, 16] as const) {
    fc.assert(
      fc.property(near(len), fc.integer({ min: 0, max: len * 8 }), ([base, ip], prefix) => {
        const range = `${formatIp(base)}/${prefix}`;
        assert.equal(
          inRange(range, formatIp(ip)),
          sameBits(base, ip, prefix),
          `${formatIp(ip)} in ${range}`,
        );
        // Parsed ranges keep the address as written and the prefix; the text round-trips.
        const cidr = parseCidr(range)!;
        assert.equal(cidr.prefix, prefix);
        assert.equal(formatCidr(cidr), range);
        // An IPv4 address is never in an IPv6 range, nor the reverse (mapped ones aside).
        const otherFamily = len === 4 ? "2001:db8::1" : "192.0.2.1";
        if (prefix > 0 || len === 16) assert.equal(inRange(range, otherFamily), false);
      }),
      RUNS,
    );
  }
});

Deno.test("prefix lengths: 0 to 32 (IPv4) and 0 to 128 (IPv6) accepted, one more refused", () => {
  for (let p = 0; p <= 33; p++) assert.equal(parseCidr(`10.0.0.0/${p}`)?.prefix, p <= 32 ? p : undefined);
  for (let p = 0; p <= 129; p++) assert.equal(parseCidr(`2001:db8::/${p}`)?.prefix, p <= 128 ? p : undefined);
  // A mapped range is the IPv4 range it maps: /96 is 0.0.0.0/0, /95 does not exist.
  assert.equal(formatCidr(parseCidr("::ffff:0.0.0.0/96")!), "0.0.0.0/0");
  assert.equal(formatCidr(parseCidr("::ffff:10.1.0.0/112")!), "10.1.0.0/16");
  assert.equal(parseCidr("::ffff:0.0.0.0/95"), undefined);
  assert.equal(parseCidr("10.0.0.0/-1"), undefined);
});
