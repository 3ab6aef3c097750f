// Max-min sharing, re-solved locally. When a flow starts or ends on (src uplink, dst downlink), the
// flows on those two links are re-solved with progressive filling, against what the other flows on
// their far links leave free (those keep their rates). One hop of propagation: the cost of an event
// grows with the flows it touches, not with every flow in the swarm, and capacity freed by a change
// is handed to the flows that can use it. Feasible by construction (no link is ever over capacity).
import { maxMinRates } from "./maxmin.ts"
import type { Flow, RateModel } from "./network.ts"

export const localMaxMin = (): RateModel => {
  let solved = new Map<Flow, number>()

  const solve = (flows: Array<Flow>): void => {
    const inSet = new Set(flows)
    const index = new Map<unknown, number>()
    const capacity: Array<number> = []
    // A link's capacity for this solve: what the flows outside the set (which keep their rates) leave.
    const link = (key: unknown, cap: number, members: Iterable<Flow>): number => {
      let i = index.get(key)
      if (i === undefined) {
        let used = 0
        for (const f of members) if (!inSet.has(f)) used += f.rate
        i = capacity.length
        capacity.push(Math.max(0, cap - used))
        index.set(key, i)
      }
      return i
    }
    const paths = flows.map((f) => {
      const path = [link(f.src.upFlows, f.src.up, f.src.upFlows), link(f.dst.downFlows, f.dst.down, f.dst.downFlows)]
      for (const l of f.via) path.push(link(l, l.capacity, l.flows))
      return path
    })
    const rates = maxMinRates({ capacity, paths })
    solved = new Map()
    flows.forEach((f, i) => solved.set(f, rates[i]))
  }

  // The network asks for the affected flows twice per change: to settle them (before) and to re-rate
  // them (after). Solving lazily, on the first `rate` after an `affected`, solves once per change.
  let pending: Array<Flow> | undefined
  return {
    affected(src, dst, via) {
      const set = new Set<Flow>(src.upFlows)
      for (const f of dst.downFlows) set.add(f)
      for (const l of via) for (const f of l.flows) set.add(f)
      pending = [...set]
      return pending
    },
    rate: (f) => {
      if (pending !== undefined) {
        solve(pending)
        pending = undefined
      }
      // A flow outside the last solved set keeps the rate it has.
      return solved.get(f) ?? f.rate
    }
  }
}
