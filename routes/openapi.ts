/**
 * The OpenAPI 3.1 document and the interactive docs page. The document is
 * generated from the routes' own definitions (createRoute in each route
 * file); this file adds only what belongs to the whole API. Swagger UI is
 * served from the npm package, so /docs works with no internet access.
 */
import { createRoute, type OpenAPIHono, z } from "@hono/zod-openapi";
import swaggerUi from "swagger-ui-dist";
import { ProblemError } from "./problem.ts";
import type { AppEnv } from "./types.ts";

/** Swagger UI, loaded from this server (no CDN). */
export const DOCS_HTML = `<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>inference-gateway API</title>
  <link rel="stylesheet" href="/docs/assets/swagger-ui.css">
</head>
<body>
  <div id="ui"></div>
  <script src="/docs/assets/swagger-ui-bundle.js"></script>
  <script>SwaggerUIBundle({ url: "/openapi.json", dom_id: "#ui", deepLinking: true });</script>
</body>
</html>
`;

/** A Map: the name comes from the URL, and a plain object would find "constructor" or "toString". */
const DOC_ASSETS: ReadonlyMap<string, string> = new Map([
  ["swagger-ui.css", "text/css; charset=utf-8"],
  ["swagger-ui-bundle.js", "text/javascript; charset=utf-8"],
]);
const assetCache = new Map<string, Uint8Array<ArrayBuffer>>();

/** Swagger UI's files, read once from the npm package. */
async function docAsset(file: string): Promise<Uint8Array<ArrayBuffer>> {
  let bytes = assetCache.get(file);
  if (!bytes) {
    bytes = await Deno.readFile(`${swaggerUi.getAbsoluteFSPath()}/${file}`);
    assetCache.set(file, bytes);
  }
  return bytes;
}

const documentRoute = createRoute({
  method: "get",
  path: "/openapi.json",
  operationId: "openapi",
  tags: ["Operations"],
  summary: "This document",
  responses: {
    200: {
      description: "OpenAPI 3.1",
      content: { "application/json": { schema: z.object({}).catchall(z.unknown()) } },
    },
  },
});

const docsRoute = createRoute({
  method: "get",
  path: "/docs",
  operationId: "docs",
  tags: ["Operations"],
  summary: "Interactive API documentation",
  responses: { 200: { description: "HTML", content: { "text/html": { schema: z.string() } } } },
});

/**
 * Serves /openapi.json, built from every route registered on `app` when it
 * is first asked for (so call this before or after registering the others), and /docs.
 */
export function registerDocs(
  app: OpenAPIHono<AppEnv>,
  version: string,
  /** Adds what the routes' definitions cannot say (the access policy: routes/access.ts). */
  complete: (doc: OpenApiDocument) => OpenApiDocument = (doc) => doc,
): void {
  let document: OpenApiDocument | undefined;
  app.openapi(documentRoute, (c) => c.json(document ??= complete(openApiDocument(app, version)), 200));
  app.openapi(docsRoute, (c) => c.html(DOCS_HTML, 200));
  app.get("/docs/assets/:file", async (c) => {
    const file = c.req.param("file");
    const type = DOC_ASSETS.get(file);
    if (!type) throw new ProblemError("not_found", `No documentation asset ${file}`);
    return c.body(await docAsset(file), 200, {
      "content-type": type,
      "cache-control": "public, max-age=86400",
    });
  });
}

type OpenApiDocument = ReturnType<typeof openApiDocument>;

export function openApiDocument(app: OpenAPIHono<AppEnv>, version: string) {
  return app.getOpenAPI31Document({
    openapi: "3.1.0",
    info: {
      title: "inference-gateway",
      version,
      description:
        "ResNet-50 image classification over HTTP, with metrics, traces and logs linked by trace id. " +
        "Every response carries X-Request-ID, traceparent and Server-Timing headers.",
    },
    servers: [{ url: "/", description: "This server" }],
    // None by default; operations that need an API key say so (routes/access.ts).
    security: [],
    tags: [
      { name: "Prediction", description: "The gateway's own API" },
      { name: "Operations", description: "Health, readiness, metadata, metrics, this document" },
      {
        name: "Open Inference Protocol",
        description: "KServe v2 REST, as Triton, KServe and MLServer speak it, with the classification " +
          "and binary tensor data extensions",
      },
      { name: "Page", description: "The page for people at /" },
    ],
  });
}
