import assert from "node:assert/strict";
import { formatCidr, parseCidr, parseIp } from "../core/ip_address.ts";
import { clientAddress, TrustedProxies } from "./client_address.ts";

const peer = (hostname: string, port = 40000): Deno.NetAddr => ({ transport: "tcp", hostname, port });

Deno.test("parseIp and parseCidr read IPv4, IPv6 and ranges, and refuse the rest", async (t) => {
  await t.step("addresses", () => {
    assert.deepEqual([...parseIp("192.0.2.7")!], [192, 0, 2, 7]);
    assert.deepEqual([...parseIp("::ffff:192.0.2.7")!], [192, 0, 2, 7], "IPv4-mapped is IPv4");
    assert.equal(parseIp("2001:db8::1")!.length, 16);
    assert.deepEqual(parseIp("[fe80::1%eth0]"), parseIp("fe80::1"));
    for (const bad of ["", "1.2.3", "1.2.3.256", "01.2.3.4", "1::2::3", "2001:db8:::1", "12345::", "x"]) {
      assert.equal(parseIp(bad), undefined, bad);
    }
  });

  await t.step("ranges", () => {
    assert.equal(formatCidr(parseCidr("10.0.0.0/8")!), "10.0.0.0/8");
    assert.equal(formatCidr(parseCidr("2001:DB8::/32")!), "2001:db8::/32");
    assert.equal(formatCidr(parseCidr("127.0.0.2")!), "127.0.0.2/32");
    assert.equal(formatCidr(parseCidr("::1")!), "::1/128");
    assert.equal(formatCidr(parseCidr("::ffff:10.0.0.0/104")!), "10.0.0.0/8");
    for (const bad of ["10.0.0.0/33", "::/129", "10.0.0.0/", "10.0.0.0/x", "example.com", "10.0.0.0/8/8"]) {
      assert.equal(parseCidr(bad), undefined, bad);
    }
  });

  await t.step("membership, including prefixes that end inside a byte", () => {
    const trusted = new TrustedProxies(["10.1.0.0/17", "2001:db8::/32", "127.0.0.2"]);
    assert.ok(trusted.has("10.1.127.255"));
    assert.ok(!trusted.has("10.1.128.0"));
    assert.ok(trusted.has("2001:db8:ffff::1"));
    assert.ok(!trusted.has("2001:db9::1"));
    assert.ok(trusted.has("::ffff:127.0.0.2"), "a dual-stack socket's view of an IPv4 proxy");
    assert.ok(!trusted.has("127.0.0.3"));
    assert.ok(!trusted.has("not an address"));
  });
});

Deno.test("clientAddress believes forwarding headers only from trusted proxies", async (t) => {
  const trusted = new TrustedProxies(["10.0.0.0/8", "2001:db8::/32"]);

  await t.step("a spoofed X-Forwarded-For from an untrusted peer is ignored", () => {
    const headers = new Headers({ "x-forwarded-for": "1.2.3.4" });
    assert.deepEqual(clientAddress(peer("203.0.113.9", 5555), headers, trusted), {
      address: "203.0.113.9",
      port: 5555,
    });
  });

  await t.step("nothing is believed when no proxy is trusted", () => {
    const headers = new Headers({ "x-forwarded-for": "1.2.3.4", forwarded: "for=1.2.3.4" });
    assert.deepEqual(clientAddress(peer("10.0.0.1"), headers, new TrustedProxies([])), {
      address: "10.0.0.1",
      port: 40000,
    });
  });

  await t.step("the same header from a trusted peer is used", () => {
    const headers = new Headers({ "x-forwarded-for": "1.2.3.4" });
    assert.deepEqual(clientAddress(peer("10.0.0.1"), headers, trusted), { address: "1.2.3.4" });
  });

  await t.step("the rightmost untrusted hop wins: what the client wrote to its left is ignored", () => {
    const headers = new Headers({ "x-forwarded-for": "6.6.6.6, 198.51.100.7, 10.2.3.4" });
    assert.deepEqual(clientAddress(peer("10.0.0.1"), headers, trusted), { address: "198.51.100.7" });
  });

  await t.step("a hop the proxy could not name stops at the last trusted address", () => {
    const headers = new Headers({ "x-forwarded-for": "6.6.6.6, unknown, 10.2.3.4" });
    assert.deepEqual(clientAddress(peer("10.0.0.1"), headers, trusted), { address: "10.2.3.4" });
  });

  await t.step("Forwarded (RFC 7239) with quoted IPv6 and ports, when there is no X-Forwarded-For", () => {
    const headers = new Headers({
      forwarded: 'for=6.6.6.6;proto=http, for="[2001:db8:cafe::17]:4711";by=x, For=198.51.100.7:8080',
    });
    assert.deepEqual(clientAddress(peer("2001:db8::2"), headers, trusted), {
      address: "198.51.100.7",
      port: 8080,
    });
    const viaV6 = new Headers({ forwarded: 'for="[2001:db9::17]:4711", for=10.9.9.9' });
    assert.deepEqual(clientAddress(peer("10.0.0.1"), viaV6, trusted), {
      address: "2001:db9::17",
      port: 4711,
    });
  });

  await t.step("X-Forwarded-For wins over a Forwarded header a proxy passed through", () => {
    const headers = new Headers({ forwarded: "for=6.6.6.6", "x-forwarded-for": "198.51.100.7" });
    assert.deepEqual(clientAddress(peer("10.0.0.1"), headers, trusted), { address: "198.51.100.7" });
  });

  await t.step("a trusted peer without forwarding headers is the client", () => {
    assert.deepEqual(clientAddress(peer("10.0.0.1", 1234), new Headers(), trusted), {
      address: "10.0.0.1",
      port: 1234,
    });
  });
});
