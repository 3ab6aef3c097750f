// The daemon's upload side: what a parent offers its children. Only tasks this daemon holds, addressed
// by task id and piece index (never by path), so no request can reach other files. Availability is a
// long-poll on the task's ledger, capped so proxies and clients never see an idle connection for long,
// or, with `stream=1`, a feed of every change over one response (runtime/availability-feed.ts).
import { Duration, Effect, Option, Semaphore } from "effect"
import type { ServerResponse } from "node:http"
import { NodeHttpServerRequest } from "@effect/platform-node"
import { HttpRouter, HttpServerRequest, HttpServerResponse } from "effect/http"
import { PieceAvailability } from "../core/protocol.ts"
import { availabilityLines, NDJSON } from "./availability-feed.ts"
import type { DiskStore } from "./disk-store.ts"
import { badRequest, encoded, errorResponse, orBadRequest } from "./http-json.ts"
import type { UploadMetrics } from "./metrics.ts"
import { limiterFor, pacedBody, type RateLimiter } from "./bandwidth.ts"
import { pieceBuffers } from "./piece-buffer-pool.ts"

export interface UploadOptions {
  /** Pieces sent at once; further requests queue (announced to the scheduler as uploadSlots). */
  readonly uploadSlots: number
  /**
   * How long a piece request may queue for a slot; then 503 (busy), which a child counts as a
   * temporary failure and retries later or elsewhere, instead of piling up on an overloaded parent.
   */
  readonly queueMillis?: number
  /** TEST ONLY (fault injection): flip a byte of every piece sent, while claiming the true digest. */
  readonly corruptUploads?: boolean
  /** Bytes per second over all uploads, or undefined for no pacing. */
  readonly uploadBandwidth: number | undefined
  /** The upload limit's token bucket (runtime/bandwidth.ts); built from uploadBandwidth when absent. */
  readonly uploadLimiter?: RateLimiter | undefined
  readonly longPollMillis?: number
  /** Answer `?stream=1` with the availability feed (default); false behaves as a server from before it (tests). */
  readonly availabilityStream?: boolean
  /** How long one feed response lasts at most (runtime/availability-feed.ts; tests shorten it). */
  readonly availabilityStreamMillis?: number
  /** This host is downloading the task right now (its ledger may be about to appear). */
  readonly downloading: (taskId: string) => boolean
  /** Counts pieces served and refused (runtime/metrics.ts); nothing is counted without it. */
  readonly metrics?: UploadMetrics
  /** Private blobs (runtime/blob-access.ts): why this request may not have the task's pieces, or undefined. */
  readonly access?: (taskId: string) => Effect.Effect<string | undefined, never, HttpServerRequest.HttpServerRequest>
}

export const DEFAULT_UPLOAD_QUEUE_MILLIS = 15_000

const TASK_ID = /^[0-9a-f]{64}$/
const INDEX = /^(0|[1-9][0-9]{0,8})$/

const taskIdParam = Effect.flatMap(HttpRouter.params, (p) =>
  TASK_ID.test(p.taskId ?? "") ? Effect.succeed(p.taskId!) : badRequest(`taskId: expected 64 lowercase hex characters, got ${JSON.stringify(p.taskId)}`))


/** Node's response for this request, when served by Node's http server (not, e.g., a web handler in a test). */
const nodeResponseOf = (request: HttpServerRequest.HttpServerRequest): ServerResponse | undefined => {
  try {
    const res = NodeHttpServerRequest.toServerResponse(request) as unknown
    return typeof res === "object" && res !== null && typeof (res as ServerResponse).once === "function" ? res as ServerResponse : undefined
  } catch {
    return undefined
  }
}

class AccessRefused {
  readonly _tag = "AccessRefused"
  constructor(readonly reason: string) {}
}

