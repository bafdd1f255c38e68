import assert from "node:assert/strict";
import { ClientTable } from "./client_table.ts";

const client = (port: number): Deno.NetAddr => ({ transport: "tcp", hostname: "192.0.2.7", port });
const tick = () => new Promise((r) => setTimeout(r, 1));

Deno.test("ClientTable.goneSignal", async (t) => {
  await t.step("aborts when the guard marks the client gone, once per connection", async () => {
    const table = new ClientTable();
    table.set(40001, client(5555));
    const signal = table.goneSignal(40001)!;
    assert.equal(table.goneSignal(40001), signal, "requests on one connection share its signal");
    assert.equal(signal.aborted, false);
    table.markGone(40001);
    await tick();
    assert.equal(signal.aborted, true);
    assert.equal(table.goneSignal(40001)!.aborted, true, "asked after the client left: aborted at once");
  });

  await t.step("a new connection on the same port is not the old one", async () => {
    const table = new ClientTable();
    table.set(40002, client(1));
    const first = table.goneSignal(40002)!;
    table.delete(40002);
    await tick();
    assert.equal(first.aborted, true, "a closed connection's client is gone");
    assert.equal(table.goneSignal(40002), undefined, "no connection recorded");
    table.set(40002, client(2));
    const second = table.goneSignal(40002)!;
    await tick();
    assert.equal(second.aborted, false);
  });

  await t.step("the mark crosses threads through the shared table", async () => {
    const table = new ClientTable();
    table.set(40003, client(3));
    const signal = table.goneSignal(40003)!;
    // Another thread's view of the same memory, as the guard's Worker has it.
    new ClientTable(table.buffer).markGone(40003);
    await tick();
    assert.equal(signal.aborted, true);
  });
});
