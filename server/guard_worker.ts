/**
 * The connection guard's own thread. Relaying bytes costs system calls and
 * loopback TCP work per request; here it runs beside the event loop that
 * serves the app instead of on it (server/guard_thread.ts starts it).
 */
/// <reference lib="deno.worker" />
import { ClientTable } from "./client_table.ts";
import { type ConnectionGuard, guardConnections } from "./connection_guard.ts";
import type { GuardReply, GuardRequest } from "./guard_protocol.ts";

let guard: ConnectionGuard | undefined;
const reply = (message: GuardReply) => self.postMessage(message);

self.onmessage = async (event: MessageEvent<GuardRequest>) => {
  const message = event.data;
  if (message.type === "start") {
    try {
      guard = guardConnections({
        ...message.options,
        clients: new ClientTable(message.table),
        onRefused: (reason) => reply({ type: "refused", reason }),
        onOpenChange: (open) => reply({ type: "open", open }),
        onAcceptError: (reason, message) => reply({ type: "accept_error", reason, message }),
      });
      reply({ type: "listening", addr: guard.addr });
    } catch (err) {
      reply({ type: "failed", message: err instanceof Error ? err.message : String(err) });
    }
  } else if (message.type === "drain" && guard) {
    reply({ type: "drained", report: await guard.drain(message.timeoutMs) });
  }
};
