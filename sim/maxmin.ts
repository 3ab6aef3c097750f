// Max-min fair rates by progressive filling: every flow's rate rises together until some link is
// full; the flows through that link are frozen at its fair share; the rest keep rising. This is what
// long-lived TCP flows converge to, to first order. Exact, O((F·P + L) log L) with a heap of links
// keyed by their current fair share (F flows, P links per flow, L links).

export interface MaxMinProblem {
  /** Capacity of each link, bytes/s. */
  readonly capacity: ArrayLike<number>
  /** The links each flow crosses (indices into `capacity`). */
  readonly paths: ReadonlyArray<ArrayLike<number>>
}

/** Rates (bytes/s) per flow, in the order of `paths`. */
export const maxMinRates = ({ capacity, paths }: MaxMinProblem): Float64Array => {
  const L = capacity.length
  const F = paths.length
  const rates = new Float64Array(F)
  const remaining = Float64Array.from(capacity)
  const active = new Int32Array(L)
  const flowsOn: Array<Array<number>> = Array.from({ length: L }, () => [])
  for (let f = 0; f < F; f++) {
    const p = paths[f]
    for (let i = 0; i < p.length; i++) {
      active[p[i]]++
      flowsOn[p[i]].push(f)
    }
  }
  const frozen = new Uint8Array(F)
  // Min-heap of links by fair share; stale entries are skipped by comparing with the live share.
  const heap = new LinkHeap()
  const share = (l: number) => remaining[l] / active[l]
  for (let l = 0; l < L; l++) if (active[l] > 0) heap.push(l, share(l))
  while (heap.size > 0) {
    const [l, s] = heap.pop()
    if (active[l] === 0 || s !== share(l)) continue
    // Every still-rising flow through l is bottlenecked here at rate s.
    for (const f of flowsOn[l]) {
      if (frozen[f] === 1) continue
      frozen[f] = 1
      rates[f] = s
      const p = paths[f]
      for (let i = 0; i < p.length; i++) {
        const m = p[i]
        remaining[m] = Math.max(0, remaining[m] - s)
        active[m]--
        if (m !== l && active[m] > 0) heap.push(m, share(m))
      }
    }
  }
  return rates
}

class LinkHeap {
  private keys: Array<number> = []
  private links: Array<number> = []

  get size(): number {
    return this.keys.length
  }

  push(link: number, key: number): void {
    const keys = this.keys
    const links = this.links
    let i = keys.length
    keys.push(key)
    links.push(link)
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

  pop(): [number, number] {
    const keys = this.keys
    const links = this.links
    const top: [number, number] = [links[0], keys[0]]
    const lastKey = keys.pop()!
    const lastLink = links.pop()!
    const n = keys.length
    if (n > 0) {
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
    return top
  }
}
