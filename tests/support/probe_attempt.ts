/**
 * What the permission probes (permission_probe.ts, edge_permission_probe.ts)
 * share: one attempt, reported as what Deno made of it.
 */
export type Outcome = "allowed" | "denied" | "failed";

/** Runs `action`: `denied` when a permission check refused it, `failed` for any other error. */
export async function attempt(action: () => unknown | Promise<unknown>): Promise<Outcome> {
  try {
    await action();
    return "allowed";
  } catch (err) {
    return err instanceof Deno.errors.NotCapable || err instanceof Deno.errors.PermissionDenied
      ? "denied"
      : "failed";
  }
}
