/**
 * One typed request/reply protocol for every Worker of the house: calls with
 * ids, replies matched to them, transfers both ways, events pushed by the
 * Worker, and errors that cross with their name, code and message, so the
 * same error is told apart on both sides (`errorCode`, core/errors.ts).
 *
 * A protocol is a type: each method's argument and result.
 *
 *   type Echo = { echo: { arg: string; result: string } };
 *   // in the Worker:  serveRpc<Echo>({ echo: (s) => s });
 *   // in the host:    await new RpcClient<Echo>(worker).call("echo", "hi");
 *
 * When the Worker dies (an uncaught error, an unreadable message, or
 * `terminate`), every call in flight is rejected at once, never left hanging.
 */
import { CodedError, type ErrorCode, errorCode, errorMessage } from "./errors.ts";

/** Each method's argument and result. */
export type Protocol = Record<string, { arg: unknown; result: unknown }>;
/** Each event's data, pushed by the Worker without a call. */
export type Events = Record<string, unknown>;

/** How an error crosses: structured clone drops an Error's own fields and its class. */
export interface WireError {
  name: string;
  message: string;
  code?: ErrorCode;
}

type Request = { rpc: "call"; id: number; method: string; arg: unknown };
type Reply =
  | { rpc: "reply"; id: number; value: unknown }
  | { rpc: "reply"; id: number; error: WireError }
  | { rpc: "event"; event: string; data: unknown };

/** A value to post with the buffers to transfer (not copy) alongside it. */
export class Transfer<T> {
  constructor(readonly value: T, readonly transfer: Transferable[]) {}
}

/** Returns `value` from a handler (or emits it) with `transfer` moved, not copied. */
export function withTransfer<T>(value: T, transfer: Transferable[]): Transfer<T> {
  return new Transfer(value, transfer);
}

export function toWire(err: unknown): WireError {
  const code = errorCode(err);
  return {
    name: err instanceof Error ? err.name : "Error",
    message: errorMessage(err),
    ...(code ? { code } : {}),
  };
}

/** Rebuilds rich errors by code where the host wants its own class (for `instanceof` in old callers). */
export type Revivers = Partial<Record<ErrorCode, (message: string) => Error>>;

/** The error a WireError stands for: same name, code and message. */
export function fromWire(wire: WireError, revive: Revivers = {}): Error {
  const custom = wire.code ? revive[wire.code] : undefined;
  const err = custom
    ? custom(wire.message)
    : wire.code
    ? new CodedError(wire.code, wire.message)
    : new Error(wire.message);
  err.name = wire.name;
  return err;
}

export interface RpcClientOptions<E extends Events> {
  /** Names the Worker in the reasons of its death ("Inference worker crashed: ..."). Default "Worker". */
  name?: string;
  /** Handlers for the Worker's events. Each must not throw; one that does is ignored. */
  on?: { [K in keyof E]?: (data: E[K]) => void };
  /**
   * The error calls in flight are rejected with when the Worker goes, given why and whether it crashed
   * (or was terminated). Default: a `worker_crashed` CodedError.
   */
  crashError?: (reason: string, crashed: boolean) => Error;
  /** Called once when the Worker dies of itself (not on `terminate`), with why. Must not throw. */
  onCrash?: (reason: string) => void;
  revive?: Revivers;
}

interface Pending {
  resolve: (value: unknown) => void;
  reject: (err: Error) => void;
}

/** The host's side: calls into one Worker. */
export class RpcClient<P extends Protocol, E extends Events = Record<never, never>> {
  readonly #worker: Worker;
  readonly #options: RpcClientOptions<E>;
  readonly #pending = new Map<number, Pending>();
  #nextId = 1;
  #dead: string | undefined;
  #crashed = false;

  constructor(worker: Worker, options: RpcClientOptions<E> = {}) {
    this.#worker = worker;
    this.#options = options;
    worker.onmessage = (event: MessageEvent<Reply>) => this.#receive(event.data);
    const name = options.name ?? "Worker";
    worker.onerror = (event) => {
      event.preventDefault();
      this.#die(`${name} crashed: ${event.message || "uncaught error"}`, true);
    };
    worker.onmessageerror = () => this.#die(`${name} sent an unreadable message`, true);
  }

  /** Why the Worker is gone, if it is. */
  get dead(): string | undefined {
    return this.#dead;
  }

  /** Calls in flight. */
  get pending(): number {
    return this.#pending.size;
  }

