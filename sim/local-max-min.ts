// Max-min sharing, re-solved locally. When flows start or end on some links (source uplinks,
// destination downlinks, shared links), the flows on those links are re-solved with progressive
// filling, against what the other flows on their far links leave free (those keep their rates). One
// hop of propagation: the cost of a re-solve grows with the flows it touches, not with every flow in
// the swarm, and capacity freed by a change is handed to the flows that can use it. Feasible by
// construction (no link is ever over capacity). No allocation per solve: links are numbered through
// the hosts' and links' scratch fields, and the solver keeps its arrays.
import { MaxMinSolver } from "./maxmin.ts"
import type { Flow, FlowList, Link, NetHost, RateModel } from "./network.ts"

export const localMaxMin = (): RateModel => {
  const solver = new MaxMinSolver()

  /** What the flows outside this solve (which keep their rates) leave of a host's link. */
  const free = (capacity: number, members: FlowList, solve: number): number => {
    let used = 0
    for (let f = members.first; f !== undefined; f = members.next(f)) if (f.mark !== solve) used += f.rate
    return Math.max(0, capacity - used)
  }
  /** `free` for a shared link. */
  const freeOfLink = (capacity: number, members: Set<Flow>, solve: number): number => {
    let used = 0
    for (const f of members) if (f.mark !== solve) used += f.rate
    return Math.max(0, capacity - used)
  }
  const up = (h: NetHost, solve: number): number => {
    if (h.upMark !== solve) {
      h.upMark = solve
      h.upSlot = solver.addLink(free(h.up, h.upFlows, solve))
    }
    return h.upSlot
  }
  const down = (h: NetHost, solve: number): number => {
    if (h.downMark !== solve) {
      h.downMark = solve
      h.downSlot = solver.addLink(free(h.down, h.downFlows, solve))
    }
    return h.downSlot
  }
  const shared = (l: Link, solve: number): number => {
    if (l.mark !== solve) {
      l.mark = solve
      l.slot = solver.addLink(freeOfLink(l.capacity, l.flows, solve))
    }
    return l.slot
  }

  return {
    rates(flows, solve, rates) {
      solver.reset()
      for (const f of flows) {
        solver.beginFlow()
        solver.addHop(up(f.src, solve))
        solver.addHop(down(f.dst, solve))
        for (const l of f.via) solver.addHop(shared(l, solve))
      }
      rates.set(solver.solve())
    }
  }
}
