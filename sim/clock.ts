// Virtual time for Effect: a Clock whose sleep is an event on the simulator's agenda instead of a
// timer. Every Effect.sleep / Effect.timeout in core then advances in virtual time.
import { Clock, Duration, Effect } from "effect"
import type { EventQueue } from "./event-queue.ts"

export interface TimeSource {
  /** Virtual now, in milliseconds since the start of the run. */
  readonly now: number
}

export const makeVirtualClock = (time: TimeSource, queue: EventQueue): Clock.Clock => {
  const nowMillis = () => time.now
  const nanos = () => BigInt(Math.round(time.now * 1_000_000))
  return {
    currentTimeMillisUnsafe: nowMillis,
    currentTimeMillis: Effect.sync(nowMillis),
    currentTimeNanosUnsafe: nanos,
    currentTimeNanos: Effect.sync(nanos),
    monotonicTimeNanosUnsafe: nanos,
    monotonicTimeNanos: Effect.sync(nanos),
    sleep(duration: Duration.Duration): Effect.Effect<void> {
      const millis = Duration.toMillis(duration)
      if (!(millis > 0)) return Effect.yieldNow
      if (!Number.isFinite(millis)) return Effect.never
      return Effect.callback<void>((resume) => {
        const ev = queue.push(time.now + millis, () => resume(Effect.void))
        return Effect.sync(() => queue.cancel(ev))
      })
    }
  }
}
