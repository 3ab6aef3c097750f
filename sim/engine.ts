// The discrete-event engine: one agenda (EventQueue), one synchronous Effect scheduler whose single
// dispatcher every fiber shares, a virtual Clock and one seeded Random. Fibers are real Effect fibers;
// the engine only decides *when* they run. Nothing here allocates an Effect per event.
import { Clock, Effect, type Fiber, Random, Scheduler } from "effect"
import seedrandom from "seedrandom"
import { makeVirtualClock } from "./clock.ts"
import { type EventId, EventQueue } from "./event-queue.ts"
import { Trace } from "./trace.ts"

/** FIFO within a priority, lower priority first; `flush` runs until no task is left. */
class SharedDispatcher implements Scheduler.SchedulerDispatcher {
  // Almost every task has priority 0, so keep that queue apart and skip the bucket search.
  private zero: Array<() => void> = []
  private zeroHead = 0
  private others = new Map<number, Array<() => void>>()
  private flushing = false
  tasks = 0

  scheduleTask(task: () => void, priority: number): void {
    if (priority === 0) this.zero.push(task)
    else {
      let q = this.others.get(priority)
      if (q === undefined) this.others.set(priority, (q = []))
      q.push(task)
    }
  }

  flush(): void {
    // Re-entrant calls (a task that flushes) leave the work to the outer loop.
    if (this.flushing) return
    this.flushing = true
    try {
      while (true) {
        const task = this.next()
        if (task === undefined) break
        this.tasks++
        task()
      }
    } finally {
      this.flushing = false
    }
  }

  private next(): (() => void) | undefined {
    if (this.others.size > 0) {
      let best = Infinity
      for (const p of this.others.keys()) if (p < best) best = p
      if (best < 0) return this.take(best)
      if (this.zeroHead < this.zero.length) return this.takeZero()
      return this.take(best)
    }
    return this.zeroHead < this.zero.length ? this.takeZero() : undefined
  }

  private takeZero(): () => void {
    const t = this.zero[this.zeroHead++]
    if (this.zeroHead === this.zero.length) {
      this.zero = []
      this.zeroHead = 0
    } else if (this.zeroHead > 4096) {
      this.zero = this.zero.slice(this.zeroHead)
      this.zeroHead = 0
    }
    return t
  }

  private take(priority: number): () => void {
    const q = this.others.get(priority)!
    const t = q.shift()!
    if (q.length === 0) this.others.delete(priority)
    return t
  }
}

class SimScheduler implements Scheduler.Scheduler {
  readonly executionMode = "sync" as const
  constructor(readonly dispatcher: SharedDispatcher, private readonly maxOps: number) {}
  shouldYield(fiber: Fiber.Fiber<unknown, unknown>): boolean {
    return fiber.currentOpCount >= this.maxOps
  }
  makeDispatcher(): Scheduler.SchedulerDispatcher {
    return this.dispatcher
  }
}

const noop = () => {}

/** A seeded stream with Effect's Random shape. */
export const seededRandom = (seed: string): Random.Random => {
  const rng = seedrandom(seed)
  return {
    nextDoubleUnsafe: () => rng.double(),
    nextIntUnsafe: () => rng.int32()
  }
}

export interface RunLimits {
  /** Stop once virtual time passes this (milliseconds). */
  readonly untilMillis?: number
  readonly maxEvents?: number
  /** Checked after every event: stop as soon as it returns true. */
  readonly stopWhen?: () => boolean
}

/**
 * Events that all wait the same delay (a report's one-way latency, a request's round trip) are due in
 * the order they were scheduled, so they need no heap: a FIFO per delay, merged with the agenda by
 * (time, sequence), runs them exactly where the agenda would. Not cancellable: the callback checks.
 */
class Lane {
  constructor(readonly delay: number) {}
  times: Array<number> = []
  seqs: Array<number> = []
  fns: Array<(arg: any) => void> = []
  args: Array<unknown> = []
  head = 0

  push(time: number, seq: number, fn: (arg: any) => void, arg: unknown): void {
    this.times.push(time)
    this.seqs.push(seq)
    this.fns.push(fn)
    this.args.push(arg)
  }

  get empty(): boolean {
    return this.head === this.times.length
  }

  /** Drops what was taken once it is most of the arrays. */
  compact(): void {
    if (this.head === this.times.length) {
      this.times.length = this.seqs.length = this.fns.length = this.args.length = this.head = 0
    } else if (this.head > 4096 && this.head * 2 > this.times.length) {
      this.times.splice(0, this.head)
      this.seqs.splice(0, this.head)
      this.fns.splice(0, this.head)
      this.args.splice(0, this.head)
      this.head = 0
    }
  }
}

export class SimEngine {
  now = 0
  events = 0
  readonly queue = new EventQueue()
  readonly trace: Trace
  readonly clock: Clock.Clock
  readonly random: Random.Random
  private readonly dispatcher = new SharedDispatcher()
  readonly scheduler: Scheduler.Scheduler

  constructor(readonly seed: number, options: { traceSink?: (line: string) => void; maxOpsBeforeYield?: number } = {}) {
    this.trace = new Trace(options.traceSink)
    this.clock = makeVirtualClock(this, this.queue)
    this.random = seededRandom(String(seed))
    this.scheduler = new SimScheduler(this.dispatcher, options.maxOpsBeforeYield ?? 2048)
  }

