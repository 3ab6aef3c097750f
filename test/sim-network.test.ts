import { Effect } from "effect"
import fc from "fast-check"
import { describe, expect, it } from "vitest"
import { SimEngine } from "../sim/engine.ts"
import { equalShare, Network, type RateModel } from "../sim/network.ts"

const check = <T>(prop: fc.IProperty<T>, numRuns = 100) => {
  const out = fc.check(prop, { seed: 42, numRuns })
  if (out.failed) console.error(`fast-check failed: seed ${out.seed}, path ${out.counterexamplePath}, counterexample ${fc.stringify(out.counterexample)}`)
  fc.assert(prop, { seed: 42, numRuns })
}

const setup = () => {
  const engine = new SimEngine(1)
  const network = new Network(engine, () => 0)
  return { engine, network }
}

describe("Network", () => {
  it("gives a lone flow min(uplink, downlink)", () => {
    const { engine, network } = setup()
    const a = network.addHost("a", 1000, 5000)
    const b = network.addHost("b", 5000, 250)
    let doneAt = -1
    network.startFlow(a, b, 1000, () => (doneAt = engine.now))
    // Rates are decided once the instant's changes are all in.
    expect([...a.upFlows][0].rate).toBe(0)
    engine.run({ untilMillis: 0 })
    expect([...a.upFlows][0].rate).toBe(250)
    engine.run()
    expect(doneAt).toBeCloseTo(4000, 6)
    expect(a.bytesSent).toBe(1000)
    expect(b.bytesReceived).toBe(1000)
  })

  it("splits an uplink evenly between two flows", () => {
    const { engine, network } = setup()
    const src = network.addHost("src", 1000, 1000)
    const b = network.addHost("b", 1000, 1000)
    const c = network.addHost("c", 1000, 1000)
    const done: Array<[string, number]> = []
    network.startFlow(src, b, 1000, () => done.push(["b", engine.now]))
    network.startFlow(src, c, 1000, () => done.push(["c", engine.now]))
    engine.run({ untilMillis: 0 })
    expect([...src.upFlows].map((f) => f.rate)).toEqual([500, 500])
    engine.run()
    expect(done.map(([n]) => n).sort()).toEqual(["b", "c"])
    for (const [, t] of done) expect(t).toBeCloseTo(2000, 6)
  })

  it("speeds a flow up when its neighbour ends", () => {
    const { engine, network } = setup()
    const src = network.addHost("src", 1000, 1000)
    const b = network.addHost("b", 1000, 1000)
    const c = network.addHost("c", 1000, 1000)
    let longDone = -1
    network.startFlow(src, b, 500, () => {})
    network.startFlow(src, c, 1500, () => (longDone = engine.now))
    engine.run()
    // 1000 ms at 500 B/s each, then the remaining 1000 bytes alone at 1000 B/s.
    expect(longDone).toBeCloseTo(2000, 6)
  })

  it("re-rates once per instant: a flow that ends and the one that takes its place are one solve", () => {
    const engine = new SimEngine(1)
    const solvesAt: Array<number> = []
    const counting: RateModel = { rates: (flows, solve, rates) => (solvesAt.push(engine.now), equalShare.rates(flows, solve, rates)) }
    const network = new Network(engine, () => 0, counting)
    const src = network.addHost("src", 1000, 1000)
    const b = network.addHost("b", 1000, 1000)
    const c = network.addHost("c", 1000, 1000)
    let secondDone = -1
    // As an upload slot is handed on: the next flow starts inside the first one's completion.
    network.startFlow(src, b, 1000, () => void network.startFlow(src, c, 500, () => (secondDone = engine.now)))
    engine.run()
    expect(secondDone).toBeCloseTo(1500, 6)
    // At 0 (start), at 1000 (one end + one start), at 1500 (the last end leaves nothing to rate).
    expect(solvesAt).toEqual([0, 1000])
  })

  it("charges one round trip before the bytes of a transfer", () => {
    const engine = new SimEngine(1)
    const network = new Network(engine, () => 5)
    const a = network.addHost("a", 1000, 1000)
    const b = network.addHost("b", 1000, 1000)
    let at = -1
    engine.fork(Effect.andThen(network.transfer(a, b, 1000), Effect.sync(() => (at = engine.now))))
    engine.run()
    expect(at).toBeCloseTo(1010, 6)
  })

  it("never runs a link over capacity, and delivers every byte", () => {
    const flowArb = fc.record({
      src: fc.nat({ max: 5 }),
      dst: fc.nat({ max: 5 }),
      bytes: fc.integer({ min: 1, max: 100_000 }),
      at: fc.integer({ min: 0, max: 200 })
    })
    const hostArb = fc.record({ up: fc.integer({ min: 100, max: 100_000 }), down: fc.integer({ min: 100, max: 100_000 }) })
    check(fc.property(fc.array(hostArb, { minLength: 6, maxLength: 6 }), fc.array(flowArb, { minLength: 1, maxLength: 40 }), (hosts, flows) => {
      const { engine, network } = setup()
      const nodes = hosts.map((h, i) => network.addHost(`h${i}`, h.up, h.down))
      let completed = 0
      let expectedBytes = 0
      for (const f of flows) {
        if (f.src === f.dst) continue
        expectedBytes += f.bytes
        engine.at(f.at, () => network.startFlow(nodes[f.src], nodes[f.dst], f.bytes, () => completed++))
      }
      let violation: string | undefined
      engine.run({
        stopWhen: () => {
          for (const { host, up, down } of network.linkLoads()) {
            if (up > host.up * (1 + 1e-9) || down > host.down * (1 + 1e-9)) {
              violation = `${host.name} at ${engine.now}: up ${up}/${host.up} down ${down}/${host.down}`
            }
          }
          return violation !== undefined
        }
      })
      expect(violation).toBeUndefined()
      expect(completed).toBe(flows.filter((f) => f.src !== f.dst).length)
      expect(nodes.reduce((n, h) => n + h.bytesSent, 0)).toBe(expectedBytes)
      expect(nodes.reduce((n, h) => n + h.bytesReceived, 0)).toBe(expectedBytes)
    }), 100)
  })
})
