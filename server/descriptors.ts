/**
 * The file descriptor budget. Each client connection through the guard costs three descriptors (the
 * client's socket, the guard's connection to the HTTP server, and the server's side of it); without the
 * guard, one. When the process runs out, Deno's server stops accepting and parts of the runtime panic
 * (signal handlers, certificate loading), so MAX_CONNECTIONS is checked against RLIMIT_NOFILE at startup.
 */

/** Descriptors the process holds besides client connections: model files, Workers, listeners, logs. */
export const RESERVED_DESCRIPTORS = 256;

/** The soft RLIMIT_NOFILE from the text of /proc/self/limits; undefined if absent or unlimited. */
export function parseOpenFilesLimit(limits: string): number | undefined {
  const line = limits.split("\n").find((l) => l.startsWith("Max open files"));
  const soft = line?.slice("Max open files".length).trim().split(/\s+/)[0];
  if (!soft || !/^\d+$/.test(soft)) return undefined;
  return Number(soft);
}

/** Reads the soft RLIMIT_NOFILE (Linux); undefined where /proc is missing or unreadable. */
export function openFilesLimit(): number | undefined {
  try {
    return parseOpenFilesLimit(Deno.readTextFileSync("/proc/self/limits"));
  } catch {
    return undefined;
  }
}

export interface Budget {
  /** The connection cap to use. */
  maxConnections: number;
  /** Set when the configured cap did not fit: the sentence to log. */
  warning?: string;
}

/**
 * The cap that fits the limit: MAX_CONNECTIONS if it does, else as many connections as the descriptors
 * left after the reserve allow (with a warning). Throws when not even one connection fits.
 */
export function connectionBudget(
  maxConnections: number,
  perConnection: number,
  limit: number | undefined,
  /** Connections kept beyond the cap (the probe reserve), which need descriptors too. */
  extra = 0,
): Budget {
  if (limit === undefined) return { maxConnections };
  const fits = Math.floor((limit - RESERVED_DESCRIPTORS) / perConnection) - extra;
  if (fits < 1) {
    throw new RangeError(
      `The open-files limit (${limit}, ulimit -n) leaves no descriptor for a connection: raise it above ${
        RESERVED_DESCRIPTORS + perConnection * (extra + 1)
      }`,
    );
  }
  if (maxConnections <= fits) return { maxConnections };
  return {
    maxConnections: fits,
    warning: `MAX_CONNECTIONS=${maxConnections} needs ${
      (maxConnections + extra) * perConnection + RESERVED_DESCRIPTORS
    } file descriptors but the open-files limit is ${limit}: serving at most ${fits} connections (raise ulimit -n or lower MAX_CONNECTIONS)`,
  };
}
