/**
 * The mutants `deno task mutate` applies (tests/mutate.ts), one at a time.
 * Each is a small, type-correct change of the kind a developer makes by
 * mistake, in a module where the mistake would matter, with the tests that
 * should catch it. `find` must occur exactly once in `file`. A file that moved
 * is found by its name, and a snippet that moved to another module is found
 * there when exactly one source file holds it; otherwise the runner reports
 * the mutant stale and this list is updated.
 *
 * Kinds: `boundary` (a limit off by one, `>` for `>=`), `unusual` (a legal but
 * rare input handled wrongly), `state` (a transition or a state check lost),
 * `constant` (a wrong number or default), `ordering` (steps or operands in the
 * wrong order), `logic` (a condition or a check dropped).
 */
export interface Mutant {
  id: string;
  kind: "boundary" | "unusual" | "state" | "constant" | "ordering" | "logic";
  file: string;
  find: string;
  replace: string;
  tests: string[];
  why: string;
}

const BATCHER_TESTS = ["model/batcher_test.ts", "model/batcher_state_test.ts"];
const PREPROCESS_TESTS = ["image/preprocess_torchvision_test.ts", "image/preprocess_test.ts"];
const HEADER_TESTS = ["image/image_header_test.ts", "image/image_header_property_test.ts"];
const ADDRESS_TESTS = [
  "server/client_address_test.ts",
  "server/client_address_property_test.ts",
  "tests/client_address_test.ts",
];
const CONFIG_TESTS = ["config_test.ts", "config_boundary_test.ts"];
const FRAMING_TESTS = ["server/http_framing_test.ts", "server/http_framing_boundary_test.ts"];
const MULTIPART_TESTS = ["routes/multipart_boundary_test.ts", "routes/multipart_test.ts"];
const V2_CODEC_TESTS = ["routes/v2_codec_property_test.ts"];
const V2_TESTS = ["routes/v2_test.ts", "routes/v2_codec_property_test.ts"];