  /** A further deterministic stream derived from the seed, for the world's own choices (arrivals). */
  subRandom(name: string): Random.Random {
    return seededRandom(`${this.seed}/${name}`)
  }

  at(time: number, run: () => void): EventId {
    return this.queue.push(Math.max(time, this.now), run)
  }

  after(delayMillis: number, run: () => void): EventId {
    return this.queue.push(this.now + Math.max(0, delayMillis), run)
  }

  /** The lanes, one per delay (a handful: the distinct latencies of a topology). */
  private readonly laneList: Array<Lane> = []

  /**
   * `fn(arg)` after `delayMillis`, for delays many events share (a link's latency): cheaper than the
   * agenda, in the same order. Cannot be cancelled; `fn` checks whether it still applies.
   */
  afterFixed<T>(delayMillis: number, fn: (arg: T) => void, arg: T): void {
    const delay = Math.max(0, delayMillis)
    // A scan of the few lanes (as a Map would, NaN finds NaN's): cheaper than hashing a double per event.
    const lanes = this.laneList
    let lane: Lane | undefined = undefined
    for (let i = 0; i < lanes.length; i++) {
      const d = lanes[i].delay
      if (d === delay || (d !== d && delay !== delay)) {
        lane = lanes[i]
        break
      }
    }
    if (lane === undefined) {
      lane = new Lane(delay)
      lanes.push(lane)
    }
    lane.push(this.now + delay, this.queue.takeSeq(), fn, arg)
  }

  /** `fn(arg)` at `time` (not before now): no closure per event. */
  atCall<T>(time: number, fn: (arg: T) => void, arg: T): EventId {
    return this.queue.pushCall(Math.max(time, this.now), fn, arg)
  }

  afterCall<T>(delayMillis: number, fn: (arg: T) => void, arg: T): EventId {
    return this.queue.pushCall(this.now + Math.max(0, delayMillis), fn, arg)
  }

  private instantEnd: Array<() => void> = []
  /** The hooks array the last `endInstant` ran, emptied: swapped in rather than a new array per instant. */
  private spareInstantEnd: Array<() => void> = []

  /** Runs `f` once when the current instant is over (before virtual time moves on, or the queue empties). */
  atInstantEnd(f: () => void): void {
    this.instantEnd.push(f)
  }

  private endInstant(): void {
    const hooks = this.instantEnd
    // Hooks added while these run go to the other array, for the next round.
    this.instantEnd = this.spareInstantEnd
    for (let i = 0; i < hooks.length; i++) hooks[i]()
    hooks.length = 0
    this.spareInstantEnd = hooks
    this.dispatcher.flush()
  }

  record(line: string): void {
    this.trace.record(this.now, line)
  }

  /** Starts a root fiber on the simulator's scheduler, with virtual Clock and the seeded Random. */
  fork<A, E>(program: Effect.Effect<A, E>): Fiber.Fiber<A, E> {
    const fiber = Effect.runFork(
      program.pipe(
        Effect.provideService(Clock.Clock, this.clock),
        Effect.provideService(Random.Random, this.random)
      ),
      { scheduler: this.scheduler }
    )
    this.dispatcher.flush()
    return fiber
  }

  /** Runs Effect tasks that are ready at the current instant. */
  drain(): void {
    this.dispatcher.flush()
  }

  /** The main loop: drain, pop the next event, advance time, run it, drain; until done. */
  run(limits: RunLimits = {}): void {
    const until = limits.untilMillis ?? Infinity
    const maxEvents = limits.maxEvents ?? Infinity
    const stopWhen = limits.stopWhen
    const queue = this.queue
    this.dispatcher.flush()
    const lanes = this.laneList
    while (this.events < maxEvents) {
      if (stopWhen !== undefined && stopWhen()) return
      // The next event: the agenda's, or a lane's if that one is due first (by time, then sequence).
      let next = queue.peekTime()
      let nextSeq = queue.peekSeq()
      let lane: Lane | undefined = undefined
      for (let i = 0; i < lanes.length; i++) {
        const l = lanes[i]
        if (l.empty) continue
        const t = l.times[l.head]
        const q = l.seqs[l.head]
        if (t < next || (t === next && q < nextSeq)) {
          next = t
          nextSeq = q
          lane = l
        }
      }
      // Peek before popping, so a later run() resumes exactly where this one stopped.
      if (this.instantEnd.length > 0 && next > this.now) {
        this.endInstant()
        continue
      }
      if (next > until) {
        if (queue.size > 0 || lanes.some((l) => !l.empty)) this.now = until
        return
      }
      let fn: (arg: any) => void
      let arg: unknown
      if (lane !== undefined) {
        const h = lane.head++
        fn = lane.fns[h]
        arg = lane.args[h]
        lane.fns[h] = noop
        lane.args[h] = undefined
        lane.compact()
      } else {
        // Taken off the agenda first, so a late cancel of an event that already ran is a no-op.
        if (!queue.popInto()) return
        fn = queue.fn!
        arg = queue.arg
      }
      this.now = next
      this.events++
      fn(arg)
      this.dispatcher.flush()
    }
  }
}
