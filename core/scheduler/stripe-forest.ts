// Damselfly's overlay: a forest of stripe trees (after SplitStream), laid over the topology and sized
// by bandwidth. The pieces are dealt into `count` stripes (piece i is in stripe i mod count); stripe j
// travels down its own tree. Every member forwards (is interior in) one stripe and is a leaf in the
// others, so each uplink carries one stripe to about `fanout` children and nothing is sent twice.
//
// Topology. Members are grouped by IDC, and inside an IDC by rack (members sharing a `location`).
//  - IDCs form a chain per stripe: the seed feeds its own IDC's tree (the home IDC), whose root feeds
//    the next IDC's root across the WAN, and so on. Each piece of a stripe therefore crosses into each
//    IDC exactly once, and each IDC's WAN uplink carries at most one copy (the chain is rotated per
//    stripe, so with three or more IDCs the forwarding is spread over every IDC's uplink). An IDC where
//    nobody forwards the stripe (fewer members than stripes, or a crowd still registering) is skipped:
//    its members take that stripe's pieces from the parents they have, after the grace. That WAN
//    child is an extra child of an IDC root: a WAN link is far slower than a NIC, so it takes little of
//    the root's uplink, and taking one of its slots instead would deepen the whole IDC tree.
//  - Inside an IDC, each rack has its own subtree: each rack's first forwarder of the stripe (its rack
//    root; racks in the order those registered, so the IDC's root stays put as a crowd registers) form
//    a small tree of their own (the spine) under the IDC's upstream (the seed, or the previous IDC's
//    root), and the other members of a rack hang below its rack root. A rack root that spends its slots
//    on the spine leaves its rack's next member to the first free slot elsewhere; after that every
//    rack fills itself. So a stripe crosses a rack's uplink a couple of times, not once per member.
//
// Bandwidth. A member's children (in the stripe it forwards) are `fanout` × its uplink / the median
// member uplink, at least 1; the seed's, over all stripes, `count` × its uplink / that median. A seed
// ten times as fast as the peers feeds ten roots per stripe, and the trees are that much shallower.
//
// Roles. Each member, as it registers, forwards the stripe with the fewest forwarders in its rack (then
// in its IDC): every rack of `count` members or more forwards every stripe, an IDC's stripes have
// nearly as many forwarders each, and a member keeps its role as others join. Trees are built breadth
// first (a member takes the earliest free slot: its upstream's, then its rack's, then one in the rack
// with the most to spare), forwarders before leaves, so depth stays logarithmic. When every slot is
// taken (too few forwarders of a stripe in an IDC) each attached forwarder gets one more.

export interface ForestMember {
  readonly id: string
  /** The member's IDC ("" when unknown: all such members form one IDC). */
  readonly idc: string
  /** Its rack: members with the same location share one. */
  readonly location: string
  /** Uplink, bytes per second. */
  readonly uploadBandwidth: number
}

/** The seed feeding the forest: its IDC is the home of every stripe, its uplink sets its fan-out. */
export interface ForestSeed {
  readonly idc: string
  readonly uploadBandwidth: number
  /**
   * Roots it feeds per stripe at the median uplink (default 1). A peer standing in for the seed (sent
   * back to source, no seed host) takes a member's fan-out in every stripe: the origin, not its uplink,
   * is what it forwards at.
   */
  readonly childrenPerStripe?: number
}

export const SEED = "seed"

interface Rack {
  readonly members: Array<ForestMember>
  /** Per stripe: how many of its members forward it. */
  readonly forwarders: Array<number>
}

interface Idc {
  readonly name: string
  readonly racks: Array<Rack>
  readonly forwarders: Array<number>
}

export class StripeForest {
  /** Per stripe: member id → parent id (SEED for the members the seed feeds). */
  private readonly parents: Array<Map<string, string>> = []
  /** Per stripe: member id → how many children it feeds in that stripe. */
  private readonly children: Array<Map<string, number>> = []
  /** Member id → the stripe it forwards. */
  private readonly role = new Map<string, number>()
  /** Member id → its place in registration order. */
  private readonly order = new Map<string, number>()
  private readonly idcs: Array<Idc> = []
  private readonly home: number