export const MUTANTS: Mutant[] = [
  // ---- model/batcher.ts
  {
    id: "batcher/full-batch-waits-for-delay",
    kind: "state",
    file: "model/batcher.ts",
    find: "if (full || waited >= this.#options.maxBatchDelayMs) {",
    replace: "if (waited >= this.#options.maxBatchDelayMs) {",
    tests: BATCHER_TESTS,
    why: "with MAX_BATCH_DELAY_MS > 0, a full batch waits for the delay instead of going at once",
  },
  {
    id: "batcher/full-one-early",
    kind: "boundary",
    file: "model/batcher.ts",
    find: "const full = this.#queue.length >= this.#options.maxBatchSize;",
    replace: "const full = this.#queue.length >= this.#options.maxBatchSize - 1;",
    tests: BATCHER_TESTS,
    why: "a batch one short of full is treated as full and skips the fill delay",
  },
  {
    id: "batcher/drain-ignores-running-batch",
    kind: "state",
    file: "model/batcher.ts",
    find: "if (this.queueDepth === 0 && this.#inFlight === 0) return Promise.resolve();",
    replace: "if (this.queueDepth === 0) return Promise.resolve();",
    tests: BATCHER_TESTS,
    why: "drain() resolves while a batch is still running with an empty queue",
  },
  {
    id: "batcher/notify-ignores-running-batch",
    kind: "state",
    file: "model/batcher.ts",
    find: "if (this.#draining && this.queueDepth === 0 && this.#inFlight === 0) {",
    replace: "if (this.#draining && this.queueDepth === 0) {",
    tests: BATCHER_TESTS,
    why: "a request leaving the queue ends the drain though another batch still runs",
  },
  {
    id: "batcher/queue-limit-off-by-one",
    kind: "boundary",
    file: "model/batcher.ts",
    find: "if (this.queueDepth >= this.#options.maxQueue) throw new OverloadedError(this.#options.maxQueue);",
    replace:
      "if (this.queueDepth > this.#options.maxQueue) throw new OverloadedError(this.#options.maxQueue);",
    tests: BATCHER_TESTS,
    why: "MAX_QUEUE + 1 requests are admitted",
  },
  {
    id: "batcher/batch-size-off-by-one",
    kind: "boundary",
    file: "model/batcher.ts",
    find: "const jobs = this.#queue.splice(0, this.#options.maxBatchSize);",
    replace: "const jobs = this.#queue.splice(0, this.#options.maxBatchSize + 1);",
    tests: BATCHER_TESTS,
    why: "a batch one larger than MAX_BATCH_SIZE reaches the model",
  },
  {
    id: "batcher/lifo",
    kind: "ordering",
    file: "model/batcher.ts",
    find: "const jobs = this.#queue.splice(0, this.#options.maxBatchSize);",
    replace: "const jobs = this.#queue.splice(-this.#options.maxBatchSize).reverse();",
    tests: BATCHER_TESTS,
    why: "the newest requests are served first (LIFO), starving the oldest",
  },
  {
    id: "batcher/retired-runner-comes-back",
    kind: "state",
    file: "model/batcher.ts",
    find: "      if (this.#runners.includes(runner)) this.#idle.push(runner);",
    replace: "      this.#idle.push(runner);",
    tests: BATCHER_TESTS,
    why: "a runner retired while it ran (its worker died) is handed work again when its batch ends",
  },
  {
    id: "batcher/cancel-not-removed",
    kind: "state",
    file: "model/batcher.ts",
    find: "        job.abort = () => this.#remove(job, new CancelledError());",
    replace: "        job.abort = () => job.reject(new CancelledError());",
    tests: BATCHER_TESTS,
    why: "a client that goes away is answered but its request stays queued and runs",
  },
  {
    id: "batcher/drain-admits-held-ticket",
    kind: "state",
    file: "model/batcher.ts",
    find: "    if (options.admission instanceof Ticket && options.admission.consume()) {",
    replace:
      "    if (!this.#draining && options.admission instanceof Ticket && options.admission.consume()) {",
    tests: BATCHER_TESTS,
    why: "a request admitted before SIGTERM is refused when it reaches the queue during the drain",
  },

  // ---- model/state.ts (shutdown)
  {
    id: "state/ready-during-drain",
    kind: "state",
    file: "model/state.ts",
    find: '    if (this.status !== "draining") this.status = "ready";',
    replace: '    this.status = "ready";',
    tests: ["tests/shutdown_state_test.ts"],
    why: "a model that finishes loading after SIGTERM puts the instance back in rotation",
  },
  {
    id: "state/draining-stops-serving",
    kind: "state",
    file: "model/state.ts",
    find: 'return this.status === "ready" || this.status === "draining" ? this.classifier : undefined;',
    replace: 'return this.status === "ready" ? this.classifier : undefined;',
    tests: ["tests/shutdown_state_test.ts"],
    why: "requests arriving in the shutdown delay are refused while the load balancer still sends them",
  },

  // ---- model/classifier.ts
  {
    id: "classifier/pixel-limit-exclusive",
    kind: "boundary",
    file: "model/classifier.ts",
    find: "if (header.width * header.height > this.#maxPixels)",
    replace: "if (header.width * header.height >= this.#maxPixels)",
    tests: ["model/classifier_boundary_test.ts", "routes/limits_boundary_test.ts"],
    why: "an image of exactly MAX_IMAGE_PIXELS (600x400 at 240000) is refused",
  },
  {
    id: "classifier/pixel-limit-width-only",
    kind: "logic",
    file: "model/classifier.ts",
    find: "if (header.width * header.height > this.#maxPixels)",
    replace: "if (Math.max(header.width, header.height) ** 2 > this.#maxPixels * 2)",
    tests: ["model/classifier_boundary_test.ts"],
    why: "the pixel count is estimated from the long side instead of width x height",
  },
  {
    id: "classifier/admit-all-keeps-partial",
    kind: "state",
    file: "model/classifier.ts",
    find: "      for (const a of held) a.release();\n      throw err;",
    replace: "      throw err;",
    tests: ["model/classifier_boundary_test.ts"],
    why:
      "a multi-image request refused half-way keeps the queue places it took, shrinking the queue for good",
  },

  // ---- request limits (routes/)
  {
    id: "limits/body-declared-at-limit",
    kind: "boundary",
    file: "routes/body.ts",
    find: "    if (n > limit) throw tooLarge(limit);",
    replace: "    if (n >= limit) throw tooLarge(limit);",
    tests: ["routes/limits_boundary_test.ts"],
    why: "a body whose Content-Length is exactly MAX_BODY_BYTES is refused",
  },
  {
    id: "limits/body-streamed-past-limit",
    kind: "boundary",
    file: "routes/body.ts",
    find: "      if (total > limit) {",
    replace: "      if (total > limit + 1) {",
    tests: ["routes/limits_boundary_test.ts"],
    why: "a streamed body one byte over MAX_BODY_BYTES is read",
  },
  {
    id: "limits/images-per-request",
    kind: "boundary",
    file: "routes/predict.ts",
    find: "  if (files.length > config.MAX_IMAGES_PER_REQUEST) {",
    replace: "  if (files.length >= config.MAX_IMAGES_PER_REQUEST) {",
    tests: ["routes/limits_boundary_test.ts"],
    why: "a form with exactly MAX_IMAGES_PER_REQUEST files is refused",
  },
  {
    id: "limits/v2-fp32-batch",
    kind: "boundary",
    file: "routes/v2.ts",
    find:
      "    if (n < 1 || n > max) throw bad(`Batch size must be from 1 to ${max}, got ${n}`);\n    const count",
    replace:
      "    if (n < 1 || n > max + 1) throw bad(`Batch size must be from 1 to ${max}, got ${n}`);\n    const count",
    tests: ["routes/v2_codec_property_test.ts"],
    why: "an FP32 batch one larger than MAX_IMAGES_PER_REQUEST is run",
  },
  {
    id: "limits/v2-image-batch",
    kind: "boundary",
    file: "routes/v2.ts",
    find:
      "    if (n < 1 || n > max) throw bad(`Batch size must be from 1 to ${max}, got ${n}`);\n    let items",
    replace:
      "    if (n < 1 || n >= max) throw bad(`Batch size must be from 1 to ${max}, got ${n}`);\n    let items",
    tests: ["routes/limits_boundary_test.ts"],
    why: "a v2 request of exactly MAX_IMAGES_PER_REQUEST images is refused",
  },
  {
    id: "limits/top-k-max",
    kind: "boundary",
    file: "routes/schemas.ts",
    find: '    .max(20, "an integer from 1 to 20")',
    replace: '    .max(19, "an integer from 1 to 20")',
    tests: ["routes/limits_boundary_test.ts"],
    why: "?top_k=20, the documented maximum, is refused",
  },

  // ---- image/preprocess.ts
  {
    id: "preprocess/crop-rounds-half-up",
    kind: "unusual",
    file: "image/preprocess.ts",
    find: "const left = roundHalfEven((rw - CROP_SIZE) / 2);",
    replace: "const left = Math.round((rw - CROP_SIZE) / 2);",
    tests: PREPROCESS_TESTS,
    why: "a 385-wide resize crops from 81 instead of 80 (Python rounds half to even)",
  },
  {
    id: "preprocess/crop-floors",
    kind: "unusual",
    file: "image/preprocess.ts",
    find: "const top = roundHalfEven((rh - CROP_SIZE) / 2);",
    replace: "const top = Math.floor((rh - CROP_SIZE) / 2);",
    tests: PREPROCESS_TESTS,
    why: "a 387-high resize crops from row 81 instead of 82",
  },
  {
    id: "preprocess/resize-rounds-long-side",
    kind: "unusual",
    file: "image/preprocess.ts",
    find: "if (width <= height) return [size, Math.trunc((size * height) / width)];",
    replace: "if (width <= height) return [size, Math.round((size * height) / width)];",
    tests: PREPROCESS_TESTS,
    why: "the long side is rounded where torchvision truncates",
  },
  {
    id: "preprocess/no-antialias",
    kind: "constant",
    file: "image/preprocess.ts",
    find: "const filterScale = Math.max(scale, 1);",
    replace: "const filterScale = 1;",
    tests: PREPROCESS_TESTS,
    why: "downscaling samples instead of averaging (antialias off)",
  },
  {
    id: "preprocess/channels-swapped",
    kind: "ordering",
    file: "image/preprocess.ts",
    find: "        out[o] = NORMALIZED[v0 < 0 ? 0 : v0 > 255 ? 255 : v0];",
    replace: "        out[o] = NORMALIZED[v2 < 0 ? 0 : v2 > 255 ? 255 : v2];",
    tests: PREPROCESS_TESTS,
    why: "the red plane takes the blue values (BGR)",
  },
  {
    id: "preprocess/rounding-bias",
    kind: "constant",
    file: "image/preprocess.ts",
    find: "const HALF = 1 << (PRECISION_BITS - 1);",
    replace: "const HALF = 0;",
    tests: PREPROCESS_TESTS,
    why: "the fixed-point passes truncate instead of rounding, one level darker than PIL half the time",
  },

  // ---- model/postprocess.ts
  {
    id: "postprocess/softmax-no-max-shift",
    kind: "unusual",
    file: "model/postprocess.ts",
    find: "for (let i = 0; i < row.length; i++) sum += out[i] = Math.exp(row[i] - max);",
    replace: "for (let i = 0; i < row.length; i++) sum += out[i] = Math.exp(row[i]);",
    tests: ["model/postprocess_test.ts", "model/postprocess_property_test.ts"],
    why: "large logits overflow exp to Infinity and NaN",
  },
  {
    id: "postprocess/softmax-float32-sum",
    kind: "constant",
    file: "model/postprocess.ts",
    find: "for (let i = 0; i < row.length; i++) out[i] /= sum;",
    replace: "for (let i = 0; i < row.length; i++) out[i] /= Math.fround(sum) * (1 + 2 ** -20);",
    tests: ["model/postprocess_test.ts", "model/postprocess_property_test.ts"],
    why: "probabilities that no longer sum to one by a few parts per million",
  },
  {
    id: "postprocess/topk-ties-reversed",
    kind: "ordering",
    file: "model/postprocess.ts",
    find: "    while (j > 0 && probabilities[ids[j - 1]] < p) {",
    replace: "    while (j > 0 && probabilities[ids[j - 1]] <= p) {",
    tests: ["model/postprocess_test.ts", "model/postprocess_property_test.ts"],
    why: "ties put the higher class id first",
  },
  {
    id: "postprocess/probability-tolerance",
    kind: "boundary",
    file: "model/postprocess.ts",
    find: "return Math.abs(sum - 1) <= tolerance;",
    replace: "return Math.abs(sum - 1) <= tolerance * 2;",
    tests: ["model/postprocess_test.ts", "model/postprocess_property_test.ts"],
    why: "rows summing to 1.0015 are taken for probabilities and not softmaxed",
  },

  // ---- config.ts
  {
    id: "config/int-min-exclusive",
    kind: "boundary",
    file: "config.ts",
    find: "    .min(min, `an integer from ${min} to ${max}`)",
    replace: "    .min(min + 1, `an integer from ${min} to ${max}`)",
    tests: CONFIG_TESTS,
    why: "every integer variable refuses its documented minimum",
  },
  {
    id: "config/int-max-inclusive-plus-one",
    kind: "boundary",
    file: "config.ts",
    find: "    .max(max, `an integer from ${min} to ${max}`)",
    replace: "    .max(max + 1, `an integer from ${min} to ${max}`)",
    tests: CONFIG_TESTS,
    why: "every integer variable accepts one above its maximum",
  },
  {
    id: "config/top-k-bound",
    kind: "constant",
    file: "config.ts",
    find: "TOP_K: int(1, 20, 5),",
    replace: "TOP_K: int(1, 10, 5),",
    tests: CONFIG_TESTS,
    why: "TOP_K's documented range 1-20 shrinks",
  },
  {
    id: "config/default-pixels",
    kind: "constant",
    file: "config.ts",
    find: "MAX_IMAGE_PIXELS: int(1, 1_000_000_000, 40_000_000),",
    replace: "MAX_IMAGE_PIXELS: int(1, 1_000_000_000, 4_000_000),",
    tests: CONFIG_TESTS,
    why: "a default differs from the documented one (40 MP)",
  },
  {
    id: "config/default-timeout",
    kind: "constant",
    file: "config.ts",
    find: "REQUEST_TIMEOUT_MS: int(1, 600_000, 5000),",
    replace: "REQUEST_TIMEOUT_MS: int(1, 600_000, 500),",
    tests: CONFIG_TESTS,
    why: "REQUEST_TIMEOUT_MS's default differs from the README and .env.example",
  },
  {
    id: "config/agreement-bound",
    kind: "boundary",
    file: "config.ts",
    find:
      'INT8_MIN_AGREEMENT: z.coerce.number({ error: "a number from 0 to 1" }).min(0, "a number from 0 to 1")\n    .max(1, "a number from 0 to 1")',
    replace:
      'INT8_MIN_AGREEMENT: z.coerce.number({ error: "a number from 0 to 1" }).min(0, "a number from 0 to 1")\n    .lt(1, "a number from 0 to 1")',
    tests: CONFIG_TESTS,
    why: "INT8_MIN_AGREEMENT=1 (require perfect agreement) is refused",
  },
  {
    id: "config/empty-is-value",
    kind: "unusual",
    file: "config.ts",
    find: 'if (v !== undefined && v !== "") raw[name] = v;',
    replace: "if (v !== undefined) raw[name] = v;",
    tests: CONFIG_TESTS,
    why: "an empty variable (PORT= in a compose file) is parsed instead of meaning unset",
  },

  // ---- server/client_address.ts
  {
    id: "address/cidr-partial-byte-mask",
    kind: "boundary",
    file: "server/client_address.ts",
    find: "const mask = (0xff << (8 - rest)) & 0xff;",
    replace: "const mask = (0xff << (7 - rest)) & 0xff;",
    tests: ADDRESS_TESTS,
    why: "a /17 range also takes the next /17",
  },
  {
    id: "address/cidr-whole-bytes-only",
    kind: "unusual",
    file: "server/client_address.ts",
    find: "  if (rest === 0) return true;\n",
    replace: "  return true;\n",
    tests: ADDRESS_TESTS,
    why: "prefixes that end inside a byte are matched by their whole bytes only",
  },
  {
    id: "address/rfc5952-first-run",
    kind: "ordering",
    file: "server/client_address.ts",
    find: "if (j - i > bestLen) [best, bestLen] = [i, j - i];",
    replace: "if (j - i >= bestLen) [best, bestLen] = [i, j - i];",
    tests: ADDRESS_TESTS,
    why: "of two equally long zero runs the last is shortened, not the first (RFC 5952 4.2.3)",
  },
  {
    id: "address/rfc5952-single-zero",
    kind: "boundary",
    file: "server/client_address.ts",
    find: "let best = -1, bestLen = 1;",
    replace: "let best = -1, bestLen = 0;",
    tests: ADDRESS_TESTS,
    why: "a single zero group is written :: (RFC 5952 4.2.2 forbids it)",
  },
  {
    id: "address/v4-leading-zeros",
    kind: "unusual",
    file: "server/client_address.ts",
    find: "if (!/^(0|[1-9]\\d{0,2})$/.test(parts[i])) return undefined;",
    replace: "if (!/^\\d{1,3}$/.test(parts[i])) return undefined;",
    tests: ADDRESS_TESTS,
    why: "010.0.0.1 is read as 10.0.0.1 (ambiguous: octal to some parsers)",
  },
  {
    id: "address/v4-octet-bound",
    kind: "boundary",
    file: "server/client_address.ts",
    find: "    if (v > 255) return undefined;",
    replace: "    if (v > 256) return undefined;",
    tests: ADDRESS_TESTS,
    why: "256 is taken for an octet",
  },
  {
    id: "address/v6-double-colon-zero-groups",
    kind: "unusual",
    file: "server/client_address.ts",
    find: "if (halves.length === 2 ? missing < 1 : missing !== 0) return undefined;",
    replace: "if (halves.length === 2 ? missing < 0 : missing !== 0) return undefined;",
    tests: ADDRESS_TESTS,
    why: ":: standing for no group at all (1:2:3:4::5:6:7:8) is accepted",
  },
  {
    id: "address/mapped-v4-prefix",
    kind: "boundary",
    file: "server/client_address.ts",
    find: "    if (prefix < 96) return undefined;",
    replace: "    if (prefix < 95) return undefined;",
    tests: ADDRESS_TESTS,
    why: "::ffff:0.0.0.0/95 becomes a negative IPv4 prefix",
  },
  {
    id: "address/xff-leftmost",
    kind: "ordering",
    file: "server/client_address.ts",
    find: "  for (let i = hops.length - 1; i >= 0; i--) {",
    replace: "  for (let i = 0; i < hops.length; i++) {",
    tests: ADDRESS_TESTS,
    why: "X-Forwarded-For is read from the left, where the client can forge it",
  },

  // ---- image/image_header.ts
  {
    id: "header/jpeg-later-app1-wins",
    kind: "unusual",
    file: "image/image_header.ts",
    find: "if (marker === 0xe1 && !sawExif && i + length <= b.length) {",
    replace: "if (marker === 0xe1 && i + length <= b.length) {",
    tests: HEADER_TESTS,
    why: "a second Exif APP1 overrides the first's orientation",
  },
  {
    id: "header/jpeg-no-fill-bytes",
    kind: "unusual",
    file: "image/image_header.ts",
    find: "    while (i < b.length && b[i] === 0xff) i++;",
    replace: "    i++;",
    tests: HEADER_TESTS,
    why: "fill bytes (FF FF ... before a marker) are taken for a marker",
  },
  {
    id: "header/jpeg-dht-as-frame",
    kind: "unusual",
    file: "image/image_header.ts",
    find: "marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc;",
    replace: "marker !== 0xc8 && marker !== 0xcc;",
    tests: HEADER_TESTS,
    why: "a Huffman table (DHT, C4) before the frame is read as the frame header",
  },
  {
    id: "header/jpeg-width-height-swapped",
    kind: "ordering",
    file: "image/image_header.ts",
    find: "      const height = (b[i + 3] << 8) | b[i + 4];\n      const width = (b[i + 5] << 8) | b[i + 6];",
    replace:
      "      const width = (b[i + 3] << 8) | b[i + 4];\n      const height = (b[i + 5] << 8) | b[i + 6];",
    tests: HEADER_TESTS,
    why: "SOF stores height first: swapped, every landscape JPEG reads as portrait",
  },
  {
    id: "header/webp-chunk-no-padding",
    kind: "unusual",
    file: "image/image_header.ts",
    find: "    i += 8 + size + (size & 1); // chunks are padded to an even length",
    replace: "    i += 8 + size;",
    tests: HEADER_TESTS,
    why: "an odd-length chunk's pad byte is taken for the next chunk's start",
  },
  {
    id: "header/vp8-scale-bits",
    kind: "constant",
    file: "image/image_header.ts",
    find: "    width = view.getUint16(26, true) & 0x3fff;",
    replace: "    width = view.getUint16(26, true);",
    tests: HEADER_TESTS,
    why: "VP8's 2-bit horizontal scale is read as part of the width",
  },
  {
    id: "header/vp8l-off-by-one",
    kind: "boundary",
    file: "image/image_header.ts",
    find: "    height = ((bits >>> 14) & 0x3fff) + 1;",
    replace: "    height = (bits >>> 14) & 0x3fff;",
    tests: HEADER_TESTS,
    why: "VP8L stores height - 1",
  },
  {
    id: "header/vp8x-24-bit",
    kind: "constant",
    file: "image/image_header.ts",
    find: "    width = (b[24] | (b[25] << 8) | (b[26] << 16)) + 1;",
    replace: "    width = (b[24] | (b[25] << 8)) + 1;",
    tests: HEADER_TESTS,
    why: "the VP8X canvas width's third byte is lost: a 70000-wide pixel flood reads as 4465 wide",
  },

  // ---- model/quantize.ts
  {
    id: "quantize/range-not-widened-to-zero",
    kind: "unusual",
    file: "model/quantize.ts",
    find: "  const lo = Math.min(min, 0);",
    replace: "  const lo = min;",
    tests: ["model/quantize_test.ts", "model/quantize_property_test.ts"],
    why: "a range that does not include zero (2..5) makes 0 unrepresentable",
  },
  {
    id: "quantize/zero-point-truncated",
    kind: "constant",
    file: "model/quantize.ts",
    find: "const zeroPoint = Math.min(255, Math.max(0, Math.round(-lo / scale)));",
    replace: "const zeroPoint = Math.min(255, Math.max(0, Math.trunc(-lo / scale)));",
    tests: ["model/quantize_test.ts", "model/quantize_property_test.ts"],
    why: "the zero point is truncated instead of rounded",
  },
  {
    id: "quantize/levels-256",
    kind: "constant",
    file: "model/quantize.ts",
    find: "  const scale = hi > lo ? (hi - lo) / 255 : 1;",
    replace: "  const scale = hi > lo ? (hi - lo) / 256 : 1;",
    tests: ["model/quantize_test.ts", "model/quantize_property_test.ts"],
    why: "uint8 has 255 steps, not 256",
  },
  {
    id: "quantize/weights-scale-128",
    kind: "constant",
    file: "model/quantize.ts",
    find: "    const scale = absMax > 0 ? absMax / 127 : 1;",
    replace: "    const scale = absMax > 0 ? absMax / 128 : 1;",
    tests: ["model/quantize_test.ts", "model/quantize_property_test.ts"],
    why: "weights scaled for 128 steps: the largest one clamps and is wrong by a step",
  },

  // ---- server/http_framing.ts
  {
    id: "framing/duplicate-content-length",
    kind: "unusual",
    file: "server/http_framing.ts",
    find: "    if (this.#contentLength >= 0 && this.#contentLength !== parsed) return false;\n",
    replace: "",
    tests: FRAMING_TESTS,
    why: "two Content-Length headers with different values are framed (request smuggling)",
  },
  {
    id: "framing/chunk-size-digits",
    kind: "boundary",
    file: "server/http_framing.ts",
    find: "if (++this.#sizeDigits > 13) return this.#fail(i);",
    replace: "if (++this.#sizeDigits > 16) return this.#fail(i);",
    tests: FRAMING_TESTS,
    why: "a chunk size beyond 2^53 loses precision and desynchronises the framing",
  },
  {
    id: "framing/te-not-final-chunked",
    kind: "ordering",
    file: "server/http_framing.ts",
    find: 'this.#chunked = codings[codings.length - 1].trim() === "chunked";',
    replace: 'this.#chunked = codings[0].trim() === "chunked";',
    tests: FRAMING_TESTS,
    why: "Transfer-Encoding: chunked, gzip is framed as chunked (only the final coding counts)",
  },
  {
    id: "framing/cl-ignored-with-te",
    kind: "ordering",
    file: "server/http_framing.ts",
    find: "      if (this.#transferEncoding) {\n        // A request",
    replace: "      if (this.#transferEncoding && this.#contentLength < 0) {\n        // A request",
    tests: FRAMING_TESTS,
    why: "with both Transfer-Encoding and Content-Length, Content-Length wins (RFC 9112 6.3: TE wins)",
  },
  {
    id: "framing/http10-keepalive",
    kind: "logic",
    file: "server/http_framing.ts",
    find: "this.connectionClose = close || (this.minorVersion === 0 && !keepAlive);",
    replace: "this.connectionClose = close;",
    tests: FRAMING_TESTS,
    why: "an HTTP/1.0 request without keep-alive is treated as persistent",
  },

  // ---- routes/multipart.ts
  {
    id: "multipart/filename-star-ignored",
    kind: "ordering",
    file: "routes/multipart.ts",
    find:
      'const filename = (star !== undefined ? decodeExtValue(star) : undefined) ?? disposition.get("filename");',
    replace:
      'const filename = disposition.get("filename") ?? (star !== undefined ? decodeExtValue(star) : undefined);',
    tests: MULTIPART_TESTS,
    why: "the ASCII filename wins over filename* (RFC 6266 says filename* does, when it can be decoded)",
  },
  {
    id: "multipart/repeated-param-last-wins",
    kind: "unusual",
    file: "routes/multipart.ts",
    find: "if (TOKEN.test(name) && !params.has(name)) params.set(name, value);",
    replace: "if (TOKEN.test(name)) params.set(name, value);",
    tests: MULTIPART_TESTS,
    why: "a repeated parameter's last value wins (a name smuggled past a proxy that read the first)",
  },
  {
    id: "multipart/boundary-70",
    kind: "boundary",
    file: "routes/multipart.ts",
    find: "if (boundary.length < 1 || boundary.length > 70) {",
    replace: "if (boundary.length < 1 || boundary.length >= 70) {",
    tests: MULTIPART_TESTS,
    why: "a boundary of exactly 70 characters (RFC 2046's maximum) is refused",
  },
  {
    id: "multipart/max-parts",
    kind: "boundary",
    file: "routes/multipart.ts",
    find: "if (parts.length >= maxParts) throw new MultipartError",
    replace: "if (parts.length > maxParts) throw new MultipartError",
    tests: MULTIPART_TESTS,
    why: "one part more than the limit is parsed",
  },

  // ---- the v2 codec (routes/v2*.ts)
  {
    id: "v2/binary-header-length-bound",
    kind: "boundary",
    file: "routes/v2_binary.ts",
    find: "!Number.isSafeInteger(n) || n > body.byteLength) {",
    replace: "!Number.isSafeInteger(n) || n >= body.byteLength) {",
    tests: V2_CODEC_TESTS,
    why: "a JSON header that is the whole body (no binary part) is refused",
  },
  {
    id: "v2/bytes-element-past-end",
    kind: "boundary",
    file: "routes/v2_binary.ts",
    find: "    if (at + length > bytes.byteLength) {",
    replace: "    if (at + length > bytes.byteLength + 1) {",
    tests: V2_CODEC_TESTS,
    why: "a BYTES element declared one byte longer than its data is cut short silently",
  },
  {
    id: "v2/fp32-byte-count",
    kind: "boundary",
    file: "routes/v2_binary.ts",
    find: "  if (bytes.byteLength !== count * 4) {",
    replace: "  if (bytes.byteLength < count * 4) {",
    tests: V2_CODEC_TESTS,
    why: "binary FP32 data longer than its shape is accepted",
  },
  {
    id: "v2/channels-unchecked",
    kind: "logic",
    file: "routes/v2.ts",
    find: "if (input.shape.length !== 4 || c !== 3 || h !== 224 || w !== 224) {",
    replace: "if (input.shape.length !== 4 || h !== 224 || w !== 224) {",
    tests: V2_TESTS,
    why: "an FP32 input of shape [1,1,224,224] carrying 150528 values is accepted",
  },
  {
    id: "v2/bytes-count-at-least",
    kind: "boundary",
    file: "routes/v2.ts",
    find: "      if (items.length !== n) {",
    replace: "      if (items.length < n) {",
    tests: V2_TESTS,
    why: "binary BYTES data holding more elements than the shape declares is accepted",
  },
];
