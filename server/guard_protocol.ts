/**
 * The messages between the gateway's thread (./guard_thread.ts) and the guard's Worker
 * (./guard_worker.ts), in a module beneath both so neither imports the other.
 */
import type { AcceptErrorReason } from "./accept_loop.ts";
import type { ConnectionGuardOptions, DrainReport, RefusalReason } from "./connection_guard.ts";

export type WorkerOptions = Omit<
  ConnectionGuardOptions,
  "onRefused" | "onOpenChange" | "onAcceptError" | "clients"
>;

export type GuardRequest =
  | { type: "start"; options: WorkerOptions; table: SharedArrayBuffer }
  | { type: "drain"; timeoutMs: number };

export type GuardReply =
  | { type: "listening"; addr: Deno.NetAddr }
  | { type: "failed"; message: string }
  | { type: "refused"; reason: RefusalReason }
  | { type: "accept_error"; reason: AcceptErrorReason; message: string }
  | { type: "open"; open: number }
  | { type: "drained"; report: DrainReport };
