import assert from "node:assert/strict";
import { CONFIG_VARIABLES, ConfigError, loadConfig } from "./config.ts";

const parse = (env: Record<string, string>) => loadConfig((n) => env[n]);

Deno.test("config", async (t) => {
  await t.step("defaults match the documented table", () => {
    const c = parse({});
    assert.equal(c.PORT, 8000);
    assert.equal(c.HOST, "0.0.0.0");
    assert.equal(c.MODEL_SOURCE, "auto");
    assert.equal(c.MODEL_DIR, "./models");
    assert.equal(c.TOP_K, 5);
    assert.equal(c.MAX_BODY_BYTES, 10 * 1024 * 1024);
    assert.equal(c.MAX_IMAGE_PIXELS, 40_000_000);
    assert.equal(c.LOG_LEVEL, "info");
    assert.equal(c.EXIF_ORIENTATION, "apply");
    assert.equal(c.MODEL_PATH, undefined);
    assert.equal(c.SHUTDOWN_DELAY_MS, 0);
    assert.deepEqual(c.TRUSTED_PROXIES, []);
    assert.equal(c.INFERENCE_BACKEND, "native");
    assert.equal(c.MODEL_URL, undefined);
    assert.equal(c.MODEL_REPOSITORY, undefined);
    assert.equal(c.MODEL_CONTROL_MODE, "none");
    assert.equal(c.REPOSITORY_POLL_SECONDS, 10);
    assert.equal(c.MODEL_MEMORY_LIMIT, 0);
  });

  await t.step("repository variables: control modes take a repository; limits at the bounds", () => {
    const c = parse({ MODEL_CONTROL_MODE: "poll", MODEL_REPOSITORY: "./models/repository" });
    assert.deepEqual([c.MODEL_CONTROL_MODE, c.MODEL_REPOSITORY], ["poll", "./models/repository"]);
    assert.equal(parse({ REPOSITORY_POLL_SECONDS: "1" }).REPOSITORY_POLL_SECONDS, 1);
    assert.equal(parse({ REPOSITORY_POLL_SECONDS: "86400" }).REPOSITORY_POLL_SECONDS, 86400);
    const limit = (v: string) => parse({ MODEL_MEMORY_LIMIT: v }).MODEL_MEMORY_LIMIT;
    assert.equal(limit("0"), 0);
    assert.equal(limit("1048576"), 1048576);
    assert.equal(limit("512MiB"), 512 * 1024 ** 2);
    assert.equal(limit("1.5 GiB"), 1.5 * 1024 ** 3);
    assert.equal(limit("2KiB"), 2048);
  });

  await t.step(
    "TRUSTED_PROXIES takes IPv4 and IPv6 addresses and ranges, separated by commas or spaces",
    () => {
      assert.deepEqual(parse({ TRUSTED_PROXIES: "10.0.0.0/8, 2001:DB8::/32 127.0.0.2" }).TRUSTED_PROXIES, [
        "10.0.0.0/8",
        "2001:db8::/32",
        "127.0.0.2/32",
      ]);
    },
  );

  await t.step("values are coerced from strings", () => {
    const c = parse({ PORT: "9000", TOP_K: "3", MODEL_SOURCE: "synthetic", LOG_LEVEL: "debug" });
    assert.deepEqual([c.PORT, c.TOP_K, c.MODEL_SOURCE, c.LOG_LEVEL], [9000, 3, "synthetic", "debug"]);
  });

  await t.step("empty strings count as unset", () => {
    assert.equal(parse({ PORT: "" }).PORT, 8000);
  });

  const bad: Array<[Record<string, string>, RegExp]> = [
    [{ PORT: "abc" }, /PORT="abc" is invalid: expected an integer from 0 to 65535/],
    [{ PORT: "70000" }, /PORT="70000" is invalid: expected an integer from 0 to 65535/],
    [{ TOP_K: "0" }, /TOP_K="0" is invalid: expected an integer from 1 to 20/],
    [{ TOP_K: "2.5" }, /TOP_K="2.5" is invalid: expected an integer from 1 to 20/],
    [{ MODEL_SOURCE: "s3" }, /MODEL_SOURCE="s3" is invalid: expected one of auto, file, url, zoo, synthetic/],
    [{ INFERENCE_BACKEND: "gpu" }, /INFERENCE_BACKEND="gpu" is invalid: expected one of native, wasm/],
    [
      { MODEL_CONTROL_MODE: "auto" },
      /MODEL_CONTROL_MODE="auto" is invalid: expected one of none, poll, explicit/,
    ],
    [
      { MODEL_CONTROL_MODE: "poll" },
      /MODEL_REPOSITORY=\(unset\) is invalid: expected a directory path, required when MODEL_CONTROL_MODE=poll/,
    ],
    [
      { MODEL_CONTROL_MODE: "explicit" },
      /MODEL_REPOSITORY=\(unset\) is invalid: .*MODEL_CONTROL_MODE=explicit/,
    ],
    [
      { REPOSITORY_POLL_SECONDS: "0" },
      /REPOSITORY_POLL_SECONDS="0" is invalid: expected an integer from 1 to 86400/,
    ],
    [{ REPOSITORY_POLL_SECONDS: "86401" }, /REPOSITORY_POLL_SECONDS="86401" is invalid/],
    [{ MODEL_MEMORY_LIMIT: "4GB" }, /MODEL_MEMORY_LIMIT="4GB" is invalid: expected a size in bytes/],
    [{ MODEL_MEMORY_LIMIT: "-1" }, /MODEL_MEMORY_LIMIT="-1" is invalid/],
    [{ MODEL_MEMORY_LIMIT: "lots" }, /MODEL_MEMORY_LIMIT="lots" is invalid/],
    [
      { MODEL_SOURCE: "url" },
      /MODEL_URL=\(unset\) is invalid: expected a URL, required when MODEL_SOURCE=url/,
    ],
    [
      { MODEL_URL: "https://models.example/resnet50.onnx" },
      /MODEL_SHA256=\(unset\) is invalid: expected the model file's 64 hex digit SHA-256, required with MODEL_URL/,
    ],
    [
      { MODEL_URL: "file:///etc/passwd" },
      /MODEL_URL="file:\/\/\/etc\/passwd" is invalid: expected an http\(s\) URL/,
    ],
    [{ LOG_LEVEL: "loud" }, /LOG_LEVEL="loud" is invalid: expected one of trace, debug, info/],
    [
      { MODEL_SOURCE: "file" },
      /MODEL_PATH=\(unset\) is invalid: expected a path, required when MODEL_SOURCE=file/,
    ],
    [{ MAX_BODY_BYTES: "-1" }, /MAX_BODY_BYTES="-1" is invalid/],
    [{ EXIF_ORIENTATION: "rotate" }, /EXIF_ORIENTATION="rotate" is invalid: expected apply or ignore/],
    [{ MODEL_ZOO_URL: "ftp://x/y" }, /MODEL_ZOO_URL="ftp:\/\/x\/y" is invalid: expected an http\(s\) URL/],
    [{ MODEL_ZOO_SHA256: "XYZ" }, /MODEL_ZOO_SHA256="XYZ" is invalid: expected 64 lowercase hex digits/],
    [
      { TRUSTED_PROXIES: "10.0.0.0/8,10.0.0.0/33" },
      /TRUSTED_PROXIES="10.0.0.0\/8,10.0.0.0\/33" is invalid: expected a comma-separated list of IPv4 or IPv6 addresses or CIDR ranges \("10.0.0.0\/33" is neither\)/,
    ],
    [{ SHUTDOWN_DELAY_MS: "-5" }, /SHUTDOWN_DELAY_MS="-5" is invalid: expected an integer from 0 to 600000/],
  ];
  for (const [env, message] of bad) {
    await t.step(`rejects ${JSON.stringify(env)}`, () => {
      assert.throws(
        () => parse(env),
        (err: unknown) => err instanceof ConfigError && message.test(err.message),
      );
    });
  }

  await t.step("several bad values are reported in one message", () => {
    assert.throws(() => parse({ PORT: "x", TOP_K: "99" }), /PORT="x".*; TOP_K="99"/);
  });

  await t.step(".env.example documents every variable", async () => {
    const example = await Deno.readTextFile(new URL(".env.example", import.meta.url));
    for (const name of CONFIG_VARIABLES) assert.match(example, new RegExp(`^#? ?${name}=`, "m"), name);
  });
});