  constructor(
    members: ReadonlyArray<ForestMember>,
    readonly count: number,
    readonly fanout: number,
    readonly seed?: ForestSeed
  ) {
    // Group by IDC, then rack, in registration order; deal roles as members come.
    const idcIndex = new Map<string, Idc>()
    const rackIndex = new Map<string, Rack>()
    for (const m of members) {
      let idc = idcIndex.get(m.idc)
      if (idc === undefined) {
        idc = { name: m.idc, racks: [], forwarders: new Array(count).fill(0) }
        idcIndex.set(m.idc, idc)
        this.idcs.push(idc)
      }
      const key = `${m.idc}\u0000${m.location}`
      let rack = rackIndex.get(key)
      if (rack === undefined) {
        rack = { members: [], forwarders: new Array(count).fill(0) }
        rackIndex.set(key, rack)
        idc.racks.push(rack)
      }
      // The stripe with the fewest forwarders in the rack, then in the IDC, then the lowest.
      let role = 0
      for (let j = 1; j < count; j++) {
        const d = rack.forwarders[j] - rack.forwarders[role] || idc.forwarders[j] - idc.forwarders[role]
        if (d < 0) role = j
      }
      rack.forwarders[role]++
      idc.forwarders[role]++
      this.role.set(m.id, role)
      this.order.set(m.id, this.order.size)
      rack.members.push(m)
    }
    const home = seed === undefined ? -1 : this.idcs.findIndex((i) => i.name === seed.idc)
    this.home = home < 0 ? 0 : home

    const ups = members.map((m) => m.uploadBandwidth).sort((a, b) => a - b)
    const median = ups.length === 0 ? 1 : Math.max(1, ups[Math.floor(ups.length / 2)])
    const capacity = (m: ForestMember) => Math.max(1, Math.round((fanout * m.uploadBandwidth) / median))
    const seedSlots = seed === undefined
      ? count
      : Math.max(count, Math.round((count * (seed.childrenPerStripe ?? 1) * seed.uploadBandwidth) / median))

    for (let j = 0; j < count; j++) {
      const parents = new Map<string, string>()
      const children = new Map<string, number>()
      this.parents.push(parents)
      this.children.push(children)
      let upstream = { id: SEED, slots: Math.floor(seedSlots / count) + (j < seedSlots % count ? 1 : 0) }
      for (const idc of this.chain(j)) {
        const root = this.buildIdc(idc, j, upstream, capacity, parents, children)
        // The next IDC hangs off this one's root: one WAN crossing per stripe and IDC.
        if (root !== undefined) upstream = { id: root, slots: 1 }
      }
    }
  }

  /** The IDCs in the order stripe j visits them: home first, the others rotated by j. */
  private chain(j: number): Array<Idc> {
    const others = this.idcs.filter((_, i) => i !== this.home)
    const k = others.length === 0 ? 0 : j % others.length
    const home = this.idcs[this.home]
    return [...(home === undefined ? [] : [home]), ...others.slice(k), ...others.slice(0, k)]
  }

