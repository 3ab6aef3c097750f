// `damselfly daemon`: one host's peer. It announces its Host to every scheduler, serves pieces to other
// peers (upload-server), and runs core's `downloadTask` — for a user (`POST /v1/download`) or when a
// scheduler picks it as seed (`POST /v1/seed`) — over the real HTTP and disk Layers. With several
// schedulers each task goes to the one its id hashes to (runtime/scheduler-ring.ts), and to the next one
// on the ring while that one is down.
import { randomUUID } from "node:crypto"
import { createReadStream, promises as fs } from "node:fs"
import { hostname } from "node:os"
import * as path from "node:path"
import { createHash } from "node:crypto"
import { Cause, Effect, Exit, Fiber, Layer, Option, Schema } from "effect"
import { HttpRouter } from "effect/http"
import { Host, PositiveInt, peerIdOf, TaskId } from "../core/domain.ts"
import { announceHost, reRegistration } from "../core/peer/presence.ts"
import { type DownloadResult, defaultPeerOptions, downloadTask, type PeerOptions } from "../core/peer/conductor.ts"
import { type StrategyName, strategies, strategyPieceLength } from "../core/strategies.ts"
import { DownloadError, OriginFailed } from "../core/errors.ts"
import { Origin, PieceTransfer } from "../core/services/piece-transfer.ts"
import { pieceAt } from "../core/piece-layout.ts"
import { SchedulerChannel } from "../core/services/scheduler-channel.ts"
import { taskIdOf } from "../core/task-id.ts"
import { AccessDenied, authorizedBlobHook, makeBlobAccess } from "./blob-access.ts"
import { cacheRoutes } from "./cache.ts"
import { DiskPieceStore, DiskStore } from "./disk-store.ts"
import { call } from "./http-call.ts"
import { badRequest, decodeBody, errorResponse, jsonResponse, orBadRequest, notFoundRoute } from "./http-json.ts"
import { CONTROL_TOKEN_ENV, requireToken, resolveToken, SEED_TOKEN_ENV, SEED_TOKEN_HEADER } from "./auth.ts"
import { ANY_SOURCE, makeControlGate, requireLocalControl } from "./control-access.ts"
import { serveRoutes } from "./http-serve.ts"
import { listenLayer } from "./http-listen.ts"
import { makeDaemonMetrics, metricsRoute } from "./metrics.ts"
import { httpOrigin } from "./http-origin.ts"
import { makeHttpPieceTransfer } from "./http-piece-transfer.ts"
import { DEFAULT_SCHEDULER_DOWN_MILLIS, makeRingSchedulerChannel } from "./http-scheduler-channel.ts"
import { NodeSha256 } from "./node-sha256.ts"
import { preheatDaemonRoutes } from "./preheat-daemon.ts"
import { DEFAULT_SMALL_CONTENT_MAX, fetchDirect } from "./direct-fetch.ts"
import { objectRoutes } from "./object-route.ts"
import { makeOriginAllowlist } from "./origin-allowlist.ts"
import { makeTaskStreams, type TaskJob } from "./task-stream.ts"
import { uploadRoutes } from "./upload-server.ts"
import { limiterFor, limitPieceTransfer } from "./bandwidth.ts"
import { meterOrigin, meterPieceTransfer, type Progress, viewOf } from "./progress.ts"
import { DEFAULT_GC, type GcOptions, gcLoop } from "./storage-gc.ts"
import { taskStreamBlobSource } from "./registry-blob-source.ts"
import { type RegistryFrontendOptions, serveRegistryFrontends } from "./registry-server.ts"

