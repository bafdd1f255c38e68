import type { ObservabilityVariables } from "../observability/middleware.ts";
import type { ConnectionInfo } from "../core/connection.ts";
import type { AccessVariables } from "./access.ts";

/** Hono environment shared by every route: what the server hands each request, and the middleware's variables. */
export interface AppEnv {
  /** Absent for in-process requests (tests). */
  Bindings: Partial<ConnectionInfo>;
  Variables: ObservabilityVariables & AccessVariables;
}
