// The simulator's prediction for a swarm benchmark configuration: the same hosts, one seed peer and
// the origin, every link at the TCP payload rate of the shaped rate, one LAN (one IDC, one rack).
import { kumarRossBound, runScenario } from "../../sim/run.ts"
import { decodeScenario, type Scenario, type ScenarioInput } from "../../sim/scenario.ts"
import { TBF_QUEUE_MILLIS } from "./netns.ts"

/** Payload carried by a TCP stream over a tbf-shaped link, as a fraction of the shaped rate (measured). */
export const PAYLOAD_FRACTION = 0.958

/** The round trip the simulator gives every message: the bridge itself takes tens of microseconds, but in a
 *  swarm every link is busy, and a request and its answer each cross two shaped links (the sender's uplink,
 *  the receiver's downlink) whose tbf queues hold up to TBF_QUEUE_MILLIS: half-full on average, 4 × half. */
export const SWARM_RTT_MS = 0.1 + 2 * TBF_QUEUE_MILLIS

/** The benchmark's torrent: `mktorrent -l 20`. */
export const TORRENT_PIECE_LENGTH = 2 ** 20

export interface SwarmConfig {
  readonly hosts: number
  readonly rateMbit: number
  readonly originMbit: number
  readonly sizeBytes: number
  /** The daemons' piece length when the real run fixed it (`--piece-kib`, for damselfly and dragonfly);
   *  default each strategy's own rule (core/strategies.ts). */
  readonly pieceLength?: number
  /** The torrent's piece length (the benchmark's `mktorrent -l 20`: 1 MiB). */
  readonly torrentPieceLength?: number
  /** The daemons' --upload-slots (the CLI's default is 16). */
  readonly uploadSlots: number
}

const bps = (mbit: number) => (mbit * 1e6 * PAYLOAD_FRACTION) / 8

/** A link far wider than any other: a transfer over it costs only its round trip. */
const INSTANT_BYTES_PER_SECOND = 1e12

export const swarmScenario = (c: SwarmConfig): Scenario => decodeScenario(swarmInput(c), "swarm scenario")

/**
 * The `bittorrent` mode has no seed daemon and no HTTP origin in the path: the origin host runs the
 * initial seed, a seeding aria2c holding the whole content from the start. The simulator's seed peer
 * plays it: the origin's uplink, and a fetch from the origin (its own disk) that costs no time.
 */
export const torrentScenario = (c: SwarmConfig): Scenario => {
  const input = swarmInput(c)
  return decodeScenario({
    ...input,
    name: `${input.name} (the origin host seeds the torrent)`,
    seed: { uploadBytesPerSecond: bps(c.originMbit), downloadBytesPerSecond: INSTANT_BYTES_PER_SECOND, uploadSlots: c.uploadSlots },
    origin: { idc: "lan", uploadBytesPerSecond: INSTANT_BYTES_PER_SECOND },
    strategies: ["bittorrent"]
  }, "swarm torrent scenario")
}

const swarmInput = (c: SwarmConfig): ScenarioInput => {
  const input: ScenarioInput = {
    name: `swarm: ${c.hosts} hosts, ${c.rateMbit} Mbit/s, ${(c.sizeBytes / 2 ** 20).toFixed(0)} MiB`,
    // Each strategy cuts the content by its own rule, except what the real run fixed: the torrent's
    // piece length, and the daemons' when given.
    file: {
      url: "http://origin.swarm/blob",
      sizeBytes: c.sizeBytes,
      pieceLengths: { bittorrent: c.torrentPieceLength ?? TORRENT_PIECE_LENGTH, ...(c.pieceLength === undefined ? {} : { damselfly: c.pieceLength, dragonfly: c.pieceLength }) }
    },
    idcs: [{ name: "lan", location: "lab|bench|lan", peers: c.hosts, seeds: 1, racks: 1 }],
    peer: { uploadBytesPerSecond: bps(c.rateMbit), downloadBytesPerSecond: bps(c.rateMbit), uploadSlots: c.uploadSlots },
    seed: { uploadBytesPerSecond: bps(c.rateMbit), downloadBytesPerSecond: bps(c.rateMbit), uploadSlots: c.uploadSlots },
    origin: { idc: "lan", uploadBytesPerSecond: bps(c.originMbit) },
    scheduler: { idc: "lan" },
    latency: { intraIdcRttMs: SWARM_RTT_MS, interIdcRttMs: SWARM_RTT_MS },
    arrival: { spreadSeconds: 0 },
    strategies: [...PREDICTED]
  }
  return input
}

/** The strategies predicted: each real mode is compared with the strategy of the same name. */
export const PREDICTED = ["direct", "dragonfly", "damselfly", "bittorrent"] as const

export interface Prediction {
  readonly strategy: typeof PREDICTED[number]
  readonly p50: number
  readonly max: number
  readonly boundSeconds: number
  /** Copies the origin host uploaded: the HTTP origin's, or for bittorrent the initial seed's. */
  readonly originCopies: number
  readonly finished: number
  readonly verified: boolean
}

export const predict = (c: SwarmConfig, seed = 1): Array<Prediction> => {
  const scenario = swarmScenario(c)
  return PREDICTED.map((strategy) => predictOne(c, strategy, seed, scenario))
}

/** One strategy's prediction (`scenario`: the common one, when already decoded). */
export const predictOne = (c: SwarmConfig, strategy: typeof PREDICTED[number], seed = 1, scenario?: Scenario): Prediction => {
  const boundSeconds = kumarRossBound(c.sizeBytes, bps(c.originMbit), Array(c.hosts).fill(bps(c.rateMbit)), Array(c.hosts + 1).fill(bps(c.rateMbit)))
  const torrent = strategy === "bittorrent"
  const seedUpload = new SeedUpload()
  const r = runScenario(torrent ? torrentScenario(c) : scenario ?? swarmScenario(c), { seed, strategy, ...(torrent ? { traceSink: seedUpload.line } : {}) })
  return {
    strategy,
    p50: r.completionSeconds.p50,
    max: r.completionSeconds.max,
    boundSeconds,
    originCopies: torrent ? seedUpload.bytes / c.sizeBytes : r.originEgressCopies,
    finished: r.finishedPeers,
    verified: r.verified
  }
}

/** Bytes the seed peers sent, from a run's trace (`flow ID start SRC>DST BYTES`, `flow ID end|cancel MOVED`). */
class SeedUpload {
  bytes = 0
  private readonly open = new Map<string, number>()
  readonly line = (line: string): void => {
    const w = line.trim().split(" ")
    if (w[1] !== "flow") return
    if (w[3] === "start") {
      if (w[4].startsWith("seed-")) this.open.set(w[2], Number(w[5]))
    } else if (this.open.has(w[2])) {
      this.bytes += w[3] === "end" ? this.open.get(w[2])! : Number(w[4])
      this.open.delete(w[2])
    }
  }
}
