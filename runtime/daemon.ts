// `damselfly daemon`: one host's peer. It announces its Host to every scheduler, serves pieces to other
// peers (upload-server), and runs core's `downloadTask` — for a user (`POST /v1/download`) or when a
// scheduler picks it as seed (`POST /v1/seed`) — over the real HTTP and disk Layers. With several
// schedulers each task goes to the one its id hashes to (runtime/scheduler-ring.ts), and to the next one
// on the ring while that one is down.
import { randomUUID } from "node:crypto"
import { createReadStream, createWriteStream, promises as fs } from "node:fs"
import { hostname } from "node:os"
import * as path from "node:path"
import { Transform } from "node:stream"
import { pipeline } from "node:stream/promises"
import { createHash } from "node:crypto"
import { Cause, Effect, Exit, Fiber, Layer, Schema } from "effect"
import { HttpRouter } from "effect/http"
import { Host, PositiveInt, peerIdOf, TaskId } from "../core/domain.ts"
import { announceHost, reRegistration } from "../core/peer/presence.ts"
import { type DownloadResult, defaultPeerOptions, downloadTask, type PeerOptions } from "../core/peer/conductor.ts"
import { type StrategyName, strategies } from "../core/strategies.ts"
import { MIN_PIECE_LENGTH, pieceLengthFor } from "../core/piece-layout.ts"
import { Origin } from "../core/services/piece-transfer.ts"
import { SchedulerChannel } from "../core/services/scheduler-channel.ts"
import { taskIdOf } from "../core/task-id.ts"
import { cacheRoutes } from "./cache.ts"
import { DiskPieceStore, DiskStore } from "./disk-store.ts"
import { badRequest, decodeBody, errorResponse, jsonResponse, orBadRequest, notFoundRoute } from "./http-json.ts"
import { requireToken, resolveToken } from "./auth.ts"
import { listenLayer } from "./http-listen.ts"
import { makeDaemonMetrics, metricsRoute } from "./metrics.ts"
import { httpOrigin } from "./http-origin.ts"
import { httpPieceTransfer } from "./http-piece-transfer.ts"
import { DEFAULT_SCHEDULER_DOWN_MILLIS, makeRingSchedulerChannel } from "./http-scheduler-channel.ts"
import { NodeSha256 } from "./node-sha256.ts"
import { uploadRoutes } from "./upload-server.ts"

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
  readonly uploadBandwidth: number | undefined
  readonly uploadSlots: number
  readonly concurrentPieces: number | undefined
  /** The strategy the scheduler runs: its peer options (pieces in flight, refresh, stripes' grace…). Default dragonfly. */
  readonly strategy?: StrategyName | undefined
  /** Shared secret: required on requests to this daemon and sent on its own (falls back to DAMSELFLY_TOKEN). */
  readonly token?: string | undefined
  readonly maxConnections?: number | undefined
  /** Silence from the origin mid-reply after which a piece fails (and is retried). */
  readonly originIdleMillis?: number | undefined
  /** How long the origin may keep failing before a download gives up (core retries with backoff meanwhile). */
  readonly originOutageMillis?: number | undefined
  /** How long a piece request may wait for an upload slot before a 503. */
  readonly uploadQueueMillis?: number | undefined
  /** TEST ONLY fault injection (see DAEMON_FAULTS); never set in production. */
  readonly fault?: DaemonFault | undefined
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
  headers: Schema.optional(StringRecord)
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
    downloadBandwidth: UNLIMITED_BANDWIDTH,
    uploadSlots: o.uploadSlots
  })

/** Copies the committed content to `output` via a tmp file in the same directory, hashing on the way. */
const deliver = async (source: string, output: string, digest: string | undefined) => {
  await fs.mkdir(path.dirname(output), { recursive: true })
  const tmp = `${output}.damselfly-${randomUUID().slice(0, 8)}.tmp`
  try {
    if (digest === undefined) {
      // Nothing to verify: let the kernel copy (copy_file_range, or a reflink where the fs has them).
      await fs.copyFile(source, tmp)
      await fs.rename(tmp, output)
      return
    }
    const hash = createHash("sha256")
    await pipeline(
      createReadStream(source, { highWaterMark: 1024 * 1024 }),
      new Transform({ transform: (chunk, _enc, cb) => cb(null, (hash.update(chunk), chunk)) }),
      createWriteStream(tmp)
    )
    const actual = `sha256:${hash.digest("hex")}`
    if (actual !== digest) throw new Error(`digest mismatch: expected ${digest}, got ${actual}`)
    await fs.rename(tmp, output)
  } catch (e) {
    await fs.rm(tmp, { force: true })
    throw e
  }
}

