// One run of one strategy: build the world, run it in virtual time, then measure and verify.
import { createHash } from "node:crypto"
import { pieceAt, pieceCountOf } from "../core/piece-layout.ts"
import { crossIdcMinimumCopies, discreteOptimum, kumarRossBound, rackBound, wanBound } from "./bound.ts"
import { syntheticDigest } from "./origin.ts"
import type { Reported, Scenario, Strategy } from "./scenario.ts"
import { World } from "./world.ts"

export interface RunOptions {
  readonly seed: number
  readonly strategy: Strategy
  readonly traceSink?: (line: string) => void
}

export interface Percentiles {
  readonly p50: number
  readonly p99: number
  readonly p999: number
  readonly max: number
}

/** One layer of a multi-layer image (or the file itself). */
export interface LayerResult {
  readonly name: string
  readonly sizeBytes: number
  readonly pieceCount: number
  /** Origin bytes for this layer (ranges served in full), and as copies of the layer. */
  readonly originEgressBytes: number
  readonly originEgressCopies: number
  /** Seconds from each peer's arrival to the end of this layer (finished peers only). */
  readonly completionSeconds: Percentiles
}

export interface RunResult {
  readonly scenario: string
  readonly seed: number
  readonly strategy: Strategy
  readonly peers: number
  readonly seeds: number
  /** The file's size, or the image's (the sum of its layers). */
  readonly sizeBytes: number
  /** The first blob's piece length; `pieceCount` counts the pieces of every blob. */
  readonly pieceLength: number
  readonly pieceCount: number
  /** How peers arrived ("flash", "uniform", "poisson", "rolling"). */
  readonly arrival: string
  /** Per layer (one entry for a plain file): origin copies and completion times. */
  readonly layers: ReadonlyArray<LayerResult>
  /** Published figures the scenario reproduces, if any. */
  readonly reported: Reported | null
  readonly originEgressBytes: number
  readonly originEgressCopies: number
  /** Origin bytes saved against every peer fetching the file from the origin itself. */
  readonly savingsPercent: number
  /** Seconds from each peer's arrival to the end of its pull, every layer in (finished peers only). */
  readonly completionSeconds: Percentiles
  /** Every finished peer's completion time in seconds, sorted ascending (for CDFs). */
  readonly completionTimesSeconds: ReadonlyArray<number>
  readonly finishedPeers: number
  readonly failedPeers: number
  /**
   * A lower bound on the slowest peer's completion time. All arriving at once: Kumar–Ross, or one copy
   * through the thinnest WAN link or oversubscribed rack downlink on the way, if that takes longer
   * (sim/bound.ts). A rolling update: the same for the first batch (nobody holds anything yet). Uniform
   * or Poisson arrivals: the first peer alone still needs F from the origin, max(F/u_origin, F/d_min).
   */
  readonly boundSeconds: number
  readonly maxOverBound: number
  /**
   * For homogeneous runs (the origin and every peer upload at the same rate u): the optimum for M
   * pieces, (F/u)·(1 + ⌊log2 N⌋/M) — pieces cannot be relayed before they are whole. null otherwise.
   */
  readonly discreteOptimumSeconds: number | null
  /** Bytes that crossed between IDCs, and the least possible: one copy into each IDC without the origin. */
  readonly crossIdcBytes: number
  readonly crossIdcMinimumBytes: number
  /** Bytes moved between IDCs (and within one), keyed "idcA->idcB"; the origin counts in its IDC. */
  readonly trafficBetweenIdcs: Readonly<Record<string, number>>
  /** Peers (and seeds) whose store holds every piece with the expected digest. */
  readonly verifiedPeers: number
  readonly verified: boolean
  /** The first few failures, to show why a run did not finish. */
  readonly failures: ReadonlyArray<string>
  readonly virtualSeconds: number
  readonly traceHash: string
  readonly traceLines: number
  readonly events: number
  readonly wallSeconds: number
}

export { discreteOptimum, kumarRossBound } from "./bound.ts"

const percentile = (sorted: ReadonlyArray<number>, q: number): number =>
  sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]

