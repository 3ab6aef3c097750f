// Serving content while it downloads: `openTask` starts (or joins) the task's download on this host and
// returns a stream of the asked bytes that yields each piece once it is verified and on disk, in order.
// Other runtime modules (the registry mirror) call it in-process; `GET /v1/object` (daemon.ts) is the
// same thing over HTTP. Failures the caller can act on — the origin refusing (401/403/404…), a range
// outside the content — come back from `openTask` itself, before any byte or header is sent; a download
// that fails later fails the stream, so an HTTP answer is aborted, never completed short.
import { createHash } from "node:crypto"
import { Cause, Effect, Exit, Fiber, Schema, Stream } from "effect"
import type { TaskId } from "../core/domain.ts"
import type { DownloadError } from "../core/errors.ts"
import type { DownloadResult } from "../core/peer/conductor.ts"
import { MAX_PIECE_LENGTH, pieceAt, pieceCountOf, pieceLengthFor } from "../core/piece-layout.ts"
import type { PieceLedger } from "../core/piece-ledger.ts"
import type { Origin } from "../core/services/piece-transfer.ts"
import { taskIdOf } from "../core/task-id.ts"
import { contentRangeOf, type RangeRequest, resolveRange } from "./byte-range.ts"
import type { DiskStore } from "./disk-store.ts"
import { NodeSha256 } from "./node-sha256.ts"

/** The origin answered the probe with a client error (401, 403, 404…): the content is not to be had. */
export class OriginRefused extends Schema.TaggedError<OriginRefused>()("OriginRefused", {
  message: Schema.String,
  /** The origin's HTTP status. */
  status: Schema.Number
}) {}

/** The range starts at or beyond the end of the content (HTTP 416). */
export class RangeNotSatisfiable extends Schema.TaggedError<RangeNotSatisfiable>()("RangeNotSatisfiable", {
  message: Schema.String,
  size: Schema.Number
}) {}

/** A malformed argument: the message names it (bad Range syntax, several ranges, a bad digest or task id). */
export class InvalidTaskRequest extends Schema.TaggedError<InvalidTaskRequest>()("InvalidTaskRequest", {
  message: Schema.String
}) {}

/** The download failed (before the first byte from `openTask`, later through the stream). */
export class TaskFailed extends Schema.TaggedError<TaskFailed>()("TaskFailed", {
  message: Schema.String
}) {}

export type OpenTaskError = OriginRefused | RangeNotSatisfiable | InvalidTaskRequest | TaskFailed

export interface OpenTaskRequest {
  readonly url: string
  /** Sent to the origin with every request for this task (Authorization, …). */
  readonly headers?: Readonly<Record<string, string>> | undefined
  /** "sha256:<hex>" of the whole content: names the task (so every URL of the same blob is one task) and is checked. */
  readonly digest?: string | undefined
  /** An HTTP Range header value, or inclusive offsets. */
  readonly range?: RangeRequest | undefined
  /** The task id to use instead of the one derived from url/digest (64 lowercase hex). */
  readonly taskId?: string | undefined
  readonly pieceLength?: number | undefined
}

export interface OpenedTask {
  readonly taskId: TaskId
  /** Length of the whole content. */
  readonly size: number
  /** 206 when a range was asked, else 200. */
  readonly status: 200 | 206
  /** Bytes the stream yields. */
  readonly length: number
  /** "bytes start-end/size" for a range answer. */
  readonly contentRange?: string | undefined
  /** How the bytes are had: already held here, the direct origin path (small content), or the P2P download. */
  readonly via: "held" | "direct" | "p2p"
  /** The bytes, each piece once verified. Fails (TaskFailed) when the download fails part way. */
  readonly stream: Stream.Stream<Uint8Array, TaskFailed>
}

