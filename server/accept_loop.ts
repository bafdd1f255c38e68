/**
 * Accepting connections so that no single connection can stop it. `for await
 * (const conn of listener)` ends at the first rejected accept, and accept
 * rejects for reasons that concern one connection only: a client that reset
 * before it was accepted (Deno reads the peer's address and gets ENOTCONN), an
 * aborted handshake, or no descriptor free for it just now. Only closing the
 * listener ends this loop.
 */

/** Why an accept failed; each is counted under `accept_errors_total{reason}`. */
export const ACCEPT_ERROR_REASONS = ["reset", "aborted", "descriptors", "other"] as const;
export type AcceptErrorReason = typeof ACCEPT_ERROR_REASONS[number];

/** Classifies an accept failure; undefined when the listener itself is closed. */
export function acceptErrorReason(err: unknown): AcceptErrorReason | undefined {
  if (err instanceof Deno.errors.BadResource || err instanceof Deno.errors.Interrupted) return undefined;
  if (err instanceof Deno.errors.NotConnected || err instanceof Deno.errors.ConnectionReset) return "reset";
  if (err instanceof Deno.errors.ConnectionAborted) return "aborted";
  const code = (err as { code?: unknown } | null)?.code;
  if (code === "EMFILE" || code === "ENFILE" || code === "ENOBUFS" || code === "ENOMEM") return "descriptors";
  return "other";
}

/**
 * A shortage of descriptors (or kernel memory) lasts until some connection closes: retrying at once would
 * spin a core. The wait doubles from the first to the last value while the shortage lasts.
 */
export const BACKOFF_FIRST_MS = 5;
export const BACKOFF_MAX_MS = 1000;

export interface AcceptLoopOptions {
  /** Called with each accepted connection; must not throw (a throw is reported as "other"). */
  onConnection: (conn: Deno.Conn) => void;
  /** Called for each failed accept with its reason and error; must not throw. */
  onError?: (reason: AcceptErrorReason, error: unknown) => void;
  /** Whether the listener was closed on purpose (then a BadResource ends the loop quietly). */
  closing: () => boolean;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * Accepts until the listener is closed. Resolves then; rejects only if the listener was closed by something
 * other than its owner (`closing()` false), since no connection can arrive any more and the owner must know.
 */
export async function acceptLoop(listener: Deno.Listener, options: AcceptLoopOptions): Promise<void> {
  const { onConnection, onError = () => {}, closing } = options;
  let backoff = 0;
  while (true) {
    let conn: Deno.Conn;
    try {
      conn = await listener.accept();
    } catch (err) {
      const reason = acceptErrorReason(err);
      if (reason === undefined) {
        if (closing()) return;
        throw new Error("The public listener closed unexpectedly", { cause: err });
      }
      try {
        onError(reason, err);
      } catch { /* telemetry never stops accepting */ }
      if (reason === "descriptors" || reason === "other") {
        backoff = backoff === 0 ? BACKOFF_FIRST_MS : Math.min(backoff * 2, BACKOFF_MAX_MS);
        await sleep(backoff);
      }
      continue;
    }
    backoff = 0;
    try {
      onConnection(conn);
    } catch (err) {
      try {
        conn.close();
      } catch { /* already closed */ }
      try {
        onError("other", err);
      } catch { /* as above */ }
    }
  }
}
