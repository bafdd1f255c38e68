/**
 * A discrete-event simulation of gateway pods behind a load balancer, with the
 * HorizontalPodAutoscaler of deploy/kubernetes/base in the loop.
 *
 * One pod is modelled as the gateway is built: a request takes a queue place
 * on arrival (or is refused with 503 when MAX_QUEUE places are taken), gets
 * its HTTP work done on the main thread, is decoded by the one preprocessing
 * worker, then waits in the batcher's FIFO until the onnxruntime session is
 * idle, which takes up to MAX_BATCH_SIZE requests as one run. The three
 * threads of work share the pod's cores as Linux shares them between runnable
 * threads: equally, so a decode running beside inference slows it down.
 */
import { mulberry32 } from "../../core/prng.ts";

/** Everything the simulation needs about one pod, in milliseconds of work. */
export interface PodModel {
  /** Cores the pod may use (its CPU limit). */
  cores: number;
  /** onnxruntime intra-op threads of the one session. */
  threads: number;
  /** Wall time of one run of `b` images on an otherwise idle pod (all `threads` busy). */
  batchMs: (b: number) => number;
  /** Log-normal spread (sigma) of a run's time around batchMs. */
  batchSigma: number;
  /** Single-thread CPU time to decode and preprocess one photo, and its spread. */
  decodeMs: number;
  decodeSigma: number;
  /** Main-thread CPU per admitted request (HTTP, routing, metrics, relay). */
  httpMs: number;
  /** Main-thread CPU to refuse a request with 503. */
  rejectMs: number;
  maxBatch: number;
  maxQueue: number;
  /** A request not started by then is answered 504 (REQUEST_TIMEOUT_MS). */
  timeoutMs: number;
}

export interface RequestRecord {
  /** Arrival time (ms). */
  t: number;
  latencyMs: number;
  status: 200 | 503 | 504;
}

/** Deterministic pseudo-random numbers (mulberry32) so every run of the task prints the same figures. */
export const rng: (seed: number) => () => number = mulberry32;

function normal(random: () => number): number {
  const u = Math.max(random(), 1e-12);
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * random());
}

/** A log-normal factor with median 1. */
function spread(random: () => number, sigma: number): number {
  return sigma > 0 ? Math.exp(sigma * normal(random)) : 1;
}

interface Event {
  t: number;
  seq: number;
  fn: () => void;
}

/** A binary heap of timed events; ties run in the order they were scheduled. */
export class Clock {
  now = 0;
  #heap: Event[] = [];
  #seq = 0;

  at(t: number, fn: () => void): void {
    const e = { t, seq: this.#seq++, fn };
    const h = this.#heap;
    h.push(e);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (before(h[p], e)) break;
      h[i] = h[p];
      i = p;
    }
    h[i] = e;
  }

  /** Runs events until `end` (ms). */
  run(end: number): void {
    const h = this.#heap;
    while (h.length > 0 && h[0].t <= end) {
      const top = h[0];
      const last = h.pop()!;
      if (h.length > 0) {
        let i = 0;
        for (;;) {
          const l = 2 * i + 1;
          if (l >= h.length) break;
          const r = l + 1;
          const c = r < h.length && before(h[r], h[l]) ? r : l;
          if (before(last, h[c])) break;
          h[i] = h[c];
          i = c;
        }
        h[i] = last;
      }
      this.now = top.t;
      top.fn();
    }
    this.now = Math.max(this.now, end);
  }
}

const before = (a: Event, b: Event) => a.t < b.t || (a.t === b.t && a.seq < b.seq);

interface Job {
  t0: number;
  done: (status: 200 | 503 | 504) => void;
  queued: boolean;
}

interface Task {
  /** Remaining work, in thread-milliseconds. */
  work: number;
  threads: number;
  finish: () => void;
}

/** One gateway pod. */
export class Pod {
  /** Requests inside the pod (admitted or being refused), and its integral over time (ms x requests). */
  inSystem = 0;
  #integral = 0;
  #integralAt = 0;
  readonly #queue: Job[] = [];
  #reserved = 0;
  #mainQueue: Task[] = [];
  #decodeQueue: Task[] = [];
  #main: Task | undefined;
  #decode: Task | undefined;
  #inference: Task | undefined;
  #cpuAt = 0;
  #version = 0;

