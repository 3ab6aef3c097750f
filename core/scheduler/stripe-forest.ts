// Damselfly's overlay: a forest of stripe trees (after SplitStream). The pieces are dealt into
// `count` stripes (piece i is in stripe i mod count) and every peer into one stripe, round-robin as
// it registers. Stripe j travels down its own tree: the seed sends each of its pieces once, to the
// stripe's root; the interior of the tree is made of the peers of stripe j, the others are its
// leaves. So every peer forwards exactly one stripe, to `fanout` children, and its uplink (u) carries
// that stripe (u/count in) to `count` children at u/count each: every uplink is busy, nothing is sent
// twice, and a piece is `⌈log_fanout N⌉` hops from the seed.
//
// The tree is a heap over the list "peers of stripe j, then the others", both in registration
// order: position 0 (the root) hangs off the seed, position m off position ⌊(m − 1)/fanout⌋. With
// about N/count peers per stripe and fanout = count, every parent position is a stripe-j peer.

export interface ForestMember {
  readonly id: string
  readonly stripe: number
}

export class StripeForest {
  /** Per stripe: its members in registration order, then every other member in registration order. */
  private readonly lists: Array<Array<string>>
  /** Per stripe: member id → position in that stripe's list. */
  private readonly positions: Array<Map<string, number>>

  constructor(
    members: ReadonlyArray<ForestMember>,
    readonly count: number,
    readonly fanout: number
  ) {
    this.lists = []
    this.positions = []
    for (let j = 0; j < count; j++) {
      const list = [...members.filter((m) => m.stripe === j), ...members.filter((m) => m.stripe !== j)].map((m) => m.id)
      this.lists.push(list)
      this.positions.push(new Map(list.map((id, i) => [id, i])))
    }
  }

  /**
   * The member `id`'s parent in the tree of `stripe`: another member's id, "seed" for the root, or
   * undefined when `id` is not a member.
   */
  parentOf(id: string, stripe: number): string | undefined {
    const m = this.positions[stripe]?.get(id)
    if (m === undefined) return undefined
    if (m === 0) return "seed"
    return this.lists[stripe][Math.floor((m - 1) / this.fanout)]
  }

  /** How many hops below the seed `id` is in the tree of `stripe` (the root is 1). */
  depthOf(id: string, stripe: number): number | undefined {
    let m = this.positions[stripe]?.get(id)
    if (m === undefined) return undefined
    let depth = 1
    while (m > 0) {
      m = Math.floor((m - 1) / this.fanout)
      depth++
    }
    return depth
  }
}
