/**
 * The key set being served, reloaded from API_KEYS_FILE when the file
 * changes. The file is stat'ed every `intervalMs` (mtime, ctime, size, inode):
 * polling sees an editor's in-place write, `mv new keys.json` (a new inode)
 * and Kubernetes' Secret updates (a symlink swapped to a new directory) alike,
 * where file watchers miss renames of the watched path. A changed file is read
 * and parsed whole; one that does not parse, or has gone, leaves the last good
 * set serving and is reported once per version, never once per poll.
 */
import { type KeySet, parseKeyFile } from "./key_file.ts";

/** What the store last saw, for metrics and logs. */
export interface KeyStoreStatus {
  /** Keys in the set being served. */
  keys: number;
  /** False while the file on disk is broken or missing and an older set is served. */
  fileValid: boolean;
  /** When the set being served was loaded (ms since the epoch). */
  loadedAt: number;
  /** Why the file on disk is not being served, when fileValid is false. */
  error?: string;
}

export interface KeyStoreEvents {
  /** A new set is being served (also on the first load). */
  onLoad?(set: KeySet, status: KeyStoreStatus): void;
  /** The file changed and cannot be served; once per broken version. */
  onError?(message: string, status: KeyStoreStatus): void;
}

export interface KeyStoreOptions extends KeyStoreEvents {
  /** How often the file is stat'ed; 1 s by default. */
  intervalMs?: number;
  /** false: never by itself, only when poll() is called (tests). */
  watch?: boolean;
}

/** Thrown when the file cannot be served at startup; the message names the variable. */
export class KeyStoreError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "KeyStoreError";
  }
}

/** The stat fields that change when a file's contents may have. */
function signature(info: Deno.FileInfo): string {
  return [info.mtime?.getTime(), info.ctime?.getTime(), info.size, info.ino, info.dev].join(":");
}

async function readVersion(path: string): Promise<{ signature: string; bytes: Uint8Array<ArrayBuffer> }> {
  // stat before reading: a write landing in between changes the signature, so the next poll reads again.
  const info = await Deno.stat(path);
  return { signature: signature(info), bytes: await Deno.readFile(path) };
}

function describe(err: unknown): string {
  if (err instanceof Deno.errors.NotFound) return "the file does not exist";
  if (err instanceof Deno.errors.PermissionDenied || err instanceof Deno.errors.NotCapable) {
    return `the file cannot be read (${err.message})`;
  }
  return err instanceof Error ? err.message : String(err);
}

export class KeyStore {
  #set: KeySet;
  #status: KeyStoreStatus;
  #signature: string;
  /** The signature last reported broken, so a broken version is reported once. */
  #reported: string | undefined;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #polling: Promise<void> | undefined;
  #closed = false;
  readonly #events: KeyStoreEvents;
  readonly #intervalMs: number;

  private constructor(
    readonly path: string,
    set: KeySet,
    sig: string,
    options: KeyStoreOptions,
  ) {
    this.#set = set;
    this.#signature = sig;
    this.#events = options;
    this.#intervalMs = options.intervalMs ?? 1000;
    this.#status = { keys: set.keys.length, fileValid: true, loadedAt: Date.now() };
  }

  /**
   * Loads `path` (the value of API_KEYS_FILE) and starts watching it. A file
   * that is missing, unreadable or invalid stops here with a KeyStoreError.
   */
  static async open(path: string, options: KeyStoreOptions = {}): Promise<KeyStore> {
    let version;
    try {
      version = await readVersion(path);
    } catch (err) {
      throw new KeyStoreError(`API_KEYS_FILE=${path}: ${describe(err)}`, { cause: err });
    }
    let set: KeySet;
    try {
      set = await parseKeyFile(version.bytes);
    } catch (err) {
      throw new KeyStoreError(`API_KEYS_FILE=${path} is invalid: ${(err as Error).message}`, {
        cause: err,
      });
    }
    const store = new KeyStore(path, set, version.signature, options);
    options.onLoad?.(set, store.status);
    if (options.watch !== false) store.#schedule();
    return store;
  }

  /** The set being served. */
  get keys(): KeySet {
    return this.#set;
  }

  get status(): KeyStoreStatus {
    return { ...this.#status };
  }

  /** Checks the file once and loads it if it changed; never throws. Concurrent calls share one check. */
  poll(): Promise<void> {
    this.#polling ??= this.#check().finally(() => (this.#polling = undefined));
    return this.#polling;
  }

  /** Stops watching the file. */
  close(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#closed = true;
  }

  #schedule(): void {
    if (this.#closed) return;
    const timer = setTimeout(() => void this.poll().finally(() => this.#schedule()), this.#intervalMs);
    // Watching the file must not keep a process alive that is otherwise done.
    Deno.unrefTimer(timer);
    this.#timer = timer;
  }

  async #check(): Promise<void> {
    let version;
    try {
      const info = await Deno.stat(this.path);
      if (signature(info) === this.#signature) return;
      version = await readVersion(this.path);
    } catch (err) {
      this.#fail("gone", describe(err));
      return;
    }
    if (version.signature === this.#signature) return;
    try {
      const set = await parseKeyFile(version.bytes);
      this.#signature = version.signature;
      this.#reported = undefined;
      // Rewritten with the same bytes (touch, a config sync): nothing to load.
      if (set.version === this.#set.version && this.#status.fileValid) return;
      this.#set = set;
      this.#status = { keys: set.keys.length, fileValid: true, loadedAt: Date.now() };
      this.#events.onLoad?.(set, this.status);
    } catch (err) {
      this.#fail(version.signature, (err as Error).message);
    }
  }

  #fail(version: string, message: string): void {
    this.#status = { ...this.#status, fileValid: false, error: message };
    // Not read again until it changes; fixed back to the served bytes, it is read and marked valid.
    this.#signature = version;
    if (this.#reported === version) return;
    this.#reported = version;
    this.#events.onError?.(`API_KEYS_FILE=${this.path}: ${message}`, this.status);
  }
}
