// Prometheus metrics: `GET /metrics` on every process, in the text exposition format (prom-client).
// Each process builds its own Registry (never prom-client's global one), so several servers can live in
// one Node process (tests) without clashing metric names. Like /healthy, /metrics is open when a token
// is configured (runtime/auth.ts): scrapers carry no credentials, and it exposes counters only.
import { Effect } from "effect"
import { HttpRouter, HttpServerResponse } from "effect/http"
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from "prom-client"

export const METRICS_PATH = "/metrics"

/** Buckets in seconds for whole downloads: from a small file on loopback to a large one over a WAN. */
const TASK_BUCKETS = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800]
/** Buckets in seconds for one piece (4 MiB on loopback: milliseconds; throttled or over a WAN: seconds). */
const PIECE_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60]
/** Buckets in seconds for answering one schedule request (usually well under a millisecond). */
const SCHEDULE_BUCKETS = [0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5]

/** The route that serves a registry's metrics. */
export const metricsRoute = (registry: Registry) =>
  HttpRouter.route("GET", METRICS_PATH, Effect.promise(() => registry.metrics()).pipe(
    Effect.map((text) => HttpServerResponse.text(text, { contentType: registry.contentType }))
  ))

const newRegistry = (role: "daemon" | "scheduler", defaults: boolean) => {
  const register = new Registry()
  register.setDefaultLabels({ role })
  if (defaults) collectDefaultMetrics({ register })
  return register
}

export interface UploadMetrics {
  /** A piece was sent to a child. */
  readonly uploaded: (bytes: number) => void
  /** A piece request was refused: no slot in time (busy), not held here, or a read error. */
  readonly refused: (reason: "busy" | "not_held" | "error") => void
  /** An availability long-poll was answered, or a feed line with news written: with news (a piece arrived) or empty at its time limit. */
  readonly availabilityAnswered: (outcome: "changed" | "timeout") => void
}

export const makeDaemonMetrics = (options: { defaultMetrics?: boolean } = {}) => {
  const registry = newRegistry("daemon", options.defaultMetrics ?? true)
  const traffic = new Counter({
    name: "damselfly_traffic_bytes_total",
    help: "Bytes downloaded by finished downloads, by source (peer or origin)",
    labelNames: ["type"] as const,
    registers: [registry]
  })
  const uploadBytes = new Counter({
    name: "damselfly_upload_bytes_total",
    help: "Piece bytes served to other peers",
    registers: [registry]
  })
  const uploadFailures = new Counter({
    name: "damselfly_upload_failures_total",
    help: "Piece requests from other peers that were not served, by reason (busy, not_held, error)",
    labelNames: ["reason"] as const,
    registers: [registry]
  })
  const downloads = new Counter({
    name: "damselfly_downloads_total",
    help: "Downloads (tasks) ended on this host, by result (success or failure)",
    labelNames: ["result"] as const,
    registers: [registry]
  })
  const taskDuration = new Histogram({
    name: "damselfly_task_duration_seconds",
    help: "Time from the start of a download (task) on this host to its end, successful or not",
    labelNames: ["result"] as const,
    buckets: TASK_BUCKETS,
    registers: [registry]
  })
  const inFlight = new Gauge({
    name: "damselfly_downloads_in_flight",
    help: "Downloads (tasks) under way on this host",
    registers: [registry]
  })
  const pieceDuration = new Histogram({
    name: "damselfly_piece_duration_seconds",
    help: "Time to fetch one piece, by source (peer or origin), bandwidth-limit waits excluded",
    labelNames: ["type"] as const,
    buckets: PIECE_BUCKETS,
    registers: [registry]
  })
  const evictions = new Counter({
    name: "damselfly_gc_evictions_total",
    help: "Tasks removed from the piece store by GC, by reason (ttl or watermark)",
    labelNames: ["reason"] as const,
    registers: [registry]
  })
  const evictedBytes = new Counter({
    name: "damselfly_gc_evicted_bytes_total",
    help: "Bytes of the tasks removed from the piece store by GC",
    registers: [registry]
  })
  const storeBytes = new Gauge({
    name: "damselfly_store_bytes",
    help: "Bytes of the piece store's own task files, as of the last GC pass",
    registers: [registry]
  })
  const storeTasks = new Gauge({
    name: "damselfly_store_tasks",
    help: "Tasks in the piece store, as of the last GC pass",
    registers: [registry]
  })
  const availabilityAnswers = new Counter({
    name: "damselfly_availability_answers_total",
    help: "Availability answers to children, long-polls and feed lines, by outcome (changed: new pieces; timeout: a long-poll with none within its limit)",
    labelNames: ["outcome"] as const,
    registers: [registry]
  })
  for (const outcome of ["changed", "timeout"]) availabilityAnswers.inc({ outcome }, 0)
  for (const type of ["peer", "origin"]) traffic.inc({ type }, 0)
  for (const reason of ["ttl", "watermark"]) evictions.inc({ reason }, 0)
  for (const result of ["success", "failure"]) downloads.inc({ result }, 0)
  for (const reason of ["busy", "not_held", "error"]) uploadFailures.inc({ reason }, 0)
  const upload: UploadMetrics = {
    uploaded: (bytes) => uploadBytes.inc(bytes),
    refused: (reason) => uploadFailures.inc({ reason }),
    availabilityAnswered: (outcome) => availabilityAnswers.inc({ outcome })
  }
  return {
    registry,
    upload,
    pieceFetched: (type: "peer" | "origin", seconds: number) => pieceDuration.observe({ type }, seconds),
    storage: {
      evicted: (reason: "ttl" | "watermark", bytes: number) => {
        evictions.inc({ reason })
        evictedBytes.inc(bytes)
      },
      stored: (bytes: number, tasks: number) => {
        storeBytes.set(bytes)
        storeTasks.set(tasks)
      }
    },
    downloadStarted: () => inFlight.inc(),
    /** One call per download that ends (not per caller that joined it). */
    downloadEnded: (seconds: number, result: { bytesFromPeers: number; bytesFromOrigin: number } | undefined) => {
      inFlight.dec()
      const label = result === undefined ? "failure" : "success"
      downloads.inc({ result: label })
      taskDuration.observe({ result: label }, seconds)
      if (result !== undefined) {
        traffic.inc({ type: "peer" }, result.bytesFromPeers)
        traffic.inc({ type: "origin" }, result.bytesFromOrigin)
      }
    }
  }
}
export type DaemonMetrics = ReturnType<typeof makeDaemonMetrics>

