/**
 * Multipart uploads exactly as real clients send them. Each body below is
 * byte-for-byte the shape its client produces (boundary style, part headers,
 * line endings, closing delimiter); every one must classify like a raw upload.
 */
import assert from "node:assert/strict";
import { captureLogs, fixture, readyApp } from "../tests/support/helpers.ts";
import { parseMediaType, parseMultipart } from "./multipart.ts";

const enc = new TextEncoder();

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

interface Shape {
  client: string;
  contentType: string;
  body: (photo: Uint8Array) => Uint8Array<ArrayBuffer>;
}

/** One `file` part with the given part headers, between a boundary's delimiters. */
const onePart = (boundary: string, headers: string, end = "\r\n") => (photo: Uint8Array) =>
  concat(`--${boundary}\r\n${headers}\r\n\r\n`, photo, `\r\n--${boundary}--${end}`);

const SHAPES: Shape[] = [
  {
    client: "Chromium / WebKit (mixed-case boundary)",
    contentType: "multipart/form-data; boundary=----WebKitFormBoundary7MA4YWxkTrZu0gW",
    body: onePart(
      "----WebKitFormBoundary7MA4YWxkTrZu0gW",
      'Content-Disposition: form-data; name="file"; filename="coffee.jpg"\r\nContent-Type: image/jpeg',
    ),
  },
  {
    client: "Firefox (dashes and digits)",
    contentType: "multipart/form-data; boundary=---------------------------9051914041544843365972754266",
    body: onePart(
      "---------------------------9051914041544843365972754266",
      'Content-Disposition: form-data; name="file"; filename="coffee.jpg"\r\nContent-Type: image/jpeg',
    ),
  },
  {
    client: "curl -F",
    contentType: "multipart/form-data; boundary=------------------------d74496d66958873e",
    body: onePart(
      "------------------------d74496d66958873e",
      'Content-Disposition: form-data; name="file"; filename="coffee.jpg"\r\nContent-Type: image/jpeg',
    ),
  },
  {
    client: "Python requests (hex boundary, no part Content-Type)",
    contentType: "multipart/form-data; boundary=0f8e2c3cfa1f4b7c9b61e5d0a3f2c7d4",
    body: onePart(
      "0f8e2c3cfa1f4b7c9b61e5d0a3f2c7d4",
      'Content-Disposition: form-data; name="file"; filename="coffee.jpg"',
    ),
  },
  {
    client: "Node undici FormData",
    contentType: "multipart/form-data; boundary=----formdata-undici-036416465670",
    body: onePart(
      "----formdata-undici-036416465670",
      'Content-Disposition: form-data; name="file"; filename="coffee.jpg"\r\nContent-Type: image/jpeg',
    ),
  },
  {
    client: "Go mime/multipart (CreateFormFile: application/octet-stream)",
    contentType:
      "multipart/form-data; boundary=3d6b6a416f9b5f4ab7b0e3c2a9f14d1c8e7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2",
    body: onePart(
      "3d6b6a416f9b5f4ab7b0e3c2a9f14d1c8e7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2",
      'Content-Disposition: form-data; name="file"; filename="coffee.jpg"\r\nContent-Type: application/octet-stream',
    ),
  },
  {
    client: "media type in mixed case, quoted boundary, charset parameter",
    contentType: 'Multipart/Form-Data; boundary="----WebKitFormBoundaryQ9x/Z+(q)"; charset=UTF-8',
    body: onePart(
      "----WebKitFormBoundaryQ9x/Z+(q)",
      'Content-Disposition: form-data; name="file"; filename="coffee.jpg"\r\nContent-Type: image/jpeg',
    ),
  },
  {
    client: "non-ASCII file name as RFC 8187 filename*",
    contentType: "multipart/form-data; boundary=XyZ123",
    body: onePart(
      "XyZ123",
      "Content-Disposition: form-data; name=\"file\"; filename*=UTF-8''caf%C3%A9%20cr%C3%A8me.jpg\r\n" +
        "Content-Type: image/jpeg",
    ),
  },
  {
    client: "a preamble, a text field first, and transport padding after the boundary",
    contentType: "multipart/form-data; boundary=simple",
    body: (photo) =>
      concat(
        "This is the preamble.\r\n--simple  \r\n",
        'Content-Disposition: form-data; name="note"\r\n\r\nhello\r\n--simple\r\n',
        'Content-Disposition: form-data; name="file"; filename="c.jpg"\r\nContent-Type: image/jpeg\r\n\r\n',
        photo,
        "\r\n--simple--\r\nepilogue",
      ),
  },
];