  constructor(readonly model: PodModel, readonly clock: Clock, readonly random: () => number) {
    this.#cpuAt = clock.now;
    this.#integralAt = clock.now;
  }

  /** Admitted requests not yet running: what MAX_QUEUE bounds (`inference_queue_depth`). */
  get queueDepth(): number {
    return this.#reserved + this.#queue.length;
  }

  /** Request-milliseconds accumulated so far: the latency histogram's sum, in ms. */
  integral(): number {
    return this.#integral + this.inSystem * (this.clock.now - this.#integralAt);
  }

  #count(delta: number): void {
    const now = this.clock.now;
    this.#integral += this.inSystem * (now - this.#integralAt);
    this.#integralAt = now;
    this.inSystem += delta;
  }

  /** A request arrives; `done` is called with its status when it is answered. */
  arrive(done: (status: 200 | 503 | 504) => void): void {
    const m = this.model;
    this.#count(1);
    const finish = (status: 200 | 503 | 504) => {
      this.#count(-1);
      done(status);
    };
    if (this.queueDepth >= m.maxQueue) {
      this.#onMain(m.rejectMs, () => finish(503));
      return;
    }
    this.#reserved++;
    const job: Job = { t0: this.clock.now, done: finish, queued: false };
    this.#onMain(m.httpMs, () => {
      this.#onDecoder(m.decodeMs * spread(this.random, m.decodeSigma), () => {
        this.#reserved--;
        job.queued = true;
        this.#queue.push(job);
        const deadline = job.t0 + m.timeoutMs;
        this.clock.at(deadline, () => {
          const i = this.#queue.indexOf(job);
          if (i < 0) return;
          this.#queue.splice(i, 1);
          job.done(504);
        });
        this.#dispatch();
      });
    });
  }

  #onMain(ms: number, finish: () => void): void {
    this.#advance();
    this.#mainQueue.push({ work: ms, threads: 1, finish });
    if (!this.#main) this.#main = this.#mainQueue.shift();
    this.#reschedule();
  }

  #onDecoder(ms: number, finish: () => void): void {
    this.#advance();
    this.#decodeQueue.push({ work: ms, threads: 1, finish });
    if (!this.#decode) this.#decode = this.#decodeQueue.shift();
    this.#reschedule();
  }

  #dispatch(): void {
    if (this.#inference || this.#queue.length === 0) return;
    const m = this.model;
    const jobs = this.#queue.splice(0, m.maxBatch);
    this.#advance();
    this.#inference = {
      work: m.threads * m.batchMs(jobs.length) * spread(this.random, m.batchSigma),
      threads: m.threads,
      finish: () => {
        for (const j of jobs) j.done(200);
      },
    };
    this.#reschedule();
  }

  /** Share of a core each runnable thread gets now. */
  #share(): number {
    const threads = (this.#main ? 1 : 0) + (this.#decode ? 1 : 0) + (this.#inference?.threads ?? 0);
    return threads === 0 ? 0 : Math.min(1, this.model.cores / threads);
  }

  #advance(): void {
    const now = this.clock.now;
    const elapsed = now - this.#cpuAt;
    this.#cpuAt = now;
    if (elapsed <= 0) return;
    const share = this.#share();
    for (const task of [this.#main, this.#decode, this.#inference]) {
      if (task) task.work -= task.threads * share * elapsed;
    }
  }

  #reschedule(): void {
    const share = this.#share();
    if (share === 0) return;
    let next = Infinity;
    for (const task of [this.#main, this.#decode, this.#inference]) {
      if (task) next = Math.min(next, Math.max(0, task.work) / (task.threads * share));
    }
    const version = ++this.#version;
    this.clock.at(this.clock.now + next, () => {
      if (version !== this.#version) return;
      this.#advance();
      const eps = 1e-9;
      const finished: Array<() => void> = [];
      if (this.#main && this.#main.work <= eps) {
        finished.push(this.#main.finish);
        this.#main = this.#mainQueue.shift();
      }
      if (this.#decode && this.#decode.work <= eps) {
        finished.push(this.#decode.finish);
        this.#decode = this.#decodeQueue.shift();
      }
      if (this.#inference && this.#inference.work <= eps) {
        finished.push(this.#inference.finish);
        this.#inference = undefined;
      }
      this.#reschedule();
      for (const f of finished) f();
      this.#dispatch();
    });
  }
}

/** Latency percentile of the requests that got `status` (nearest rank), in ms. */
export function percentile(values: number[], p: number): number {
  if (values.length === 0) return NaN;
  const s = Float64Array.from(values).sort();
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))];
}