  /** Calls `method`; `transfer` lists buffers of `arg` to move rather than copy. */
  call<M extends keyof P & string>(
    method: M,
    arg: P[M]["arg"],
    transfer: Transferable[] = [],
  ): Promise<P[M]["result"]> {
    if (this.#dead !== undefined) return Promise.reject(this.#crashError(this.#dead, this.#crashed));
    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      this.#pending.set(id, { resolve: resolve as (value: unknown) => void, reject });
      try {
        this.#worker.postMessage({ rpc: "call", id, method, arg } satisfies Request, transfer);
      } catch (err) {
        // Not cloneable, or a buffer already detached: this call fails, the Worker is fine.
        this.#pending.delete(id);
        reject(err instanceof Error ? err : new Error(String(err)));
      }
    });
  }

  /** Stops the Worker; calls in flight are rejected with `crashError(reason)`. */
  terminate(reason = `${this.#options.name ?? "Worker"} was terminated`): void {
    this.#die(reason, false);
  }

  #receive(message: Reply): void {
    if (message?.rpc === "event") {
      const handler = this.#options.on?.[message.event as keyof E];
      try {
        handler?.(message.data as E[keyof E]);
      } catch { /* as documented: handlers must not throw */ }
      return;
    }
    if (message?.rpc !== "reply") return;
    const pending = this.#pending.get(message.id);
    if (!pending) return;
    this.#pending.delete(message.id);
    if ("error" in message) pending.reject(fromWire(message.error, this.#options.revive));
    else pending.resolve(message.value);
  }

  #crashError(reason: string, crashed: boolean): Error {
    return this.#options.crashError?.(reason, crashed) ?? new CodedError("worker_crashed", reason);
  }

  #die(reason: string, crashed: boolean): void {
    if (this.#dead !== undefined) return;
    this.#dead = reason;
    this.#crashed = crashed;
    this.#worker.terminate();
    for (const p of this.#pending.values()) p.reject(this.#crashError(reason, crashed));
    this.#pending.clear();
    if (crashed) {
      try {
        this.#options.onCrash?.(reason);
      } catch { /* as documented: must not throw */ }
    }
  }
}

/** Handlers for each method; a result wrapped in `withTransfer` moves its buffers. */
export type Handlers<P extends Protocol> = {
  [M in keyof P]: (
    arg: P[M]["arg"],
  ) => P[M]["result"] | Transfer<P[M]["result"]> | Promise<P[M]["result"] | Transfer<P[M]["result"]>>;
};

/** What a Worker's scope offers the server side (its global scope, by default). */
export interface RpcScope {
  onmessage: ((event: MessageEvent) => unknown) | null;
  postMessage(message: unknown, transfer: Transferable[]): void;
}

/**
 * The Worker's side: answers calls with `handlers`, each call as it comes
 * (a handler that awaits lets the next call start). Returns `emit`, to push
 * events to the host.
 */
export function serveRpc<P extends Protocol, E extends Events = Record<never, never>>(
  handlers: Handlers<P>,
  scope: RpcScope = globalThis as unknown as RpcScope,
): { emit<K extends keyof E & string>(event: K, data: E[K] | Transfer<E[K]>): void } {
  const post = (message: Reply, transfer: Transferable[] = []) => {
    try {
      scope.postMessage(message, transfer);
    } catch (err) {
      // The value could not be cloned: answer the call with that instead of leaving it hanging.
      if (message.rpc === "reply" && !("error" in message)) {
        scope.postMessage({ rpc: "reply", id: message.id, error: toWire(err) } satisfies Reply, []);
      } else throw err;
    }
  };
  scope.onmessage = async (event: MessageEvent<Request>) => {
    const request = event.data;
    if (request?.rpc !== "call") return;
    const { id, method, arg } = request;
    try {
      const handler = Object.hasOwn(handlers, method) ? handlers[method] : undefined;
      if (!handler) throw new TypeError(`Unknown method ${method}`);
      const result = await handler(arg);
      if (result instanceof Transfer) post({ rpc: "reply", id, value: result.value }, result.transfer);
      else post({ rpc: "reply", id, value: result });
    } catch (err) {
      post({ rpc: "reply", id, error: toWire(err) });
    }
  };
  return {
    emit(event, data) {
      if (data instanceof Transfer) post({ rpc: "event", event, data: data.value }, data.transfer);
      else post({ rpc: "event", event, data });
    },
  };
}

/** Starts the Worker at `url`, makes one call, and stops it whatever the outcome. */
export async function callOnce<P extends Protocol, M extends keyof P & string>(
  url: URL,
  method: M,
  arg: P[M]["arg"],
  transfer: Transferable[] = [],
  options: RpcClientOptions<Record<never, never>> = {},
): Promise<P[M]["result"]> {
  const client = new RpcClient<P>(new Worker(url, { type: "module" }), options);
  try {
    return await client.call(method, arg, transfer);
  } finally {
    client.terminate();
  }
}
