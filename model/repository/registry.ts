/**
 * The model versions this gateway serves, and how requests reach them. A new
 * version is loaded and warmed in the background while the current one
 * serves; routing then switches in one assignment; the old version finishes
 * everything it admitted and queued, and only then are its sessions closed.
 * A version that fails to load leaves the serving one serving.
 *
 * Operations on one model run one at a time (a chain per model), so a poll, a
 * load and an unload of the same model never interleave; different models
 * load independently.
 */
import type { Classifier } from "../runtime/classifier.ts";
import { CodedError } from "../../core/errors.ts";
import { logger } from "../../observability/logger.ts";
import { guarded } from "../../observability/telemetry_guard.ts";
import type { ModelConfig } from "./model_config.ts";
import type { ScannedModel } from "./scan.ts";
import { selectVersions } from "./version_policy.ts";
import { UNAVAILABLE_REASONS, type UnavailableReason, type VersionState } from "./version_state.ts";

/** What a version is started from. */
export interface VersionSource {
  model: string;
  /** The version's name in URLs and answers: its number in a repository. */
  version: string;
  /** Where the model file is (or, for one carried in a request, where it came from). */
  path: string;
  /** The model itself, when it was sent in a load request rather than read from `path`. */
  bytes?: Uint8Array;
  /** The file's size, for the memory estimate. */
  fileBytes: number;
  config: ModelConfig;
  labelsPath?: string;
}

export interface StartedVersion {
  classifier: Classifier;
  /** Classes an answer lists when the request does not say (config.json's top_k, else TOP_K). */
  topK: number;
  /** Releases its sessions and Workers; called once it has drained. */
  close(): Promise<void>;
}

/** A served version as a request reaches it. */
export interface Resolved {
  classifier: Classifier;
  topK: number;
  version: string;
}

/** A load that cannot serve, and why (one of the catalogued reasons). */
export class VersionLoadError extends CodedError {
  constructor(readonly reason: UnavailableReason, message: string, options?: ErrorOptions) {
    super("version_load_failed", message, options);
  }
}

/** The model is not served here (never was, or was unloaded): 404 naming it. */
export class UnknownModelError extends CodedError {
  constructor(readonly model: string, readonly version?: string, detail?: string) {
    super(
      "unknown_model",
      detail ??
        (version === undefined
          ? `Model "${model}" is not served here`
          : `Model "${model}" has no version "${version}" serving`),
    );
  }
}

/** The model should serve but no version is ready yet (loading): 503, retry. */
export class ModelNotReadyError extends CodedError {
  constructor(readonly model: string, readonly state: VersionState | "LOADING") {
    super("not_ready", `Model "${model}" is not ready yet (${state}); retry shortly`);
  }
}

export interface IndexEntry {
  name: string;
  version: string;
  state: VersionState;
  reason: string;
  /** Why it is UNAVAILABLE, as a catalogued code (the reason is its text, with details). */
  code?: UnavailableReason;
}

/** What the registry reports, as callbacks (observability builds them); each runs through the telemetry guard. */
export interface RegistryHooks {
  onLoaded?: (model: string, version: string, seconds: number) => void;
  onFailed?: (model: string, version: string, reason: UnavailableReason) => void;
  onUnloaded?: (model: string, version: string) => void;
  /** What the default version of `model` is changed (`to` undefined: none serves now). */
  onSwitched?: (model: string, to: string | undefined, from: string | undefined) => void;
}

export interface RegistryOptions {
  start: (source: VersionSource) => Promise<StartedVersion>;
  /** Bytes a version is expected to take once loaded (all its sessions), to refuse a load before it starts. */
  estimate: (source: VersionSource) => number;
  /** 0: no limit. */
  memoryLimit?: number;
  hooks?: RegistryHooks;
  /** How often an old version is checked for work still admitted, in ms. */
  drainPollMs?: number;
}

interface VersionRecord {
  version: string;
  order: number;
  state: VersionState;
  reason?: UnavailableReason;
  detail?: string;
  started?: StartedVersion;
  /** Bytes reserved against the memory limit while loading or loaded. */
  reserved: number;
  /** The file as last seen (size and mtime), so a failed load is retried only when the file changes. */
  seen?: string;
  loadSeconds?: number;
}