export const uploadRoutes = (store: DiskStore, options: UploadOptions) =>
  Effect.gen(function*() {
    // A private task's pieces and availability go only to holders of a capability for it (403 otherwise).
    const allowed = (taskId: string) =>
      options.access === undefined ? Effect.void : Effect.flatMap(options.access(taskId), (reason) => reason === undefined ? Effect.void : Effect.fail(new AccessRefused(reason)))
    const forbidden = <A, E, R>(e: Effect.Effect<A, E, R>) =>
      Effect.catchIf(e, (x): x is Extract<E, AccessRefused> => x instanceof AccessRefused, (x) => Effect.succeed(errorResponse(403, (x as AccessRefused).reason)))
    const slots = yield* Semaphore.make(options.uploadSlots)
    // Shared by every upload: each piece reserves its bytes and waits for its turn.
    const limiter = options.uploadLimiter ?? limiterFor(options.uploadBandwidth)
    const longPoll = Duration.millis(options.longPollMillis ?? 20_000)
    const queueWait = Duration.millis(options.queueMillis ?? DEFAULT_UPLOAD_QUEUE_MILLIS)
    return [
      HttpRouter.route("GET", "/v1/tasks/:taskId/availability", forbidden(orBadRequest(Effect.gen(function*() {
        const taskId = yield* taskIdParam
        yield* allowed(taskId)
        const request = yield* HttpServerRequest.HttpServerRequest
        const query = new URL(request.url, "http://local").searchParams
        const raw = query.get("since") ?? "0"
        if (!INDEX.test(raw)) return yield* badRequest(`since: expected a non-negative integer, got ${JSON.stringify(raw)}`)
        const ledger = yield* Effect.promise(() =>
          options.downloading(taskId) ? store.awaitLedger(taskId, 5_000) : store.ledgerOf(taskId))
        if (ledger === undefined) return errorResponse(404, `task ${taskId} is not held here`)
        const since = Number(raw)
        // The feed: one response carrying every answer for this child, a line per change.
        if (query.get("stream") === "1" && options.availabilityStream !== false) {
          return HttpServerResponse.raw(availabilityLines(ledger, since, {
            capMillis: options.availabilityStreamMillis,
            onLine: (news) => news && options.metrics?.availabilityAnswered("changed")
          }), {
            contentType: NDJSON,
            headers: { "cache-control": "no-store" }
          })
        }
        const changed = yield* ledger.awaitChange(since).pipe(Effect.timeoutOption(longPoll))
        options.metrics?.availabilityAnswered(Option.isSome(changed) ? "changed" : "timeout")
        return encoded(PieceAvailability, Option.getOrElse(changed, () => ledger.since(since)))
      })))),
      HttpRouter.route("GET", "/v1/tasks/:taskId/pieces/:index", forbidden(orBadRequest(Effect.gen(function*() {
        const taskId = yield* taskIdParam
        yield* allowed(taskId)
        const rawIndex = (yield* HttpRouter.params).index ?? ""
        if (!INDEX.test(rawIndex)) return yield* badRequest(`index: expected a non-negative integer, got ${JSON.stringify(rawIndex)}`)
        const index = Number(rawIndex)
        const ledger = yield* Effect.promise(() => store.ledgerOf(taskId))
        const digest = ledger?.digestOf(index)
        if (ledger === undefined || digest === undefined) {
          options.metrics?.refused("not_held")
          return errorResponse(404, `piece ${index} of task ${taskId} is not held here`)
        }
        // A paced body is written after the handler returns: its slot is then released when the response closes.
        let slotHandedOff = false
        const send = Effect.gen(function*() {
          // A pooled buffer (runtime/piece-buffer-pool.ts) goes back only once the read into it completed
          // and Node has finished writing the response ('finish', after the last socket write completed);
          // a response that ends otherwise leaves it to the GC, so it is never reused while still in use.
          const response = nodeResponseOf(yield* HttpServerRequest.HttpServerRequest)
          const buffer = response === undefined ? undefined : pieceBuffers.take(ledger.pieceLength)
          const bytes = yield* Effect.tryPromise(() => store.readAsync(taskId, index, buffer))
          if (buffer !== undefined && bytes.buffer === buffer.buffer) response!.once("finish", () => pieceBuffers.give(buffer))
          if (options.corruptUploads === true && bytes.length > 0) bytes[0] ^= 0xff
          options.metrics?.uploaded(bytes.length)
          const head = { contentType: "application/octet-stream", headers: { "x-piece-digest": digest } }
          // Limited: written chunk by chunk as the shared bucket admits each (runtime/bandwidth.ts).
          if (limiter === undefined) return HttpServerResponse.uint8Array(bytes, head)
          if (response !== undefined && !response.destroyed) {
            slotHandedOff = true
            response.once("close", () => Effect.runFork(Semaphore.release(slots, 1)))
          }
          return HttpServerResponse.raw(pacedBody(limiter, bytes), { ...head, contentLength: bytes.length })
        })
        // Wait a bounded time for a slot; the permit is released however the upload ends.
        return yield* Effect.uninterruptibleMask((restore) =>
          Effect.gen(function*() {
            const slot = yield* restore(Effect.timeoutOption(Semaphore.take(slots, 1), queueWait))
            if (Option.isNone(slot)) {
              options.metrics?.refused("busy")
              return HttpServerResponse.setHeader(errorResponse(503, `busy: all ${options.uploadSlots} upload slots in use, retry later`), "retry-after", "1")
            }
            return yield* restore(send).pipe(Effect.ensuring(Effect.suspend(() => slotHandedOff ? Effect.void : Semaphore.release(slots, 1))))
          })
        ).pipe(Effect.catchTag("UnknownError", (e) =>
          Effect.sync(() => {
            options.metrics?.refused("error")
            return errorResponse(500, `piece ${index}: ${e.message}`)
          })))
      }))))
    ]
  })