/** What the daemon runs for a task: core's P2P download, or the direct origin fetch for small content. */
export interface TaskJob {
  readonly taskId: TaskId
  readonly url: string
  readonly headers: Readonly<Record<string, string>>
  readonly pieceLength: number
  /** Take the direct path (small content), with the length from the origin's probe. */
  readonly direct?: { readonly contentLength: number; readonly digest?: string | undefined } | undefined
  /**
   * A reader waits for the content from this piece on: the download starts there (0: in index order,
   * core's `sequentialBias`; above 0: core's `startPiece`, the piece order begins there).
   * Undefined: no reader waits (core's own rarest-first order).
   */
  readonly firstPiece?: { readonly index: number; readonly pieceCount: number } | undefined
  /** Fail rather than fetch from the origin when no peer can serve (a client's --disable-back-to-source). */
  readonly disableBackToSource?: boolean | undefined
}

export interface TaskStreamDeps {
  readonly store: DiskStore
  readonly origin: Origin["Service"]
  /** Starts the task's download, or returns the one already running on this host. */
  readonly start: (job: TaskJob) => Effect.Effect<Fiber.Fiber<DownloadResult, DownloadError>>
  /** The download of this task running on this host, if any. */
  readonly running: (taskId: TaskId) => Fiber.Fiber<DownloadResult, DownloadError> | undefined
  /** After a range request, go on to download the whole task (Dragonfly's prefetch). */
  readonly prefetch: boolean
  /** Content up to this length (from the origin's probe) takes the direct path; 0 turns it off. */
  readonly smallContentMax: number
  /** The piece length for content of this length: the daemon's strategy's rule (default Dragonfly's). */
  readonly pieceLengthFor?: ((contentLength: number) => number) | undefined
}

/** The piece a range starts in (0 for the whole content). */
const firstPieceOf = (range: RangeRequest | undefined, size: number, pieceLength: number) => {
  const r = resolveRange(range, size)
  return r._tag === "Span" ? Math.floor(r.start / pieceLength) : 0
}

const TASK_ID = /^[0-9a-f]{64}$/
/** The smallest piece length a reader may ask for (64 KiB). */
export const MIN_SERVED_PIECE_LENGTH = 64 * 1024
const DIGEST = /^sha256:[0-9a-f]{64}$/
/** Largest chunk a stream yields (read from disk at once): pieces are up to 64 MiB. */
const CHUNK_BYTES = 1024 * 1024
/** How often the opening of a task by its download is checked for (it takes one scheduler round trip). */
const LEDGER_POLL_MILLIS = 20

const messageOf = (e: unknown) =>
  typeof e === "object" && e !== null && "message" in e ? String((e as { message: unknown }).message) : String(e)

const failureOf = (exit: Exit.Exit<unknown, unknown>) => Exit.isFailure(exit) ? messageOf(Cause.squash(exit.cause)) : ""

interface ReaderEntry {
  readers: number
  /** The download below was started by a range reader and nobody since wanted the whole content. */
  rangeOnly: boolean
  fiber: Fiber.Fiber<DownloadResult, DownloadError> | undefined
}

