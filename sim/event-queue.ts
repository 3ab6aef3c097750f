// The simulator's agenda: a binary min-heap of callbacks ordered by (time, sequence number). The
// sequence number breaks ties in insertion order, which is what makes a run reproducible: two events
// at the same virtual instant always run in the order they were scheduled.

export interface SimEvent {
  readonly time: number
  readonly seq: number
  /** Cleared to cancel: the heap keeps the slot (lazy deletion) and the loop skips it. */
  run: (() => void) | undefined
}

export class EventQueue {
  private heap: Array<SimEvent> = []
  private nextSeq = 0
  private cancelled = 0

  get size(): number {
    return this.heap.length
  }

  /** Events pushed so far (the next sequence number): tells whether anything was pushed since. */
  get pushes(): number {
    return this.nextSeq
  }

  push(time: number, run: () => void): SimEvent {
    const ev: SimEvent = { time, seq: this.nextSeq++, run }
    const h = this.heap
    h.push(ev)
    let i = h.length - 1
    while (i > 0) {
      const p = (i - 1) >> 1
      if (!before(ev, h[p])) break
      h[i] = h[p]
      i = p
    }
    h[i] = ev
    return ev
  }

  /** Cancels an event; once most of the heap is cancelled events, drops them all at once. */
  cancel(ev: SimEvent): void {
    if (ev.run === undefined) return
    ev.run = undefined
    this.cancelled++
    if (this.cancelled > 4096 && this.cancelled * 2 > this.heap.length) this.compact()
  }

  private compact(): void {
    this.heap = this.heap.filter((e) => e.run !== undefined)
    this.cancelled = 0
    // Heapify bottom-up; (time, seq) keys are unchanged, so the pop order is too.
    for (let i = (this.heap.length >> 1) - 1; i >= 0; i--) this.siftDown(i, this.heap[i])
  }

  peekTime(): number {
    return this.heap.length === 0 ? Infinity : this.heap[0].time
  }

  pop(): SimEvent | undefined {
    const h = this.heap
    if (h.length === 0) return undefined
    const top = h[0]
    const last = h.pop()!
    if (h.length > 0) this.siftDown(0, last)
    if (top.run === undefined && this.cancelled > 0) this.cancelled--
    return top
  }

  private siftDown(start: number, ev: SimEvent): void {
    const h = this.heap
    const n = h.length
    let i = start
    while (true) {
      const l = 2 * i + 1
      if (l >= n) break
      const r = l + 1
      const c = r < n && before(h[r], h[l]) ? r : l
      if (!before(h[c], ev)) break
      h[i] = h[c]
      i = c
    }
    h[i] = ev
  }
}

const before = (a: SimEvent, b: SimEvent): boolean => a.time < b.time || (a.time === b.time && a.seq < b.seq)
