/**
 * Properties of the multipart parser over generated forms (RFC 7578, RFC 6266's `filename*`, RFC 2046
 * framing), a differential check against Deno's own form parser, the per-part header cap at its limit, and
 * hostile headers that used to cost time quadratic in their length.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { MAX_PART_HEADER_BYTES, MultipartError, parseMediaType, parseMultipart } from "./multipart.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

function concat(...chunks: Array<string | Uint8Array>): Uint8Array<ArrayBuffer> {
  const parts = chunks.map((c) => (typeof c === "string" ? enc.encode(c) : c));
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** RFC 2046 bchars; the last one may not be a space. */
const BCHARS = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ'()+_,-./:=? ";
const boundaryArb = fc
  .string({ unit: fc.constantFrom(...BCHARS), minLength: 1, maxLength: 70 })
  .filter((b) => !b.endsWith(" "));

/** File names as people write them: spaces, quotes, backslashes (Windows paths), `;`, `=`, non-ASCII. */
const nameUnit = fc.constantFrom(
  ..."abcXYZ019 ._-;=,\"'\\/%*()[]{}",
  "é",
  "ü",
  "漢",
  "😀",
  "\t",
);
const fileNameArb = fc.string({ unit: nameUnit, minLength: 0, maxLength: 24 });
const fieldNameArb = fc.string({
  unit: fc.constantFrom(..."abcdefXYZ_-0123456789"),
  minLength: 1,
  maxLength: 12,
});