interface ModelRecord {
  name: string;
  versions: Map<string, VersionRecord>;
  /** Ready versions requests can reach, and the default one. Replaced whole, never edited. */
  routing: { versions: ReadonlyMap<string, StartedVersion>; default?: string };
  /** Whether some version of it should serve (it is loaded, or being loaded, by policy or request). */
  wanted: boolean;
  chain: Promise<void>;
  /** Unload requests so far: a load asked for before the latest unload does not serve. */
  unloads: number;
  /** Config error or the like that keeps the whole model from serving. */
  problem?: { reason: UnavailableReason; detail: string };
}

export class ModelRegistry {
  readonly #models = new Map<string, ModelRecord>();
  readonly #options: RegistryOptions;
  readonly #hooks: Required<RegistryHooks>;
  readonly #log = logger("repository");
  readonly #retiring = new Set<Promise<void>>();

  constructor(options: RegistryOptions) {
    this.#options = options;
    const h = options.hooks ?? {};
    const noop = () => {};
    this.#hooks = {
      onLoaded: guarded("repository_loaded", h.onLoaded) ?? noop,
      onFailed: guarded("repository_failed", h.onFailed) ?? noop,
      onUnloaded: guarded("repository_unloaded", h.onUnloaded) ?? noop,
      onSwitched: guarded("repository_switched", h.onSwitched) ?? noop,
    };
  }

  #record(name: string): ModelRecord {
    let m = this.#models.get(name);
    if (!m) {
      m = {
        name,
        versions: new Map(),
        routing: { versions: new Map() },
        wanted: false,
        chain: Promise.resolve(),
        unloads: 0,
      };
      this.#models.set(name, m);
    }
    return m;
  }

  /** Runs `work` after every earlier operation on `model`. */
  #serially<T>(model: ModelRecord, work: () => Promise<T>): Promise<T> {
    const run = model.chain.then(work);
    model.chain = run.then(() => {}, () => {});
    return run;
  }

  /** Model names known to the registry (served, loading, or failed), sorted. */
  get models(): string[] {
    return [...this.#models.keys()].sort();
  }

  /**
   * The classifier for `model` (its default version, or `version`), chosen in
   * the same tick as the caller admits work on it. Throws UnknownModelError
   * (404) or ModelNotReadyError (503).
   */
  resolve(model: string, version?: string): Resolved {
    const m = this.#models.get(model);
    if (!m) throw new UnknownModelError(model);
    const { versions, default: chosen } = m.routing;
    if (version !== undefined) {
      const started = versions.get(version);
      if (started) return { classifier: started.classifier, topK: started.topK, version };
      const v = m.versions.get(version);
      if (v && v.state === "LOADING") throw new ModelNotReadyError(model, "LOADING");
      throw new UnknownModelError(model, version);
    }
    if (chosen !== undefined) {
      const started = versions.get(chosen)!;
      return { classifier: started.classifier, topK: started.topK, version: chosen };
    }
    if (m.wanted && [...m.versions.values()].some((v) => v.state === "LOADING")) {
      throw new ModelNotReadyError(model, "LOADING");
    }
    throw new UnknownModelError(
      model,
      undefined,
      m.problem
        ? `Model "${model}" is unavailable: ${m.problem.detail}`
        : `Model "${model}" is not served here (it is ${m.wanted ? "unavailable" : "unloaded"})`,
    );
  }

  /** The default version's name, if one serves. */
  defaultVersion(model: string): string | undefined {
    return this.#models.get(model)?.routing.default;
  }

  /** The versions of `model` that serve, highest first. */
  servingVersions(model: string): string[] {
    const m = this.#models.get(model);
    if (!m) return [];
    return [...m.routing.versions.keys()].sort((a, b) => m.versions.get(b)!.order - m.versions.get(a)!.order);
  }

  /** Every model and version with its state and reason, as the repository index lists them. */
  index(): IndexEntry[] {
    const out: IndexEntry[] = [];
    for (const name of this.models) {
      const m = this.#models.get(name)!;
      if (m.versions.size === 0) {
        out.push({
          name,
          version: "",
          state: "UNAVAILABLE",
          reason: m.problem?.detail ?? (m.wanted ? "no version to serve" : UNAVAILABLE_REASONS.unloaded),
        });
        continue;
      }
      for (const v of [...m.versions.values()].sort((a, b) => a.order - b.order)) {
        out.push({
          name,
          version: v.version,
          state: v.state,
          reason: v.detail ?? "",
          ...(v.state === "UNAVAILABLE" && v.reason ? { code: v.reason } : {}),
        });
      }
    }
    return out;
  }

  /** Models that should serve and have no ready version (for /ready and the alert). */
  notReady(): Array<{ name: string; reason: string }> {
    const out: Array<{ name: string; reason: string }> = [];
    for (const name of this.models) {
      const m = this.#models.get(name)!;
      if (!m.wanted || m.routing.default !== undefined) continue;
      const loading = [...m.versions.values()].some((v) => v.state === "LOADING");
      const failed = [...m.versions.values()].find((v) => v.state === "UNAVAILABLE" && v.detail);
      out.push({
        name,
        reason: m.problem?.detail ?? (loading ? "loading" : failed?.detail ?? "no version to serve"),
      });
    }
    return out;
  }

  /** Bytes reserved by versions loaded or loading, against MODEL_MEMORY_LIMIT. */
  get reservedBytes(): number {
    let sum = 0;
    for (const m of this.#models.values()) for (const v of m.versions.values()) sum += v.reserved;
    return sum;
  }

  /**
   * Brings `model` in line with its directory as scanned: loads the versions
   * its policy serves and, once they are ready, retires the others. With
   * `force`, versions that failed before are tried again even if their file
   * did not change (an explicit load request). Resolves when it is done;
   * failures are in the index, not thrown.
   */
  apply(scanned: ScannedModel, options: { force?: boolean } = {}): Promise<void> {
    const m = this.#record(scanned.name);
    const unloads = m.unloads;
    return this.#serially(m, () => this.#apply(m, scanned, options.force ?? false, unloads));
  }

  async #apply(m: ModelRecord, scanned: ScannedModel, force: boolean, unloads: number): Promise<void> {
    if (m.unloads !== unloads) return;
    m.wanted = true;
    if (!scanned.config) {
      m.problem = { reason: "config", detail: scanned.configError ?? UNAVAILABLE_REASONS.config };
      this.#log.error("Model {model} cannot serve: {reason}", { model: m.name, reason: m.problem.detail });
      this.#hooks.onFailed(m.name, "", "config");
      return;
    }
    m.problem = undefined;
    const config = scanned.config;
    const present = scanned.versions.map((v) => v.version);
    const { serve, missing } = selectVersions(present, config.version_policy);
    for (const v of missing) {
      this.#mark(m, String(v), v, "UNAVAILABLE", "removed", `version ${v} is named by the policy but absent`);
    }
    for (const number of serve) {
      const file = scanned.versions.find((v) => v.version === number)!;
      const version = String(number);
      const seen = `${file.bytes}:${file.mtimeMs}`;
      const current = m.versions.get(version);
      if (current?.state === "READY" && current.seen === seen) continue;
      if (current?.state === "LOADING") continue;
      // A file that failed is not tried again until it changes (or a load request forces it); one retired
      // by the policy or an unload is simply loaded again.
      const retired = current?.reason === "not_in_policy" || current?.reason === "unloaded" ||
        current?.reason === "removed";
      if (current?.state === "UNAVAILABLE" && !retired && current.seen === seen && !force) continue;
      await this.#load(
        m,
        {
          model: m.name,
          version,
          path: file.path,
          fileBytes: file.bytes,
          config,
          ...(scanned.labelsPath ? { labelsPath: scanned.labelsPath } : {}),
        },
        number,
        seen,
      );
    }
    // Whatever the policy no longer serves retires, but only once something the policy wants is ready:
    // a new version that failed leaves the old one serving.
    const wantedReady = serve.map(String).filter((v) => m.versions.get(v)?.state === "READY");
    if (wantedReady.length === 0) return;
    const keep = new Set(wantedReady);
    const retire = [...m.routing.versions.keys()].filter((v) => !keep.has(v));
    this.#route(m, keep);
    for (const name of retire) {
      const v = m.versions.get(name)!;
      this.#retire(m, v, present.includes(v.order) ? "not_in_policy" : "removed");
    }
  }

  /**
   * Serves a version started elsewhere (the single model today's variables
   * describe), as the default of `model`; `reserved` counts against the memory limit.
   */
  adopt(model: string, version: string, started: StartedVersion, reserved = 0, order = 1): void {
    const m = this.#record(model);
    m.wanted = true;
    const v = this.#mark(m, version, order, "READY");
    v.started = started;
    v.reserved = reserved;
    this.#hooks.onLoaded(model, version, 0);
    this.#route(m, new Set([...m.routing.versions.keys(), version]));
  }

  /** How long `version` of `model` took to load and warm, in seconds. */
  loadSeconds(model: string, version: string): number | undefined {
    return this.#models.get(model)?.versions.get(version)?.loadSeconds;
  }

  /**
   * Stops serving `model`: new requests get 404 at once; admitted work
   * finishes; then its sessions close. Resolves when they have.
   */
  unload(model: string): Promise<void> {
    const m = this.#models.get(model);
    if (!m) return Promise.reject(new UnknownModelError(model));
    // Routing stops at once; the drain waits for whatever runs on this model first.
    m.unloads++;
    m.wanted = false;
    m.problem = undefined;
    const retiring = [...m.versions.values()].filter((v) => v.state === "READY");
    this.#route(m, new Set());
    const drained = Promise.all(retiring.map((v) => this.#retire(m, v, "unloaded")));
    return this.#serially(m, async () => {
      await drained;
      for (const v of m.versions.values()) {
        if (v.state === "UNAVAILABLE" || v.state === "LOADING") {
          this.#mark(m, v.version, v.order, "UNAVAILABLE", "unloaded");
        }
      }
    });
  }

  /** The model's directory is gone (poll mode): like an unload, reported as removed. */
  remove(model: string): Promise<void> {
    const m = this.#models.get(model);
    if (!m) return Promise.resolve();
    return this.#serially(m, async () => {
      m.wanted = false;
      const retiring = [...m.versions.values()].filter((v) => v.state === "READY");
      this.#route(m, new Set());
      await Promise.all(retiring.map((v) => this.#retire(m, v, "removed")));
      this.#models.delete(model);
    });
  }

  /** Waits for every operation started so far, and every retiring version's drain and close. */
  async settled(): Promise<void> {
    await Promise.all([...this.#models.values()].map((m) => m.chain));
    while (this.#retiring.size) await Promise.all([...this.#retiring]);
  }

  /** Drains and closes every version (shutdown). */
  async close(): Promise<void> {
    await Promise.all(this.models.map((name) => this.unload(name).catch(() => {})));
    await this.settled();
  }

  #mark(
    m: ModelRecord,
    version: string,
    order: number,
    state: VersionState,
    reason?: UnavailableReason,
    detail?: string,
  ): VersionRecord {
    let v = m.versions.get(version);
    if (!v) {
      v = { version, order, state, reserved: 0 };
      m.versions.set(version, v);
    }
    v.state = state;
    v.reason = reason;
    v.detail = detail ?? (reason ? UNAVAILABLE_REASONS[reason] : undefined);
    return v;
  }

  async #load(m: ModelRecord, source: VersionSource, order: number, seen: string | undefined): Promise<void> {
    const { model, version } = source;
    const previous = m.versions.get(version);
    const estimate = Math.round(this.#options.estimate(source));
    const limit = this.#options.memoryLimit ?? 0;
    // A reload of a serving version (its file changed) holds its old reservation until the old one retires.
    if (limit > 0 && this.reservedBytes + estimate > limit) {
      const v = previous?.state === "READY"
        ? previous
        : this.#mark(m, version, order, "UNAVAILABLE", "memory_limit");
      const detail = `loading it would take about ${mib(estimate)} MiB; ${mib(this.reservedBytes)} MiB of ` +
        `MODEL_MEMORY_LIMIT's ${mib(limit)} MiB are taken`;
      if (v !== previous) {
        v.detail = detail;
        v.seen = seen;
      }
      this.#log.error("Model {model} version {version} refused before loading: {reason}", {
        model,
        version,
        reason: detail,
      });
      this.#hooks.onFailed(model, version, "memory_limit");
      return;
    }
    // A serving version being replaced by a changed file keeps serving under its record until the new one is ready.
    const replacing = previous?.state === "READY" ? previous : undefined;
    const v: VersionRecord = replacing
      ? { version, order, state: "LOADING", reserved: 0 }
      : this.#mark(m, version, order, "LOADING");
    v.reserved = estimate;
    v.seen = seen;
    this.#log.info("Loading model {model} version {version} from {path}", {
      model,
      version,
      path: source.path,
      estimate_mib: mib(estimate),
    });
    const t0 = performance.now();
    try {
      const started = await this.#options.start(source);
      v.started = started;
      v.loadSeconds = (performance.now() - t0) / 1000;
      if (replacing) {
        // The old session of this version retires; the new one takes its name.
        const old = { ...replacing };
        m.versions.set(version, v);
        v.state = "READY";
        v.reason = v.detail = undefined;
        this.#route(m, new Set(m.routing.versions.keys()));
        this.#retire(m, old, "removed", false);
      } else {
        v.state = "READY";
        v.reason = v.detail = undefined;
      }
      this.#log.info("Model {model} version {version} ready in {seconds} s", {
        model,
        version,
        seconds: +v.loadSeconds.toFixed(3),
      });
      this.#hooks.onLoaded(model, version, v.loadSeconds);
    } catch (err) {
      const reason = err instanceof VersionLoadError ? err.reason : "failed";
      const detail = err instanceof Error ? err.message : String(err);
      if (replacing) {
        // The serving copy keeps serving; the index says why the new file was refused.
        replacing.detail = `a new file failed to load (${detail}); the previous one still serves`;
        replacing.seen = seen;
      } else {
        this.#mark(m, version, order, "UNAVAILABLE", reason, detail);
        v.reserved = 0;
      }
      this.#log.error("Model {model} version {version} failed to load: {reason}", {
        model,
        version,
        reason: detail,
        code: reason,
      });
      this.#hooks.onFailed(model, version, reason);
    }
  }

  /** Points requests at exactly the ready versions in `keep`, in one assignment; the default is the highest. */
  #route(m: ModelRecord, keep: ReadonlySet<string>): void {
    const versions = new Map<string, StartedVersion>();
    let best: VersionRecord | undefined;
    for (const name of keep) {
      const v = m.versions.get(name);
      if (v?.state !== "READY" || !v.started) continue;
      versions.set(name, v.started);
      if (!best || v.order > best.order) best = v;
    }
    const from = m.routing.default;
    const before = from === undefined ? undefined : m.routing.versions.get(from);
    m.routing = { versions, default: best?.version };
    // A version reloaded from a changed file keeps its name but is a new classifier: that is a switch too.
    if (best?.started !== before) {
      this.#log.info("Model {model} now answers with version {version}", {
        model: m.name,
        version: best?.version ?? null,
        previous: from ?? null,
      });
      this.#hooks.onSwitched(m.name, best?.version, from);
    }
  }

  /**
   * Takes a version out of service after routing no longer reaches it: waits
   * until nothing it admitted is still being read, decoded or queued (a
   * request admits in the same tick it resolves, so none arrives later), then
   * drains what runs and closes its sessions.
   */
  #retire(m: ModelRecord, v: VersionRecord, why: UnavailableReason, inIndex = true): Promise<void> {
    if (inIndex) this.#mark(m, v.version, v.order, "UNLOADING");
    const started = v.started;
    const done = (async () => {
      if (started) {
        const batcher = started.classifier.batcher;
        await new Promise((r) => setTimeout(r, 0));
        while (batcher.queueDepth > 0) {
          await new Promise((r) => setTimeout(r, this.#options.drainPollMs ?? 20));
        }
        await started.classifier.drain();
        await started.close().catch((err) => {
          this.#log.error("Closing model {model} version {version} failed: {error}", {
            model: m.name,
            version: v.version,
            error: String(err),
          });
        });
      }
      v.started = undefined;
      v.reserved = 0;
      // A version reloaded in the meantime has a new record; only this one is marked.
      if (inIndex && m.versions.get(v.version) === v) this.#mark(m, v.version, v.order, "UNAVAILABLE", why);
      this.#log.info("Model {model} version {version} unloaded", { model: m.name, version: v.version, why });
      this.#hooks.onUnloaded(m.name, v.version);
    })();
    this.#retiring.add(done);
    done.finally(() => this.#retiring.delete(done));
    return done;
  }
}

function mib(bytes: number): number {
  return Math.round(bytes / 2 ** 20);
}
