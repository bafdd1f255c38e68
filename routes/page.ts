/**
 * GET /: the page for people (web/: pick a photo, see the top-5, the stage
 * timings and the trace). Its files are read from disk once, at startup, and
 * served with a strict Content-Security-Policy: scripts, styles and requests
 * from this origin only, no inline code, images also from blob: and data:
 * (the photo being previewed).
 */
import { createRoute, type OpenAPIHono, z } from "@hono/zod-openapi";
import type { AppEnv } from "./types.ts";

export const WEB_DIR = new URL("../web/", import.meta.url);

export const CONTENT_SECURITY_POLICY = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' blob: data:",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join("; ");

const TYPES: Record<string, string> = {
  html: "text/html; charset=utf-8",
  js: "text/javascript; charset=utf-8",
  css: "text/css; charset=utf-8",
  svg: "image/svg+xml",
  png: "image/png",
  ico: "image/x-icon",
  json: "application/json",
};

export interface PageFile {
  /** The URL path it is served at: `/` for index.html, `/<name>` for the others. */
  path: string;
  type: string;
  bytes: Uint8Array<ArrayBuffer>;
}

const cache = new Map<string, PageFile[]>();

/**
 * The page's files (a flat directory; other extensions are not served). Read
 * once per directory and kept: an absent directory serves no page.
 */
export function readPage(dir: URL = WEB_DIR): PageFile[] {
  let files = cache.get(dir.href);
  if (files) return files;
  files = [];
  let entries: Deno.DirEntry[];
  try {
    entries = [...Deno.readDirSync(dir)];
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
    entries = [];
  }
  for (const entry of entries.sort((a, b) => a.name.localeCompare(b.name))) {
    const type = TYPES[entry.name.split(".").pop()!.toLowerCase()];
    if (!entry.isFile || !type || !/^[A-Za-z0-9._-]+$/.test(entry.name)) continue;
    files.push({
      path: entry.name === "index.html" ? "/" : `/${entry.name}`,
      type,
      bytes: Deno.readFileSync(new URL(entry.name, dir)),
    });
  }
  cache.set(dir.href, files);
  return files;
}

export function registerPage(app: OpenAPIHono<AppEnv>, files: readonly PageFile[]): void {
  for (const file of files) {
    const route = createRoute({
      method: "get",
      path: file.path,
      operationId: file.path === "/" ? "page" : `page_${file.path.slice(1).replace(/[^A-Za-z0-9]/g, "_")}`,
      tags: ["Page"],
      summary: file.path === "/"
        ? "The page for people: classify a photo in the browser"
        : `The page's ${file.path}`,
      responses: {
        200: {
          description: file.path === "/"
            ? "HTML (strict Content-Security-Policy)"
            : "A static file of the page",
          headers: {
            "Content-Security-Policy": { schema: { type: "string" }, description: CONTENT_SECURITY_POLICY },
          },
          content: { [file.type.split(";")[0]]: { schema: z.string() } },
        },
      },
    });
    app.openapi(route, (c) =>
      c.body(file.bytes, 200, {
        "content-type": file.type,
        "content-security-policy": CONTENT_SECURITY_POLICY,
        "x-content-type-options": "nosniff",
        "referrer-policy": "no-referrer",
        // Small files: revalidated each time, so a new version shows at once.
        "cache-control": "no-cache",
      }));
  }
}
