/** `deno task model:synth` and `model:fetch` as an operator runs them (the real task, its permissions). */
import assert from "node:assert/strict";

const ROOT = new URL("../", import.meta.url);

Deno.test("the model tasks refuse a bad value as deno task start does: one line naming it, exit 2", async (t) => {
  for (const task of ["model:synth", "model:fetch"]) {
    await t.step(task, async () => {
      // Refused before anything is built or downloaded.
      const out = await new Deno.Command("deno", {
        args: ["task", "--quiet", task],
        cwd: ROOT,
        env: { NO_COLOR: "1", TOP_K: "50" },
        stdout: "piped",
        stderr: "piped",
      }).output();
      const stderr = new TextDecoder().decode(out.stderr).trimEnd();
      assert.equal(out.code, 2, stderr);
      assert.equal(stderr, 'Invalid configuration: TOP_K="50" is invalid: expected an integer from 1 to 20');
    });
  }
});