export const makeTaskStreams = (deps: TaskStreamDeps) => {
  const { store } = deps
  /** Streams open (or opening) on each task, and the download started here for ranges only (prefetch off). */
  const readers = new Map<TaskId, ReaderEntry>()

  /** The task's ledger once its download has opened it; fails if the download ends first. */
  const awaitLedger = (taskId: TaskId, fiber: Fiber.Fiber<DownloadResult, DownloadError> | undefined) =>
    Effect.gen(function*() {
      while (true) {
        const ledger = yield* Effect.promise(() => store.ledgerOf(taskId))
        if (ledger !== undefined) return ledger
        if (fiber === undefined) return yield* new TaskFailed({ message: `task ${taskId} is not held here` })
        const exit = fiber.pollUnsafe()
        if (exit !== undefined) {
          const again = yield* Effect.promise(() => store.ledgerOf(taskId))
          if (again !== undefined) return again
          return yield* new TaskFailed({ message: `download of task ${taskId} failed: ${failureOf(exit) || "it ended without opening the task"}` })
        }
        yield* Effect.sleep(LEDGER_POLL_MILLIS)
      }
    })

  /** Waits until piece `index` is verified and stored; fails if the download ends without it. */
  const awaitPiece = (ledger: PieceLedger, index: number, fiber: Fiber.Fiber<DownloadResult, DownloadError> | undefined) =>
    Effect.gen(function*() {
      while (!ledger.has(index)) {
        if (fiber === undefined) return yield* new TaskFailed({ message: `piece ${index} of task ${ledger.taskId} is not held here` })
        const ended = yield* Effect.raceFirst(
          Effect.as(ledger.awaitChange(ledger.version), undefined),
          Fiber.await(fiber)
        )
        if (ended !== undefined && !ledger.has(index)) {
          return yield* new TaskFailed({
            message: `download of task ${ledger.taskId} ${Exit.isFailure(ended) ? `failed: ${failureOf(ended)}` : "ended"} before piece ${index} arrived`
          })
        }
      }
    })

  const readBytes = (taskId: TaskId, offset: number, length: number) =>
    Effect.tryPromise({
      try: () => store.readRangeAsync(taskId, offset, length),
      catch: (e) => new TaskFailed({ message: `reading bytes ${offset}+${length} of task ${taskId}: ${messageOf(e)}` })
    })

  /**
   * The task a request names, and what is known of it without downloading: its size (from the held
   * ledger, else the origin's probe; undefined when the origin cannot be reached and nothing is held).
   */
  const locate = (req: OpenTaskRequest) =>
    Effect.gen(function*() {
      const headers = { ...(req.headers ?? {}) }
      if (!/^https?:\/\/\S+$/.test(req.url)) return yield* new InvalidTaskRequest({ message: `url: expected an http(s) URL, got ${JSON.stringify(req.url.slice(0, 200))}` })
      if (req.digest !== undefined && !DIGEST.test(req.digest)) {
        return yield* new InvalidTaskRequest({ message: `digest: expected "sha256:" and 64 lowercase hex characters, got ${JSON.stringify(req.digest.slice(0, 100))}` })
      }
      if (req.taskId !== undefined && !TASK_ID.test(req.taskId)) {
        return yield* new InvalidTaskRequest({ message: `taskId: expected 64 lowercase hex characters, got ${JSON.stringify(req.taskId.slice(0, 100))}` })
      }
      // Bounded both ways: a piece is held in memory whole, and tiny pieces mean millions of them.
      if (req.pieceLength !== undefined && !(Number.isSafeInteger(req.pieceLength) && req.pieceLength >= MIN_SERVED_PIECE_LENGTH && req.pieceLength <= MAX_PIECE_LENGTH)) {
        return yield* new InvalidTaskRequest({ message: `pieceLength: expected an integer from ${MIN_SERVED_PIECE_LENGTH} to ${MAX_PIECE_LENGTH}, got ${req.pieceLength}` })
      }
      // Syntax first, against any size: a malformed Range is refused before the origin is asked.
      const syntax = resolveRange(req.range, Number.MAX_SAFE_INTEGER)
      if (syntax._tag === "Invalid") return yield* new InvalidTaskRequest({ message: syntax.message })

      // A task held (or being downloaded) under the caller's own id needs no origin round trip.
      let taskId: TaskId | undefined = req.taskId
      let ledger = taskId === undefined ? undefined : yield* Effect.promise(() => store.ledgerOf(taskId!))
      let size = ledger?.contentLength
      let pieceLength = ledger?.pieceLength ?? req.pieceLength
      if (ledger === undefined) {
        const probe = yield* Effect.result(deps.origin.probe({ url: req.url, headers }))
        if (probe._tag === "Success") {
          size = probe.success.contentLength
        } else if (probe.failure.status !== null && probe.failure.status >= 400 && probe.failure.status < 500) {
          return yield* new OriginRefused({ message: `origin ${req.url}: HTTP ${probe.failure.status}`, status: probe.failure.status })
        }
        // Unreachable or failing (5xx): peers may still hold the task; the size comes from its ledger.
        pieceLength ??= (deps.pieceLengthFor ?? pieceLengthFor)(size ?? 0)
        if (taskId === undefined) {
          taskId = yield* taskIdOf({ url: req.url, pieceLength, ...(req.digest === undefined ? {} : { digest: req.digest }) }).pipe(
            Effect.provide(NodeSha256),
            Effect.mapError((e) => new InvalidTaskRequest({ message: e.message }))
          )
        }
        ledger = yield* Effect.promise(() => store.ledgerOf(taskId!))
      }
      if (size !== undefined) {
        const r = resolveRange(req.range, size)
        if (r._tag === "Unsatisfiable") return yield* new RangeNotSatisfiable({ message: `range ${JSON.stringify(req.range)} is outside the content (${size} bytes)`, size })
      }
      return { headers, taskId: taskId!, pieceLength: pieceLength!, size, ledger }
    })

  /** What `openTask` would answer (status, size, range), without downloading anything: for HEAD. */
  const headTask = (req: OpenTaskRequest): Effect.Effect<Omit<OpenedTask, "stream" | "via">, OpenTaskError> =>
    Effect.gen(function*() {
      const { taskId, size } = yield* locate(req)
      if (size === undefined) return yield* new TaskFailed({ message: `size of ${req.url} unknown: the origin did not answer and task ${taskId} is not held here` })
      const range = resolveRange(req.range, size)
      if (range._tag !== "Span") return { taskId, size, status: 200, length: size, contentRange: undefined }
      return { taskId, size, status: 206, length: range.end - range.start + 1, contentRange: contentRangeOf(range.start, range.end, size) }
    })

  const openTask = (req: OpenTaskRequest): Effect.Effect<OpenedTask, OpenTaskError> =>
    Effect.gen(function*() {
      const located = yield* locate(req)
      const id: TaskId = located.taskId
      // From here until the stream ends the task is counted as read (`reading`) and pinned in the store,
      // so storage GC leaves it alone. Prefetch off: a download started for ranges only stops when its
      // last reader is done.
      const entry = readers.get(id) ?? { readers: 0, rangeOnly: false, fiber: undefined }
      entry.readers++
      readers.set(id, entry)
      let unpin = () => {}
      const pinned = new Promise<void>((resolve) => (unpin = resolve))
      void store.withPin(id, () => pinned)
      let released = false
      const release = Effect.suspend(() => {
        if (released) return Effect.void
        released = true
        unpin()
        entry.readers--
        if (entry.readers > 0) return Effect.void
        readers.delete(id)
        const f = entry.fiber
        return !deps.prefetch && entry.rangeOnly && f !== undefined && f.pollUnsafe() === undefined ? Fiber.interrupt(f) : Effect.void
      })
      return yield* opened(req, located, entry, release).pipe(Effect.onExit((exit) => Exit.isSuccess(exit) ? Effect.void : release))
    })

  const opened = (
    req: OpenTaskRequest,
    located: Effect.Success<ReturnType<typeof locate>>,
    entry: ReaderEntry,
    release: Effect.Effect<void>
  ): Effect.Effect<OpenedTask, OpenTaskError> =>
    Effect.gen(function*() {
      const { headers } = located
      const id: TaskId = located.taskId
      const pl = located.pieceLength
      let { ledger, size } = located

      // Start (or join) the download unless everything is here already.
      let fiber: Fiber.Fiber<DownloadResult, DownloadError> | undefined
      let via: OpenedTask["via"] = "held"
      let startedHere = false
      if (ledger === undefined || !ledger.complete) {
        const running = deps.running(id)
        const direct = running === undefined && ledger === undefined && size !== undefined && size <= deps.smallContentMax
        fiber = yield* deps.start({
          taskId: id,
          url: req.url,
          headers,
          pieceLength: pl,
          firstPiece: size === undefined ? undefined : { index: firstPieceOf(req.range, size, pl), pieceCount: pieceCountOf(size, pl) },
          direct: direct ? { contentLength: size!, digest: req.digest } : undefined
        })
        startedHere = running === undefined
        via = direct ? "direct" : "p2p"
      }
      ledger ??= yield* awaitLedger(id, fiber)
      size = ledger.contentLength
      const range = resolveRange(req.range, size)
      if (range._tag === "Unsatisfiable") return yield* new RangeNotSatisfiable({ message: `range ${JSON.stringify(req.range)} is outside the content (${size} bytes)`, size })
      if (range._tag === "Invalid") return yield* new InvalidTaskRequest({ message: range.message })
      const [start, end] = range._tag === "Span" ? [range.start, range.end] : [0, size - 1]
      const whole = start === 0 && end === size - 1

      if (startedHere && fiber !== undefined) {
        entry.fiber = fiber
        entry.rangeOnly = !whole
      } else if (whole || (fiber !== undefined && entry.fiber !== fiber)) {
        // Someone wants the whole content, or the download was not started for ranges: never stopped for them.
        entry.rangeOnly = false
      }

      const l = ledger
      // The whole content with a digest: the last chunk is held back until the digest matches, so a
      // client never receives all of a body that is not the content it named.
      const hash = whole && req.digest !== undefined ? createHash("sha256") : undefined
      const checked = (bytes: Uint8Array, isLast: boolean) =>
        Effect.suspend(() => {
          if (hash === undefined) return Effect.succeed(bytes)
          hash.update(bytes)
          if (!isLast) return Effect.succeed(bytes)
          const actual = `sha256:${hash.digest("hex")}`
          return actual === req.digest ? Effect.succeed(bytes) : Effect.fail(new TaskFailed({ message: `digest mismatch: expected ${req.digest}, got ${actual}` }))
        })
      // Bytes from `pos` on, at most CHUNK_BYTES and never past the piece holding `pos`, once that piece is in.
      const chunkAt = (pos: number) =>
        Effect.gen(function*() {
          const index = Math.floor(pos / l.pieceLength)
          yield* awaitPiece(l, index, fiber)
          const piece = pieceAt(l.contentLength, l.pieceLength, index)
          const until = Math.min(end + 1, piece.offset + piece.length, pos + CHUNK_BYTES)
          return yield* Effect.flatMap(readBytes(id, pos, until - pos), (b) => checked(b, until === end + 1))
        })

      // The first chunk is awaited here, so a download that fails at once is an error, not an aborted body.
      const firstChunk = yield* (size === 0
        ? Effect.as(fiber === undefined ? Effect.void : Effect.mapError(Fiber.join(fiber), (e) => new TaskFailed({ message: e.message })), new Uint8Array(0))
        : chunkAt(start))
      const rest = Stream.unfold(start + firstChunk.length, (pos) =>
        pos > end ? Effect.succeed(undefined) : Effect.map(chunkAt(pos), (b) => [b, pos + b.length] as const))
      const stream = (size === 0 ? Stream.empty : Stream.concat(Stream.succeed(firstChunk), rest)).pipe(Stream.ensuring(release))
      return {
        taskId: id,
        size,
        status: range._tag === "Span" ? 206 : 200,
        length: size === 0 ? 0 : end - start + 1,
        contentRange: range._tag === "Span" ? contentRangeOf(start, end, size) : undefined,
        via,
        stream
      } satisfies OpenedTask
    })

  /** A stream of this task is open (storage must not evict it meanwhile). */
  const reading = (taskId: string) => readers.has(taskId)

  return { openTask, headTask, reading }
}

export type TaskStreams = ReturnType<typeof makeTaskStreams>