export interface LoadSummary {
  requests: number;
  ok: number;
  rejected: number;
  timedOut: number;
  throughputRps: number;
  p50Ms: number;
  p99Ms: number;
  /** Time-average of requests inside each pod. */
  inFlightPerPod: number;
  /** Share of non-rejected answers slower than the objective. */
  slowShare: number;
}

export function summarize(
  records: RequestRecord[],
  seconds: number,
  inFlightPerPod: number,
  objectiveMs = 300,
): LoadSummary {
  const ok = records.filter((r) => r.status === 200).map((r) => r.latencyMs);
  const counted = records.filter((r) => r.status !== 503);
  return {
    requests: records.length,
    ok: ok.length,
    rejected: records.filter((r) => r.status === 503).length,
    timedOut: records.filter((r) => r.status === 504).length,
    throughputRps: ok.length / seconds,
    p50Ms: percentile(ok, 50),
    p99Ms: percentile(ok, 99),
    inFlightPerPod,
    slowShare: counted.length === 0
      ? 0
      : counted.filter((r) => r.latencyMs > objectiveMs).length / counted.length,
  };
}

/** `clients` keep-alive clients each sending the next request when the last is answered (deno task bench). */
export function closedLoop(
  model: PodModel,
  clients: number,
  seconds: number,
  options: { seed?: number; warmupSeconds?: number } = {},
): LoadSummary {
  const clock = new Clock();
  const random = rng(options.seed ?? 1);
  const pod = new Pod(model, clock, random);
  const warmup = (options.warmupSeconds ?? 3) * 1000;
  const end = warmup + seconds * 1000;
  const records: RequestRecord[] = [];
  const send = () => {
    const t0 = clock.now;
    pod.arrive((status) => {
      if (t0 >= warmup && clock.now <= end) records.push({ t: t0, latencyMs: clock.now - t0, status });
      if (clock.now < end) send();
    });
  };
  for (let i = 0; i < clients; i++) send();
  clock.run(warmup);
  const from = pod.integral();
  clock.run(end);
  return summarize(records, seconds, (pod.integral() - from) / (end - warmup));
}

export type Balancer = "random" | "round-robin";

/** Poisson arrivals at `rate` requests/s spread over `pods` fixed pods. */
export function openLoop(
  model: PodModel,
  pods: number,
  rate: number,
  seconds: number,
  options: { seed?: number; warmupSeconds?: number; balancer?: Balancer; objectiveMs?: number } = {},
): LoadSummary {
  const clock = new Clock();
  const random = rng(options.seed ?? 1);
  const fleet = Array.from({ length: pods }, () => new Pod(model, clock, random));
  const warmup = (options.warmupSeconds ?? 5) * 1000;
  const end = warmup + seconds * 1000;
  const records: RequestRecord[] = [];
  let turn = 0;
  const next = () => {
    clock.at(clock.now - Math.log(Math.max(random(), 1e-12)) * 1000 / rate, () => {
      if (clock.now > end) return;
      const t0 = clock.now;
      const pod = options.balancer === "round-robin"
        ? fleet[turn++ % pods]
        : fleet[Math.floor(random() * pods)];
      pod.arrive((status) => {
        if (t0 >= warmup) records.push({ t: t0, latencyMs: clock.now - t0, status });
      });
      next();
    });
  };
  next();
  clock.run(warmup);
  const from = fleet.reduce((s, p) => s + p.integral(), 0);
  clock.run(end);
  const inFlight = (fleet.reduce((s, p) => s + p.integral(), 0) - from) / (end - warmup) / pods;
  clock.run(end + model.timeoutMs + 10_000); // answer what is still inside
  return summarize(records, seconds, inFlight, options.objectiveMs);
}

