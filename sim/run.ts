// One run of one strategy: build the world, run it in virtual time, then measure and verify.
import { createHash } from "node:crypto"
import { pieceAt, pieceCountOf } from "../core/piece-layout.ts"
import { syntheticDigest } from "./origin.ts"
import type { Scenario, Strategy } from "./scenario.ts"
import { World } from "./world.ts"

export interface RunOptions {
  readonly seed: number
  readonly strategy: Strategy
  readonly traceSink?: (line: string) => void
}

export interface Percentiles {
  readonly p50: number
  readonly p99: number
  readonly max: number
}

export interface RunResult {
  readonly scenario: string
  readonly seed: number
  readonly strategy: Strategy
  readonly peers: number
  readonly seeds: number
  readonly sizeBytes: number
  readonly pieceLength: number
  readonly pieceCount: number
  readonly originEgressBytes: number
  readonly originEgressCopies: number
  /** Origin bytes saved against every peer fetching the file from the origin itself. */
  readonly savingsPercent: number
  /** Seconds from each peer's arrival to the end of its download (finished peers only). */
  readonly completionSeconds: Percentiles
  /** Every finished peer's completion time in seconds, sorted ascending (for CDFs). */
  readonly completionTimesSeconds: ReadonlyArray<number>
  readonly finishedPeers: number
  readonly failedPeers: number
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

/**
 * Kumar–Ross lower bound on the time for N peers to each receive F bytes: the origin must send one
 * copy, the slowest downlink must take one, and all uploaders together must send N copies.
 */
export const kumarRossBound = (
  sizeBytes: number,
  originUpload: number,
  downloads: ReadonlyArray<number>,
  uploads: ReadonlyArray<number>
): number => {
  const n = downloads.length
  if (n === 0) return 0
  const dMin = Math.min(...downloads)
  const sumU = uploads.reduce((a, b) => a + b, 0)
  return Math.max(sizeBytes / originUpload, sizeBytes / dMin, (n * sizeBytes) / (originUpload + sumU))
}

/** (F/u)·(1 + ⌊log2 N⌋/M): the best any piece-wise schedule can do with N peers and a server all at u. */
export const discreteOptimum = (sizeBytes: number, upload: number, peers: number, pieces: number): number =>
  (sizeBytes / upload) * (1 + Math.floor(Math.log2(Math.max(1, peers))) / Math.max(1, pieces))

const percentile = (sorted: ReadonlyArray<number>, q: number): number =>
  sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]

export const runScenario = (scenario: Scenario, options: RunOptions): RunResult => {
  const started = performance.now()
  const world = new World(scenario, options)
  world.run()
  const wallSeconds = (performance.now() - started) / 1000

  const { sizeBytes, url } = scenario.file
  const times = world.peers
    .filter((p) => p.outcome === "ok" && p.finishedAt !== undefined)
    .map((p) => (p.finishedAt! - p.arrival) / 1000)
    .sort((a, b) => a - b)
  const failures = world.peers
    .filter((p) => p.outcome !== "ok")
    .slice(0, 5)
    .map((p) => `${p.host.id}: ${p.failure ?? (p.startedAt === undefined ? "never started" : "unfinished at the time limit")}`)

  // Verify every copy: all pieces present, each hashing to the digest of the origin's content.
  const pieceCount = pieceCountOf(sizeBytes, world.pieceLength)
  const expected = Array.from({ length: pieceCount }, (_, i) => {
    const p = pieceAt(sizeBytes, world.pieceLength, i)
    return syntheticDigest(url, p.offset, p.length)
  })
  const holders = [...world.peers, ...world.seeds.filter((s) => s.startedAt !== undefined)]
  let verifiedPeers = 0
  for (const h of holders) {
    const pieces = h.store.tasks.get(world.taskId)?.pieces
    if (pieces === undefined || pieces.size !== pieceCount) continue
    let ok = true
    for (let i = 0; i < pieceCount && ok; i++) {
      const bytes = pieces.get(i)
      ok = bytes !== undefined && createHash("sha256").update(bytes).digest("hex") === expected[i]
    }
    if (ok) verifiedPeers++
  }

  const seedsInPlay = world.seeds
  const bound = kumarRossBound(
    sizeBytes,
    scenario.origin.uploadBytesPerSecond,
    world.peers.map((p) => p.net.down),
    [...world.peers, ...seedsInPlay].map((p) => p.net.up)
  )
  const originEgressBytes = world.originNet.bytesSent
  // Control traffic (the scheduler host) carries no bytes; only piece flows are counted.
  const traffic = world.network.trafficBetween((h) => world.idcOfNet(h))
  const n = world.peers.length
  const completion = { p50: percentile(times, 0.5), p99: percentile(times, 0.99), max: times.length === 0 ? NaN : times[times.length - 1] }
  return {
    scenario: scenario.name,
    seed: options.seed,
    strategy: options.strategy,
    peers: n,
    seeds: seedsInPlay.length,
    sizeBytes,
    pieceLength: world.pieceLength,
    pieceCount,
    originEgressBytes,
    originEgressCopies: originEgressBytes / sizeBytes,
    savingsPercent: 100 * (1 - originEgressBytes / (n * sizeBytes)),
    completionSeconds: completion,
    completionTimesSeconds: times,
    finishedPeers: times.length,
    failedPeers: n - times.length,
    boundSeconds: bound,
    crossIdcBytes: Object.entries(traffic).reduce((sum, [k, b]) => (k.split("->")[0] !== k.split("->")[1] ? sum + b : sum), 0),
    crossIdcMinimumBytes: sizeBytes * scenario.idcs.filter((i) => i.peers > 0 && i.name !== scenario.origin.idc).length,
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

/** Every peer uploads as fast as the origin and downloads at least that fast. */
const isHomogeneous = (scenario: Scenario): boolean =>
  scenario.peer.uploadBytesPerSecond === scenario.origin.uploadBytesPerSecond &&
  scenario.peer.downloadBytesPerSecond >= scenario.peer.uploadBytesPerSecond
