// `damselfly daemon`: one host's peer. It announces its Host to the scheduler, serves pieces to other
// peers (upload-server), and runs core's `downloadTask` — for a user (`POST /v1/download`) or when the
// scheduler picks it as seed (`POST /v1/seed`) — over the real HTTP and disk Layers.
import { randomUUID } from "node:crypto"
import { createReadStream, createWriteStream, promises as fs } from "node:fs"
import { createServer } from "node:http"
import { hostname } from "node:os"
import * as path from "node:path"
import { Transform } from "node:stream"
import { pipeline } from "node:stream/promises"
import { createHash } from "node:crypto"
import { NodeHttpServer } from "@effect/platform-node"
import { Cause, Effect, Exit, Fiber, Layer, Schema } from "effect"
import { HttpRouter } from "effect/http"
import { Host, PositiveInt, peerIdOf, TaskId } from "../core/domain.ts"
import { keepPresence } from "../core/peer/presence.ts"
import { type DownloadResult, defaultPeerOptions, downloadTask, type PeerOptions } from "../core/peer/conductor.ts"
import { MIN_PIECE_LENGTH, pieceLengthFor } from "../core/piece-layout.ts"
import { Origin } from "../core/services/piece-transfer.ts"
import { SchedulerChannel } from "../core/services/scheduler-channel.ts"
import { taskIdOf } from "../core/task-id.ts"
import { DiskPieceStore, DiskStore } from "./disk-store.ts"
import { badRequest, decodeBody, errorResponse, jsonResponse, orBadRequest } from "./http-json.ts"
import { HttpOrigin } from "./http-origin.ts"
import { HttpPieceTransfer } from "./http-piece-transfer.ts"
import { HttpSchedulerChannel } from "./http-scheduler-channel.ts"
import { NodeSha256 } from "./node-sha256.ts"
import { uploadRoutes } from "./upload-server.ts"

export interface DaemonOptions {
  readonly port: number
  readonly listen: string
  readonly data: string
  readonly scheduler: string
  readonly seed: boolean
  readonly hostId: string | undefined
  readonly idc: string
  readonly location: string
  readonly uploadBandwidth: number | undefined
  readonly uploadSlots: number
  readonly concurrentPieces: number | undefined
}

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
    const channel = HttpSchedulerChannel(o.scheduler)
    const peerLayer = Layer.mergeAll(channel, HttpPieceTransfer, HttpOrigin, DiskPieceStore(store), NodeSha256)
    const peerOptions: PeerOptions = o.concurrentPieces === undefined ? defaultPeerOptions : { ...defaultPeerOptions, concurrentPieces: o.concurrentPieces }
    let announced = false

    // Announce until the scheduler hears us, then every 30 s; a new scheduler epoch makes core re-register
    // every task held here, so a restarted (or failed-over) scheduler rebuilds its view from the peers.
    yield* keepPresence(host, 30_000, 1_000).pipe(Effect.provide(peerLayer), Effect.forkIn(scope))
    yield* Effect.logInfo("daemon started").pipe(Effect.annotateLogs({ host: host.id, type: host.type, port: o.port, resumedTasks: resumed }))

    // One download per task at a time on this host: later callers join it. Forked in the daemon's scope,
    // so a caller hanging up does not abort a download other callers (and children) rely on.
    const inFlight = new Map<string, Fiber.Fiber<DownloadResult, unknown>>()
    const download = (taskId: string, url: string, pieceLength: number, headers: Record<string, string>) =>
      Effect.gen(function*() {
        let fiber = inFlight.get(taskId)
        if (fiber === undefined) {
          const peerId = peerIdOf(host.id, taskId)
          fiber = yield* downloadTask({ url, taskId, pieceLength, peerId, host, headers }, peerOptions).pipe(
            Effect.tap(() => Effect.tryPromise(() => store.commitAsync(taskId))),
            Effect.tap((r) => Effect.logInfo("download finished").pipe(Effect.annotateLogs({ peerId, ...r }))),
            Effect.tapError((e) => Effect.logWarning(`download failed: ${String((e as { message?: string }).message ?? e)}`).pipe(Effect.annotateLogs({ taskId, peerId }))),
            Effect.provide(peerLayer),
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
          Effect.provide(HttpOrigin)
        )

    const upload = yield* uploadRoutes(store, {
      uploadSlots: o.uploadSlots,
      uploadBandwidth: o.uploadBandwidth,
      downloading: (taskId) => inFlight.has(taskId)
    })

    return HttpRouter.addAll([
      ...upload,
      HttpRouter.route("GET", "/healthy", Effect.sync(() => jsonResponse({ ok: true, hostId: host.id, type: host.type, announced, downloading: inFlight.size }))),
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
      })))
    ])
  }))

export const daemonServer = (o: DaemonOptions) =>
  HttpRouter.serve(daemonRoutes(o)).pipe(
    Layer.provide(NodeHttpServer.layer(createServer, { port: o.port, host: o.listen }))
  )