export const daemonRoutes = (o: DaemonOptions) =>
  Layer.unwrap(Effect.gen(function*() {
    const host = hostOf(o)
    const store = new DiskStore(o.data)
    const resumed = yield* Effect.promise(() => store.loadExisting())
    const scope = yield* Effect.scope
    const token = resolveToken(o.token)
    const metrics = makeDaemonMetrics()
    const origin = httpOrigin(o.originIdleMillis)
    const ring = yield* makeRingSchedulerChannel(o.schedulers, token, o.schedulerDownMillis ?? DEFAULT_SCHEDULER_DOWN_MILLIS)
    const pieceStore = DiskPieceStore(store)
    const peerLayer = Layer.mergeAll(Layer.succeed(SchedulerChannel)(ring.channel), httpPieceTransfer(token), origin, pieceStore, NodeSha256)
    const peerOptions: PeerOptions = {
      ...defaultPeerOptions,
      ...strategies[o.strategy ?? "dragonfly"].peerOptions,
      ...(o.concurrentPieces !== undefined ? { concurrentPieces: o.concurrentPieces } : {}),
      ...(o.originOutageMillis !== undefined ? { originOutageMillis: o.originOutageMillis } : {})
    }
    let announced = false

    // Announce to every scheduler until one hears us, then every 30 s — and at once when a scheduler is
    // marked down, and again when its down mark expires (the probe that finds it back). The announcement's
    // epoch combines every answering scheduler's, so a scheduler lost, restarted or back makes core's
    // announceHost re-register the tasks held here, each with the scheduler that now owns it (the ring's
    // presence channel skips the tasks that did not move): the schedulers rebuild their view from the peers.
    const inFlight = new Map<string, Fiber.Fiber<DownloadResult, unknown>>()

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

    const presence = Effect.gen(function*() {
      let epoch: string | undefined
      while (true) {
        yield* ring.settle
        const next = yield* Effect.result(announceHost(host, epoch).pipe(
          Effect.provideService(SchedulerChannel, ring.presence),
          Effect.provide(pieceStore)
        ))
        const ok = next._tag === "Success"
        if (ok) {
          if (epoch !== undefined && next.success !== epoch) {
            yield* Effect.logInfo("schedulers changed; held tasks re-registered where they now live").pipe(Effect.annotateLogs({ schedulers: next.success }))
          }
          epoch = next.success
          announced = true
          yield* reRegisterDownloads
        }
        const wait = Math.min(ok ? 30_000 : 1_000, (ring.untilNextExpiry() ?? Infinity) + 50)
        yield* Effect.raceFirst(Effect.sleep(wait), ring.changed)
      }
    })
    yield* presence.pipe(Effect.forkIn(scope))
    yield* Effect.logInfo("daemon started").pipe(Effect.annotateLogs({ host: host.id, type: host.type, port: o.port, resumedTasks: resumed }))

    // One download per task at a time on this host: later callers join it. Forked in the daemon's scope,
    // so a caller hanging up does not abort a download other callers (and children) rely on.
    const download = (taskId: string, url: string, pieceLength: number, headers: Record<string, string>) =>
      Effect.gen(function*() {
        let fiber = inFlight.get(taskId)
        if (fiber === undefined) {
          const peerId = peerIdOf(host.id, taskId)
          const started = Date.now()
          metrics.downloadStarted()
          fiber = yield* downloadTask({ url, taskId, pieceLength, peerId, host, headers }, peerOptions).pipe(
            Effect.tap(() => Effect.tryPromise(() => store.commitAsync(taskId))),
            Effect.tap((r) => Effect.logInfo("download finished").pipe(Effect.annotateLogs({ peerId, ...r }))),
            Effect.tapError((e) => Effect.logWarning(`download failed: ${String((e as { message?: string }).message ?? e)}`).pipe(Effect.annotateLogs({ taskId, peerId }))),
            Effect.provide(peerLayer),
            Effect.onExit((exit) => Effect.sync(() =>
              metrics.downloadEnded((Date.now() - started) / 1000, Exit.isSuccess(exit) ? exit.value : undefined))),
            Effect.ensuring(Effect.sync(() => inFlight.delete(taskId))),
            Effect.forkIn(scope)
          )
          inFlight.set(taskId, fiber)
        }
        return yield* Fiber.join(fiber)
      })

    const pieceLengthOf = (url: string, headers: Record<string, string>, requested: number | undefined) =>
      requested !== undefined
        ? Effect.succeed(requested)
        : Origin.use((origin) => origin.probe({ url, headers })).pipe(
          Effect.map((p) => pieceLengthFor(p.contentLength)),
          // Origin unreachable: peers may still have it; 4 MiB is what pieceLengthFor gives below 2 GiB.
          Effect.orElseSucceed(() => MIN_PIECE_LENGTH),
          Effect.provide(origin)
        )

    if (o.fault !== undefined) yield* Effect.logWarning(`TEST-ONLY FAULT INJECTION ACTIVE: ${o.fault}`)
    const upload = yield* uploadRoutes(store, {
      uploadSlots: o.uploadSlots,
      queueMillis: o.uploadQueueMillis,
      corruptUploads: o.fault === "corrupt-uploads",
      uploadBandwidth: o.uploadBandwidth,
      downloading: (taskId) => inFlight.has(taskId),
      metrics: metrics.upload
    })

    const routes = HttpRouter.addAll([
      ...upload,
      // `damselfly cache import|export|stat` (runtime/cache.ts); an import is announced like a finished download.
      ...cacheRoutes({
        store,
        register: (task, ledger) => ring.channel.request(reRegistration(host, task, ledger)),
        downloading: (taskId) => inFlight.has(taskId)
      }),
      metricsRoute(metrics.registry),
      HttpRouter.route("GET", "/healthy", Effect.sync(() => jsonResponse({ ok: true, hostId: host.id, type: host.type, announced, downloading: inFlight.size, schedulers: ring.status() }))),
      HttpRouter.route("POST", "/v1/seed", orBadRequest(Effect.gen(function*() {
        const seed = yield* decodeBody(SeedRequestBody)
        yield* download(seed.taskId, seed.url, seed.pieceLength, { ...seed.headers }).pipe(Effect.ignore, Effect.forkIn(scope))
        return jsonResponse({ accepted: true, taskId: seed.taskId }, 202)
      }))),
      HttpRouter.route("POST", "/v1/download", orBadRequest(Effect.gen(function*() {
        const body = yield* decodeBody(DownloadBody)
        const headers = { ...(body.headers ?? {}) }
        const pieceLength = yield* pieceLengthOf(body.url, headers, body.pieceLength)
        const taskId = yield* taskIdOf({ url: body.url, pieceLength, ...(body.digest === undefined ? {} : { digest: body.digest }) }).pipe(
          Effect.provide(NodeSha256),
          Effect.catchTag("InvalidDigest", (e) => badRequest(e.message))
        )
        const exit = yield* Effect.exit(download(taskId, body.url, pieceLength, headers))
        if (Exit.isFailure(exit)) return errorResponse(502, `download of ${body.url} failed: ${messageOf(exit.cause)}`)
        const r = exit.value
        const delivered = yield* Effect.exit(Effect.tryPromise(() => deliver(store.contentPath(taskId), body.output, body.digest)))
        if (Exit.isFailure(delivered)) return errorResponse(500, `writing ${body.output}: ${messageOf(delivered.cause)}`)
        return jsonResponse({
          taskId,
          contentLength: r.contentLength,
          bytesFromPeers: r.bytesFromPeers,
          bytesFromOrigin: r.bytesFromOrigin,
          backToSource: r.backToSource
        })
      }))),
      notFoundRoute
    ])
    return token === undefined ? routes : Layer.mergeAll(routes, requireToken(token))
  }))

export const daemonServer = (o: DaemonOptions) =>
  HttpRouter.serve(daemonRoutes(o)).pipe(Layer.provide(listenLayer(o)))