export interface DaemonOptions {
  readonly port: number
  readonly listen: string
  readonly data: string
  /** Scheduler base URLs; tasks are placed on them by consistent hashing of the task id. */
  readonly schedulers: ReadonlyArray<string>
  /** How long an unreachable scheduler is passed over (its tasks go to the next one) before it is tried again. */
  readonly schedulerDownMillis?: number | undefined
  readonly seed: boolean
  readonly hostId: string | undefined
  readonly idc: string
  readonly location: string
  /** Upload limit, bytes/s over all pieces served to children (undefined: none). */
  readonly uploadBandwidth: number | undefined
  /** Download limit, bytes/s over all pieces fetched from parents (undefined: none). */
  readonly downloadLimit?: number | undefined
  /** Back-to-source limit, bytes/s over all ranges fetched from origins (undefined: none). */
  readonly backToSourceLimit?: number | undefined
  /** Keep the piece store across restarts (resume, serve what was held); false wipes it on start. Default true. */
  readonly keepCache?: boolean | undefined
  /** Storage GC (runtime/storage-gc.ts); DEFAULT_GC when omitted. */
  readonly gc?: GcOptions | undefined
  readonly uploadSlots: number
  readonly concurrentPieces: number | undefined
  /** The strategy the scheduler runs: its peer options (pieces in flight, refresh, stripes' grace…). Default dragonfly. */
  readonly strategy?: StrategyName | undefined
  /** Shared secret: required on requests to this daemon and sent on its own (falls back to DAMSELFLY_TOKEN). */
  readonly token?: string | undefined
  /** A seed's secret for the schedulers (runtime/auth.ts SEED_TOKEN_ENV): sent with every scheduler call, next to `token`. */
  readonly seedToken?: string | undefined
  /** Opens the local control routes (runtime/control-access.ts) to callers on other hosts that send it (falls back to DAMSELFLY_CONTROL_TOKEN). */
  readonly controlToken?: string | undefined
  /** Sources besides this host allowed on the control routes: addresses, CIDR blocks, or `any`. */
  readonly controlFrom?: ReadonlyArray<string> | undefined
  /** `--origin-allow` (runtime/origin-allowlist.ts): the only origins this daemon fetches, whoever asks. Default: every origin. */
  readonly originAllow?: ReadonlyArray<string> | undefined
  readonly maxConnections?: number | undefined
  /** Silence from the origin mid-reply after which a piece fails (and is retried). */
  readonly originIdleMillis?: number | undefined
  /** How long the origin may keep failing before a download gives up (core retries with backoff meanwhile). */
  readonly originOutageMillis?: number | undefined
  /** How long a piece request may wait for an upload slot before a 503. */
  readonly uploadQueueMillis?: number | undefined
  /** TEST ONLY fault injection (see DAEMON_FAULTS); never set in production. */
  readonly fault?: DaemonFault | undefined
  /** After a range request, download the whole task in the background (default true). */
  readonly prefetch?: boolean | undefined
  /** Content up to this many bytes is fetched straight from the origin, without the scheduler (default 4 MiB; 0 = never). */
  readonly smallContentMax?: number | undefined
  /** OCI registry mirror and generic HTTP proxy on their own ports (runtime/registry-server.ts). */
  readonly registry?: Omit<RegistryFrontendOptions, "listen" | "maxConnections"> | undefined
}

/** Faults a test can inject into a real daemon process. */
export const DAEMON_FAULTS = ["corrupt-uploads"] as const
export type DaemonFault = typeof DAEMON_FAULTS[number]

const StringRecord = Schema.Record(Schema.String, Schema.String)
const HttpUrl = Schema.String.check(Schema.isPattern(/^https?:\/\/[^\s]+$/)).annotate({ description: "an http(s) URL" })

/** What the scheduler sends a seed (core's SeedRequest, as a Schema for the wire). */
export const SeedRequestBody = Schema.Struct({
  taskId: TaskId,
  url: HttpUrl,
  pieceLength: PositiveInt,
  headers: StringRecord
})

