/**
 * The model repository as the gateway runs it: the registry over
 * MODEL_REPOSITORY (or over the one model today's variables describe), the
 * control mode (none, poll, explicit), and the model that `ModelState` — what
 * /predict and the unversioned routes serve — follows across swaps.
 */
import type { Config } from "../../config.ts";
import { logger } from "../../observability/logger.ts";
import type { ModelState } from "../runtime/state.ts";
import type { ClassifierHooks } from "../runtime/build.ts";
import { startModel } from "../start.ts";
import type { ResolveOptions } from "../artifact/resolve.ts";
import { ModelRegistry, type RegistryHooks, type VersionSource } from "./registry.ts";
import { type RepositoryScan, scanModelDir, scanRepository } from "./scan.ts";
import { versionStarter } from "./start_version.ts";

/**
 * Resident bytes one inference session takes per byte of its model file:
 * weights, onnxruntime's arena and the Worker around it (docs/performance.md).
 */
export const RESIDENT_BYTES_PER_FILE_BYTE = 4;

/** What loading `source` is expected to take once warm, for MODEL_MEMORY_LIMIT. */
export function estimateBytes(
  config: Pick<Config, "INFERENCE_WORKERS">,
  source: Pick<VersionSource, "fileBytes">,
) {
  return source.fileBytes * RESIDENT_BYTES_PER_FILE_BYTE * Math.max(1, config.INFERENCE_WORKERS);
}

export interface Repository {
  registry: ModelRegistry;
  /** Where the models come from: the MODEL_REPOSITORY directory, or undefined for the single model. */
  root: string | undefined;
  /**
   * Loads what the control mode loads at startup and starts polling. Without MODEL_REPOSITORY it starts
   * the single model as startModel does, and throws if that fails.
   */
  start(): Promise<void>;
  /** The model /predict and the unversioned routes answer with. */
  defaultModel: string;
  /** Models that should serve and are not ready, and why (all of them until the startup scan is done). */
  notReady(): Array<{ name: string; reason: string }>;
  /** Rescans MODEL_REPOSITORY now and applies what changed (what poll mode does on its timer). */
  poll(): Promise<void>;
  /** Loads (or reloads) one model from its directory, as the repository API's load does. */
  load(model: string): Promise<void>;
  /** Stops the poll timer, drains and closes every version. */
  close(): Promise<void>;
}

/** Per model, its files' sizes and times: a model whose files changed since the last scan waits a round. */
function fingerprints(scan: RepositoryScan): Map<string, string> {
  return new Map(
    scan.models.map((m) => [m.name, m.versions.map((v) => `${v.version}:${v.bytes}:${v.mtimeMs}`).join()]),
  );
}

/**
 * The repository over MODEL_REPOSITORY, or over the one model today's
 * variables describe; nothing is loaded until `start`.
 */
export function createRepository(
  config: Config,
  state: ModelState,
  hooks: ClassifierHooks & RegistryHooks = {},
  options: ResolveOptions = {},
): Repository {
  const log = logger("repository");
  const root = config.MODEL_REPOSITORY;
  let defaultModel = config.MODEL_NAME;
  const registry = new ModelRegistry({
    start: versionStarter(config, hooks, options),
    estimate: (source) => estimateBytes(config, source),
    memoryLimit: config.MODEL_MEMORY_LIMIT,
    hooks: {
      ...hooks,
      onSwitched: (model, to, from) => {
        if (model === defaultModel) follow(to);
        hooks.onSwitched?.(model, to, from);
      },
    },
  });
  /** Points ModelState (what /predict serves) at the default model's default version, or at nothing. */
  const follow = (version: string | undefined) => {
    if (version === undefined) {
      state.classifier = undefined;
      state.markFailed(`Model "${defaultModel}" has no version serving`);
      return;
    }
    const { classifier } = registry.resolve(defaultModel, version);
    if (state.classifier === classifier) return;
    state.error = undefined;
    state.markReady(
      registry.resolve(defaultModel, version).classifier,
      registry.loadSeconds(defaultModel, version) ?? 0,
      0,
    );
  };
  /** Whether the startup scan has been applied (until then nothing is known to be ready). */
  let scanned = false;
  let timer: ReturnType<typeof setInterval> | undefined;
  let last = new Map<string, string>();
  let polling: Promise<void> | undefined;

  const rescan = async (first: boolean) => {
    const scan = await scanRepository(root!);
    for (const item of scan.ignored) log.warn("Repository entry ignored: {path}: {reason}", item);
    const now = fingerprints(scan);
    const work: Promise<void>[] = [];
    for (const model of scan.models) {
      // A version being copied in changes between scans; it is taken once it has settled.
      if (!first && last.get(model.name) !== now.get(model.name)) continue;
      work.push(registry.apply(model));
    }
    if (!first) {
      for (const name of registry.models) {
        if (!now.has(name) && last.has(name)) work.push(registry.remove(name));
      }
    }
    last = now;
    await Promise.all(work);
  };

  const start = async () => {
    if (!root) {
      const classifier = await startModel(config, state, hooks, options);
      registry.adopt(defaultModel, classifier.info.version, {
        classifier,
        topK: config.TOP_K,
        close: () => classifier.close(),
      });
      return;
    }
    log.info("Model repository {root}, control mode {mode}", {
      root,
      mode: config.MODEL_CONTROL_MODE,
      poll_seconds: config.MODEL_CONTROL_MODE === "poll" ? config.REPOSITORY_POLL_SECONDS : null,
      memory_limit_bytes: config.MODEL_MEMORY_LIMIT || null,
    });
    // The default model is MODEL_NAME if the repository has it, else the first by name.
    const names = (await scanRepository(root)).models.map((m) => m.name);
    if (!names.includes(defaultModel) && names.length > 0) defaultModel = names[0];
    if (config.MODEL_CONTROL_MODE !== "explicit") await rescan(true);
    scanned = true;
    for (const { name, reason } of registry.notReady()) {
      log.error("Model {model} is not serving: {reason}", { model: name, reason });
    }
    if (config.MODEL_CONTROL_MODE === "poll") {
      timer = setInterval(() => void repository.poll(), config.REPOSITORY_POLL_SECONDS * 1000);
    }
    logger("lifecycle").info("Repository ready: serving {models}", {
      models: registry.models.map((m) => `${m}@${registry.servingVersions(m).join("+") || "none"}`).join(
        ", ",
      ),
    });
  };

  const repository: Repository = {
    registry,
    root,
    start,
    notReady: () => scanned ? registry.notReady() : [{ name: root ?? defaultModel, reason: "loading" }],
    get defaultModel() {
      return defaultModel;
    },
    poll: () => {
      // One rescan at a time; a tick that finds one running waits for it.
      polling ??= rescan(false).catch((err) => {
        log.error("Repository rescan failed: {error}", { error: String(err) });
      }).finally(() => polling = undefined);
      return polling;
    },
    load: async (model) => {
      if (!root) throw new Error("No MODEL_REPOSITORY to load from");
      await registry.apply(await scanModelDir(root, model), { force: true });
    },
    close: async () => {
      if (timer !== undefined) clearInterval(timer);
      await polling;
      await registry.close();
    },
  };

  return repository;
}

/** Creates the repository and starts it (see {@link Repository.start}). */
export async function startRepository(
  config: Config,
  state: ModelState,
  hooks: ClassifierHooks & RegistryHooks = {},
  options: ResolveOptions = {},
): Promise<Repository> {
  const repository = createRepository(config, state, hooks, options);
  await repository.start();
  return repository;
}
