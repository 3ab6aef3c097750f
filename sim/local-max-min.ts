// Max-min sharing, re-solved locally. When a flow starts or ends on (src uplink, dst downlink), the
// flows on those two links are re-solved with progressive filling, against what the other flows on
// their far links leave free (those keep their rates). One hop of propagation: the cost of an event
// grows with the flows it touches, not with every flow in the swarm, and capacity freed by a change
// is handed to the flows that can use it. Feasible by construction (no link is ever over capacity).
import { maxMinRates } from "./maxmin.ts"
import type { Flow, NetHost, RateModel } from "./network.ts"

type LinkKey = NetHost // a host's uplink and downlink are told apart by the side they are used on

export const localMaxMin = (): RateModel => {
  let solved = new Map<Flow, number>()

  const solve = (flows: Array<Flow>): void => {
    const inSet = new Set(flows)
    const upIndex = new Map<LinkKey, number>()
    const downIndex = new Map<LinkKey, number>()
    const capacity: Array<number> = []
    const link = (h: NetHost, side: "up" | "down"): number => {
      const index = side === "up" ? upIndex : downIndex
      let i = index.get(h)
      if (i === undefined) {
        // What the flows outside the set already use on this link stays theirs.
        let used = 0
        for (const f of side === "up" ? h.upFlows : h.downFlows) if (!inSet.has(f)) used += f.rate
        i = capacity.length
        capacity.push(Math.max(0, (side === "up" ? h.up : h.down) - used))
        index.set(h, i)
      }
      return i
    }
    const paths = flows.map((f) => [link(f.src, "up"), link(f.dst, "down")])
    const rates = maxMinRates({ capacity, paths })
    solved = new Map()
    flows.forEach((f, i) => solved.set(f, rates[i]))
  }

  return {
    affected(src, dst) {
      const flows: Array<Flow> = [...src.upFlows]
      for (const f of dst.downFlows) if (f.src !== src) flows.push(f)
      solve(flows)
      return flows
    },
    // A flow outside the last solved set keeps the rate it has.
    rate: (f) => solved.get(f) ?? f.rate
  }
}
