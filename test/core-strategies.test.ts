// Damselfly's overlay and what it buys, in virtual time (deterministic, so the figures are exact):
// the stripe forest is a set of trees of bounded fan-out whose interiors are disjoint, and on small
// homogeneous swarms damselfly lands near the discrete-piece optimum with one origin copy.
import fc from "fast-check"
import { describe, expect, it } from "vitest"
import { SEED, StripeForest } from "../core/scheduler/stripe-forest.ts"
import { strategies } from "../core/strategies.ts"
import { runScenario } from "../sim/run.ts"
import { decodeScenario, mbit } from "../sim/scenario.ts"
import { predictOne, swarmScenario, torrentScenario } from "../scenarios/swarm/predict.ts"

// Hosts: `idcs` IDCs of `racks` racks, members dealt round-robin over IDCs then racks (as they register).
const membersOf = (n: number, idcs: number, racks: number, upload = (_: number) => 100) =>
  Array.from({ length: n }, (_, i) => ({
    id: `p${i}`,
    idc: `idc${i % idcs}`,
    location: `x|y|idc${i % idcs}|rack${Math.floor(i / idcs) % racks}`,
    uploadBandwidth: upload(i)
  }))

describe("StripeForest", () => {
  it("per stripe: one tree under the seed, each IDC entered once, few rack crossings, bounded fan-out, logarithmic depth", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 300 }),
        fc.integer({ min: 2, max: 4 }),
        fc.integer({ min: 1, max: 4 }),
        fc.integer({ min: 1, max: 8 }),
        fc.integer({ min: 0, max: 3 }),
        (n, count, idcs, racks, seedIdc) => {
          const members = membersOf(n, idcs, racks)
          const byId = new Map(members.map((m) => [m.id, m]))
          const forest = new StripeForest(members, count, count, { idc: `idc${seedIdc}`, uploadBandwidth: 100 })
          const present = new Set(members.map((m) => m.idc))
          const home = present.has(`idc${seedIdc}`) ? `idc${seedIdc}` : undefined
          for (let j = 0; j < count; j++) {
            const entries = new Map<string, number>()
            const rackCrossings = new Map<string, number>()
            // An IDC where nobody forwards stripe j is not fed it (its members are fewer than the stripes).
            const fed = new Set(members.filter((m) => forest.stripeOf(m.id) === j).map((m) => m.idc))
            for (const m of members) {
              const parent = forest.parentOf(m.id, j)!
              if (!fed.has(m.idc)) {
                expect(parent).toBeUndefined()
                expect(members.filter((x) => x.idc === m.idc).length).toBeLessThan(count)
                continue
              }
              expect(parent).toBeDefined()
              expect(parent).not.toBe(m.id)
              const from = parent === SEED ? undefined : byId.get(parent)!
              if (from === undefined || from.idc !== m.idc) entries.set(m.idc, (entries.get(m.idc) ?? 0) + 1)
              if (from !== undefined && from.idc === m.idc && from.location !== m.location) {
                rackCrossings.set(m.idc, (rackCrossings.get(m.idc) ?? 0) + 1)
              }
              // The seed feeds its own IDC when that is fed this stripe.
              if (parent === SEED && home !== undefined && fed.has(home)) expect(m.idc).toBe(home)
              // No cycle, and depth logarithmic (plus one hop per IDC on the chain).
              const depth = forest.depthOf(m.id, j)!
              expect(depth).toBeLessThanOrEqual(idcs + 3 + 2 * Math.ceil(Math.log2(n + 1)))
              let at = m.id
              for (let hops = 0; at !== SEED; hops++) {
                expect(hops).toBeLessThan(depth)
                at = forest.parentOf(at, j)!
              }
            }
            // Each IDC is entered once per stripe: by the seed's feed (at most its slots) or one WAN edge.
            for (const idc of present) {
              if (idc === home || (entries.get(idc) ?? 0) > 1) expect(entries.get(idc) ?? 0).toBeLessThanOrEqual(forest.childrenOf(SEED, j))
              else expect(entries.get(idc) ?? 0, idc).toBe(fed.has(idc) ? 1 : 0)
            }
            // A rack is entered by its spine edge and a few overflow edges, not once per member.
            for (const idc of present) expect(rackCrossings.get(idc) ?? 0).toBeLessThanOrEqual(3 * racks)
            // Fan-out: slots (fanout at equal uplinks), plus a WAN child, plus one when slots ran out.
            for (const m of members) expect(forest.childrenOf(m.id, j)).toBeLessThanOrEqual(count + 2)
          }
          expect(forest.parentOf("stranger", 0)).toBeUndefined()
        }
      ),
      { seed: 42, numRuns: 300, verbose: 1 }
    )
  }, 60_000)

  it("three IDCs, seed in the second: the stripes' chains run b→a→c and b→c→a, one root each", () => {
    // Two racks per IDC, 4 members each; registration order a, b, c, a, b, c, ...
    const members = membersOf(12, 3, 2)
    const forest = new StripeForest(members, 2, 2, { idc: "idc1", uploadBandwidth: 100 })
    const idcOf = (id: string) => members.find((m) => m.id === id)!.idc
    const entry = (idc: string, j: number) => members.filter((m) => m.idc === idc && idcOf(forest.parentOf(m.id, j) === SEED ? "p1" : forest.parentOf(m.id, j)!) !== idc)
    // Home: only the seed feeds it, one root per stripe (the seed is as fast as a member: one slot per stripe).
    expect(forest.childrenOf(SEED, 0)).toBe(1)
    expect(forest.childrenOf(SEED, 1)).toBe(1)
    for (const j of [0, 1]) {
      const roots = members.filter((m) => forest.parentOf(m.id, j) === SEED)
      expect(roots.map((m) => m.idc)).toEqual(["idc1"])
    }
    // Stripe 0: idc0's entry hangs off idc1's root, idc2's off idc0's; stripe 1 the other way round.
    const rootOf = (idc: string, j: number) => entry(idc, j)[0]?.id ?? members.find((m) => m.idc === idc && forest.parentOf(m.id, j) === SEED)!.id
    expect(idcOf(forest.parentOf(rootOf("idc0", 0), 0)!)).toBe("idc1")
    expect(idcOf(forest.parentOf(rootOf("idc2", 0), 0)!)).toBe("idc0")
    expect(idcOf(forest.parentOf(rootOf("idc2", 1), 1)!)).toBe("idc1")
    expect(idcOf(forest.parentOf(rootOf("idc0", 1), 1)!)).toBe("idc2")
    // Each member forwards one stripe; roles alternate within a rack.
    expect(members.filter((m) => m.idc === "idc0").map((m) => forest.stripeOf(m.id))).toEqual([0, 1, 1, 0])
  })

  it("bandwidth-aware: a seed ten times as fast as the members feeds ten roots per stripe; a fast member gets more children", () => {
    const members = membersOf(200, 1, 10, (i) => (i === 0 ? 400 : 100))
    const forest = new StripeForest(members, 2, 2, { idc: "idc0", uploadBandwidth: 1000 })
    expect(forest.childrenOf(SEED, 0)).toBe(10)
    expect(forest.childrenOf(SEED, 1)).toBe(10)
    // p0 forwards stripe 0 at 4× the median uplink: 8 children.
    expect(forest.stripeOf("p0")).toBe(0)
    expect(forest.childrenOf("p0", 0)).toBe(8)
    // 200 members under 10 roots: 1 + ⌈log2 20⌉ hops or so, not log2 200.
    const depths = members.map((m) => forest.depthOf(m.id, 0)!)
    expect(Math.max(...depths)).toBeLessThanOrEqual(6)
  })

  it("a peer standing in for the seed (childrenPerStripe) feeds a member's fan-out of roots in every stripe", () => {
    const members = membersOf(20, 1, 10, () => 100)
    const forest = new StripeForest(members, 2, 2, { idc: "idc0", uploadBandwidth: 100, childrenPerStripe: 2 })
    expect([forest.childrenOf(SEED, 0), forest.childrenOf(SEED, 1)]).toEqual([2, 2])
    // A seed host at the median uplink: one root per stripe.
    const seeded = new StripeForest(members, 2, 2, { idc: "idc0", uploadBandwidth: 100 })
    expect([seeded.childrenOf(SEED, 0), seeded.childrenOf(SEED, 1)]).toEqual([1, 1])
  })
})

