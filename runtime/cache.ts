// `damselfly cache import|export|stat`: put a local file into the daemon's piece store as the task a
// download of its URL would be (same task id, same pieces, sha256 per piece) and tell the scheduler this
// host holds it complete, so other peers fetch it from here without touching the origin; copy a held
// task's content back out; show what the daemon holds of a task. The daemon only ever reads the file the
// caller names for an import (a regular file, by absolute path, never through a symlink) and, for an
// export, the task's own content by task id; it writes only the named output (tmp file + rename).
import { randomUUID } from "node:crypto"
import { constants as fsConstants, promises as fs } from "node:fs"
import type { FileHandle } from "node:fs/promises"
import * as path from "node:path"
import { Effect, Schema } from "effect"
import { HttpRouter, HttpServerRequest } from "effect/http"
import { PositiveInt, TaskId } from "../core/domain.ts"
import { pieceAt, pieceLengthFor } from "../core/piece-layout.ts"
import type { PieceLedger } from "../core/piece-ledger.ts"
import type { StoredTask } from "../core/services/piece-store.ts"
import { taskIdOf } from "../core/task-id.ts"
import { clientHeaders } from "./auth.ts"
import type { DiskStore } from "./disk-store.ts"
import { callPromise } from "./http-call.ts"
import { badRequest, decodeBody, errorResponse, jsonResponse, orBadRequest } from "./http-json.ts"
import { NodeSha256, sha256Hex } from "./node-sha256.ts"

const TASK_ID = /^[0-9a-f]{64}$/

/** An absolute, already normal path: no `.`/`..` segments, no empty segment or trailing slash, no NUL. */
const CLEAN_ABSOLUTE = /^(?:\/(?!\.{1,2}(?:\/|$))[^/\0]+)+$/
const AbsolutePath = Schema.String.check(Schema.isPattern(CLEAN_ABSOLUTE)).annotate({ description: "an absolute path without . or .. segments" })
const HttpUrl = Schema.String.check(Schema.isPattern(/^https?:\/\/[^\s]+$/)).annotate({ description: "an http(s) URL" })

export const CacheImportBody = Schema.Struct({
  path: AbsolutePath,
  url: HttpUrl,
  pieceLength: Schema.optional(PositiveInt)
})

export const CacheExportBody = Schema.Struct({
  taskId: Schema.optional(TaskId),
  url: Schema.optional(HttpUrl),
  pieceLength: Schema.optional(PositiveInt),
  output: AbsolutePath
})

export interface CacheDeps {
  readonly store: DiskStore
  /** Tells the scheduler this host holds the task (errors are ignored by the caller). */
  readonly register: (task: StoredTask, ledger: PieceLedger) => Effect.Effect<unknown, unknown>
  /** A download of this task is running on this host right now. */
  readonly downloading: (taskId: string) => boolean
  /** The piece length for content of this length: the daemon's strategy's rule (default Dragonfly's). */
  readonly pieceLengthFor?: ((contentLength: number) => number) | undefined
}

/** A client mistake detected while touching the file system: answered 4xx with this message. */
class CacheRefused extends Error {
  constructor(readonly status: number, message: string) {
    super(message)
  }
}

const errnoMessage = (e: unknown) => (e as NodeJS.ErrnoException).code ?? (e instanceof Error ? e.message : String(e))

const held = async (store: DiskStore, taskId: string) =>
  (await store.heldAsync()).find((h) => h.task.taskId === taskId)

