/**
 * Runs the connection guard in a Worker. The relay's system calls then use a
 * second core instead of the thread that runs the app: measured on /health at
 * c=50, the main thread's CPU per request through the guard equals the direct
 * figure, where an in-thread relay added ~40% (bench/RESULTS.md). Client
 * addresses cross in shared memory (./client_table.ts); refusals, the open
 * count and the drain's report as messages.
 */
import { ClientTable } from "./client_table.ts";
import type { ConnectionGuard, ConnectionGuardOptions, DrainReport } from "./connection_guard.ts";
import type { GuardReply, GuardRequest } from "./guard_protocol.ts";

/** The client table is the Worker's own, shared with this thread; none is passed in. */
export interface GuardThreadOptions extends Omit<ConnectionGuardOptions, "clients"> {
  /** The guard's thread died: connections are gone and no new ones are taken. Must not throw. */
  onCrash?: (message: string) => void;
}

/** Starts the guard in its own Worker; resolves once it listens, rejects if it cannot. */
export function guardConnectionsInWorker(options: GuardThreadOptions): Promise<ConnectionGuard> {
  const { onRefused, onOpenChange, onAcceptError, onCrash, ...plain } = options;
  // Telemetry and logging callbacks never break serving.
  const safely = <A>(f: ((arg: A) => void) | undefined, arg: A) => {
    try {
      f?.(arg);
    } catch { /* as documented: must not throw */ }
  };
  const table = new ClientTable();
  const worker = new Worker(new URL("./guard_worker.ts", import.meta.url), { type: "module" });
  const post = (message: GuardRequest) => worker.postMessage(message);
  let drained: ((report: DrainReport) => void) | undefined;

  return new Promise((resolve, reject) => {
    let started = false;
    worker.onerror = (event) => {
      event.preventDefault();
      if (!started) reject(new Error(`Connection guard failed to start: ${event.message}`));
      else safely(onCrash, event.message);
    };
    worker.onmessage = (event: MessageEvent<GuardReply>) => {
      const message = event.data;
      switch (message.type) {
        case "listening":
          started = true;
          resolve({
            addr: message.addr,
            clientOf: (port) => table.get(port),
            clientGone: (port) => table.goneSignal(port),
            drain(timeoutMs) {
              post({ type: "drain", timeoutMs });
              return new Promise<DrainReport>((r) => drained = r).finally(() => worker.terminate());
            },
          });
          break;
        case "failed":
          worker.terminate();
          reject(new Error(message.message));
          break;
        case "refused":
          safely(onRefused, message.reason);
          break;
        case "accept_error":
          try {
            onAcceptError?.(message.reason, message.message);
          } catch { /* as documented: must not throw */ }
          break;
        case "open":
          safely(onOpenChange, message.open);
          break;
        case "drained":
          drained?.(message.report);
          break;
      }
    };
    post({ type: "start", options: plain, table: table.buffer });
  });
}
