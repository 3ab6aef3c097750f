// The daemon's side of preheat: `POST /v1/preheat` starts (or joins) the download of one task — an
// image blob named by its digest, or a file — exactly as a user's download would run it, and
// `GET /v1/preheat/:taskId` reports how far it is, so the scheduler's preheat job can follow every
// layer on every chosen peer. A blob with a digest is verified whole before it counts as preheated.
import { createHash } from "node:crypto"
import { createReadStream } from "node:fs"
import { Cause, Effect, Exit, Schema, type Scope } from "effect"
import { HttpRouter } from "effect/http"
import { PositiveInt, TaskId } from "../core/domain.ts"
import type { BlobAccess } from "./blob-access.ts"
import type { DiskStore } from "./disk-store.ts"
import { badRequest, decodeBody, jsonResponse, orBadRequest, errorResponse } from "./http-json.ts"

const HttpUrl = Schema.String.check(Schema.isPattern(/^https?:\/\/[^\s]+$/)).annotate({ description: "an http(s) URL" })
const Digest = Schema.String.check(Schema.isPattern(/^sha256:[0-9a-f]{64}$/)).annotate({ description: "a digest sha256:<64 hex>" })

export const PreheatTaskBody = Schema.Struct({
  taskId: TaskId,
  url: HttpUrl,
  pieceLength: PositiveInt,
  headers: Schema.optional(Schema.Record(Schema.String, Schema.String)),
  /** The whole content's digest (an OCI blob): checked once every piece is in. */
  digest: Schema.optional(Digest),
  /** A private blob: the capability the scheduler issued this host (it proved access upstream itself). */
  capability: Schema.optional(Schema.Struct({ token: Schema.String, taskId: TaskId, expiresAt: Schema.Number, source: Schema.optionalKey(Schema.String) }))
})
export type PreheatTaskBody = typeof PreheatTaskBody.Type

export type PreheatTaskState = "running" | "succeeded" | "failed"

export interface PreheatDaemonDeps {
  readonly store: DiskStore
  /** The daemon's one-download-per-task runner (joins a download already under way). */
  readonly download: (taskId: string, url: string, pieceLength: number, headers: Record<string, string>) => Effect.Effect<unknown, unknown>
  readonly scope: Scope.Scope
  readonly blobAccess: Pick<BlobAccess, "adopt" | "checkTrigger">
  /** Why this daemon will not fetch `url` (its --origin-allow), or undefined. */
  readonly originProblem?: ((url: string) => string | undefined) | undefined
}

const TASK_ID = /^[0-9a-f]{64}$/

const sha256OfFile = (file: string) =>
  new Promise<string>((resolve, reject) => {
    const hash = createHash("sha256")
    createReadStream(file, { highWaterMark: 1024 * 1024 })
      .on("data", (c) => hash.update(c))
      .on("error", reject)
      .on("end", () => resolve(`sha256:${hash.digest("hex")}`))
  })

const messageOf = (cause: Cause.Cause<unknown>) => {
  const e = Cause.squash(cause)
  return e instanceof Error ? e.message : typeof e === "object" && e !== null && "message" in e ? String(e.message) : String(e)
}

export const preheatDaemonRoutes = (deps: PreheatDaemonDeps) => {
  // What this daemon was asked to preheat since it started; a restart forgets it and the scheduler asks again.
  const states = new Map<string, { state: PreheatTaskState; error?: string }>()

  const run = (body: PreheatTaskBody) =>
    Effect.gen(function*() {
      const exit = yield* Effect.exit(deps.download(body.taskId, body.url, body.pieceLength, { ...(body.headers ?? {}) }))
      if (Exit.isFailure(exit)) return { state: "failed" as const, error: `download of ${body.url} failed: ${messageOf(exit.cause)}` }
      if (body.digest !== undefined) {
        const actual = yield* Effect.promise(() => sha256OfFile(deps.store.contentPath(body.taskId)).catch((e: unknown) => `unreadable: ${String(e)}`))
        if (actual !== body.digest) return { state: "failed" as const, error: `content of ${body.url} has digest ${actual}, expected ${body.digest}` }
      }
      return { state: "succeeded" as const }
    }).pipe(Effect.flatMap((s) => Effect.sync(() => states.set(body.taskId, s))))

  return [
    HttpRouter.route("POST", "/v1/preheat", orBadRequest(Effect.gen(function*() {
      const body = yield* decodeBody(PreheatTaskBody)
      // Only this daemon's schedulers start preheats: the request is signed for this task, body and host.
      const unsigned = yield* deps.blobAccess.checkTrigger("preheat", body.taskId)
      if (unsigned !== undefined) return errorResponse(403, `POST /v1/preheat: ${unsigned}`)
      const outside = deps.originProblem?.(body.url)
      if (outside !== undefined) return errorResponse(403, `POST /v1/preheat: ${outside}`)
      if (body.digest !== undefined && body.digest.slice("sha256:".length) !== body.taskId) {
        return yield* badRequest(`taskId: a blob named by its digest is the task ${body.digest.slice(7)}, got ${body.taskId}`)
      }
      if (body.capability !== undefined) {
        if (body.capability.taskId !== body.taskId) return yield* badRequest(`capability.taskId: expected ${body.taskId}, got ${body.capability.taskId}`)
        const adopted = yield* Effect.result(deps.blobAccess.adopt(body.capability))
        if (adopted._tag === "Failure") return errorResponse(403, adopted.failure.message)
      }
      const known = states.get(body.taskId)
      if (known?.state !== "running" && known?.state !== "succeeded") {
        states.set(body.taskId, { state: "running" })
        yield* run(body).pipe(Effect.forkIn(deps.scope))
      }
      return jsonResponse({ taskId: body.taskId, state: states.get(body.taskId)!.state }, 202)
    }))),
    HttpRouter.route("GET", "/v1/preheat/:taskId", orBadRequest(Effect.gen(function*() {
      const taskId = (yield* HttpRouter.params).taskId ?? ""
      if (!TASK_ID.test(taskId)) return yield* badRequest(`taskId: expected 64 lowercase hex characters, got ${JSON.stringify(taskId.slice(0, 100))}`)
      const unsigned = yield* deps.blobAccess.checkTrigger("preheat-status", taskId)
      if (unsigned !== undefined) return errorResponse(403, `GET /v1/preheat/${taskId}: ${unsigned}`)
      const ledger = yield* Effect.promise(() => deps.store.ledgerOf(taskId))
      const known = states.get(taskId)
      return jsonResponse({
        taskId,
        state: known?.state ?? "unknown",
        ...(known?.error === undefined ? {} : { error: known.error }),
        held: ledger?.version ?? 0,
        pieces: ledger?.pieceCount ?? null,
        complete: ledger?.complete ?? false
      })
    })))
  ]
}
