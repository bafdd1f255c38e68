/**
 * A Worker serving a small protocol over core/worker_rpc.ts, for its tests:
 * echoes, delays, throws coded and plain errors, emits events, and crashes.
 */
import { CodedError } from "../../core/errors.ts";
import { serveRpc, withTransfer } from "../../core/worker_rpc.ts";

export type TestProtocol = {
  echo: { arg: string; result: string };
  delay: { arg: { ms: number; value: number }; result: number };
  double: { arg: ArrayBuffer; result: ArrayBuffer };
  coded: { arg: string; result: never };
  plain: { arg: string; result: never };
  uncloneable: { arg: undefined; result: () => void };
  notify: { arg: number; result: undefined };
  crash: { arg: undefined; result: never };
};

export type TestEvents = { tick: number };

const { emit } = serveRpc<TestProtocol, TestEvents>({
  echo: (s) => s,
  delay: ({ ms, value }) => new Promise((resolve) => setTimeout(() => resolve(value), ms)),
  double: (buffer) => {
    const out = new Float32Array(buffer).map((x) => x * 2);
    return withTransfer(out.buffer, [out.buffer]);
  },
  coded: (message) => {
    class DecodeError extends CodedError {
      constructor(message: string) {
        super("decode_failed", message);
      }
    }
    throw new DecodeError(message);
  },
  plain: (message) => {
    throw new TypeError(message);
  },
  uncloneable: () => () => {},
  notify: (n) => {
    for (let i = 0; i < n; i++) emit("tick", i);
    return undefined;
  },
  crash: () => {
    setTimeout(() => {
      throw new Error("boom");
    }, 0);
    return new Promise<never>(() => {});
  },
});