/** The HorizontalPodAutoscaler of deploy/kubernetes/base/hpa.yaml and the metric pipeline feeding it. */
export interface AutoscalerModel {
  /** averageValue of inference_requests_in_flight per pod. */
  target: number;
  minReplicas: number;
  maxReplicas: number;
  /** HPA sync period (kube-controller-manager's --horizontal-pod-autoscaler-sync-period). */
  syncSeconds: number;
  /** The HPA ignores a usage ratio within 1 +- tolerance. */
  tolerance: number;
  /** Prometheus scrape interval and the rate() window of the adapter's query. */
  scrapeSeconds: number;
  windowSeconds: number;
  /** scaleUp policies: at most max(+percent%, +pods) per period. */
  scaleUpPercent: number;
  scaleUpPods: number;
  scaleDownStabilizationSeconds: number;
  /** scaleDown policy: at most this percent of the pods removed per period. */
  scaleDownPercent: number;
  scaleDownPeriodSeconds: number;
  /** From the decision to a ready pod: scheduling, image, init container, model load, probe. */
  podStartSeconds: number;
  /** Readiness is seen at the next probe: uniform in [0, this). */
  probePeriodSeconds: number;
}

/** The HPA's replica rule for a Pods metric: ceil(current x usage/target), unless within tolerance. */
export function desiredReplicas(
  usage: number,
  podsWithMetric: number,
  current: number,
  a: Pick<AutoscalerModel, "target" | "tolerance" | "minReplicas" | "maxReplicas">,
): number {
  if (podsWithMetric === 0) return current;
  const ratio = usage / (podsWithMetric * a.target);
  if (Math.abs(ratio - 1) <= a.tolerance) return current;
  // Pods without a metric yet (starting) count as using nothing, so the total is what matters.
  const desired = Math.ceil(usage / a.target - 1e-9);
  return Math.min(a.maxReplicas, Math.max(a.minReplicas, desired));
}

export interface TimelinePoint {
  /** Seconds from the start of the recorded part. */
  t: number;
  offeredRps: number;
  okRps: number;
  rejectedRps: number;
  timedOutRps: number;
  /** p99 of successful answers in the bin, ms. */
  p99Ms: number;
  readyPods: number;
  desiredPods: number;
  queuePerPod: number;
}

export interface ScenarioResult {
  records: RequestRecord[];
  timeline: TimelinePoint[];
  /** Replicas when the recorded part began (after the warm-up at the first rate). */
  startPods: number;
}

/**
 * Poisson arrivals whose rate follows `rate(t)` (t in seconds from the recorded start), spread
 * at random over the ready pods, with the autoscaler adding and removing pods. The warm-up
 * (negative t) starts from minReplicas, so the fleet starts where the HPA would have settled.
 */
