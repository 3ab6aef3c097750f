// Bandwidth limits of a daemon: one token bucket per kind of traffic — upload (pieces served to
// children), download (pieces fetched from parents) and back-to-source (ranges fetched from the origin)
// — shared by every task on the host. A transfer reserves its bytes before it starts and waits until
// the bucket can pay for them, so the wire sees at most `rate` bytes/s over any window longer than one
// piece plus the burst. With no limit configured the services are returned untouched (zero cost).
import { Duration, Effect } from "effect"
import { Origin, PieceTransfer } from "../core/services/piece-transfer.ts"

/** How much a bucket may hold: 100 ms at the configured rate (at least 64 KiB), so limits bite at once. */
const BURST_SECONDS = 0.1
const MIN_BURST = 64 * 1024

export interface RateLimiter {
  /** Bytes per second this limiter admits. */
  readonly rate: number
  /** Reserves `bytes` now and answers how many milliseconds the caller must wait before sending them. */
  readonly reserve: (bytes: number) => number
  /** Waits until `bytes` may be sent; reservations are served in call order. */
  readonly take: (bytes: number) => Effect.Effect<void>
}

/**
 * A token bucket that may go into debt: a reservation larger than what the bucket holds is admitted
 * once the tokens before it are paid for, and its own cost is paid by the callers after it. Nothing is
 * dropped; a caller only waits. `now` is injectable for tests.
 */
export const tokenBucket = (rate: number, burst = Math.max(MIN_BURST, rate * BURST_SECONDS), now: () => number = Date.now): RateLimiter => {
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

/** Origin ranges pay `limiter` for their length before the request goes out (probes are free). */
export const limitOrigin = (inner: Origin["Service"], limiter: RateLimiter | undefined): Origin["Service"] => {
  if (limiter === undefined) return inner
  return Origin.of({
    probe: inner.probe,
    fetchRange: (request, offset, length) => Effect.andThen(limiter.take(length), inner.fetchRange(request, offset, length))
  })
}