/** How HTML form submission puts a name in a quoted-string (RFC 7578 §4.2, WHATWG): `"`, CR, LF encoded. */
const htmlQuote = (s: string) => s.replace(/"/g, "%22").replace(/\r/g, "%0D").replace(/\n/g, "%0A");

/** RFC 8187 ext-value: UTF-8 bytes, attr-chars kept, the rest percent-encoded. */
function extValue(s: string): string {
  let out = "UTF-8''";
  for (const byte of enc.encode(s)) {
    const c = String.fromCharCode(byte);
    out += /[A-Za-z0-9!#$&+.^_`|~-]/.test(c) ? c : `%${byte.toString(16).toUpperCase().padStart(2, "0")}`;
  }
  return out;
}

interface GenPart {
  field: string;
  /** undefined: a plain field; otherwise a file with this name. */
  file?: string;
  /** How the name is sent: quoted only, filename* only, both (in either order). */
  style: "quoted" | "star" | "both" | "star_first";
  /** The same parameter again after the first (the first wins). */
  repeated: boolean;
  bytes: Uint8Array;
}

const partArb: fc.Arbitrary<GenPart> = fc.record({
  field: fieldNameArb,
  file: fc.option(fileNameArb, { nil: undefined }),
  style: fc.constantFrom("quoted", "star", "both", "star_first"),
  repeated: fc.boolean(),
  // Bytes that look like framing: CR, LF, dashes.
  bytes: fc.uint8Array({ maxLength: 64 }).chain((random) =>
    fc.constantFrom(random, enc.encode("\r\n--"), enc.encode("\r\n\r\n"), new Uint8Array())
  ),
});

function disposition(p: GenPart): string {
  let d = `form-data; name="${p.field}"`;
  if (p.repeated) d += `; name="other"`;
  if (p.file !== undefined) {
    const quoted = `filename="${htmlQuote(p.file)}"`;
    const star = `filename*=${extValue(p.file)}`;
    d += p.style === "quoted"
      ? `; ${quoted}`
      : p.style === "star"
      ? `; ${star}`
      : p.style === "both"
      ? `; ${quoted}; ${star}`
      : `; ${star}; ${quoted}`;
  }
  return d;
}

/** What the parser must report as the file name: filename* decoded when sent, else the quoted form. */
const expectedFileName = (p: GenPart) =>
  p.file === undefined ? undefined : p.style === "quoted" ? htmlQuote(p.file) : p.file;

function serialize(
  boundary: string,
  parts: GenPart[],
  preamble: string,
  padding: string,
): Uint8Array<ArrayBuffer> {
  const chunks: Array<string | Uint8Array> = [preamble ? `${preamble}\r\n` : ""];
  for (const p of parts) {
    chunks.push(`--${boundary}${padding}\r\nContent-Disposition: ${disposition(p)}\r\n`);
    if (p.file !== undefined) chunks.push("Content-Type: application/octet-stream\r\n");
    chunks.push("\r\n", p.bytes, "\r\n");
  }
  chunks.push(`--${boundary}--\r\n`);
  return concat(...chunks);
}

/** A body is framed correctly only if no part's bytes contain the delimiter. */
const delimiterFree = (boundary: string, parts: GenPart[]) =>
  parts.every((p) =>
    !dec.decode(concat(p.bytes, "\r\n")).includes(`\r\n--${boundary}`) &&
    !dec.decode(p.bytes).startsWith(`--${boundary}`)
  );

Deno.test("parseMultipart returns every generated part as it was sent", () => {
  fc.assert(
    fc.property(
      boundaryArb,
      fc.array(partArb, { minLength: 1, maxLength: 5 }),
      fc.constantFrom("", "preamble text"),
      fc.constantFrom("", " ", "\t "),
      (boundary, parts, preamble, padding) => {
        fc.pre(delimiterFree(boundary, parts));
        const parsed = parseMultipart(serialize(boundary, parts, preamble, padding), boundary);
        assert.equal(parsed.length, parts.length);
        parsed.forEach((got, i) => {
          assert.equal(got.name, parts[i].field, "the first name= wins");
          assert.equal(got.filename, expectedFileName(parts[i]));
          assert.deepEqual(got.bytes, parts[i].bytes);
        });
      },
    ),
    { numRuns: 500 },
  );
});

Deno.test("parseMultipart agrees with Deno's own form parser on what both accept", async () => {
  await fc.assert(
    fc.asyncProperty(
      boundaryArb.filter((b) => !/['"()+,/:=?]/.test(b)),
      fc.array(partArb.map((p) => ({ ...p, style: "quoted" as const, repeated: false })), {
        minLength: 1,
        maxLength: 4,
      }),
      async (boundary, parts) => {
        fc.pre(delimiterFree(boundary, parts));
        // Deno's parser reads quoted names differently for backslashes and %22; compare plain names.
        fc.pre(parts.every((p) => p.file === undefined || /^[A-Za-z0-9 ._-]+$/.test(p.file)));
        const body = serialize(boundary, parts, "", "");
        const form = await new Response(body, {
          headers: { "content-type": `multipart/form-data; boundary=${boundary}` },
        }).formData();
        const ours = parseMultipart(body, boundary);
        const theirs = [...form.entries()];
        assert.equal(ours.length, theirs.length);
        for (let i = 0; i < ours.length; i++) {
          const [name, value] = theirs[i];
          assert.equal(ours[i].name, name);
          if (typeof value === "string") {
            assert.equal(ours[i].filename, undefined);
            assert.equal(dec.decode(ours[i].bytes), value);
          } else {
            assert.equal(ours[i].filename, value.name);
            assert.deepEqual(ours[i].bytes, new Uint8Array(await value.arrayBuffer()));
          }
        }
      },
    ),
    { numRuns: 200 },
  );
});

Deno.test("any bytes either parse or fail with a MultipartError", () => {
  const piece = fc.constantFrom(
    "--B",
    "\r\n",
    "\r\n\r\n",
    "--",
    "Content-Disposition: form-data; name=",
    '"',
    ";",
    "filename*=UTF-8''%",
    "x",
    ":",
  );
  fc.assert(
    fc.property(fc.array(piece, { maxLength: 30 }), (pieces) => {
      try {
        parseMultipart(enc.encode(pieces.join("")), "B");
      } catch (err) {
        assert.ok(err instanceof MultipartError, String(err));
      }
    }),
    { numRuns: 2000 },
  );
});

Deno.test("media type parameters: quoted values unescape, the first of a repeated one wins", () => {
  fc.assert(
    fc.property(fc.string({ unit: fc.constantFrom(...'ab;=" \\,'), maxLength: 20 }), (value) => {
      const quoted = `"${value.replace(/["\\]/g, (c) => `\\${c}`)}"`;
      const media = parseMediaType(`multipart/form-data; boundary=${quoted}; boundary=second`);
      assert.equal(media?.params.get("boundary"), value);
    }),
    { numRuns: 1000 },
  );
});

/** One part whose headers take exactly `size` bytes (before their blank line). */
function partWithHeaderBytes(size: number): Uint8Array {
  const start = 'Content-Disposition: form-data; name="file"; filename="';
  const end = '"';
  const name = "n".repeat(size - start.length - end.length);
  return enc.encode(`--B\r\n${start}${name}${end}\r\n\r\nbytes\r\n--B--\r\n`);
}

Deno.test("a part's headers may take up to MAX_PART_HEADER_BYTES", async (t) => {
  await t.step("at the cap and one below: parsed", () => {
    for (const size of [MAX_PART_HEADER_BYTES - 1, MAX_PART_HEADER_BYTES]) {
      const [part] = parseMultipart(partWithHeaderBytes(size), "B");
      assert.equal(dec.decode(part.bytes), "bytes", `${size} bytes`);
    }
  });
  await t.step("one above: refused, naming the cap", () => {
    assert.throws(
      () => parseMultipart(partWithHeaderBytes(MAX_PART_HEADER_BYTES + 1), "B"),
      (err) => err instanceof MultipartError && /headers exceed 8 KiB/.test(err.message),
    );
  });
  await t.step("a body that ends inside the headers is not terminated, whatever its size", () => {
    assert.throws(
      () => parseMultipart(enc.encode('--B\r\nContent-Disposition: form-data; name="a"'), "B"),
      /not terminated/,
    );
  });
});

Deno.test("hostile parameter lists are parsed in one pass", async (t) => {
  // A quadratic parser reads from each `;` to the end: ~n²/2 characters, seconds for 768 KiB (issue 19),
  // hours for 10 MiB. One pass takes milliseconds; the bound leaves a loaded machine a hundredfold.
  const BOUND_MS = 5000;
  for (const size of [768 * 1024, 10 * 1024 * 1024]) {
    await t.step(`a ${size / 1024} KiB Content-Type of ";;;;"`, () => {
      const header = `multipart/form-data; boundary=b${";".repeat(size)}`;
      const started = performance.now();
      const media = parseMediaType(header);
      const ms = performance.now() - started;
      assert.equal(media?.params.get("boundary"), "b");
      assert.ok(ms < BOUND_MS, `${ms.toFixed(0)} ms`);
    });
  }
  await t.step("a quoted value with every other character escaped", () => {
    const value = "\\a".repeat(512 * 1024);
    assert.equal(parseMediaType(`a/b; x="${value}"`)?.params.get("x"), "a".repeat(512 * 1024));
  });
});
