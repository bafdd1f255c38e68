/**
 * `deno task config:sync`: writes the parts of the Deno configuration that are
 * derived from other sources, so each is written once:
 * - deno.json's `permissions`, from tools/permission_sets.ts (which takes the
 *   environment list from config.ts's schema).
 *
 * `--check` writes nothing and exits 1, naming each stale file, when a
 * derived part differs from its sources (tests/permissions_test.ts runs it).
 */
import { PERMISSION_SETS } from "./permission_sets.ts";

const ROOT = new URL("../", import.meta.url);

/** A file this tool derives, with the text it should hold. */
export interface DerivedFile {
  path: string;
  text: string;
}

const json = (value: unknown) => JSON.stringify(value, null, 2) + "\n";

/** deno.json with its `permissions` replaced by the generated sets; every other key kept in place. */
export function denoJsonText(current: string): string {
  const config = JSON.parse(current) as Record<string, unknown>;
  if (!("permissions" in config)) throw new Error('deno.json has no "permissions" to replace');
  config.permissions = PERMISSION_SETS;
  return json(config);
}

/** Every derived file with the text it should hold now. */
export async function derivedFiles(): Promise<DerivedFile[]> {
  const current = await Deno.readTextFile(new URL("deno.json", ROOT));
  return [{ path: "deno.json", text: denoJsonText(current) }];
}

/** The derived files whose text on disk differs from what their sources give. */
export async function staleFiles(): Promise<string[]> {
  const stale: string[] = [];
  for (const file of await derivedFiles()) {
    const onDisk = await Deno.readTextFile(new URL(file.path, ROOT)).catch(() => undefined);
    if (onDisk !== file.text) stale.push(file.path);
  }
  return stale;
}

if (import.meta.main) {
  if (Deno.args.includes("--check")) {
    const stale = await staleFiles();
    if (stale.length > 0) {
      console.error(
        `Out of date: ${stale.join(", ")}. These are generated: edit config.ts's schema, ` +
          `EXTRA_VARIABLES or tools/permission_sets.ts, then run \`deno task config:sync\`.`,
      );
      Deno.exit(1);
    }
  } else {
    for (const file of await derivedFiles()) {
      await Deno.writeTextFile(new URL(file.path, ROOT), file.text);
      console.log(`Wrote ${file.path}`);
    }
  }
}
