// The simulator's agenda: a binary min-heap of callbacks ordered by (time, sequence number). The
// sequence number breaks ties in insertion order, which is what makes a run reproducible: two events
// at the same virtual instant always run in the order they were scheduled (a moved event counts as
// scheduled when it was moved).
//
// Allocation-free: a large run pushes tens of millions of events, so an event is a slot in typed
// arrays (time, sequence, heap position) plus a callback and its argument, and the heap holds the keys
// inline: each entry's time and sequence side by side in one array, four children per node (a run
// keeps ~100,000 events pending; half the levels of a binary heap, and a node's children in one or
// two cache lines). The (time, sequence) keys are unique, so the pop order is the same as any other
// heap's. Slots are recycled; an EventId names a slot and its generation, so cancelling an event that
// already ran (its slot since reused) is a no-op. Cancel and move are exact (the heap tracks every
// slot's position): no dead entries are left for the loop to skip.

/** A scheduled event: cancel or move it through the queue. Stale ids (the event ran) are ignored. */
export type EventId = number

/** No event. */
export const NO_EVENT: EventId = -1

const SLOT_BITS = 23
const SLOTS = 2 ** SLOT_BITS
const GENERATIONS = 2 ** 29

export class EventQueue {
  // Per slot.
  private gen = new Int32Array(1024)
  private pos = new Int32Array(1024)
  private fns: Array<((arg: any) => void) | undefined> = []
  private args: Array<unknown> = []
  private free = new Int32Array(1024)
  private freeCount = 0
  private slotsUsed = 0
  // The heap, keys inline: entry i's time at hKey[2i], its sequence at hKey[2i + 1].
  private hKey = new Float64Array(2048)
  private hSlot = new Int32Array(1024)
  private n = 0
  private nextSeq = 0

  /** Set by `popInto`: the event that is due. */
  time = 0
  seq = 0
  fn: ((arg: any) => void) | undefined = undefined
  arg: unknown = undefined

  get size(): number {
    return this.n
  }

  /** Events pushed (or moved) so far: tells whether anything was scheduled since. */
  get pushes(): number {
    return this.nextSeq
  }

  /** A sequence number for an event kept elsewhere (the engine's fixed-delay lanes), ordered with these. */
  takeSeq(): number {
    return this.nextSeq++
  }

  /** The sequence number of the next event (Infinity when empty). */
  peekSeq(): number {
    return this.n === 0 ? Infinity : this.hKey[1]
  }

  push(time: number, run: () => void): EventId {
    return this.pushCall(time, run, undefined)
  }

  /** `fn(arg)` at `time`: a shared function and its target instead of a closure per event. */
  pushCall<T>(time: number, fn: (arg: T) => void, arg: T): EventId {
    const slot = this.takeSlot()
    this.fns[slot] = fn
    this.args[slot] = arg
    if (this.n === this.hSlot.length) this.growHeap()
    this.siftUp(this.n++, time, this.nextSeq++, slot)
    return this.gen[slot] * SLOTS + slot
  }

  /** Whether the event is still waiting. */
  pending(id: EventId): boolean {
    return this.slotOf(id) >= 0
  }

  cancel(id: EventId): void {
    const slot = this.slotOf(id)
    if (slot < 0) return
    this.removeAt(this.pos[slot])
    this.release(slot)
  }

  /** Reschedules a waiting event to `time`, ordered as if pushed now; false if it is no longer waiting. */
  move(id: EventId, time: number): boolean {
    const slot = this.slotOf(id)
    if (slot < 0) return false
    this.removeAt(this.pos[slot])
    this.siftUp(this.n++, time, this.nextSeq++, slot)
    return true
  }

  peekTime(): number {
    return this.n === 0 ? Infinity : this.hKey[0]
  }

  /** Removes the next event and exposes it in `time`, `seq`, `fn`, `arg`; false when empty. */
  popInto(): boolean {
    if (this.n === 0) return false
    const slot = this.hSlot[0]
    this.time = this.hKey[0]
    this.seq = this.hKey[1]
    this.fn = this.fns[slot]
    this.arg = this.args[slot]
    this.removeAt(0)
    this.release(slot)
    return true
  }

