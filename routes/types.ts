import type { ObservabilityVariables } from "../observability/middleware.ts";

/** Hono environment shared by every route. */
export interface AppEnv {
  Variables: ObservabilityVariables;
}
