// A host uploads at most `Host.uploadSlots` pieces at once; further requests wait their turn (FIFO),
// as they do at a real daemon's upload server. Without this, a seed would split its uplink across
// every request at once and finish none of them soon, so nothing could be relayed.
import { Effect } from "effect"

/** A request for a slot in object form: `granted` is called once a slot is held, unless `waiting` was cleared first. */
export interface SlotWaiter {
  waiting: boolean
  granted(): void
}

export class UploadSlots {
  private busy = 0
  /** FIFO of waiting requests, read from `head` (not shift(): a seed in a flash crowd has thousands waiting); a withdrawn one is no longer `waiting`. */
  private readonly queue: Array<SlotWaiter> = []
  private head = 0

  constructor(private readonly slots: number) {}

  /** Holds one slot while `use` runs; interruption while waiting leaves the queue. */
  with<A, E, R>(use: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> {
    return Effect.acquireUseRelease(this.acquire(), () => use, () => Effect.sync(() => this.release()))
  }

  private acquire(): Effect.Effect<void> {
    return Effect.callback<void>((resume) => {
      const cancel = this.request(() => resume(Effect.void))
      return Effect.sync(cancel)
    })
  }

  /**
   * Callback form: `granted` runs once a slot is held (at once if one is free). The returned function
   * withdraws a request still waiting; a granted slot is given back with `release`.
   */
  request(granted: () => void): () => void {
    const turn: SlotWaiter = { waiting: true, granted }
    this.enqueue(turn)
    return () => {
      turn.waiting = false
    }
  }

  /**
   * Object form (the simulator's peer driver: no closure per request): `waiter.granted()` runs once a
   * slot is held, at once if one is free. Clear `waiter.waiting` to withdraw it.
   */
  enqueue(waiter: SlotWaiter): void {
    if (this.busy < this.slots) {
      this.busy++
      waiter.waiting = false
      waiter.granted()
      return
    }
    waiter.waiting = true
    this.queue.push(waiter)
  }

  release(): void {
    this.busy--
    const q = this.queue
    while (this.head < q.length) {
      const next = q[this.head++]
      if (!next.waiting) continue
      if (this.head > 1024 && this.head * 2 > q.length) {
        q.splice(0, this.head)
        this.head = 0
      }
      this.busy++
      next.waiting = false
      return next.granted()
    }
    q.length = 0
    this.head = 0
  }
}

const byHost = new WeakMap<object, UploadSlots>()

/** The slots of a host (keyed by its object identity, created on first use). */
export const uploadSlotsOf = (host: object, slots: number): UploadSlots => {
  let s = byHost.get(host)
  if (s === undefined) byHost.set(host, (s = new UploadSlots(slots)))
  return s
}