export const percentilesOf = (sorted: ReadonlyArray<number>): Percentiles => ({
  p50: percentile(sorted, 0.5),
  p99: percentile(sorted, 0.99),
  p999: percentile(sorted, 0.999),
  max: sorted.length === 0 ? NaN : sorted[sorted.length - 1]
})

export const runScenario = (scenario: Scenario, options: RunOptions): RunResult => {
  const started = performance.now()
  const world = new World(scenario, options)
  world.run()
  const wallSeconds = (performance.now() - started) / 1000

  const { sizeBytes } = scenario.file
  const times = world.peers
    .filter((p) => p.outcome === "ok" && p.finishedAt !== undefined)
    .map((p) => (p.finishedAt! - p.arrival) / 1000)
    .sort((a, b) => a - b)
  const failures = world.peers
    .filter((p) => p.outcome !== "ok")
    .slice(0, 5)
    .map((p) => `${p.host.id}: ${p.failure ?? (p.startedAt === undefined ? "never started" : "unfinished at the time limit")}`)

  // Verify every copy: every blob a host pulled has all its pieces, each hashing to the digest of the
  // origin's content.
  const expected = world.blobs.map((b) =>
    Array.from({ length: pieceCountOf(b.sizeBytes, b.pieceLength) }, (_, i) => {
      const p = pieceAt(b.sizeBytes, b.pieceLength, i)
      return syntheticDigest(b.url, p.offset, p.length)
    }))
  const pieceCount = expected.reduce((n, e) => n + e.length, 0)
  const holders = [...world.peers, ...world.seeds.filter((s) => s.startedAt !== undefined)]
  // Peers share piece arrays (a child keeps the one its parent sent; the simulator never mutates one),
  // so each distinct array is hashed once; a corrupted copy is a different array and is hashed too.
  const digestOf = new Map<Uint8Array, string>()
  const sha256Of = (bytes: Uint8Array): string => {
    let d = digestOf.get(bytes)
    if (d === undefined) digestOf.set(bytes, (d = createHash("sha256").update(bytes).digest("hex")))
    return d
  }
  const holds = (h: (typeof holders)[number], blob: (typeof world.blobs)[number]): boolean => {
    const pieces = h.store.tasks.get(blob.taskId)?.pieces
    const digests = expected[blob.index]
    if (pieces === undefined || pieces.size !== digests.length) return false
    for (let i = 0; i < digests.length; i++) {
      const bytes = pieces.get(i)
      if (bytes === undefined || sha256Of(bytes) !== digests[i]) return false
    }
    return true
  }
  let verifiedPeers = 0
  for (const h of holders) {
    const mine = h.host.type === "seed" ? world.blobs.filter((b) => world.seedBlobs.get(h.host.id)?.has(b.index)) : world.blobs
    if (mine.every((b) => holds(h, b))) verifiedPeers++
  }

  const seedsInPlay = world.seeds
  const uploads = [...world.peers, ...seedsInPlay].map((p) => p.net.up)
  const originUp = scenario.origin.uploadBytesPerSecond
  const arrival = scenario.arrival
  const staggered = arrival.kind === "poisson" || (arrival.kind === "uniform" && arrival.spreadSeconds > 0)
  // All at once (or a rolling update's first batch): nothing is anywhere yet, so a copy must also cross
  // every WAN link into an IDC with such peers, and every oversubscribed rack's downlink.
  const first = world.batches[0] ?? world.peers
  const idcs = scenario.idcs.map((i) => ({ name: i.name, wanBytesPerSecond: i.wanBytesPerSecond, peers: first.filter((p) => p.host.idc === i.name).length }))
  const bound = staggered
    ? Math.max(sizeBytes / originUp, sizeBytes / Math.min(...world.peers.map((p) => p.net.down)))
    : Math.max(
      kumarRossBound(sizeBytes, originUp, first.map((p) => p.net.down), uploads),
      wanBound(sizeBytes, scenario.origin.idc, idcs),
      rackBound(sizeBytes, rackDownlinks(scenario, [...world.peers, ...world.seeds], first))
    )
  const originEgressBytes = world.originNet.bytesSent
  // Control traffic (the scheduler host) carries no bytes; only piece flows are counted.
  const traffic = world.network.trafficBetween((h) => world.idcOfNet(h))
  const n = world.peers.length
  const completion = percentilesOf(times)
  const layers: Array<LayerResult> = world.blobs.map((b) => {
    const done = world.peers
      .flatMap((p) => {
        const o = world.blobOutcomes.get(p.host.id)?.[b.index]
        return o !== undefined && o.ok ? [(o.at - p.arrival) / 1000] : []
      })
      .sort((x, y) => x - y)
    const bytes = world.originBytesByBlob[b.index]
    return { name: b.name, sizeBytes: b.sizeBytes, pieceCount: expected[b.index].length, originEgressBytes: bytes, originEgressCopies: bytes / b.sizeBytes, completionSeconds: percentilesOf(done) }
  })
  return {
    scenario: scenario.name,
    seed: options.seed,
    strategy: options.strategy,
    peers: n,
    seeds: seedsInPlay.length,
    sizeBytes,
    pieceLength: world.pieceLength,
    pieceCount,
    arrival: arrival.kind === "uniform" && arrival.spreadSeconds === 0 ? "flash" : arrival.kind,
    layers,
    reported: scenario.reported ?? null,
    originEgressBytes,
    originEgressCopies: originEgressBytes / sizeBytes,
    savingsPercent: 100 * (1 - originEgressBytes / (n * sizeBytes)),
    completionSeconds: completion,
    completionTimesSeconds: times,
    finishedPeers: times.length,
    failedPeers: n - times.length,
    boundSeconds: bound,
    crossIdcBytes: Object.entries(traffic).reduce((sum, [k, b]) => (k.split("->")[0] !== k.split("->")[1] ? sum + b : sum), 0),
    crossIdcMinimumBytes: sizeBytes * crossIdcMinimumCopies(scenario.origin.idc, scenario.idcs),
    trafficBetweenIdcs: traffic,
    discreteOptimumSeconds: isHomogeneous(scenario) ? discreteOptimum(sizeBytes, scenario.origin.uploadBytesPerSecond, n, pieceCount) : null,
    maxOverBound: completion.max / bound,
    verifiedPeers,
    verified: verifiedPeers === holders.length && times.length === n,
    failures,
    virtualSeconds: world.engine.now / 1000,
    traceHash: world.engine.trace.finish(),
    traceLines: world.engine.trace.lines,
    events: world.engine.events,
    wallSeconds
  }
}

