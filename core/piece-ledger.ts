// Which pieces one peer holds for one task, in arrival order. The arrival log doubles as a version
// number, so a child long-polling a parent gets only the pieces it has not seen (a delta), and a seed
// that is still downloading streams each piece to its children the moment it lands.
import { Effect } from "effect"
import type { TaskId } from "./domain.ts"
import { PieceIndexSet } from "./peer/piece-index-set.ts"
import { pieceCountOf } from "./piece-layout.ts"
import { type PieceEntry, PieceAvailability, trusted } from "./protocol.ts"

/** A window `pieces[from..to)` on a ledger's arrival log (`deltaView`): a reusable AvailabilityAnswer. */
export interface LedgerDeltaView {
  version: number
  pieces: ReadonlyArray<PieceEntry>
  from: number
  to: number
  complete: boolean
}

/** A wait for the ledger's version to exceed `since`; clear `live` to withdraw it. */
export interface LedgerWaiter {
  readonly since: number
  live: boolean
  changed(): void
}

export class PieceLedger {
  readonly pieceCount: number
  private readonly digests: Array<string | undefined>
  /** 1 where a piece is held: `has` as a typed array, for scans over every piece (the piece picker). */
  readonly heldMask: Uint8Array
  private readonly log: Array<PieceEntry> = []
  private readonly arriving = new PieceIndexSet()
  private waiters: Array<LedgerWaiter> = []
  /** The waiters array of the last wake, emptied, for the next one (a wake per piece would allocate one). */
  private spareWaiters: Array<LedgerWaiter> | undefined = undefined

  constructor(
    readonly taskId: TaskId,
    readonly contentLength: number,
    readonly pieceLength: number
  ) {
    this.pieceCount = pieceCountOf(contentLength, pieceLength)
    this.digests = new Array(this.pieceCount)
    this.heldMask = new Uint8Array(this.pieceCount)
  }

  get version(): number {
    return this.log.length
  }

  get complete(): boolean {
    return this.log.length === this.pieceCount
  }

  has(index: number): boolean {
    return this.digests[index] !== undefined
  }

  digestOf(index: number): string | undefined {
    return this.digests[index]
  }

  /** Indices held, in arrival order. */
  held(): Array<number> {
    return this.log.map((e) => e.index)
  }

  markArriving(index: number): void {
    if (!this.has(index) && !this.arriving.has(index)) {
      this.arriving.add(index)
    }
  }

  clearArriving(index: number): void {
    this.arriving.delete(index)
  }

  /** Records a verified piece. Idempotent: a second add of the same piece changes nothing. */
  add(index: number, digest: string): void {
    // Held already (a simulated store added it first): no entry to build.
    if (this.digests[index] !== undefined) {
      this.arriving.delete(index)
      return
    }
    this.addEntry({ index, digest })
  }

  /** `add` with the log entry given (immutable; a simulator shares one per piece among all its peers). */
  addEntry(entry: PieceEntry): void {
    const { index, digest } = entry
    if (index < 0 || index >= this.pieceCount) {
      throw new RangeError(`piece index ${index} outside 0..${this.pieceCount - 1} of task ${this.taskId}`)
    }
    this.arriving.delete(index)
    if (this.digests[index] !== undefined) return
    this.digests[index] = digest
    this.heldMask[index] = 1
    this.log.push(entry)
    this.wake()
  }

  /** The answer to a long-poll from `since`: built from this ledger's own state, so without the
   *  constructor's Schema pass (`trusted`; one per long-poll answer, every piece, every watching child). */
  since(since: number): PieceAvailability {
    return trusted(PieceAvailability, {
      taskId: this.taskId,
      version: this.log.length,
      contentLength: this.contentLength,
      pieceLength: this.pieceLength,
      pieces: since >= this.log.length ? [] : this.log.slice(Math.max(0, since)),
      arriving: [...this.arriving],
      complete: this.complete
    })
  }

  /** The pieces after `since` (up to version `until`) as plain data: what `since` says, without building a protocol message. */
  delta(since: number, until = this.log.length): { readonly version: number; readonly pieces: ReadonlyArray<PieceEntry>; readonly complete: boolean } {
    const v = Math.min(until, this.log.length)
    return { version: v, pieces: since >= v ? [] : this.log.slice(Math.max(0, since), v), complete: v === this.pieceCount }
  }

  /**
   * `delta` without copying: fills `into` with a window on the arrival log itself (shared, read-only;
   * entries are immutable and the log only grows), so a simulator's answer to a child allocates nothing.
   */
  deltaView(into: LedgerDeltaView, since: number, until = this.log.length): LedgerDeltaView {
    const v = Math.min(until, this.log.length)
    into.version = v
    into.pieces = this.log
    into.from = Math.max(0, Math.min(since, v))
    into.to = v
    into.complete = v === this.pieceCount
    return into
  }

  /**
   * Callback form of `awaitChange` (for an event loop): `changed` runs once the version exceeds
   * `since` (at once if it already does). The returned function withdraws a wait still pending.
   */
  whenChanged(since: number, changed: () => void): () => void {
    if (this.log.length > since || this.complete) {
      changed()
      return () => {}
    }
    const waiter: LedgerWaiter = { since, live: true, changed }
    this.waiters.push(waiter)
    // Withdrawn waits leave the list at once: on a ledger that stops growing (a partial task kept on
    // disk) nothing would ever wake it to drop them, and each holds its caller's closure.
    return () => {
      waiter.live = false
      const i = this.waiters.indexOf(waiter)
      if (i >= 0) this.waiters.splice(i, 1)
    }
  }

  /**
   * Object form of `whenChanged` (no closure per wait; the simulator has millions): `waiter.changed()`
   * runs once the version exceeds `waiter.since`, at once if it already does, unless `live` was cleared.
   */
  addWaiter(waiter: LedgerWaiter): void {
    if (this.log.length > waiter.since || this.complete) waiter.changed()
    else this.waiters.push(waiter)
  }

  /** Resolves once the version exceeds `since`. Interruptible: an abandoned wait leaves nothing behind. */
  awaitChange(since: number): Effect.Effect<PieceAvailability> {
    return Effect.suspend(() => {
      if (this.log.length > since || this.complete) return Effect.succeed(this.since(since))
      return Effect.callback<PieceAvailability>((resume) => {
        const entry: LedgerWaiter = { since, live: true, changed: () => resume(Effect.succeed(this.since(since))) }
        this.waiters.push(entry)
        return Effect.sync(() => {
          entry.live = false
          this.waiters = this.waiters.filter((w) => w !== entry)
        })
      })
    })
  }

  private wake(): void {
    if (this.waiters.length === 0) return
    const waiting = this.waiters
    // A waiter's `changed` may wake this ledger again (re-entrantly): that wake finds no spare and allocates.
    this.waiters = this.spareWaiters ?? []
    this.spareWaiters = undefined
    for (const w of waiting) {
      if (!w.live) continue
      if (this.log.length > w.since) w.changed()
      else this.waiters.push(w)
    }
    waiting.length = 0
    this.spareWaiters = waiting
  }
}
