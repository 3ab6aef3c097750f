// Chaos (VOPR) over the simulator: 100 seeds of random deployments and fault plans under the safety
// checkers, liveness after healing and replay determinism; and proof that the checkers see what they
// must (a corrupting peer is caught by the core; a bad write would be caught by the checker).
import { Effect } from "effect"
import { describe, expect, it } from "vitest"
import { flashCrowd } from "../scenarios/presets.ts"
import type { Scheduler } from "../core/scheduler/scheduler.ts"
import { pieceLengthFor } from "../core/piece-layout.ts"
import { Checkers } from "../sim/checkers.ts"
import { deriveCase, runCase, runSeed } from "../sim/chaos.ts"
import { decodeScenario, MiB, scenarioPieceLength } from "../sim/scenario.ts"
import { World } from "../sim/world.ts"

/**
 */

describe("chaos", () => {
  it("100 seeds: no safety violation, live peers finish after faults heal, replays have the same trace hash", () => {
    const started = performance.now()
    const failures: Array<string> = []
    for (let seed = 1; seed <= 100; seed++) {
      const r = runSeed(seed)
      expect(r.replayHash, `seed ${seed}: determinism`).toBe(r.run.traceHash)
      const safety = r.violations.filter((v) => v.invariant !== "liveness")
      const liveness = r.violations.filter((v) => v.invariant === "liveness")
      if (liveness.length > 0) failures.push(...liveness.map((v) => `seed ${seed}: ${v.detail} (damselfly chaos --seed ${seed})`))
      failures.push(...safety.map((v) => `seed ${seed}: ${v.invariant}: ${v.detail} (damselfly chaos --seed ${seed})`))
    }
    const seconds = (performance.now() - started) / 1000
    console.log(`chaos: 100 seeds (each twice) in ${seconds.toFixed(1)}s`)
    expect(failures).toEqual([])
  }, 300_000)

  it("derives the same case from the same seed, and different ones from different seeds", () => {
    expect(JSON.stringify(deriveCase(7))).toBe(JSON.stringify(deriveCase(7)))
    expect(JSON.stringify(deriveCase(7))).not.toBe(JSON.stringify(deriveCase(8)))
  })

  it("a corrupting peer is caught: no bad piece is stored, and it is reported (PieceFailed) and blocklisted", () => {
    const corrupt = "peer-idcA-0000"
    const scenario = decodeScenario({
      ...flashCrowd({ peers: 12, sizeBytes: 64 * MiB, spreadSeconds: 2 }),
      strategies: ["p2p"],
      faults: [{ kind: "corrupt-peer", host: corrupt, fromSeconds: 0 }]
    })
    const pieceLength = pieceLengthFor(scenario.file.sizeBytes)
    const blamed: Array<{ peerId: string; temporary: boolean }> = []
    let world: World | undefined
    class Watching extends Checkers {
      override schedulerActivity(scheduler: Scheduler, message: { readonly _tag: string }): void {
        super.schedulerActivity(scheduler, message)
        const m = message as { _tag: string; parentId?: string | null; peerId?: string; temporary?: boolean }
        if (m._tag === "PieceFailed" && m.parentId?.startsWith(`${corrupt}/`) === true) blamed.push({ peerId: m.peerId!, temporary: m.temporary! })
      }
    }
    const checkers = new Watching({ url: scenario.file.url, contentLength: scenario.file.sizeBytes, pieceLength, get taskId() { return world!.taskId } })
    world = new World(scenario, { seed: 1, strategy: "p2p", monitor: checkers })
    checkers.attach(world.engine)
    world.run()
    checkers.finish((id) => world!.hostById(id), world.faults.crashed)

    expect(world.faults.corruptServed).toBeGreaterThan(0)
    expect(checkers.violations).toEqual([])
    expect(checkers.writes).toBeGreaterThan(0)
    expect(blamed.length).toBeGreaterThan(0)
    expect(blamed.every((b) => !b.temporary)).toBe(true) // a digest mismatch: the parent is bad, not busy
    // Every peer still got the whole, correct file.
    expect(world.peers.every((p) => p.outcome === "ok")).toBe(true)
    expect(checkers.committed.size).toBe(world.peers.length + world.seeds.filter((s) => s.startedAt !== undefined).length)
  })

  it("the checkers catch a broken invariant: a store write of bytes that differ from the origin", () => {
    const c = deriveCase(3)
    const pieceLength = scenarioPieceLength(c.scenario, c.strategy, c.scenario.file.sizeBytes)
    let world: World | undefined
    const checkers = new Checkers({ url: c.scenario.file.url, contentLength: c.scenario.file.sizeBytes, pieceLength, get taskId() { return world!.taskId } })
    world = new World(c.scenario, { seed: c.seed, strategy: c.strategy, monitor: checkers })
    const victim = world.peers[0]
    const store = world.storeOf(victim)
    Effect.runSync(store.open({ taskId: world.taskId, url: c.scenario.file.url, contentLength: c.scenario.file.sizeBytes, pieceLength }))
    Effect.runSync(store.write(world.taskId, 0, new Uint8Array([1, 2, 3]), "0".repeat(64)))
    expect(checkers.violations.map((v) => v.invariant)).toEqual(["store-digest"])
  })

  it("replays a case exactly: same trace hash in a fresh world", () => {
    const c = deriveCase(5)
    expect(runCase(c).traceHash).toBe(runCase(c).traceHash)
  })
})
