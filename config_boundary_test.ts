/**
 * Every configuration variable, walked from the one table that defines it: the
 * zod schema. Each numeric variable is parsed at its default, at its minimum and
 * maximum, one step outside each, and between integers; each enumeration at
 * every member and at a near miss. The schema's defaults are then compared with
 * the two places operators read them (.env.example and the README's table), so a
 * changed default cannot go unnoticed in one of the three.
 */
import assert from "node:assert/strict";
import type { z } from "zod";
import { CONFIG_VARIABLES, ConfigError, configSchema, loadConfig } from "./config.ts";

interface NumberSpec {
  kind: "number";
  min: number;
  max: number;
  integer: boolean;
}
interface EnumSpec {
  kind: "enum";
  options: string[];
}
interface Variable {
  name: string;
  /** The default the schema applies when the variable is unset; undefined for optional ones. */
  fallback: unknown;
  hasDefault: boolean;
  spec: NumberSpec | EnumSpec | { kind: "other" };
}

/** Reads one variable's default and bounds out of the schema (zod 4 exposes them on its types). */
function describe(name: string, schema: z.ZodType): Variable {
  // deno-lint-ignore no-explicit-any
  let inner: any = schema;
  let hasDefault = false;
  let fallback: unknown = undefined;
  while (inner.def.type === "default" || inner.def.type === "optional") {
    if (inner.def.type === "default") {
      hasDefault = true;
      fallback = inner.def.defaultValue;
    }
    inner = inner.def.innerType;
  }
  if (inner.def.type === "number") {
    return {
      name,
      fallback,
      hasDefault,
      spec: { kind: "number", min: inner.minValue, max: inner.maxValue, integer: inner.isInt },
    };
  }
  if (inner.def.type === "enum") {
    return { name, fallback, hasDefault, spec: { kind: "enum", options: inner.options } };
  }
  return { name, fallback, hasDefault, spec: { kind: "other" } };
}

const VARIABLES = Object.entries(configSchema.shape).map(([name, s]) => describe(name, s as z.ZodType));

const parse = (env: Record<string, string>) => loadConfig((n) => env[n]);

/** What some members require beside them (MODEL_SOURCE=file needs MODEL_PATH, and so on). */
const COMPANIONS: Record<string, string> = {
  MODEL_PATH: "./models/resnet50.onnx",
  MODEL_URL: "https://models.example/resnet50.onnx",
  MODEL_SHA256: "0".repeat(64),
};

/** The ConfigError message for one bad value, or undefined when it parses. */
function refusal(name: string, value: string, others: Record<string, string> = {}): string | undefined {
  try {
    parse({ ...others, [name]: value });
    return undefined;
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    return err.message;
  }
}

const numbers = VARIABLES.filter((v): v is Variable & { spec: NumberSpec } => v.spec.kind === "number");
const enums = VARIABLES.filter((v): v is Variable & { spec: EnumSpec } => v.spec.kind === "enum");

Deno.test("the schema's table covers the limits the brief names", () => {
  // If one of these stops being a bounded number, the walk below silently loses it.
  for (
    const name of [
      "MAX_IMAGE_PIXELS",
      "MAX_BODY_BYTES",
      "MAX_IMAGES_PER_REQUEST",
      "MAX_BATCH_SIZE",
      "MAX_BATCH_DELAY_MS",
      "MAX_QUEUE",
      "REQUEST_TIMEOUT_MS",
      "BODY_TIMEOUT_MS",
      "HEADER_TIMEOUT_MS",
      "IDLE_TIMEOUT_MS",
      "SHUTDOWN_DELAY_MS",
      "SHUTDOWN_TIMEOUT_MS",
      "MAX_CONNECTIONS",
      "TOP_K",
      "PORT",
    ]
  ) {
    const v = numbers.find((n) => n.name === name);
    assert.ok(v, `${name} is a bounded number in the schema`);
    assert.ok(Number.isFinite(v.spec.min) && Number.isFinite(v.spec.max), `${name} has both bounds`);
    assert.ok(v.spec.min <= (v.fallback as number) && (v.fallback as number) <= v.spec.max, name);
  }
  assert.equal(VARIABLES.length, CONFIG_VARIABLES.length);
});

Deno.test("every numeric variable: default, at each bound, one outside, and between integers", async (t) => {
  for (const { name, fallback, hasDefault, spec } of numbers) {
    await t.step(`${name} [${spec.min}, ${spec.max}]`, () => {
      const what = spec.integer
        ? `an integer from ${spec.min} to ${spec.max}`
        : `a number from ${spec.min} to ${spec.max}`;
      if (hasDefault) assert.equal(parse({})[name as keyof z.infer<typeof configSchema>], fallback);
      // A step outside: 1 for integers, the smallest decimal a person would write for fractions.
      const step = spec.integer ? 1 : 0.001;
      for (const inside of [spec.min, spec.max, spec.min + step, spec.max - step]) {
        const value = String(Math.round(inside * 1000) / 1000);
        assert.equal(refusal(name, value), undefined, `${name}=${value} is accepted`);
        assert.equal(parse({ [name]: value })[name as keyof z.infer<typeof configSchema>], Number(value));
      }
      for (const outside of [spec.min - step, spec.max + step]) {
        const value = String(Math.round(outside * 1000) / 1000);
        assert.equal(
          refusal(name, value),
          `Invalid configuration: ${name}=${JSON.stringify(value)} is invalid: expected ${what}`,
        );
      }
      if (spec.integer) {
        const between = String(spec.min + 0.5);
        assert.match(refusal(name, between) ?? "accepted", new RegExp(`^Invalid configuration: ${name}=`));
      }
      assert.match(refusal(name, "ten") ?? "accepted", new RegExp(`expected ${what}$`));
    });
  }
});

