/** Which of a model's versions serve, by its version policy. */
import type { VersionPolicy } from "./model_config.ts";

export interface PolicyChoice {
  /** Present versions that should serve, highest first. */
  serve: number[];
  /** Versions the policy names that have no directory (a `specific` policy only), ascending. */
  missing: number[];
}

/** Applies `policy` to the versions present in the repository. */
export function selectVersions(present: readonly number[], policy: VersionPolicy): PolicyChoice {
  const sorted = [...new Set(present)].sort((a, b) => b - a);
  if ("latest" in policy) return { serve: sorted.slice(0, policy.latest.num_versions), missing: [] };
  if ("all" in policy) return { serve: sorted, missing: [] };
  const wanted = new Set(policy.specific.versions);
  const have = new Set(sorted);
  return {
    serve: sorted.filter((v) => wanted.has(v)),
    missing: [...wanted].filter((v) => !have.has(v)).sort((a, b) => a - b),
  };
}