describe("damselfly in the simulator", () => {
  it("a homogeneous flash crowd (40 peers, 128 MiB, 86 pieces of damselfly's 1.5 MiB) ends within 1.25× the discrete-piece optimum, one origin copy", () => {
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
    expect(r.pieceCount).toBe(86)
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

  it("each strategy's run cuts the content by its own rule unless the scenario names its length (file.pieceLengths, then file.pieceLength)", () => {
    const base = swarmScenario({ hosts: 4, rateMbit: 100, originMbit: 100, sizeBytes: 16 * 2 ** 20, uploadSlots: 4 })
    const run = (scenario: typeof base, strategy: "damselfly" | "dragonfly" | "bittorrent") => runScenario(scenario, { seed: 1, strategy })
    expect(run(base, "damselfly").pieceLength).toBe(1.5 * 2 ** 20)
    expect(run(base, "dragonfly").pieceLength).toBe(4 * 2 ** 20)
    expect(run(base, "bittorrent").pieceLength).toBe(2 ** 20)
    const fixed = { ...base, file: { ...base.file, pieceLength: 2 * 2 ** 20 } }
    expect(run(fixed, "dragonfly").pieceLength).toBe(2 * 2 ** 20)
    expect(run(fixed, "bittorrent").pieceLength).toBe(2 ** 20)
    expect(() => decodeScenario({ ...base, file: { ...base.file, pieceLengths: { bittorrent: 0 } } }, "test")).toThrow(/pieceLengths/)
  }, 60_000)

  it("the swarm's bittorrent prediction: the origin host seeds the torrent in 1 MiB pieces, peers trade among themselves", () => {
    const c = { hosts: 16, rateMbit: 100, originMbit: 100, sizeBytes: 128 * 2 ** 20, uploadSlots: 16 }
    const r = runScenario(torrentScenario(c), { seed: 1, strategy: "bittorrent" })
    expect(r.verified).toBe(true)
    expect(r.pieceCount).toBe(128)
    for (const seed of [1, 2, 3]) {
      const bt = predictOne(c, "bittorrent", seed)
      expect(bt.finished, `seed ${seed}`).toBe(16)
      // The seed sends more than one copy (4 uploads at once, each the rarest piece it holds when the
      // slot is granted) but far less than one per host: the rest comes from the peers. Picking when the
      // request was queued instead sent the seed's last pieces to every peer in turn (3.9× the bound).
      expect(bt.originCopies, `seed ${seed}`).toBeGreaterThan(1)
      expect(bt.originCopies, `seed ${seed}`).toBeLessThan(2.5)
      expect(bt.max / bt.boundSeconds, `seed ${seed}`).toBeLessThan(2.5)
    }
  }, 120_000)

  it("only damselfly uses a stripe overlay; the other strategies' handouts and peer options are untouched by it", () => {
    for (const s of Object.values(strategies)) {
      expect(s.handout.stripes !== undefined, s.name).toBe(s.name === "damselfly")
      if (s.name !== "damselfly") expect(s.peerOptions.originPieces, s.name).toBeUndefined()
    }
  })
})