  /** Lays out stripe j's tree inside one IDC below `upstream`; returns the IDC's root. */
  private buildIdc(
    idc: Idc,
    j: number,
    upstream: { id: string; slots: number },
    capacity: (m: ForestMember) => number,
    parents: Map<string, string>,
    children: Map<string, number>
  ): string | undefined {
    // No member here forwards stripe j (an IDC of fewer members than stripes, or the first of a crowd to
    // register): the stripe is not fed across the WAN for leaves alone; they take its pieces from the
    // parents they have, after the grace, and the chain goes on to the next IDC.
    if (!idc.racks.some((r) => r.forwarders[j] > 0)) return undefined
    // Per rack: its forwarders of stripe j first, then the others (leaves here), registration order.
    // Racks in the order their first forwarder of j registered (then those without one): the IDC's root
    // is its first forwarder of j, and it stays so as others join, so the WAN edge into the IDC does not
    // move while a crowd registers.
    const lists = idc.racks
      .map((r) => [...r.members.filter((m) => this.role.get(m.id) === j), ...r.members.filter((m) => this.role.get(m.id) !== j)])
      .map((l) => ({ l, first: l.length > 0 && this.role.get(l[0].id) === j ? this.order.get(l[0].id)! : Infinity }))
      .sort((a, b) => a.first - b.first)
      .map((x) => x.l)
    const slots = new Map<string, number>([[upstream.id, upstream.slots]])
    const rackOf = new Map<string, number>()
    // Per rack: slots its forwarders bring, less the in-rack edges it needs; an edge from elsewhere into
    // the rack frees one, a spine or overflow edge out of it uses one. Overflow goes where it is spare.
    const spare = lists.map((l) => l.reduce((n, m) => n + (this.role.get(m.id) === j ? capacity(m) : 0), 0) - (l.length - 1))
    const attached: Array<string> = []
    const spine: Array<string> = [upstream.id]
    const rackOpen: Array<Array<string>> = lists.map(() => [])
    const rackHeads = lists.map(() => 0)
    let spineHead = 0
    const firstOpen = (queue: Array<string>, head: number): [string | undefined, number] => {
      while (head < queue.length && (slots.get(queue[head]) ?? 0) <= 0) head++
      return [queue[head], head]
    }
    const openIn = (r: number): string | undefined => {
      const [p, head] = firstOpen(rackOpen[r], rackHeads[r])
      rackHeads[r] = head
      return p
    }
    /** A free slot outside rack r: in the rack with the most to spare, else anywhere; widening if none. */
    const overflow = (r: number): string => {
      let best: string | undefined
      let most = -Infinity
      for (let s = 0; s < lists.length; s++) {
        if (s === r || spare[s] <= most) continue
        const p = openIn(s)
        if (p !== undefined) {
          best = p
          most = spare[s]
        }
      }
      if (best !== undefined) return best
      // Every slot is taken: each forwarder attached so far (every member, if none) takes one more.
      const forwarders = attached.filter((id) => this.role.get(id) === j)
      for (const id of forwarders.length > 0 ? forwarders : attached) {
        slots.set(id, (slots.get(id) ?? 0) + 1)
        spare[rackOf.get(id)!]++
        rackOpen[rackOf.get(id)!].push(id)
      }
      return openIn(r) ?? overflow(r)
    }
    const attach = (m: ForestMember, parent: string, r: number, rackRoot: boolean) => {
      parents.set(m.id, parent)
      slots.set(parent, slots.get(parent)! - 1)
      children.set(parent, (children.get(parent) ?? 0) + 1)
      const from = rackOf.get(parent)
      if (from !== r) {
        if (from !== undefined) spare[from]--
        if (!rackRoot) spare[r]++
      }
      slots.set(m.id, this.role.get(m.id) === j ? capacity(m) : 0)
      rackOf.set(m.id, r)
      attached.push(m.id)
      rackOpen[r].push(m.id)
    }

    // The spine: the first member of each rack that has a forwarder of this stripe, breadth first below
    // the upstream. A rack without one is filled from the others' spare slots.
    const onSpine = lists.map((l) => l.length > 0 && this.role.get(l[0].id) === j)
    if (!onSpine.includes(true) && lists.length > 0) onSpine[0] = true
    for (let r = 0; r < lists.length; r++) {
      if (!onSpine[r]) continue
      const [parent, head] = firstOpen(spine, spineHead)
      spineHead = head
      attach(lists[r][0], parent ?? overflow(r), r, true)
      spine.push(lists[r][0].id)
    }
    // The rest, one member per rack in turn: the upstream's free slots, then the rack's, then spare ones elsewhere.
    const depth = Math.max(0, ...lists.map((l) => l.length))
    for (let k = 0; k < depth; k++) {
      for (let r = 0; r < lists.length; r++) {
        if (k === 0 && onSpine[r]) continue
        const m = lists[r][k]
        if (m === undefined) continue
        const parent = (slots.get(upstream.id) ?? 0) > 0 ? upstream.id : openIn(r) ?? overflow(r)
        attach(m, parent, r, k === 0)
      }
    }
    const root = attached[0]
    return root
  }

  /**
   * The member `id`'s parent in the tree of `stripe`: another member's id, SEED for one the seed feeds,
   * or undefined when `id` is not a member or no member of its IDC forwards that stripe.
   */
  parentOf(id: string, stripe: number): string | undefined {
    return this.parents[stripe]?.get(id)
  }

  /** How many hops below the seed `id` is in the tree of `stripe` (the seed's children are at 1). */
  depthOf(id: string, stripe: number): number | undefined {
    let at = this.parents[stripe]?.get(id)
    if (at === undefined) return undefined
    let depth = 1
    while (at !== SEED) {
      at = this.parents[stripe].get(at)!
      depth++
    }
    return depth
  }

  /** The stripe `id` forwards (it is a leaf in the others), or undefined when it is not a member. */
  stripeOf(id: string): number | undefined {
    return this.role.get(id)
  }

  /** How many children `id` feeds in the tree of `stripe` (SEED: the seed's). */
  childrenOf(id: string, stripe: number): number {
    return this.children[stripe]?.get(id) ?? 0
  }
}
