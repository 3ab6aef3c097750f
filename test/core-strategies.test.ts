// Damselfly's overlay and what it buys, in virtual time (deterministic, so the figures are exact):
// the stripe forest is a set of trees of bounded fan-out whose interiors are disjoint, and on small
// homogeneous swarms damselfly lands near the discrete-piece optimum with one origin copy.
import fc from "fast-check"
import { describe, expect, it } from "vitest"
import { StripeForest } from "../core/scheduler/stripe-forest.ts"
import { strategies } from "../core/strategies.ts"
import { runScenario } from "../sim/run.ts"
import { decodeScenario, mbit } from "../sim/scenario.ts"
import { swarmScenario } from "../scenarios/swarm/predict.ts"

describe("StripeForest", () => {
  it("per stripe: a tree under the seed, fan-out at most `fanout`, forwarders from that stripe (but one), depth logarithmic", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 300 }), fc.integer({ min: 2, max: 5 }), (n, count) => {
        // Round-robin dealing, as the scheduler does.
        const members = Array.from({ length: n }, (_, i) => ({ id: `p${i}`, stripe: i % count }))
        const forest = new StripeForest(members, count, count)
        for (let j = 0; j < count; j++) {
          const children = new Map<string, number>()
          let roots = 0
          for (const m of members) {
            const parent = forest.parentOf(m.id, j)!
            expect(parent).toBeDefined()
            if (parent === "seed") roots++
            else {
              expect(parent).not.toBe(m.id)
              children.set(parent, (children.get(parent) ?? 0) + 1)
            }
            // Following parents reaches the seed (no cycle) within a logarithmic number of hops.
            const depth = forest.depthOf(m.id, j)!
            expect(depth).toBeLessThanOrEqual(2 + Math.ceil(Math.log(n) / Math.log(Math.max(2, count))))
            let at = m.id
            for (let hops = 0; at !== "seed"; hops++) {
              expect(hops).toBeLessThan(depth)
              at = forest.parentOf(at, j)!
            }
          }
          expect(roots).toBe(1)
          let outsiders = 0
          for (const [parent, k] of children) {
            expect(k).toBeLessThanOrEqual(count)
            if (members.find((m) => m.id === parent)!.stripe !== j) outsiders++
          }
          // Forwarders belong to the stripe they forward; when n is not a multiple of the count, one
          // peer of another stripe may have to help.
          expect(outsiders).toBeLessThanOrEqual(1)
        }
        expect(forest.parentOf("stranger", 0)).toBeUndefined()
      }),
      { seed: 42, numRuns: 200, verbose: 1 }
    )
  }, 60_000)
})

describe("damselfly in the simulator", () => {
  it("a homogeneous flash crowd (40 peers, 128 MiB, 32 pieces) ends within 1.25× the discrete-piece optimum, one origin copy", () => {
    const scenario = decodeScenario({
      name: "homogeneous-40",
      file: { url: "https://origin.example/h40.bin", sizeBytes: 128 * 2 ** 20 },
      idcs: [{ name: "dc", location: "us|east|dc", peers: 40, seeds: 1, racks: 4 }],
      peer: { uploadBytesPerSecond: mbit(1000), downloadBytesPerSecond: mbit(1000), uploadSlots: 16 },
      seed: { uploadBytesPerSecond: mbit(1000), downloadBytesPerSecond: mbit(1000), uploadSlots: 16 },
      origin: { idc: "dc", uploadBytesPerSecond: mbit(1000) },
      latency: { intraIdcRttMs: 0.2, interIdcRttMs: 0.2 },
      strategies: ["damselfly"]
    }, "test")
    const r = runScenario(scenario, { seed: 1, strategy: "damselfly" })
    expect(r.verified).toBe(true)
    expect(r.finishedPeers).toBe(40)
    expect(r.discreteOptimumSeconds).not.toBeNull()
    expect(r.completionSeconds.max / r.discreteOptimumSeconds!).toBeLessThanOrEqual(1.25)
    expect(r.originEgressCopies).toBeLessThanOrEqual(1.01)
  }, 120_000)

  it("the 16-host swarm configuration: within 1.35× the Kumar–Ross bound, faster than bittorrent and dragonfly", () => {
    const scenario = swarmScenario({ hosts: 16, rateMbit: 100, originMbit: 100, sizeBytes: 128 * 2 ** 20, uploadSlots: 4 })
    const d = runScenario(scenario, { seed: 1, strategy: "damselfly" })
    const bt = runScenario(scenario, { seed: 1, strategy: "bittorrent" })
    const df = runScenario(scenario, { seed: 1, strategy: "dragonfly" })
    expect(d.verified).toBe(true)
    expect(d.maxOverBound).toBeLessThanOrEqual(1.35)
    expect(d.originEgressCopies).toBeLessThanOrEqual(1.05)
    expect(d.completionSeconds.max).toBeLessThan(bt.completionSeconds.max)
    expect(d.completionSeconds.max).toBeLessThan(df.completionSeconds.max)
  }, 120_000)

  it("only damselfly uses a stripe overlay; the other strategies' handouts and peer options are untouched by it", () => {
    for (const s of Object.values(strategies)) {
      expect(s.handout.stripes !== undefined, s.name).toBe(s.name === "damselfly")
      if (s.name !== "damselfly") expect(s.peerOptions.originPieces, s.name).toBeUndefined()
    }
  })
})
