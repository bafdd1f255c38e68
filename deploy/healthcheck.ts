/**
 * Container HEALTHCHECK without curl: exits 0 when the gateway's liveness
 * endpoint answers 200 within 2 s. Run with --allow-net=127.0.0.1:8000 only.
 */
const port = Deno.args[0] ?? "8000";
try {
  const res = await fetch(`http://127.0.0.1:${port}/health`, { signal: AbortSignal.timeout(2000) });
  await res.body?.cancel();
  Deno.exit(res.ok ? 0 : 1);
} catch {
  Deno.exit(1);
}