export const DownloadBody = Schema.Struct({
  url: HttpUrl,
  output: Schema.String.check(Schema.isPattern(/^\//)).annotate({ description: "an absolute path" }),
  digest: Schema.optional(Schema.String),
  pieceLength: Schema.optional(PositiveInt),
  headers: Schema.optional(StringRecord),
  /** Fail rather than fetch from the origin (when this download starts the task here). */
  disableBackToSource: Schema.optional(Schema.Boolean),
  /** `damselfly get --timeout`: answer 504 and write nothing once this long has passed. */
  timeoutMillis: Schema.optional(PositiveInt)
})

/** Large enough never to throttle on loopback unless the operator says otherwise. */
/** The failure's own message, not a stack trace, for JSON answers. */
const messageOf = (cause: Cause.Cause<unknown>) => {
  const e = Cause.squash(cause)
  return e instanceof Error ? e.message : typeof e === "object" && e !== null && "message" in e ? String(e.message) : String(e)
}

const UNLIMITED_BANDWIDTH = 10 * 1024 * 1024 * 1024

const hostOf = (o: DaemonOptions) =>
  new Host({
    id: o.hostId ?? `${hostname()}-${o.port}`,
    ip: o.listen === "0.0.0.0" || o.listen === "::" ? "127.0.0.1" : o.listen,
    port: o.port,
    idc: o.idc,
    location: o.location,
    type: o.seed ? "seed" : "normal",
    uploadBandwidth: o.uploadBandwidth ?? UNLIMITED_BANDWIDTH,
    downloadBandwidth: o.downloadLimit ?? UNLIMITED_BANDWIDTH,
    uploadSlots: o.uploadSlots
  })

/** The client's `--timeout` passed during the delivery (the tmp file is removed, `output` untouched). */
class DeliveryOverdue extends Error {}

/**
 * Puts the committed content at `output` via a tmp name in the same directory. As Dragonfly's daemon
 * does, a hard link when `output` is on the store's file system (on loopback, copying 1 GiB cost about
 * half as much as downloading it), else a kernel copy. The output then shares the cache's inode, so it
 * is to be replaced, not edited in place (README). With a digest, the content is hashed first.
 */
const deliver = async (source: string, output: string, digest: string | undefined, overdue: () => boolean = () => false) => {
  await fs.mkdir(path.dirname(output), { recursive: true })
  const tmp = `${output}.damselfly-${randomUUID().slice(0, 8)}.tmp`
  const inTime = () => {
    if (overdue()) throw new DeliveryOverdue()
  }
  try {
    if (digest !== undefined) {
      const hash = createHash("sha256")
      for await (const chunk of createReadStream(source, { highWaterMark: 1024 * 1024 })) {
        hash.update(chunk as Buffer)
        inTime()
      }
      const actual = `sha256:${hash.digest("hex")}`
      if (actual !== digest) throw new Error(`digest mismatch: expected ${digest}, got ${actual}`)
    }
    await fs.link(source, tmp).catch(() => fs.copyFile(source, tmp))
    // Last check before the atomic rename: past the client's deadline, nothing appears at `output`.
    inTime()
    await fs.rename(tmp, output)
  } finally {
    // Gone after a rename, except when `output` already was this very inode (rename then does nothing).
    await fs.rm(tmp, { force: true })
  }
}

export const daemonRoutes = (o: DaemonOptions) =>
  Layer.unwrap(Effect.gen(function*() {
    const host = hostOf(o)
    const store = new DiskStore(o.data)
    const wiped = o.keepCache === false ? yield* Effect.promise(() => store.wipe()) : 0
    const resumed = yield* Effect.promise(() => store.loadExisting())
    const scope = yield* Effect.scope
    const token = resolveToken(o.token)
    // Control routes (download, cache import/export, object, the registry front ends) only for this host's
    // clients, listed sources or holders of the control token: the cluster token is every peer's.
    const control = makeControlGate({ token: resolveToken(o.controlToken, CONTROL_TOKEN_ENV), from: o.controlFrom })
    if (control.sources.any) yield* Effect.logWarning(`--control-from ${ANY_SOURCE}: any host that reaches this daemon may download to, import from and export to its files`)
    const metrics = makeDaemonMetrics()
    // Origins outside --origin-allow are never contacted: not for a seed or preheat request (a scheduler's
    // key alone must not be enough), a local download, the object route or the mirror. Refused where the
    // request arrives (403) and, for every other path, by the download runner and the Origin service itself.
    const allow = makeOriginAllowlist(o.originAllow, "this daemon")
    const withinList = <A>(url: string, call: () => Effect.Effect<A, OriginFailed>) => Effect.suspend(() => {
      const refused = allow.problem("url", url)
      return refused === undefined ? call() : Effect.fail(new OriginFailed({ message: refused, status: null }))
    })
    const guardOrigin = (service: Origin["Service"]): Origin["Service"] => !allow.configured ? service : Origin.of({
      probe: (request) => withinList(request.url, () => service.probe(request)),
      fetchRange: (request, offset, length) => withinList(request.url, () => service.fetchRange(request, offset, length))
    })
    const origin = Layer.succeed(Origin)(guardOrigin(yield* Origin.use(Effect.succeed).pipe(Effect.provide(httpOrigin(o.originIdleMillis)))))
    const pieceStore = DiskPieceStore(store)
    // Private blobs (runtime/blob-access.ts): proven access upstream → a capability sent to parents; tasks
    // marked private here are served only to capability holders. The registry mirror calls proveAccess.
    const blobAccess = makeBlobAccess({ data: o.data, schedulers: o.schedulers, token, hostId: host.id })
    // A registration for a private task carries the credentials its seed needs (blob-access.ts says when).
    const seedToken = o.seed ? resolveToken(o.seedToken, SEED_TOKEN_ENV) : undefined
    const ring = yield* makeRingSchedulerChannel(o.schedulers, token, o.schedulerDownMillis ?? DEFAULT_SCHEDULER_DOWN_MILLIS, blobAccess.seedHeaders,
      seedToken === undefined ? {} : { [SEED_TOKEN_HEADER]: seedToken })
    // The strategy decides peer options and the piece length, which is part of a URL task's id: a daemon cut
    // differently from the rest of its cluster fetches nothing from it. Without --strategy the daemon takes
    // the schedulers' (their /healthy says it) on its first announcement; until then, and when none answers,
    // Dragonfly's.
    const strategy: { name: StrategyName; from: "flag" | "default" | "scheduler" } = { name: o.strategy ?? "dragonfly", from: o.strategy !== undefined ? "flag" : "default" }
    const peerOptionsNow = (): PeerOptions => ({
      ...defaultPeerOptions,
      ...strategies[strategy.name].peerOptions,
      ...(o.concurrentPieces !== undefined ? { concurrentPieces: o.concurrentPieces } : {}),
      ...(o.originOutageMillis !== undefined ? { originOutageMillis: o.originOutageMillis } : {})
    })
    // Bandwidth limits (runtime/bandwidth.ts): one bucket per kind, shared by every task on this host.
    const downloadLimiter = limiterFor(o.downloadLimit)
    const backToSourceLimiter = limiterFor(o.backToSourceLimit)
    const pieceLengthOfTask = async (taskId: string, index: number) => {
      const ledger = await store.ledgerOf(taskId)
      return ledger === undefined || index >= ledger.pieceCount ? undefined : pieceAt(ledger.contentLength, ledger.pieceLength, index).length
    }
    const transfer = makeHttpPieceTransfer(token, blobAccess.requestHeaders, (taskId, index, body) => store.stage(taskId, index, body))
    // Back-to-source ranges are read at the limit's rate chunk by chunk (runtime/bandwidth.ts).
    const originService = guardOrigin(yield* Origin.use((service) => Effect.succeed(service)).pipe(Effect.provide(httpOrigin(o.originIdleMillis, backToSourceLimiter))))
    const progress = new Map<string, Progress>()
    // The piece log of the last few downloads that ended here, for `GET /v1/downloads/{taskId}/pieces`.
    const ended = new Map<string, Progress>()
    const ENDED_KEPT = 16
    // Each download counts its bytes by source and times its pieces (metered), under the host's limits.
    const peerLayerFor = (p: Progress) =>
      Layer.mergeAll(
        Layer.succeed(SchedulerChannel)(ring.channel),
        Layer.succeed(PieceTransfer)(limitPieceTransfer(meterPieceTransfer(transfer, p, metrics.pieceFetched), downloadLimiter, pieceLengthOfTask)),
        Layer.succeed(Origin)(meterOrigin(originService, p, metrics.pieceFetched)),
        pieceStore,
        NodeSha256
      )
    // A limited download takes longer per piece: stretch the stall and piece timeouts so waiting for
    // the bucket is not taken for a stalled parent.
    const optionsFor = (pieceLength: number, disableBackToSource: boolean): PeerOptions => {
      const rates = [o.downloadLimit, o.backToSourceLimit].filter((r): r is number => r !== undefined)
      const peerOptions = peerOptionsNow()
      const base = disableBackToSource ? { ...peerOptions, disableBackToSource: true } : peerOptions
      if (rates.length === 0) return base
      const perPiece = (pieceLength / Math.min(...rates)) * 1000
      return {
        ...base,
        stallTimeoutMillis: Math.max(base.stallTimeoutMillis, 3 * perPiece),
        pieceTimeoutMillis: Math.max(base.pieceTimeoutMillis, base.pieceTimeoutMillis + base.concurrentPieces * perPiece)
      }
    }
    let announced = false

    // Announce to every scheduler until one hears us, then every 30 s — and at once when a scheduler is
    // marked down, and again when its down mark expires (the probe that finds it back). The announcement's
    // epoch combines every answering scheduler's, so a scheduler lost, restarted or back makes core's
    // announceHost re-register the tasks held here, each with the scheduler that now owns it (the ring's
    // presence channel skips the tasks that did not move): the schedulers rebuild their view from the peers.
    const inFlight = new Map<string, Fiber.Fiber<DownloadResult, DownloadError>>()

    // core's announceHost re-registers complete tasks only. A download under way whose scheduler went
    // away (or came back) is re-registered here, at once and with the pieces it holds (a seed with their
    // digests, which it had from the origin), so the new scheduler knows its peers — the seed above all —
    // before they stall. Only downloads running now: a failed one is never offered as a parent.
    const reRegisterDownloads = Effect.gen(function*() {
      for (const { task, ledger } of yield* Effect.promise(() => store.heldAsync())) {
        if (!inFlight.has(task.taskId) || ledger.complete || !ring.moved(task.taskId)) continue
        yield* Effect.ignore(ring.channel.request(reRegistration(host, task, ledger)))
      }
    })

    // Each scheduler's /healthy names its strategy (no token needed). Schedulers that disagree are a
    // misconfiguration: say so and keep the first answer, in the order of --schedulers.
    const learnStrategy = Effect.gen(function*() {
      const named = new Map<string, string>()
      for (const base of o.schedulers) {
        const reply = yield* Effect.result(call(`${base}/healthy`, { timeoutMillis: 5_000 }))
        if (reply._tag === "Failure" || reply.success.status !== 200) continue
        const said = yield* Effect.result(Effect.try(() => (JSON.parse(reply.success.body.toString("utf8")) as { strategy?: unknown }).strategy))
        if (said._tag === "Success" && typeof said.success === "string" && Object.hasOwn(strategies, said.success)) named.set(base, said.success)
      }
      const first = named.values().next()
      if (first.done === true) return
      if (new Set(named.values()).size > 1) {
        yield* Effect.logWarning("schedulers run different strategies; give them all the same --strategy").pipe(
          Effect.annotateLogs({ strategies: Object.fromEntries(named), using: first.value })
        )
      }
      if (strategy.from === "scheduler" && strategy.name === first.value) return
      strategy.name = first.value as StrategyName
      strategy.from = "scheduler"
      yield* Effect.logInfo("strategy taken from the schedulers").pipe(Effect.annotateLogs({ strategy: strategy.name }))
    })

    const presence = Effect.gen(function*() {
      let epoch: string | undefined
      let lastProblem: string | undefined
      while (true) {
        yield* ring.settle
        const next = yield* Effect.result(announceHost(host, epoch).pipe(
          Effect.provideService(SchedulerChannel, ring.presence),
          Effect.provide(pieceStore)
        ))
        const ok = next._tag === "Success"
        // Say why announcing fails (unreachable, or refused: a wrong token), once per distinct reason.
        const problem = ok ? undefined : next.failure.message
        if (problem !== undefined && problem !== lastProblem) {
          yield* Effect.logWarning("announcing this host failed; retrying every second").pipe(Effect.annotateLogs({ reason: problem }))
        }
        lastProblem = problem
        if (ok) {
          const changed = epoch !== undefined && next.success !== epoch
          if (changed) {
            yield* Effect.logInfo("schedulers changed; held tasks re-registered where they now live").pipe(Effect.annotateLogs({ schedulers: next.success }))
          }
          epoch = next.success
          announced = true
          // A scheduler that restarted (a new epoch) may run another strategy now: ask again, unless a flag set it.
          if (strategy.from === "default" || (strategy.from === "scheduler" && changed)) yield* learnStrategy
          yield* reRegisterDownloads
        }
        const wait = Math.min(ok ? 30_000 : 1_000, (ring.untilNextExpiry() ?? Infinity) + 50)
        yield* Effect.raceFirst(Effect.sleep(wait), ring.changed)
      }
    })
    // Before serving: a request arriving at once (a kubelet pulling through the mirror as the node boots)
    // would otherwise be cut by the default strategy. Bounded: with no scheduler up, presence learns later.
    if (strategy.from === "default") yield* learnStrategy.pipe(Effect.timeout(3_000), Effect.ignore)
    yield* presence.pipe(Effect.forkIn(scope))
    yield* gcLoop({ store, downloading: (taskId) => inFlight.has(taskId), metrics: metrics.storage }, o.gc ?? DEFAULT_GC).pipe(Effect.forkIn(scope))
    yield* Effect.logInfo("daemon started").pipe(Effect.annotateLogs({ host: host.id, type: host.type, port: o.port, resumedTasks: resumed, wipedTasks: wiped }))

    // One download per task at a time on this host: later callers join it. Forked in the daemon's scope,
    // so a caller hanging up does not abort a download other callers (and children) rely on. Small
    // content a reader asked for (runtime/task-stream.ts) takes the direct origin path instead of core's.
    const start = (job: TaskJob) =>
      Effect.gen(function*() {
        const { taskId, url, pieceLength, headers } = job
        // Fails at once (core would retry a refusing origin for --origin-outage): nothing is fetched.
        const outside = allow.problem("url", url)
        if (outside !== undefined) return yield* Effect.forkIn(Effect.fail(new DownloadError({ message: outside })), scope)
        let fiber = inFlight.get(taskId)
        if (fiber === undefined) {
          const peerId = peerIdOf(host.id, taskId)
          const started = Date.now()
          metrics.downloadStarted()
          const p: Progress = { taskId, url, pieceLength, startedAt: started, bytesFromPeers: 0, bytesFromOrigin: 0, pieces: [] }
          progress.set(taskId, p)
          const options = optionsFor(pieceLength, job.disableBackToSource === true)
          const run = job.direct !== undefined
            ? fetchDirect(store, { taskId, url, headers, pieceLength, contentLength: job.direct.contentLength, digest: job.direct.digest })
            : job.firstPiece === undefined
            ? downloadTask({ url, taskId, pieceLength, peerId, host, headers }, options)
            : job.firstPiece.index === 0
            ? downloadTask({ url, taskId, pieceLength, peerId, host, headers }, { ...options, sequentialBias: true })
            : downloadTask({ url, taskId, pieceLength, peerId, host, headers }, { ...options, startPiece: job.firstPiece.index })
          fiber = yield* run.pipe(
            Effect.tap(() => Effect.tryPromise({ try: () => store.commitAsync(taskId), catch: (e) => new DownloadError({ message: `commit: ${String(e)}` }) })),
            Effect.tap((r) => Effect.logInfo("download finished").pipe(Effect.annotateLogs({ peerId, ...r }))),
            Effect.tapError((e) => Effect.logWarning(`download failed: ${String((e as { message?: string }).message ?? e)}`).pipe(Effect.annotateLogs({ taskId, peerId }))),
            Effect.provide(peerLayerFor(p)),
            Effect.onExit((exit) => Effect.sync(() =>
              metrics.downloadEnded((Date.now() - started) / 1000, Exit.isSuccess(exit) ? exit.value : undefined))),
            Effect.ensuring(Effect.sync(() => {
              inFlight.delete(taskId)
              progress.delete(taskId)
              ended.delete(taskId)
              ended.set(taskId, p)
              if (ended.size > ENDED_KEPT) ended.delete(ended.keys().next().value!)
            })),
            Effect.forkIn(scope)
          )
          inFlight.set(taskId, fiber)
        }
        return fiber
      })
    const download = (taskId: string, url: string, pieceLength: number, headers: Record<string, string>, disableBackToSource = false) =>
      Effect.flatMap(start({ taskId, url, pieceLength, headers, disableBackToSource }), Fiber.join)

    // Streams of a task's bytes as its pieces land: `GET /v1/object` below, and in-process callers.
    // The strategy's piece length (damselfly's goes down to 2 MiB): every daemon and the scheduler run the same.
    const strategyRule = (contentLength: number) => strategyPieceLength(strategy.name, contentLength)
    const tasks = makeTaskStreams({
      store,
      origin: yield* Origin.use(Effect.succeed).pipe(Effect.provide(origin)),
      start,
      running: (taskId) => inFlight.get(taskId),
      prefetch: o.prefetch ?? true,
      smallContentMax: o.smallContentMax ?? DEFAULT_SMALL_CONTENT_MAX,
      pieceLengthFor: strategyRule
    })

    const pieceLengthOf = (url: string, headers: Record<string, string>, requested: number | undefined) =>
      requested !== undefined
        ? Effect.succeed(requested)
        : Origin.use((origin) => origin.probe({ url, headers })).pipe(
          Effect.map((p) => strategyRule(p.contentLength)),
          // Origin unreachable: peers may still have it; the rule's shortest (4 MiB for Dragonfly's, below 2 GiB).
          Effect.orElseSucceed(() => strategyRule(0)),
          Effect.provide(origin)
        )

    // Registry mirror / HTTP proxy: a blob GET streams the task named by the blob digest. Always P2P,
    // whatever its size (no direct path): a rollout pulls the same small blobs on every node too.
    if (o.registry?.mirrorPort !== undefined || o.registry?.proxyPort !== undefined) {
      const context = yield* Effect.context<never>()
      const blobTasks = makeTaskStreams({
        store,
        origin: yield* Origin.use(Effect.succeed).pipe(Effect.provide(origin)),
        start,
        running: (taskId) => inFlight.get(taskId),
        prefetch: true,
        smallContentMax: 0,
        pieceLengthFor: strategyRule
      })
      const blobs = taskStreamBlobSource({
        openTask: (request) => Effect.runPromiseWith(context)(blobTasks.openTask(request)),
        pin: (taskId, until) => void store.withPin(taskId, () => until)
      })
      const log = (level: "info" | "warning", message: string, fields: Record<string, unknown>) =>
        Effect.runForkWith(context)((level === "info" ? Effect.logInfo(message) : Effect.logWarning(message)).pipe(Effect.annotateLogs(fields)))
      // A client that sent Authorization and passed the upstream's HEAD proves access for this host: a
      // private blob's pieces then travel only between hosts holding a capability (runtime/blob-access.ts).
      yield* serveRegistryFrontends({ ...o.registry, listen: o.listen, maxConnections: o.maxConnections }, blobs, log, control, authorizedBlobHook(blobAccess))
    }

    if (o.fault !== undefined) yield* Effect.logWarning(`TEST-ONLY FAULT INJECTION ACTIVE: ${o.fault}`)
    const upload = yield* uploadRoutes(store, {
      uploadSlots: o.uploadSlots,
      queueMillis: o.uploadQueueMillis,
      corruptUploads: o.fault === "corrupt-uploads",
      uploadBandwidth: o.uploadBandwidth,
      uploadLimiter: limiterFor(o.uploadBandwidth),
      downloading: (taskId) => inFlight.has(taskId),
      metrics: metrics.upload,
      access: blobAccess.checkRequest
    })

    const routes = HttpRouter.addAll([
      ...upload,
      // `damselfly cache import|export|stat` (runtime/cache.ts); an import is announced like a finished download.
      ...cacheRoutes({
        store,
        register: (task, ledger) => ring.channel.request(reRegistration(host, task, ledger)),
        downloading: (taskId) => inFlight.has(taskId),
        pieceLengthFor: strategyRule
      }),
      // Preheat jobs of the scheduler start and follow downloads here (runtime/preheat-daemon.ts).
      ...preheatDaemonRoutes({ store, download, scope, blobAccess, originProblem: (url) => allow.problem("url", url) }),
      metricsRoute(metrics.registry),
      // Downloads under way here and how far they are (`damselfly get` polls it for its progress bar).
      HttpRouter.route("GET", "/v1/downloads", Effect.promise(async () => {
        const views = []
        for (const p of progress.values()) views.push(viewOf(p, await store.ledgerOf(p.taskId)))
        return jsonResponse({ downloads: views })
      })),
      // Which piece came from where and when, for a download under way or one of the last that ended here.
      HttpRouter.route("GET", "/v1/downloads/:taskId/pieces", Effect.gen(function*() {
        const { taskId } = yield* HttpRouter.params
        const p = progress.get(taskId ?? "") ?? ended.get(taskId ?? "")
        return p === undefined
          ? errorResponse(404, `no download of task ${taskId} here`)
          : jsonResponse({ taskId: p.taskId, startedAt: p.startedAt, pieceLength: p.pieceLength, pieces: p.pieces })
      })),
      HttpRouter.route("GET", "/healthy", Effect.sync(() => jsonResponse({ ok: true, hostId: host.id, type: host.type, announced, strategy: strategy.name, strategyFrom: strategy.from, downloading: inFlight.size, schedulers: ring.status() }))),
      HttpRouter.route("POST", "/v1/seed", orBadRequest(Effect.gen(function*() {
        // The scheduler triggers only hosts announced as seeds (core/scheduler triggerSeed): anyone else
        // asking a normal daemon to fetch a URL back to source is not the scheduler.
        if (!o.seed) return errorResponse(403, "POST /v1/seed: this daemon is not a seed peer (--seed not set); schedulers trigger only seed peers")
        const seed = yield* decodeBody(SeedRequestBody)
        // Signed by one of this daemon's schedulers for this task, body and host (runtime/scheduler-trigger.ts).
        const unsigned = yield* blobAccess.checkTrigger("seed", seed.taskId)
        if (unsigned !== undefined) return errorResponse(403, `POST /v1/seed: ${unsigned}`)
        const outside = allow.problem("url", seed.url)
        if (outside !== undefined) return errorResponse(403, `POST /v1/seed: ${outside}`)
        // With origin credentials (a private blob): proven and marked private here before anything is fetched.
        const admitted = yield* Effect.result(blobAccess.admitSeed(seed))
        if (admitted._tag === "Failure") return errorResponse(403, `seed for ${seed.url}: ${admitted.failure.message}`)
        yield* download(seed.taskId, seed.url, seed.pieceLength, { ...seed.headers }).pipe(Effect.ignore, Effect.forkIn(scope))
        return jsonResponse({ accepted: true, taskId: seed.taskId }, 202)
      }))),
      HttpRouter.route("POST", "/v1/download", orBadRequest(Effect.gen(function*() {
        const body = yield* decodeBody(DownloadBody)
        const outside = allow.problem("url", body.url)
        if (outside !== undefined) return errorResponse(403, `download of ${body.url}: ${outside}`)
        const deadline = body.timeoutMillis === undefined ? undefined : Date.now() + body.timeoutMillis
        const overdue = () => errorResponse(504, `download of ${body.url} did not complete within the client's timeout of ${body.timeoutMillis} ms; nothing written to ${body.output}`)
        const headers = { ...(body.headers ?? {}) }
        const pieceLength = yield* pieceLengthOf(body.url, headers, body.pieceLength)
        const taskId = yield* taskIdOf({ url: body.url, pieceLength, ...(body.digest === undefined ? {} : { digest: body.digest }) }).pipe(
          Effect.provide(NodeSha256),
          Effect.catchTag("InvalidDigest", (e) => badRequest(e.message))
        )
        // A blob fetched with credentials: prove access upstream first (a private blob's pieces then need a capability).
        const authorization = Object.entries(headers).find(([k]) => k.toLowerCase() === "authorization")?.[1]
        if (authorization !== undefined && body.digest !== undefined) {
          const proven = yield* Effect.result(blobAccess.proveAccess({ upstreamUrl: body.url, authorization, digest: body.digest }))
          if (proven._tag === "Failure") {
            const e = proven.failure
            return errorResponse(e instanceof AccessDenied ? 403 : 502, `access to ${body.url}: ${e.message}`)
          }
        }
        // Pinned from the start to the end of the delivery: GC never removes what a client is waiting for.
        let unpin = () => {}
        const pinned = new Promise<void>((resolve) => (unpin = resolve))
        void store.withPin(taskId, () => pinned)
        // Past the deadline this caller stops waiting; the download itself (shared, forked in the daemon's scope) goes on.
        const joined = download(taskId, body.url, pieceLength, headers, body.disableBackToSource === true)
        const exit = yield* Effect.exit(deadline === undefined ? Effect.map(joined, Option.some) : Effect.timeoutOption(joined, Math.max(0, deadline - Date.now())))
          .pipe(Effect.onInterrupt(() => Effect.sync(unpin)))
        if (Exit.isFailure(exit)) {
          unpin()
          return errorResponse(502, `download of ${body.url} failed: ${messageOf(exit.cause)}`)
        }
        if (Option.isNone(exit.value)) {
          unpin()
          return overdue()
        }
        const r = exit.value.value
        store.touch(taskId)
        // Not interruptible: the answer waits for the rename or the tmp file's removal, so it is the truth.
        const delivered = yield* Effect.exit(Effect.uninterruptible(Effect.tryPromise({
          try: () => deliver(store.contentPath(taskId), body.output, body.digest, () => deadline !== undefined && Date.now() >= deadline),
          catch: (e) => e
        }))).pipe(Effect.ensuring(Effect.sync(unpin)))
        if (Exit.isFailure(delivered)) {
          if (Cause.squash(delivered.cause) instanceof DeliveryOverdue) return overdue()
          return errorResponse(500, `writing ${body.output}: ${messageOf(delivered.cause)}`)
        }
        return jsonResponse({
          taskId,
          contentLength: r.contentLength,
          bytesFromPeers: r.bytesFromPeers,
          bytesFromOrigin: r.bytesFromOrigin,
          backToSource: r.backToSource
        })
      }))),
      ...objectRoutes(tasks),
      notFoundRoute
    ])
    const gated = Layer.mergeAll(routes, requireLocalControl(control))
    return token === undefined ? gated : Layer.mergeAll(gated, requireToken(token))
  }))

export const daemonServer = (o: DaemonOptions) =>
  serveRoutes(daemonRoutes(o)).pipe(Layer.provide(listenLayer(o)))