/** Reads `file` piece by piece into the store as `taskId`; the file is opened once, never through a symlink. */
const importFile = async (deps: CacheDeps, file: string, url: string, requested: number | undefined, taskIdFor: (pieceLength: number) => Promise<string>) => {
  const st = await fs.lstat(file).catch((e: unknown) => {
    throw new CacheRefused(400, `path: cannot stat ${JSON.stringify(file)}: ${errnoMessage(e)}`)
  })
  if (st.isSymbolicLink()) throw new CacheRefused(400, `path: ${JSON.stringify(file)} is a symbolic link, expected a regular file`)
  if (!st.isFile()) throw new CacheRefused(400, `path: ${JSON.stringify(file)} is not a regular file`)
  const fh = await fs.open(file, fsConstants.O_RDONLY | fsConstants.O_NOFOLLOW).catch((e: unknown) => {
    throw new CacheRefused(400, `path: cannot open ${JSON.stringify(file)}: ${errnoMessage(e)}`)
  })
  try {
    const fst = await fh.stat()
    // Swapped between lstat and open: refuse rather than read something else.
    if (!fst.isFile() || fst.ino !== st.ino || fst.dev !== st.dev) throw new CacheRefused(409, `path: ${JSON.stringify(file)} changed while being opened`)
    const contentLength = fst.size
    const pieceLength = requested ?? (deps.pieceLengthFor ?? pieceLengthFor)(contentLength)
    const taskId = await taskIdFor(pieceLength)
    if (deps.downloading(taskId)) throw new CacheRefused(409, `task ${taskId} is being downloaded on this host; import it later`)
    // Pinned while it is written: storage GC must not remove a task half imported.
    return await deps.store.withPin(taskId, () => writeImport(deps, fh, file, url, taskId, contentLength, pieceLength))
  } finally {
    await fh.close()
  }
}

const writeImport = async (deps: CacheDeps, fh: FileHandle, file: string, url: string, taskId: string, contentLength: number, pieceLength: number) => {
  const task: StoredTask = { taskId, url, contentLength, pieceLength }
  const open = await deps.store.openAsync(task).catch((e: unknown) => {
    throw new CacheRefused(409, `task ${taskId}: ${errnoMessage(e)}`)
  })
  const ledger = open.ledger
  for (let index = 0; index < ledger.pieceCount; index++) {
    const piece = pieceAt(contentLength, pieceLength, index)
    const bytes = Buffer.allocUnsafe(piece.length)
    let got = 0
    while (got < piece.length) {
      const { bytesRead } = await fh.read(bytes, got, piece.length - got, piece.offset + got)
      if (bytesRead === 0) throw new CacheRefused(409, `path: ${JSON.stringify(file)} shrank while being imported`)
      got += bytesRead
    }
    const digest = sha256Hex(bytes)
    const had = ledger.digestOf(index)
    if (had !== undefined && had !== digest) {
      throw new CacheRefused(409, `task ${taskId}: piece ${index} held here differs from the file's (the content at ${url} is not this file)`)
    }
    await deps.store.writeAsync(taskId, index, bytes, digest)
  }
  if ((await fh.stat()).size !== contentLength) throw new CacheRefused(409, `path: ${JSON.stringify(file)} changed size while being imported`)
  await deps.store.commitAsync(taskId)
  return { task, ledger }
}

/** Copies the task's committed content to `output` through a tmp file in the same (existing) directory. */
const exportTask = async (store: DiskStore, taskId: string, output: string) => {
  const dir = path.dirname(output)
  const dst = await fs.stat(dir).catch((e: unknown) => {
    throw new CacheRefused(400, `output: directory ${JSON.stringify(dir)}: ${errnoMessage(e)}`)
  })
  if (!dst.isDirectory()) throw new CacheRefused(400, `output: ${JSON.stringify(dir)} is not a directory`)
  const existing = await fs.lstat(output).catch(() => undefined)
  if (existing !== undefined && existing.isDirectory()) throw new CacheRefused(400, `output: ${JSON.stringify(output)} is a directory`)
  await store.withPin(taskId, () => copyOut(store, taskId, output))
}

const copyOut = async (store: DiskStore, taskId: string, output: string) => {
  await store.commitAsync(taskId) // idempotent: a complete task resumed from disk may not have its content link yet
  const tmp = `${output}.damselfly-${randomUUID().slice(0, 8)}.tmp`
  try {
    await fs.copyFile(store.contentPath(taskId), tmp, fsConstants.COPYFILE_EXCL)
    await fs.rename(tmp, output)
  } catch (e) {
    await fs.rm(tmp, { force: true })
    throw new CacheRefused(500, `output: writing ${JSON.stringify(output)}: ${errnoMessage(e)}`)
  }
}

