// The direct path for small content: below a few MiB a scheduler round trip, a seed and parents cost
// more than they save, so the daemon fetches the content from the origin in one ranged GET, checks it
// (the whole-content digest when the caller gave one), stores it as the task's pieces and commits it.
// No scheduler hears of it; the task is then held like any other, so peers asking this host get it.
import { Effect } from "effect"
import type { TaskId } from "../core/domain.ts"
import { DownloadError } from "../core/errors.ts"
import type { DownloadResult } from "../core/peer/conductor.ts"
import { pieceAt, pieceCountOf } from "../core/piece-layout.ts"
import { Origin } from "../core/services/piece-transfer.ts"
import type { DiskStore } from "./disk-store.ts"
import { sha256Hex } from "./node-sha256.ts"

/** Content up to this many bytes (the origin's Content-Length) takes the direct path by default. */
export const DEFAULT_SMALL_CONTENT_MAX = 4 * 1024 * 1024

export interface DirectJob {
  readonly taskId: TaskId
  readonly url: string
  readonly headers: Readonly<Record<string, string>>
  readonly contentLength: number
  readonly pieceLength: number
  /** "sha256:<hex>" of the whole content, checked before anything is stored. */
  readonly digest?: string | undefined
}

const failed = (message: string) => new DownloadError({ message })

export const fetchDirect = (store: DiskStore, job: DirectJob): Effect.Effect<DownloadResult, DownloadError, Origin> =>
  Effect.gen(function*() {
    const origin = yield* Origin
    const bytes = job.contentLength === 0
      ? new Uint8Array(0)
      : yield* Effect.mapError(
        origin.fetchRange({ url: job.url, headers: job.headers }, 0, job.contentLength),
        (e) => failed(`origin: ${e.message}`)
      )
    if (job.digest !== undefined) {
      const actual = `sha256:${sha256Hex(bytes)}`
      if (actual !== job.digest) return yield* failed(`digest mismatch: expected ${job.digest}, got ${actual} from ${job.url}`)
    }
    const lift = <A>(what: string, f: () => Promise<A>) =>
      Effect.tryPromise({ try: f, catch: (e) => failed(`piece store: ${what}: ${e instanceof Error ? e.message : String(e)}`) })
    const task = { taskId: job.taskId, url: job.url, contentLength: job.contentLength, pieceLength: job.pieceLength }
    yield* lift("open", () => store.openAsync(task))
    const pieceCount = pieceCountOf(job.contentLength, job.pieceLength)
    for (let index = 0; index < pieceCount; index++) {
      const piece = pieceAt(job.contentLength, job.pieceLength, index)
      const slice = bytes.subarray(piece.offset, piece.offset + piece.length)
      yield* lift(`write piece ${index}`, () => store.writeAsync(job.taskId, index, slice, sha256Hex(slice)))
    }
    yield* lift("commit", () => store.commitAsync(job.taskId))
    return {
      taskId: job.taskId,
      contentLength: job.contentLength,
      pieceCount,
      bytesFromPeers: 0,
      bytesFromOrigin: job.contentLength,
      backToSource: true
    } satisfies DownloadResult
  })
