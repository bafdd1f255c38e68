/**
 * The multipart parser at its limits and on legal-but-rare parameters: a
 * boundary of 1 and 70 characters (RFC 2046's range) and one more; the part
 * limit at its value and one above; a part carrying both filename* and
 * filename (RFC 6266: filename* wins when it decodes, filename otherwise); a
 * repeated parameter (the first wins, as the proxy in front most likely read).
 */
import assert from "node:assert/strict";
import { MultipartError, parseMediaType, parseMultipart } from "./multipart.ts";

const enc = new TextEncoder();

function form(boundary: string, parts: Array<{ disposition: string; body?: string }>): Uint8Array {
  const text = parts.map((p) =>
    `--${boundary}\r\nContent-Disposition: form-data; ${p.disposition}\r\n\r\n${p.body ?? "x"}\r\n`
  )
    .join("");
  return enc.encode(`${text}--${boundary}--\r\n`);
}

Deno.test("boundary length: 1 and 70 characters parse, 0 and 71 are refused", () => {
  for (const length of [1, 69, 70]) {
    const b = "b".repeat(length - 1) + "Z";
    const parts = parseMultipart(form(b, [{ disposition: 'name="file"' }]), b);
    assert.equal(parts.length, 1, `${length} characters`);
    assert.equal(new TextDecoder().decode(parts[0].bytes), "x");
  }
  for (const length of [0, 71]) {
    const b = "b".repeat(length);
    assert.throws(
      () => parseMultipart(form(b, [{ disposition: 'name="file"' }]), b),
      MultipartError,
      `${length}`,
    );
  }
});

Deno.test("the part limit: exactly maxParts parse, one more is refused", () => {
  for (const max of [1, 2, 5]) {
    const parts = (n: number) => Array.from({ length: n }, (_, i) => ({ disposition: `name="f${i}"` }));
    assert.equal(parseMultipart(form("B", parts(max)), "B", max).length, max);
    assert.equal(parseMultipart(form("B", parts(max - 1)), "B", max).length, max - 1);
    assert.throws(
      () => parseMultipart(form("B", parts(max + 1)), "B", max),
      new RegExp(`more than ${max} parts`),
    );
  }
});

Deno.test("filename* wins over filename in the same part when it decodes; filename otherwise", () => {
  const [both, reversed, broken] = parseMultipart(
    form("B", [
      { disposition: `name="file"; filename="fallback.jpg"; filename*=UTF-8''caf%C3%A9.jpg` },
      { disposition: `name="file"; filename*=UTF-8''na%C3%AFve.jpg; filename="fallback.jpg"` },
      // Not UTF-8 once decoded (a lone continuation byte): the plain name is used.
      { disposition: `name="file"; filename="plain.jpg"; filename*=UTF-8''%80.jpg` },
    ]),
    "B",
  );
  assert.equal(both.filename, "café.jpg");
  assert.equal(reversed.filename, "naïve.jpg");
  assert.equal(broken.filename, "plain.jpg");
});

Deno.test("a repeated parameter: the first value wins", () => {
  const [part] = parseMultipart(
    form("B", [{ disposition: 'name="first"; name="second"; filename="a"; filename="b"' }]),
    "B",
  );
  assert.deepEqual([part.name, part.filename], ["first", "a"]);
  assert.equal(
    parseMediaType("multipart/form-data; boundary=one; boundary=two")?.params.get("boundary"),
    "one",
  );
});
