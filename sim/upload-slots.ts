// A host uploads at most `Host.uploadSlots` pieces at once; further requests wait their turn (FIFO),
// as they do at a real daemon's upload server. Without this, a seed would split its uplink across
// every request at once and finish none of them soon, so nothing could be relayed.
import { Effect } from "effect"

export class UploadSlots {
  private busy = 0
  /** FIFO of waiting requests, read from `head` (not shift(): a seed in a flash crowd has thousands waiting); a withdrawn request has no `run`. */
  private readonly waiting: Array<{ run: (() => void) | undefined }> = []
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
   * Callback form (the simulator's peer driver): `granted` runs once a slot is held (at once if one is
   * free). The returned function withdraws a request still waiting; a granted slot is given back with
   * `release`.
   */
  request(granted: () => void): () => void {
    if (this.busy < this.slots) {
      this.busy++
      granted()
      return noop
    }
    const turn: { run: (() => void) | undefined } = { run: granted }
    this.waiting.push(turn)
    return () => {
      turn.run = undefined
    }
  }

  release(): void {
    this.busy--
    const q = this.waiting
    while (this.head < q.length) {
      const next = q[this.head++].run
      if (next === undefined) continue
      if (this.head > 1024 && this.head * 2 > q.length) {
        q.splice(0, this.head)
        this.head = 0
      }
      this.busy++
      return next()
    }
    q.length = 0
    this.head = 0
  }
}

const noop = () => {}

const byHost = new WeakMap<object, UploadSlots>()

/** The slots of a host (keyed by its object identity, created on first use). */
export const uploadSlotsOf = (host: object, slots: number): UploadSlots => {
  let s = byHost.get(host)
  if (s === undefined) byHost.set(host, (s = new UploadSlots(slots)))
  return s
}