const refusal = (e: unknown) =>
  e instanceof CacheRefused ? errorResponse(e.status, e.message) : errorResponse(500, e instanceof Error ? e.message : String(e))

const attempt = <A>(f: () => Promise<A>) =>
  Effect.tryPromise({ try: f, catch: (e) => e })

const summary = (task: StoredTask, ledger: PieceLedger) => ({
  taskId: task.taskId,
  url: task.url,
  contentLength: task.contentLength,
  pieceLength: task.pieceLength,
  pieces: ledger.pieceCount,
  held: ledger.version,
  complete: ledger.complete
})

/** The tasks held here for exactly this URL (one per piece length it was cut with), complete ones first. */
const heldForUrl = async (store: CacheDeps["store"], url: string) =>
  (await store.heldAsync()).filter((h) => h.task.url === url).sort((a, b) => Number(b.ledger.complete) - Number(a.ledger.complete))

export const cacheRoutes = (deps: CacheDeps) => [
  HttpRouter.route("POST", "/v1/cache/import", orBadRequest(Effect.gen(function*() {
    const body = yield* decodeBody(CacheImportBody)
    const taskIdFor = (pieceLength: number) =>
      Effect.runPromise(taskIdOf({ url: body.url, pieceLength }).pipe(Effect.provide(NodeSha256)))
    const exit = yield* Effect.result(attempt(() => importFile(deps, body.path, body.url, body.pieceLength, taskIdFor)))
    if (exit._tag === "Failure") return refusal(exit.failure)
    const { task, ledger } = exit.success
    // An unreachable scheduler is fine: presence re-registers complete tasks when the epoch changes.
    yield* Effect.ignore(Effect.timeout(deps.register(task, ledger), 10_000))
    yield* Effect.logInfo("cache import").pipe(Effect.annotateLogs({ taskId: task.taskId, url: task.url, contentLength: task.contentLength }))
    return jsonResponse({ taskId: task.taskId, contentLength: task.contentLength, pieceLength: task.pieceLength, pieces: ledger.pieceCount })
  }))),
  HttpRouter.route("POST", "/v1/cache/export", orBadRequest(Effect.gen(function*() {
    const body = yield* decodeBody(CacheExportBody)
    let taskId: string
    if (body.taskId !== undefined) {
      taskId = body.taskId
    } else if (body.url !== undefined) {
      if (body.pieceLength !== undefined) {
        taskId = yield* taskIdOf({ url: body.url, pieceLength: body.pieceLength }).pipe(Effect.provide(NodeSha256), Effect.orDie)
      } else {
        // No piece length: the complete task held for exactly this URL (the one with the most pieces held).
        const best = (yield* Effect.promise(() => heldForUrl(deps.store, body.url!)))[0]
        if (best === undefined) return errorResponse(404, `url: no task held for ${body.url}`)
        taskId = best.task.taskId
      }
    } else {
      return yield* badRequest("taskId: expected taskId, or url (with pieceLength)")
    }
    const h = yield* Effect.promise(() => held(deps.store, taskId))
    if (h === undefined) return errorResponse(404, `taskId: task ${taskId} is not held here`)
    if (!h.ledger.complete) return errorResponse(409, `taskId: task ${taskId} is incomplete (${h.ledger.version}/${h.ledger.pieceCount} pieces)`)
    const exit = yield* Effect.result(attempt(() => exportTask(deps.store, taskId, body.output)))
    if (exit._tag === "Failure") return refusal(exit.failure)
    return jsonResponse({ taskId, output: body.output, contentLength: h.task.contentLength })
  }))),
  // By URL: the daemon knows which piece length (strategy) it cut the URL with; a client does not.
  HttpRouter.route("GET", "/v1/cache/tasks", orBadRequest(Effect.gen(function*() {
    const request = yield* HttpServerRequest.HttpServerRequest
    const url = new URL(request.url, "http://daemon").searchParams.get("url")
    if (url === null || url === "") return yield* badRequest("url: expected the query parameter url=<the task's URL>")
    const all = yield* Effect.promise(() => heldForUrl(deps.store, url))
    if (all.length === 0) return errorResponse(404, `url: no task held for ${url}`)
    return jsonResponse({ tasks: all.map((h) => summary(h.task, h.ledger)) })
  }))),
  HttpRouter.route("GET", "/v1/cache/tasks/:taskId", orBadRequest(Effect.gen(function*() {
    const params = yield* HttpRouter.params
    const taskId = params.taskId ?? ""
    if (!TASK_ID.test(taskId)) return yield* badRequest(`taskId: expected 64 lowercase hex characters, got ${JSON.stringify(taskId.slice(0, 100))}`)
    const h = yield* Effect.promise(() => held(deps.store, taskId))
    if (h === undefined) return errorResponse(404, `taskId: task ${taskId} is not held here`)
    return jsonResponse(summary(h.task, h.ledger))
  })))
]