Deno.test("every enumerated variable takes each member and nothing near it", async (t) => {
  for (const { name, fallback, spec } of enums) {
    await t.step(`${name}: ${spec.options.join(", ")}`, () => {
      assert.ok(spec.options.includes(fallback as string), `${name}'s default is a member`);
      for (const option of spec.options) {
        // Some members require another variable (MODEL_SOURCE=file needs MODEL_PATH): such a refusal
        // names that variable, never this one, and the member itself parses.
        const message = refusal(name, option, COMPANIONS);
        if (message === undefined) {
          assert.equal(
            parse({ ...COMPANIONS, [name]: option })[name as keyof z.infer<typeof configSchema>],
            option,
          );
        } else {
          assert.doesNotMatch(message, new RegExp(`[:;] ${name}=`), message);
          assert.equal(
            configSchema.shape[name as keyof typeof configSchema.shape].safeParse(option).success,
            true,
          );
        }
        // Case matters: `Info` or `FP32` is a typo an operator should hear about.
        if (option.toUpperCase() !== option) assert.notEqual(refusal(name, option.toUpperCase()), undefined);
        assert.notEqual(refusal(name, `${option}x`), undefined, `${name}=${option}x is refused`);
      }
    });
  }
});

/** `NAME=value` lines of .env.example that are not commented out. */
async function envExample(): Promise<Map<string, string>> {
  const text = await Deno.readTextFile(new URL("./.env.example", import.meta.url));
  const values = new Map<string, string>();
  for (const line of text.split("\n")) {
    const m = /^([A-Z][A-Z0-9_]*)=(.*)$/.exec(line.trim());
    if (m) values.set(m[1], m[2]);
  }
  return values;
}

/** The README configuration table's rows: variable -> [default column, accepts column]. */
async function readmeTable(): Promise<Map<string, [string, string]>> {
  const text = await Deno.readTextFile(new URL("./README.md", import.meta.url));
  const rows = new Map<string, [string, string]>();
  for (const line of text.split("\n")) {
    const m = /^\|\s*`([A-Z][A-Z0-9_*]*)`\s*\|([^|]*)\|([^|]*)\|\s*$/.exec(line);
    if (m) rows.set(m[1], [m[2].trim(), m[3].trim()]);
  }
  return rows;
}

Deno.test(".env.example shows every schema default, and only the schema's", async () => {
  const example = await envExample();
  for (const { name, fallback, hasDefault } of VARIABLES) {
    const shown = example.get(name);
    if (!hasDefault || (Array.isArray(fallback) && fallback.length === 0)) {
      assert.equal(shown, undefined, `${name} has no default, so .env.example leaves it commented out`);
      continue;
    }
    assert.notEqual(shown, undefined, `.env.example shows ${name}'s default`);
    // Parsed, so `10485760` and 10 * MiB compare equal; and as the schema would read it.
    const parsed = parse({ [name]: shown! })[name as keyof z.infer<typeof configSchema>];
    assert.deepEqual(parsed, fallback, `${name}: .env.example says ${shown}, the schema ${fallback}`);
  }
});

Deno.test("the README's table shows every literal schema default and the ranges it states", async () => {
  const table = await readmeTable();
  let ranges = 0;
  for (const { name, fallback, hasDefault, spec } of VARIABLES) {
    const row = table.get(name) ?? (name.startsWith("OTEL_") ? table.get("OTEL_*") : undefined);
    assert.ok(row, `the README's table has a row for ${name}`);
    if (name.startsWith("OTEL_")) continue; // documented as OpenTelemetry's, in docs/observability.md
    const [shown, accepts] = row;
    const literal = /^`([^`]*)`/.exec(shown);
    if (hasDefault && literal && (typeof fallback === "number" || typeof fallback === "string")) {
      assert.equal(
        literal[1],
        String(fallback),
        `${name}: the README says ${literal[1]}, the schema ${fallback}`,
      );
    } else if (!hasDefault) {
      assert.match(shown, /^unset/, `${name} has no default, so the README says unset`);
    }
    // Ranges the README states ("1–20", "0–65535", "1 KiB – 1 GiB") are the schema's bounds.
    const range = /^(\d+(?:\.\d+)?)\s*(KiB|MiB|GiB)?\s*[–-]\s*(\d+(?:\.\d+)?)\s*(KiB|MiB|GiB)?/.exec(accepts);
    if (range && spec.kind === "number") {
      const unit = (u: string | undefined) => ({ KiB: 1024, MiB: 1024 ** 2, GiB: 1024 ** 3 })[u ?? ""] ?? 1;
      assert.deepEqual(
        [Number(range[1]) * unit(range[2]), Number(range[3]) * unit(range[4])],
        [spec.min, spec.max],
        `${name}: the README's range is the schema's`,
      );
      ranges++;
    }
  }
  assert.ok(ranges >= 4, `the README states ${ranges} ranges`);
});