export function autoscaled(
  model: PodModel,
  auto: AutoscalerModel,
  rate: (t: number) => number,
  seconds: number,
  options: { seed?: number; warmupSeconds?: number; binSeconds?: number } = {},
): ScenarioResult {
  const clock = new Clock();
  const random = rng(options.seed ?? 1);
  const warmup = (options.warmupSeconds ?? 600) * 1000;
  const end = warmup + seconds * 1000;
  const bin = (options.binSeconds ?? 5) * 1000;
  const ready: Pod[] = [];
  let starting = 0;
  const scrapes = new Map<Pod, Array<[number, number]>>();
  const records: RequestRecord[] = [];
  const addReadyPod = () => {
    const pod = new Pod(model, clock, random);
    ready.push(pod);
    scrapes.set(pod, []);
  };
  for (let i = 0; i < auto.minReplicas; i++) addReadyPod();

  // Each gap is drawn at the current rate; a change of rate is seen from the next arrival on.
  const rateAt = (ms: number) => rate((ms - warmup) / 1000);
  const arrive = () => {
    const t0 = clock.now;
    if (ready.length === 0) {
      records.push({ t: t0, latencyMs: 0, status: 503 });
      return;
    }
    const pod = ready[Math.floor(random() * ready.length)];
    pod.arrive((status) => records.push({ t: t0, latencyMs: clock.now - t0, status }));
  };
  const step = () => {
    const r = rateAt(clock.now);
    if (r <= 0) {
      clock.at(clock.now + 100, step);
      return;
    }
    clock.at(clock.now - Math.log(Math.max(random(), 1e-12)) * 1000 / r, () => {
      if (clock.now > end) return;
      arrive();
      step();
    });
  };
  step();

  // Prometheus scrapes every pod's histogram sum; the adapter serves rate(...[window]).
  const scrape = () => {
    for (const pod of ready) scrapes.get(pod)!.push([clock.now, pod.integral()]);
    clock.at(clock.now + auto.scrapeSeconds * 1000, scrape);
  };
  clock.at(auto.scrapeSeconds * 1000 * random(), scrape);

  let desiredNow = auto.minReplicas;
  const history: Array<[number, number]> = [];
  /** Fleet size after each sync, for the scale-down rate limit. */
  const sizes: Array<[number, number]> = [];
  const reconcile = () => {
    let usage = 0;
    let withMetric = 0;
    for (const pod of ready) {
      const samples = scrapes.get(pod)!.filter(([t]) => t >= clock.now - auto.windowSeconds * 1000);
      if (samples.length < 2) continue;
      const [t1, v1] = samples[0];
      const [t2, v2] = samples[samples.length - 1];
      usage += (v2 - v1) / (t2 - t1);
      withMetric++;
    }
    const current = ready.length + starting;
    let desired = desiredReplicas(usage, withMetric, current, auto);
    if (desired > current) {
      desired = Math.min(
        desired,
        Math.max(Math.ceil(current * (1 + auto.scaleUpPercent / 100)), current + auto.scaleUpPods),
      );
    }
    history.push([clock.now, desired]);
    if (desired < current) {
      // Scale-down waits for the highest recommendation of the stabilization window, and removes
      // at most scaleDownPercent of the pods the fleet had one period ago.
      const since = clock.now - auto.scaleDownStabilizationSeconds * 1000;
      desired = Math.max(desired, ...history.filter(([t]) => t >= since).map(([, d]) => d));
      const periodStart = clock.now - auto.scaleDownPeriodSeconds * 1000;
      const before = [...sizes].reverse().find(([t]) => t <= periodStart)?.[1] ?? current;
      desired = Math.min(current, Math.max(desired, Math.floor(before * (1 - auto.scaleDownPercent / 100))));
    }
    desiredNow = desired;
    sizes.push([clock.now, Math.max(desired, current)]);
    for (let i = current; i < desired; i++) {
      starting++;
      const delay = (auto.podStartSeconds + auto.probePeriodSeconds * random()) * 1000;
      clock.at(clock.now + delay, () => {
        starting--;
        addReadyPod();
      });
    }
    for (let i = desired; i < current && ready.length > auto.minReplicas; i++) {
      // The pod leaves the endpoints at once and finishes what it holds (SHUTDOWN_DELAY_MS).
      ready.splice(ready.length - 1, 1);
    }
    clock.at(clock.now + auto.syncSeconds * 1000, reconcile);
  };
  clock.at(auto.syncSeconds * 1000, reconcile);

  const states: Array<Pick<TimelinePoint, "t" | "readyPods" | "desiredPods" | "queuePerPod">> = [];
  let startPods = 0;
  const sample = () => {
    if (clock.now === warmup) startPods = ready.length;
    else {
      states.push({
        t: (clock.now - warmup) / 1000,
        readyPods: ready.length,
        desiredPods: desiredNow,
        queuePerPod: ready.reduce((q, p) => q + p.queueDepth, 0) / Math.max(1, ready.length),
      });
    }
    if (clock.now < end) clock.at(clock.now + bin, sample);
  };
  clock.at(warmup, sample);
  clock.run(end + model.timeoutMs + 10_000);

  // Each bin's answers, by arrival time.
  const bins: RequestRecord[][] = states.map(() => []);
  for (const r of records) {
    const i = Math.floor((r.t - warmup) / bin);
    if (i >= 0 && i < bins.length) bins[i].push(r);
  }
  const s = bin / 1000;
  const timeline: TimelinePoint[] = states.map((state, i) => ({
    ...state,
    offeredRps: bins[i].length / s,
    okRps: bins[i].filter((r) => r.status === 200).length / s,
    rejectedRps: bins[i].filter((r) => r.status === 503).length / s,
    timedOutRps: bins[i].filter((r) => r.status === 504).length / s,
    p99Ms: percentile(bins[i].filter((r) => r.status === 200).map((r) => r.latencyMs), 99),
  }));
  return { records: records.filter((r) => r.t >= warmup && r.t < end), timeline, startPods };
}
