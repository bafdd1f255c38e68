/**
 * The file descriptor budget. Each client connection through the guard costs three descriptors (the
 * client's socket, the guard's connection to the HTTP server, and the server's side of it); without the
 * guard, one. When the process runs out, Deno's server stops accepting and parts of the runtime panic
 * (signal handlers, certificate loading), so MAX_CONNECTIONS is checked against the free descriptors at
 * startup.
 */

/** Descriptors the process holds besides client connections: model files, Workers, listeners, logs. */
export const RESERVED_DESCRIPTORS = 256;

/**
 * How many descriptors are free now, counted up to `want`: /dev/null is opened until `want` are open or
 * the process runs out, then all are closed. Deno gives no getrlimit, and reading /proc/self/limits needs
 * --allow-all, so the limit is measured rather than read. Never more than `want`: a process far from its
 * limit never comes near it. Undefined where /dev/null cannot be opened (no permission, not Unix).
 */
export function freeDescriptors(want: number): number | undefined {
  const files: Deno.FsFile[] = [];
  try {
    while (files.length < want) files.push(Deno.openSync("/dev/null", { read: true }));
    return files.length;
  } catch (err) {
    const code = (err as { code?: unknown }).code;
    return code === "EMFILE" || code === "ENFILE" ? files.length : undefined;
  } finally {
    for (const f of files) f.close();
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
  /** Descriptors free now (freeDescriptors), or undefined if unknown. */
  limit: number | undefined,
  /** Connections kept beyond the cap (the probe reserve), which need descriptors too. */
  extra = 0,
): Budget {
  if (limit === undefined) return { maxConnections };
  const fits = Math.floor((limit - RESERVED_DESCRIPTORS) / perConnection) - extra;
  if (fits < 1) {
    throw new RangeError(
      `Only ${limit} file descriptors are free (ulimit -n): too few for one connection; raise the limit by ${
        RESERVED_DESCRIPTORS + perConnection * (extra + 1) - limit
      }`,
    );
  }
  if (maxConnections <= fits) return { maxConnections };
  return {
    maxConnections: fits,
    warning: `MAX_CONNECTIONS=${maxConnections} needs ${
      (maxConnections + extra) * perConnection + RESERVED_DESCRIPTORS
    } file descriptors but ${limit} are free (ulimit -n): serving at most ${fits} connections (raise the limit or lower MAX_CONNECTIONS)`,
  };
}
