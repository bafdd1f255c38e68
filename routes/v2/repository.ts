/**
 * Triton's model repository extension, the management half: load and
 * unload (the index is in app.ts with the other listings). A load rescans
 * the model's directory and brings it in line with its version policy; it
 * may carry the model in the request as Triton's `file:` parameters do
 * (base64 in the JSON body, at most MAX_LOAD_REQUEST_BYTES), which are
 * written into the repository first (model/repository/upload.ts). An unload
 * returns once every request the model admitted has been answered and its
 * sessions are closed; later requests get 404 naming it.
 *
 * These are management endpoints: they answer only with MODEL_CONTROL_MODE
 * explicit or poll (403 otherwise), and behind the access-control layer's
 * admin scope where that is configured (routes/access.ts).
 */
import { createRoute, type OpenAPIHono, z } from "@hono/zod-openapi";
import type { Config } from "../../config.ts";
import type { Repository } from "../../model/repository/repository.ts";
import { errorCode } from "../../core/errors.ts";
import { type StoredUpload, storeUpload, UploadError } from "../../model/repository/upload.ts";
import { readBodyLimited } from "../body.ts";
import type { AppEnv } from "../types.ts";
import { V2Error } from "./errors.ts";

const tags = ["Open Inference Protocol (KServe v2)"];

export const v2LoadRequest = z.object({
  parameters: z.record(z.string(), z.string()).optional().meta({
    description: 'Triton\'s: "config" (config.json as a string) and "file:<version>/model.onnx" or ' +
      '"file:labels.txt" (the file, base64)',
  }),
}).meta({ id: "RepositoryLoadRequest" });

const loadAnswer = z.object({
  name: z.string(),
  versions: z.array(z.string()).meta({ description: "The versions serving after the load, highest first" }),
}).meta({ id: "RepositoryLoadAnswer" });

const error = (description: string) => ({
  description,
  content: { "application/json": { schema: z.object({ error: z.string() }) } },
});

const params = z.object({ name: z.string().meta({ example: "resnet50" }) });

export const loadRoute = createRoute({
  method: "post",
  path: "/repository/models/{name}/load",
  operationId: "v2RepositoryModelLoad",
  tags,
  summary: "Load or reload a model from the repository, optionally sending its files (management)",
  request: { params },
  responses: {
    200: { description: "Loaded", content: { "application/json": { schema: loadAnswer } } },
    400: error("The request or the model file is invalid; the reason says which"),
    403: error("Model control is off (MODEL_CONTROL_MODE=none)"),
    404: error("The repository has no such model"),
    409: error("The version exists already, or MODEL_MEMORY_LIMIT leaves no room for it"),
    413: error("The request is larger than MAX_LOAD_REQUEST_BYTES"),
  },
});

export const unloadRoute = createRoute({
  method: "post",
  path: "/repository/models/{name}/unload",
  operationId: "v2RepositoryModelUnload",
  tags,
  summary: "Stop serving a model once the requests it admitted are answered (management)",
  request: { params },
  responses: {
    200: {
      description: "Unloaded",
      content: { "application/json": { schema: z.object({ name: z.string() }) } },
    },
    403: error("Model control is off (MODEL_CONTROL_MODE=none)"),
    404: error("No such model is served"),
  },
});

function controlled(config: Config, repository: Repository): string {
  if (config.MODEL_CONTROL_MODE === "none" || !repository.root) {
    throw new V2Error(
      403,
      "Model control is off: set MODEL_REPOSITORY and MODEL_CONTROL_MODE=explicit or poll to load and unload models",
      "forbidden",
    );
  }
  return repository.root;
}

/** The `file:` parameters and config of a load request; an empty body is a plain load. */
async function readLoad(request: Request, config: Config) {
  const body = await readBodyLimited(request, config.MAX_LOAD_REQUEST_BYTES, config.BODY_TIMEOUT_MS);
  const text = new TextDecoder().decode(body).trim();
  if (text === "") return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new V2Error(
      400,
      'The body must be JSON like {"parameters": {"file:1/model.onnx": "<base64>"}}',
      "bad_request",
    );
  }
  const result = v2LoadRequest.safeParse(parsed);
  if (!result.success) {
    throw new V2Error(400, "parameters must be an object of strings (config, file:<path>)", "bad_request");
  }
  const files = new Map<string, Uint8Array>();
  let modelConfig: string | undefined;
  for (const [key, value] of Object.entries(result.data.parameters ?? {})) {
    if (key === "config") modelConfig = value;
    else if (key.startsWith("file:")) {
      try {
        files.set(key.slice(5), Uint8Array.fromBase64(value));
      } catch {
        throw new V2Error(400, `${key} is not base64`, "bad_request");
      }
    } else {throw new V2Error(
        400,
        `Unknown load parameter "${key}"; this server takes config and file:<path>`,
        "bad_request",
      );}
  }
  return files.size > 0 || modelConfig !== undefined ? { files, config: modelConfig } : undefined;
}

export function registerRepositoryRoutes(
  app: OpenAPIHono<AppEnv>,
  config: Config,
  repository: Repository,
): void {
  app.openapi(loadRoute, async (c) => {
    const root = controlled(config, repository);
    const { name } = c.req.valid("param");
    const upload = await readLoad(c.req.raw, config);
    let stored: StoredUpload | undefined;
    if (upload) {
      try {
        stored = await storeUpload(root, name, upload);
      } catch (err) {
        if (errorCode(err) === "upload_refused") {
          throw new V2Error((err as UploadError).status, (err as Error).message, "bad_request");
        }
        throw err;
      }
    }
    try {
      await repository.load(name);
    } catch (err) {
      await stored?.discard();
      if (err instanceof Deno.errors.NotFound) throw new V2Error(404, err.message, "not_found");
      throw err;
    }
    const entries = repository.registry.index().filter((e) => e.name === name);
    const serving = repository.registry.servingVersions(name);
    // What this request sent must serve; anything it made fail is taken back out of the repository.
    const sent = stored?.versions.map(String) ?? [];
    const failed = entries.filter((e) =>
      e.state === "UNAVAILABLE" && (sent.includes(e.version) || (sent.length === 0 && serving.length === 0))
    );
    if (failed.length > 0 || serving.length === 0) {
      if (stored) {
        await stored.discard();
        await repository.load(name).catch(() => {});
      }
      const reason = failed.map((e) => `version ${e.version}: ${e.reason}`).join("; ") ||
        entries.find((e) => e.reason)?.reason || "no version to serve";
      const memory = failed.some((e) => e.code === "memory_limit");
      throw new V2Error(memory ? 409 : 400, `Failed to load model "${name}": ${reason}`, "load_failed");
    }
    return c.json({ name, versions: serving }, 200);
  });

  app.openapi(unloadRoute, async (c) => {
    controlled(config, repository);
    const { name } = c.req.valid("param");
    try {
      await repository.registry.unload(name);
    } catch (err) {
      if (errorCode(err) === "unknown_model") {
        throw new V2Error(404, `Model "${name}" is not served here`, "not_found");
      }
      throw err;
    }
    return c.json({ name }, 200);
  });
}
