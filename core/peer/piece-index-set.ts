// Sets of piece indices (and counts per piece) as a membership array plus a short list in insertion
// order: what `Set<number>` / `Map<number, number>` give the peer machine, without a hash table. A
// peer's sets of pieces in flight or being written hold a handful of pieces and empty and refill with
// every piece; V8 reallocates a hash table whenever one shrinks (an emptied Set is a new table), which
// over millions of pieces in a simulated swarm is a large share of all allocation.

/** Pieces in insertion order; `has` is one array read. Iteration (`keys`, spread) is in insertion order, as a Set's. */
export class PieceIndexSet {
  protected member: Uint8Array = new Uint8Array(16)
  protected readonly order: Array<number> = []

  get size(): number {
    return this.order.length
  }

  has(index: number): boolean {
    return this.member[index] === 1
  }

  add(index: number): this {
    if (this.member[index] === 1) return this
    if (!Number.isInteger(index) || index < 0) throw new RangeError(`piece index ${index}: expected a non-negative integer`)
    if (index >= this.member.length) {
      const grown = new Uint8Array(Math.max(index + 1, this.member.length * 2))
      grown.set(this.member)
      this.member = grown
    }
    this.member[index] = 1
    this.order.push(index)
    return this
  }

  delete(index: number): boolean {
    if (this.member[index] !== 1) return false
    this.member[index] = 0
    const order = this.order
    let k = order.indexOf(index)
    // Shift the later ones down (a handful): keeps the order without splice's result array.
    for (; k < order.length - 1; k++) order[k] = order[k + 1]
    order.pop()
    return true
  }

  clear(): void {
    for (const i of this.order) this.member[i] = 0
    this.order.length = 0
  }

  /** The members in insertion order (a copy). */
  keys(): Array<number> {
    return this.order.slice()
  }

  [Symbol.iterator](): Iterator<number> {
    return this.order.slice()[Symbol.iterator]()
  }
}

/** A count per piece, for the pieces set (`Map<number, number>` with piece keys, in insertion order). */
export class PieceIndexCounts extends PieceIndexSet {
  private counts: Int32Array = new Int32Array(16)

  get(index: number): number | undefined {
    return this.member[index] === 1 ? this.counts[index] : undefined
  }

  set(index: number, count: number): this {
    if (!Number.isInteger(count)) throw new RangeError(`count ${count} of piece ${index}: expected an integer`)
    this.add(index)
    if (index >= this.counts.length) {
      const grown = new Int32Array(this.member.length)
      grown.set(this.counts)
      this.counts = grown
    }
    this.counts[index] = count
    return this
  }
}
