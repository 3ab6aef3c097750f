// Bandwidth limits of a daemon: one token bucket per kind of traffic — upload (pieces served to
// children), download (pieces fetched from parents) and back-to-source (ranges fetched from the origin)
// — shared by every task on the host. Uploads and origin ranges are paced chunk by chunk as they are
// written to or read from the socket (`pacedBody` in the upload server, `readPacer` in
// runtime/http-origin.ts), so a limit is smooth over sub-second windows: at most `rate` bytes/s plus one
// chunk over any window. Downloads from parents still pay for a whole piece before its request goes out
// (runtime/piece-client.ts reads the socket itself). With no limit the services are left untouched.
import { Duration, Effect } from "effect"
import { Readable } from "node:stream"
import { PieceTransfer } from "../core/services/piece-transfer.ts"

/**
 * The pacing unit: about 10 ms at the configured rate, between 16 KiB and 1 MiB, so a limiter wakes
 * at most about 100 times a second however fast it is, and a window's excess is one small chunk.
 */
export const chunkFor = (rate: number) => Math.min(1024 * 1024, Math.max(16 * 1024, Math.round(rate / 100)))

export interface RateLimiter {
  /** Bytes per second this limiter admits. */
  readonly rate: number
  /** Bytes paced at a time by the chunked paths; the bucket holds at most this much (its burst). */
  readonly chunk: number
  /** Reserves `bytes` now and answers how many milliseconds the caller must wait before sending them. */
  readonly reserve: (bytes: number) => number
  /** Waits until `bytes` may be sent; reservations are served in call order. */
  readonly take: (bytes: number) => Effect.Effect<void>
}

/**
 * A token bucket that may go into debt: a reservation larger than what the bucket holds is admitted
 * once the tokens before it are paid for, and its own cost is paid by the callers after it. Nothing is
 * dropped; a caller only waits. It holds at most one chunk (`burst`), so a limit bites at once. `now` is
 * injectable for tests.
 */
export const tokenBucket = (rate: number, burst = chunkFor(rate), now: () => number = Date.now): RateLimiter => {
  if (!(rate > 0) || !Number.isFinite(rate)) throw new Error(`rate: expected a positive number of bytes per second, got ${rate}`)
  // Tokens are kept as the time at which the bucket is (or was) empty: tokens(t) = (t - emptyAt) * rate, capped at burst.
  let emptyAt = now()
  const reserve = (bytes: number) => {
    const t = now()
    // A full bucket means emptyAt lies burst/rate seconds back at most.
    emptyAt = Math.max(emptyAt, t - (burst / rate) * 1000)
    emptyAt += (bytes / rate) * 1000
    return Math.max(0, emptyAt - t)
  }
  return {
    rate,
    chunk: burst,
    reserve,
    take: (bytes) =>
      Effect.suspend(() => {
        const wait = reserve(bytes)
        return wait > 0 ? Effect.sleep(Duration.millis(Math.ceil(wait))) : Effect.void
      })
  }
}

/** A limiter for `rate` bytes/s, or undefined (no limit) when the rate is undefined. */
export const limiterFor = (rate: number | undefined): RateLimiter | undefined => rate === undefined ? undefined : tokenBucket(rate)

/** Piece downloads from parents pay `limiter` for the piece's length (asked of `lengthOf`) before the request goes out. */
export const limitPieceTransfer = (
  inner: PieceTransfer["Service"],
  limiter: RateLimiter | undefined,
  lengthOf: (taskId: string, index: number) => Promise<number | undefined>
): PieceTransfer["Service"] => {
  if (limiter === undefined) return inner
  return PieceTransfer.of({
    availability: inner.availability,
    fetchPiece: (parent, taskId, index) =>
      Effect.promise(() => lengthOf(taskId, index)).pipe(
        Effect.flatMap((length) => length === undefined ? Effect.void : limiter.take(length)),
        Effect.andThen(inner.fetchPiece(parent, taskId, index))
      )
  })
}

/** Runs `f` after `millis` (setTimeout; a test passes a virtual clock's); answers a canceller. */
export type Schedule = (f: () => void, millis: number) => () => void

const realTime: Schedule = (f, millis) => {
  const timer = setTimeout(f, millis)
  return () => clearTimeout(timer)
}

/**
 * `bytes` as a Node stream of `limiter.chunk`-sized views, each pushed only once the limiter admits it:
 * an upload's body is written to the socket at the limited rate, not reserved whole up front. The next
 * chunk is reserved only when the consumer asks for more (the response took the last one), so a slow
 * socket holds back the reservations too. A Node stream rather than an Effect Stream (a fiber step, a
 * sleep and a latch per chunk): the response is piped straight into Node's, with a timer per chunk and
 * nothing else. Measured (runtime/testing/bench-throughput.ts, 12 MiB/s, five A/B pairs on a shared
 * machine) the uploading daemon's main thread used 2.0–3.4 CPU-s/GiB against 2.5–3.4 before: most of
 * a paced upload's cost is elsewhere (a socket write and a wake-up of the receiver per chunk).
 */
export const pacedBody = (limiter: RateLimiter, bytes: Uint8Array, schedule: Schedule = realTime): Readable => {
  let at = 0
  let cancel: (() => void) | undefined
  return new Readable({
    // One chunk waiting at most: the next is reserved only once this one was taken.
    highWaterMark: 1,
    read() {
      if (at >= bytes.length) return void this.push(null)
      const view = bytes.subarray(at, Math.min(bytes.length, at + limiter.chunk))
      at += view.length
      const wait = limiter.reserve(view.length)
      if (wait <= 0) return void this.push(view)
      cancel = schedule(() => {
        cancel = undefined
        this.push(view)
      }, Math.ceil(wait))
    },
    destroy(error, callback) {
      cancel?.()
      callback(error)
    }
  })
}

/**
 * For a reader of a socket: after each chunk read, how long to pause the socket (ms; 0 = read on). The
 * kernel's buffers then fill and TCP holds the sender back, so bytes arrive at the limited rate.
 */
export const readPacer = (limiter: RateLimiter) => (bytes: number): number => limiter.reserve(bytes)