/** The downlink rate of each oversubscribed rack holding one of `peers` (as sim/world.ts builds them). */
const rackDownlinks = (
  scenario: Scenario,
  hosts: ReadonlyArray<{ host: { idc: string; location: string }; net: { down: number } }>,
  peers: ReadonlyArray<{ host: { idc: string; location: string } }>
): Array<number> => {
  const ratio = new Map(scenario.idcs.flatMap((i) => (i.rackOversubscription === undefined ? [] : [[i.name, i.rackOversubscription] as const])))
  const rate = new Map<string, number>()
  for (const h of hosts) {
    const r = ratio.get(h.host.idc)
    if (r !== undefined) rate.set(h.host.location, (rate.get(h.host.location) ?? 0) + h.net.down / r)
  }
  return [...new Set(peers.map((p) => p.host.location))].flatMap((l) => (rate.has(l) ? [rate.get(l)!] : []))
}

/** Every peer (one NIC class) uploads as fast as the origin and downloads at least that fast; all at once. */
const isHomogeneous = (scenario: Scenario): boolean =>
  scenario.idcs.every((i) => i.peerClasses === undefined) &&
  (scenario.arrival.kind === "flash" || (scenario.arrival.kind === "uniform" && scenario.arrival.spreadSeconds === 0)) &&
  scenario.peer.uploadBytesPerSecond === scenario.origin.uploadBytesPerSecond &&
  scenario.peer.downloadBytesPerSecond >= scenario.peer.uploadBytesPerSecond