export const makeSchedulerMetrics = (hosts: () => number, options: { defaultMetrics?: boolean } = {}) => {
  const registry = newRegistry("scheduler", options.defaultMetrics ?? true)
  const duration = new Histogram({
    name: "damselfly_schedule_duration_seconds",
    help: "Time to answer a /v1/schedule request, by request type",
    labelNames: ["request"] as const,
    buckets: SCHEDULE_BUCKETS,
    registers: [registry]
  })
  const requests = new Counter({
    name: "damselfly_schedule_requests_total",
    help: "Schedule requests answered, by answer (CandidateParents, NeedBackToSource, HostAnnounced, ...)",
    labelNames: ["answer"] as const,
    registers: [registry]
  })
  const reports = new Counter({
    name: "damselfly_reports_total",
    help: "Peer reports received, by type",
    labelNames: ["type"] as const,
    registers: [registry]
  })
  const pieceFailures = new Counter({
    name: "damselfly_piece_failures_total",
    help: "PieceFailed reports received, by kind (temporary: busy or unreachable parent; permanent: bad digest or the like)",
    labelNames: ["kind"] as const,
    registers: [registry]
  })
  // Peers that registered to download and have not left or failed since (counted here, not read from core).
  const peers = new Set<string>()
  new Gauge({
    name: "damselfly_registered_peers",
    help: "Peers registered for a download here that have not left or failed since",
    registers: [registry],
    collect() {
      this.set(peers.size)
    }
  })
  new Gauge({
    name: "damselfly_hosts",
    help: "Hosts known to this scheduler (announced or registered a peer since it started)",
    registers: [registry],
    collect() {
      this.set(hosts())
    }
  })
  for (const kind of ["temporary", "permanent"]) pieceFailures.inc({ kind }, 0)
  return {
    registry,
    /** Starts timing a schedule request; call the result with the answer's tag. */
    scheduleStarted: (request: string) => {
      const end = duration.startTimer({ request })
      return (answer: string) => {
        end()
        requests.inc({ answer })
      }
    },
    registered: (peerId: string) => peers.add(peerId),
    report: (r: { _tag: string; peerId: string; temporary?: boolean }) => {
      reports.inc({ type: r._tag })
      if (r._tag === "PieceFailed") pieceFailures.inc({ kind: r.temporary === true ? "temporary" : "permanent" })
      if (r._tag === "LeavePeer" || r._tag === "DownloadFailed") peers.delete(r.peerId)
    }
  }
}
export type SchedulerMetrics = ReturnType<typeof makeSchedulerMetrics>