// ---- client side (the CLI) ----

export class CacheFailed extends Error {}

export interface CacheClient {
  readonly daemon: string
  readonly token?: string | undefined
  /** For a daemon on another host: its control token (falls back to DAMSELFLY_CONTROL_TOKEN). */
  readonly controlToken?: string | undefined
}

const callDaemon = async (c: CacheClient, method: string, route: string, body?: unknown): Promise<Record<string, unknown>> => {
  const reply = await callPromise(`${c.daemon.replace(/\/+$/, "")}${route}`, {
    method,
    headers: { ...clientHeaders(c.token, c.controlToken), ...(body === undefined ? {} : { "content-type": "application/json" }) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) })
  }).catch((e: unknown) => {
    throw new CacheFailed(`daemon ${c.daemon}: ${e instanceof Error ? e.message : String(e)}`)
  })
  const text = reply.body.toString("utf8")
  let json: Record<string, unknown> | undefined
  try {
    json = JSON.parse(text) as Record<string, unknown>
  } catch {}
  if (reply.status !== 200) throw new CacheFailed(`daemon ${c.daemon}: HTTP ${reply.status}: ${typeof json?.error === "string" ? json.error : text.slice(0, 300)}`)
  return json ?? {}
}

export const cacheImport = (c: CacheClient, o: { file: string; url: string; pieceLength?: number | undefined }) =>
  // The daemon runs elsewhere (its own cwd): always hand it an absolute path.
  callDaemon(c, "POST", "/v1/cache/import", { path: path.resolve(o.file), url: o.url, ...(o.pieceLength === undefined ? {} : { pieceLength: o.pieceLength }) })

export const cacheExport = (c: CacheClient, o: { url?: string | undefined; taskId?: string | undefined; pieceLength?: number | undefined; output: string }) =>
  callDaemon(c, "POST", "/v1/cache/export", {
    output: path.resolve(o.output),
    ...(o.taskId === undefined ? {} : { taskId: o.taskId }),
    ...(o.url === undefined ? {} : { url: o.url }),
    ...(o.pieceLength === undefined ? {} : { pieceLength: o.pieceLength })
  })

export const cacheStat = async (c: CacheClient, o: { url?: string | undefined; taskId?: string | undefined; pieceLength?: number | undefined }) => {
  let taskId = o.taskId
  if (taskId === undefined) {
    if (o.url === undefined) throw new CacheFailed("stat: give a URL or --task-id")
    const url = o.url
    // Without a piece length, the daemon finds the task it holds for the URL (whatever its strategy cut).
    if (o.pieceLength === undefined) {
      const found = await callDaemon(c, "GET", `/v1/cache/tasks?url=${encodeURIComponent(url)}`)
      return (found.tasks as Array<Record<string, unknown>>)[0]!
    }
    taskId = await Effect.runPromise(taskIdOf({ url, pieceLength: o.pieceLength }).pipe(Effect.provide(NodeSha256)))
  }
  return callDaemon(c, "GET", `/v1/cache/tasks/${encodeURIComponent(taskId)}`)
}
