import type { ObservabilityVariables } from "../observability/middleware.ts";
import type { ConnectionInfo } from "../core/connection.ts";
import type { ApiKey } from "../access/key_file.ts";

/** Set by access control (routes/access.ts). */
export interface AccessVariables {
  /** The key the request was let through with; undefined on open routes and when no keys are configured. */
  apiKey: ApiKey | undefined;
}

/** Hono environment shared by every route: what the server hands each request, and the middleware's variables. */
export interface AppEnv {
  /** Absent for in-process requests (tests). */
  Bindings: Partial<ConnectionInfo>;
  Variables: ObservabilityVariables & AccessVariables;
}
