// The simulator's prediction for a swarm benchmark configuration: the same hosts, one seed peer and
// the origin, every link at the TCP payload rate of the shaped rate, one LAN (one IDC, one rack).
import { runScenario } from "../../sim/run.ts"
import { decodeScenario, type Scenario, type ScenarioInput } from "../../sim/scenario.ts"
import { TBF_QUEUE_MILLIS } from "./netns.ts"

/** Payload carried by a TCP stream over a tbf-shaped link, as a fraction of the shaped rate (measured). */
export const PAYLOAD_FRACTION = 0.958

/** The round trip the simulator gives every message: the bridge itself takes tens of microseconds, but in a
 *  swarm every link is busy, and a request and its answer each cross two shaped links (the sender's uplink,
 *  the receiver's downlink) whose tbf queues hold up to TBF_QUEUE_MILLIS: half-full on average, 4 × half. */
export const SWARM_RTT_MS = 0.1 + 2 * TBF_QUEUE_MILLIS

export interface SwarmConfig {
  readonly hosts: number
  readonly rateMbit: number
  readonly originMbit: number
  readonly sizeBytes: number
  /** Damselfly's piece length (the real run's; default core's pieceLengthFor). */
  readonly pieceLength?: number
  /** The daemons' --upload-slots (the CLI's default is 16). */
  readonly uploadSlots: number
}

export const swarmScenario = (c: SwarmConfig): Scenario => {
  const bps = (mbit: number) => (mbit * 1e6 * PAYLOAD_FRACTION) / 8
  const input: ScenarioInput = {
    name: `swarm: ${c.hosts} hosts, ${c.rateMbit} Mbit/s, ${(c.sizeBytes / 2 ** 20).toFixed(0)} MiB`,
    file: { url: "http://origin.swarm/blob", sizeBytes: c.sizeBytes, ...(c.pieceLength === undefined ? {} : { pieceLength: c.pieceLength }) },
    idcs: [{ name: "lan", location: "lab|bench|lan", peers: c.hosts, seeds: 1, racks: 1 }],
    peer: { uploadBytesPerSecond: bps(c.rateMbit), downloadBytesPerSecond: bps(c.rateMbit), uploadSlots: c.uploadSlots },
    seed: { uploadBytesPerSecond: bps(c.rateMbit), downloadBytesPerSecond: bps(c.rateMbit), uploadSlots: c.uploadSlots },
    origin: { idc: "lan", uploadBytesPerSecond: bps(c.originMbit) },
    scheduler: { idc: "lan" },
    latency: { intraIdcRttMs: SWARM_RTT_MS, interIdcRttMs: SWARM_RTT_MS },
    arrival: { spreadSeconds: 0 },
    strategies: [...PREDICTED]
  }
  return decodeScenario(input, "swarm scenario")
}

/** The strategies predicted: each real mode is compared with the strategy of the same name. */
export const PREDICTED = ["direct", "dragonfly", "damselfly", "bittorrent"] as const

export interface Prediction {
  readonly strategy: typeof PREDICTED[number]
  readonly p50: number
  readonly max: number
  readonly boundSeconds: number
  readonly originCopies: number
  readonly finished: number
  readonly verified: boolean
}

export const predict = (c: SwarmConfig, seed = 1): Array<Prediction> => {
  const scenario = swarmScenario(c)
  return PREDICTED.map((strategy) => {
    const r = runScenario(scenario, { seed, strategy })
    return {
      strategy,
      p50: r.completionSeconds.p50,
      max: r.completionSeconds.max,
      boundSeconds: r.boundSeconds,
      originCopies: r.originEgressCopies,
      finished: r.finishedPeers,
      verified: r.verified
    }
  })
}
