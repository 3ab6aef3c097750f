// Max-min fair rates by progressive filling: every flow's rate rises together until some link is
// full; the flows through that link are frozen at its fair share; the rest keep rising. This is what
// long-lived TCP flows converge to, to first order. Exact, O((F·P + L) log L) with a heap of links
// keyed by their current fair share (F flows, P links per flow, L links).
//
// `MaxMinSolver` keeps its arrays between solves (the network re-solves on every flow start and end):
// a problem is written into it in place and solved without allocating.

export interface MaxMinProblem {
  /** Capacity of each link, bytes/s. */
  readonly capacity: ArrayLike<number>
  /** The links each flow crosses (indices into `capacity`). */
  readonly paths: ReadonlyArray<ArrayLike<number>>
}

/** Rates (bytes/s) per flow, in the order of `paths`. */
export const maxMinRates = ({ capacity, paths }: MaxMinProblem): Float64Array => {
  const solver = new MaxMinSolver()
  for (let l = 0; l < capacity.length; l++) solver.addLink(capacity[l])
  for (const p of paths) {
    solver.beginFlow()
    for (let i = 0; i < p.length; i++) solver.addHop(p[i])
  }
  return solver.solve().slice()
}

/** A reusable max-min problem: links, then flows (each a path of link indices), then `solve`. */
export class MaxMinSolver {
  private links = 0
  private flows = 0
  private hops = 0
  private remaining = new Float64Array(64)
  private active = new Int32Array(64)
  private onStart = new Int32Array(65)
  private onFill = new Int32Array(64)
  private onFlows = new Int32Array(256)
  private pathStart = new Int32Array(65)
  private pathLinks = new Int32Array(256)
  private frozen = new Uint8Array(64)
  private rates = new Float64Array(64)
  private heapKey = new Float64Array(64)
  private heapLink = new Int32Array(64)
  private heapSize = 0

  /** Starts a new problem. */
  reset(): void {
    this.links = 0
    this.flows = 0
    this.hops = 0
  }

  get linkCount(): number {
    return this.links
  }

  /** Adds a link; returns its index. */
  addLink(capacity: number): number {
    if (this.links === this.remaining.length) {
      this.remaining = grow(this.remaining)
      this.active = grow(this.active)
      this.onFill = grow(this.onFill)
      this.onStart = grow(this.onStart)
    }
    this.remaining[this.links] = capacity
    return this.links++
  }

  beginFlow(): void {
    if (this.flows + 1 >= this.pathStart.length) this.pathStart = grow(this.pathStart)
    this.pathStart[this.flows++] = this.hops
  }

  /** Adds a link to the current flow's path. */
  addHop(link: number): void {
    if (this.hops === this.pathLinks.length) this.pathLinks = grow(this.pathLinks)
    this.pathLinks[this.hops++] = link
  }

  /** Rates per flow in the order added; valid until the next problem. */
  solve(): Float64Array {
    const L = this.links
    const F = this.flows
    const H = this.hops
    this.pathStart[F] = H
    if (this.rates.length < F) {
      this.rates = new Float64Array(Math.max(F, this.rates.length * 2))
      this.frozen = new Uint8Array(this.rates.length)
    }
    if (this.onFlows.length < H) this.onFlows = new Int32Array(Math.max(H, this.onFlows.length * 2))
    const { remaining, active, onStart, onFill, onFlows, pathStart, pathLinks, frozen, rates } = this
    // Flows per link (CSR): count, prefix sums, fill.
    active.fill(0, 0, L)
    for (let h = 0; h < H; h++) active[pathLinks[h]]++
    onStart[0] = 0
    for (let l = 0; l < L; l++) {
      onStart[l + 1] = onStart[l] + active[l]
      onFill[l] = onStart[l]
    }
    for (let f = 0; f < F; f++) {
      frozen[f] = 0
      rates[f] = 0
      for (let h = pathStart[f]; h < pathStart[f + 1]; h++) onFlows[onFill[pathLinks[h]]++] = f
    }
    // Min-heap of links by fair share; stale entries are skipped by comparing with the live share.
    this.heapSize = 0
    for (let l = 0; l < L; l++) if (active[l] > 0) this.push(l, remaining[l] / active[l])
    while (this.heapSize > 0) {
      const l = this.heapLink[0]
      const s = this.heapKey[0]
      this.pop()
      if (active[l] === 0 || s !== remaining[l] / active[l]) continue
      // Every still-rising flow through l is bottlenecked here at rate s.
      for (let k = onStart[l]; k < onStart[l + 1]; k++) {
        const f = onFlows[k]
        if (frozen[f] === 1) continue
        frozen[f] = 1
        rates[f] = s
        for (let h = pathStart[f]; h < pathStart[f + 1]; h++) {
          const m = pathLinks[h]
          remaining[m] = Math.max(0, remaining[m] - s)
          active[m]--
          if (m !== l && active[m] > 0) this.push(m, remaining[m] / active[m])
        }
      }
    }
    return rates.subarray(0, F)
  }

  private push(link: number, key: number): void {
    if (this.heapSize === this.heapKey.length) {
      this.heapKey = grow(this.heapKey)
      this.heapLink = grow(this.heapLink)
    }
    const keys = this.heapKey
    const links = this.heapLink
    let i = this.heapSize++
    while (i > 0) {
      const parent = (i - 1) >> 1
      if (keys[parent] < key || (keys[parent] === key && links[parent] <= link)) break
      keys[i] = keys[parent]
      links[i] = links[parent]
      i = parent
    }
    keys[i] = key
    links[i] = link
  }

  private pop(): void {
    const keys = this.heapKey
    const links = this.heapLink
    const n = --this.heapSize
    if (n === 0) return
    const lastKey = keys[n]
    const lastLink = links[n]
    let i = 0
    while (true) {
      const a = 2 * i + 1
      if (a >= n) break
      const b = a + 1
      const c = b < n && (keys[b] < keys[a] || (keys[b] === keys[a] && links[b] < links[a])) ? b : a
      if (keys[c] > lastKey || (keys[c] === lastKey && links[c] >= lastLink)) break
      keys[i] = keys[c]
      links[i] = links[c]
      i = c
    }
    keys[i] = lastKey
    links[i] = lastLink
  }
}

const grow = <A extends Int32Array | Float64Array>(a: A): A => {
  const b = new (a.constructor as new (n: number) => A)(a.length * 2)
  b.set(a)
  return b
}
