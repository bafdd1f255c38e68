/**
 * Request bodies: the size limit, and gzip/deflate decompressed as a stream with the limit on what they
 * decompress to (issue 20). The reference for the codings is Deno's own CompressionStream.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { contentDecoders, readBodyLimited } from "./body.ts";
import { ProblemError } from "./problem.ts";

async function compress(bytes: Uint8Array, format: CompressionFormat): Promise<Uint8Array<ArrayBuffer>> {
  const stream = new Blob([bytes as Uint8Array<ArrayBuffer>]).stream().pipeThrough(
    new CompressionStream(format),
  );
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

/** `repeat` MiB of zeros, compressed: a decompression bomb. */
async function bomb(repeat: number, format: CompressionFormat): Promise<Uint8Array<ArrayBuffer>> {
  const zeros = new Uint8Array(1 << 20);
  const stream = new ReadableStream<Uint8Array<ArrayBuffer>>({
    pull(controller) {
      if (repeat-- > 0) controller.enqueue(zeros);
      else controller.close();
    },
  }).pipeThrough(new CompressionStream(format));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

/** A request whose body arrives in the given pieces. */
function request(pieces: Uint8Array[], headers: Record<string, string>): Request {
  let i = 0;
  const body = new ReadableStream<Uint8Array>({
    pull(controller) {
      if (i < pieces.length) controller.enqueue(pieces[i++]);
      else controller.close();
    },
  });
  return new Request("http://gateway/predict", { method: "POST", body, headers });
}

async function refusal(p: Promise<unknown>): Promise<ProblemError> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof ProblemError, String(err));
    return err;
  }
  assert.fail("expected a refusal");
}

Deno.test("gzip and deflate bodies decompress to what was sent, however the bytes are split", async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.uint8Array({ maxLength: 50_000 }),
      fc.constantFrom<CompressionFormat>("gzip", "deflate"),
      fc.array(fc.integer({ min: 1, max: 5000 }), { maxLength: 20 }),
      async (bytes, format, cuts) => {
        const compressed = await compress(bytes, format);
        const pieces: Uint8Array[] = [];
        let at = 0;
        for (const cut of cuts) {
          if (at >= compressed.length) break;
          pieces.push(compressed.subarray(at, at + cut));
          at += cut;
        }
        pieces.push(compressed.subarray(at));
        const name = format === "gzip" ? "gzip" : "deflate";
        const body = await readBodyLimited(request(pieces, { "content-encoding": name }), 1 << 20);
        assert.deepEqual(body, bytes);
      },
    ),
    { numRuns: 60 },
  );
});

Deno.test("the limit applies to the decompressed size: at it, one below, one above", async () => {
  const limit = 100_000;
  for (const format of ["gzip", "deflate"] as const) {
    for (const size of [limit - 1, limit]) {
      const compressed = await compress(new Uint8Array(size).fill(7), format);
      const body = await readBodyLimited(request([compressed], { "content-encoding": format }), limit);
      assert.equal(body.byteLength, size);
    }
    const over = await compress(new Uint8Array(limit + 1).fill(7), format);
    const err = await refusal(readBodyLimited(request([over], { "content-encoding": format }), limit));
    assert.equal(err.code, "payload_too_large");
  }
});

Deno.test("a decompression bomb is refused at the limit, without inflating the rest", async () => {
  // 1 GiB of zeros in about 1 MB. Deno's DecompressionStream inflates a written chunk whole: fed as it
  // came, this took 32 s and 1 GiB of memory before the limit could be checked.
  for (const format of ["gzip", "deflate"] as const) {
    const compressed = await bomb(1024, format);
    assert.ok(compressed.byteLength < 1_100_000);
    const rss = Deno.memoryUsage().rss;
    const started = performance.now();
    const err = await refusal(
      readBodyLimited(request([compressed], { "content-encoding": format }), 10 << 20),
    );
    const ms = performance.now() - started;
    assert.equal(err.code, "payload_too_large");
    // Generous bounds on a shared machine; both are far from a 1 GiB inflation.
    assert.ok(ms < 5_000, `refused after ${ms.toFixed(0)} ms`);
    const grew = Deno.memoryUsage().rss - rss;
    assert.ok(grew < 200 << 20, `memory grew by ${(grew / 2 ** 20).toFixed(0)} MiB`);
  }
});

Deno.test("Content-Encoding: gzip, deflate, identity and lists of two; anything else is a 415", async (t) => {
  await t.step("accepted names, in any case, undone last first", () => {
    assert.deepEqual(contentDecoders(null), []);
    assert.deepEqual(contentDecoders("identity"), []);
    assert.deepEqual(contentDecoders("GZip"), ["gzip"]);
    assert.deepEqual(contentDecoders("x-gzip"), ["gzip"]);
    assert.deepEqual(contentDecoders(" deflate "), ["deflate"]);
    assert.deepEqual(contentDecoders("deflate, gzip"), ["gzip", "deflate"]);
    assert.deepEqual(contentDecoders("gzip, identity"), ["gzip"]);
  });
  await t.step("others, and more than two, are unsupported_encoding (415)", () => {
    for (const value of ["br", "zstd", "compress", "gzip, br", "gzip, gzip, gzip", "gzip;q=1"]) {
      assert.throws(() => contentDecoders(value), (err: unknown) => {
        assert.ok(err instanceof ProblemError);
        assert.equal(err.code, "unsupported_encoding", value);
        assert.equal(err.status, 415);
        return true;
      });
    }
  });
  await t.step("a megabyte-long header is refused naming the coding", () => {
    assert.throws(() => contentDecoders("x".repeat(1 << 20)), /is not supported/);
    assert.throws(() => contentDecoders(",".repeat(1 << 20) + "br"), /"br" is not supported/);
  });
  await t.step("both layers applied: gzip over deflate", async () => {
    const bytes = new TextEncoder().encode("twice compressed");
    const twice = await compress(await compress(bytes, "deflate"), "gzip");
    const body = await readBodyLimited(request([twice], { "content-encoding": "deflate, gzip" }), 1000);
    assert.deepEqual(body, bytes);
  });
});

Deno.test("corrupt or truncated compressed bodies are a 400", async () => {
  const good = await compress(new TextEncoder().encode("hello ".repeat(1000)), "gzip");
  for (const bytes of [new TextEncoder().encode("not gzip at all"), good.subarray(0, good.length - 8)]) {
    const err = await refusal(readBodyLimited(request([bytes], { "content-encoding": "gzip" }), 1 << 20));
    assert.equal(err.code, "bad_request");
    assert.match(err.detail, /not valid gzip data/);
  }
});