Deno.test("multipart uploads shaped as every real client sends them classify like a raw upload", async (t) => {
  await captureLogs("info");
  const { app } = await readyApp();
  const coffee = await fixture("images/coffee.jpg");
  const raw = await (await app.request("/predict", { method: "POST", body: coffee })).json();

  for (const shape of SHAPES) {
    await t.step(shape.client, async () => {
      const res = await app.request("/predict", {
        method: "POST",
        body: shape.body(coffee),
        headers: { "content-type": shape.contentType },
      });
      assert.equal(res.status, 200, await res.clone().text());
      const body = await res.json();
      assert.equal(body.prediction.class_id, raw.prediction.class_id);
      assert.deepEqual(body.top_k, raw.top_k);
    });
  }

  await t.step("Deno's own FormData, as fetch sends it", async () => {
    const form = new FormData();
    form.append("file", new Blob([coffee], { type: "image/jpeg" }), "coffee.jpg");
    const request = new Request("http://gateway.test/predict", { method: "POST", body: form });
    const res = await app.request("/predict", {
      method: "POST",
      body: await request.arrayBuffer(),
      headers: { "content-type": request.headers.get("content-type")! },
    });
    assert.equal(res.status, 200, await res.clone().text());
    assert.equal((await res.json()).prediction.class_id, raw.prediction.class_id);
  });

  await t.step("file names come back as sent: RFC 8187 and raw UTF-8", async () => {
    const b = "----WebKitFormBoundaryAbCdEf";
    const part = (disposition: string) =>
      concat(
        `--${b}\r\nContent-Disposition: form-data; name="file"; ${disposition}\r\n`,
        "\r\n",
        coffee,
        "\r\n",
      );
    const res = await app.request("/predict", {
      method: "POST",
      body: concat(
        part("filename*=UTF-8''caf%C3%A9.jpg"),
        part('filename="crème brûlée.jpg"'),
        `--${b}--\r\n`,
      ),
      headers: { "content-type": `multipart/form-data; boundary=${b}` },
    });
    assert.equal(res.status, 200, await res.clone().text());
    const body = await res.json();
    assert.deepEqual(body.results.map((r: { filename: string }) => r.filename), [
      "café.jpg",
      "crème brûlée.jpg",
    ]);
  });

  await t.step("malformed multipart bodies are a 400 that says why", async () => {
    const cases: Array<[string, Uint8Array<ArrayBuffer>, RegExp]> = [
      ["multipart/form-data", coffee, /no boundary parameter/],
      [
        "multipart/form-data; boundary=other",
        SHAPES[0].body(coffee),
        /does not contain the declared boundary/,
      ],
      [SHAPES[0].contentType, SHAPES[0].body(coffee).slice(0, 5000), /ends without the closing boundary/],
      // The boundary lowercased, as the gateway once did it: no longer matches the body.
      [SHAPES[0].contentType.toLowerCase(), SHAPES[0].body(coffee), /does not contain the declared boundary/],
    ];
    for (const [contentType, body, detail] of cases) {
      const res = await app.request("/predict", {
        method: "POST",
        body,
        headers: { "content-type": contentType },
      });
      assert.equal(res.status, 400, contentType);
      const problem = await res.json();
      assert.equal(problem.code, "bad_request");
      assert.match(problem.detail, detail);
    }
  });
});

Deno.test("parseMediaType keeps parameter values as sent", () => {
  assert.deepEqual(parseMediaType('MULTIPART/form-DATA ; Boundary="a\\"b; c" ; charset=utf-8'), {
    essence: "multipart/form-data",
    params: new Map([["boundary", 'a"b; c'], ["charset", "utf-8"]]),
  });
  assert.deepEqual(parseMediaType("image/jpeg"), { essence: "image/jpeg", params: new Map() });
  assert.equal(parseMediaType("not a type")?.essence, undefined);
  assert.equal(parseMediaType('a/b; x="unterminated'), undefined);
});

Deno.test("parseMultipart returns views of each part", () => {
  const body = enc.encode('--B\r\nContent-Disposition: form-data; name="a"\r\n\r\nx\r\ny\r\n--B--');
  const [part] = parseMultipart(body, "B");
  assert.equal(part.name, "a");
  assert.equal(part.filename, undefined);
  assert.equal(new TextDecoder().decode(part.bytes), "x\r\ny");
  assert.throws(() => parseMultipart(enc.encode("--B\r\n\r\nx\r\n--B--"), "B"), /no field name/);
});