  /** The next event as a record (tests). */
  pop(): { readonly time: number; readonly seq: number; readonly run: () => void } | undefined {
    if (!this.popInto()) return undefined
    const fn = this.fn!
    const arg = this.arg
    return { time: this.time, seq: this.seq, run: () => fn(arg) }
  }

  // ------------------------------------------------------------ slots

  private slotOf(id: EventId): number {
    if (id < 0) return -1
    const slot = id % SLOTS
    if (slot >= this.slotsUsed || this.pos[slot] < 0 || this.gen[slot] !== Math.floor(id / SLOTS)) return -1
    return slot
  }

  private takeSlot(): number {
    if (this.freeCount > 0) return this.free[--this.freeCount]
    const slot = this.slotsUsed++
    if (slot >= SLOTS) throw new RangeError(`event queue: more than ${SLOTS} events pending at once`)
    if (slot === this.gen.length) {
      this.gen = grow(this.gen)
      this.pos = grow(this.pos)
      this.free = grow(this.free)
    }
    return slot
  }

  private release(slot: number): void {
    this.pos[slot] = -1
    this.gen[slot] = (this.gen[slot] + 1) % GENERATIONS
    this.fns[slot] = undefined
    this.args[slot] = undefined
    this.free[this.freeCount++] = slot
  }

  // ------------------------------------------------------------ heap

  private growHeap(): void {
    this.hKey = grow(this.hKey)
    this.hSlot = grow(this.hSlot)
  }

  /** Takes the entry at heap index i out (the last entry fills the hole). */
  private removeAt(i: number): void {
    const last = --this.n
    if (i === last) return
    const key = this.hKey
    const t = key[2 * last]
    const s = key[2 * last + 1]
    const slot = this.hSlot[last]
    const p = (i - 1) >> 2
    if (i > 0 && before(t, s, key[2 * p], key[2 * p + 1])) this.siftUp(i, t, s, slot)
    else this.siftDown(i, t, s, slot)
  }

  private siftUp(start: number, t: number, s: number, slot: number): void {
    const key = this.hKey
    const hSlot = this.hSlot
    const pos = this.pos
    let i = start
    while (i > 0) {
      const p = (i - 1) >> 2
      if (!before(t, s, key[2 * p], key[2 * p + 1])) break
      key[2 * i] = key[2 * p]
      key[2 * i + 1] = key[2 * p + 1]
      const moved = hSlot[p]
      hSlot[i] = moved
      pos[moved] = i
      i = p
    }
    key[2 * i] = t
    key[2 * i + 1] = s
    hSlot[i] = slot
    pos[slot] = i
  }

  private siftDown(start: number, t: number, s: number, slot: number): void {
    const key = this.hKey
    const hSlot = this.hSlot
    const pos = this.pos
    const n = this.n
    let i = start
    while (true) {
      const first = 4 * i + 1
      if (first >= n) break
      // The earliest of the (up to four) children.
      let c = first
      let ct = key[2 * first]
      let cs = key[2 * first + 1]
      const end = first + 4 < n ? first + 4 : n
      for (let k = first + 1; k < end; k++) {
        const kt = key[2 * k]
        const ks = key[2 * k + 1]
        if (before(kt, ks, ct, cs)) {
          c = k
          ct = kt
          cs = ks
        }
      }
      if (!before(ct, cs, t, s)) break
      key[2 * i] = ct
      key[2 * i + 1] = cs
      const moved = hSlot[c]
      hSlot[i] = moved
      pos[moved] = i
      i = c
    }
    key[2 * i] = t
    key[2 * i + 1] = s
    hSlot[i] = slot
    pos[slot] = i
  }
}

const before = (ta: number, sa: number, tb: number, sb: number): boolean => ta < tb || (ta === tb && sa < sb)

const grow = <A extends Int32Array | Float64Array>(a: A): A => {
  const b = new (a.constructor as new (n: number) => A)(a.length * 2)
  b.set(a)
  return b
}
