// Scenario builders for tests and benchmarks: the default topology with other sizes.
import { gbit, GiB, MiB, type ScenarioInput } from "../sim/scenario.ts"

export interface FlashCrowd {
  readonly peers: number
  readonly sizeBytes?: number
  readonly seeds?: number
  readonly originGbit?: number
  readonly peerGbit?: number
  readonly spreadSeconds?: number
  readonly interIdcRttMs?: number
}

/** `peers` split over two IDCs, origin and seeds in the first; everyone arrives within `spreadSeconds`. */
export const flashCrowd = (o: FlashCrowd): ScenarioInput => {
  const a = Math.ceil(o.peers / 2)
  const peerBps = gbit(o.peerGbit ?? 10)
  return {
    name: `flash crowd: ${o.peers} peers, ${((o.sizeBytes ?? GiB) / MiB).toFixed(0)} MiB`,
    file: { url: "https://origin.example/blobs/file.bin", sizeBytes: o.sizeBytes ?? GiB },
    idcs: [
      { name: "idcA", location: "cn|hz|idcA", peers: a, seeds: o.seeds ?? 1, racks: Math.max(1, Math.ceil(a / 10)) },
      { name: "idcB", location: "cn|sh|idcB", peers: o.peers - a, seeds: 0, racks: Math.max(1, Math.ceil((o.peers - a) / 10)) }
    ],
    peer: { uploadBytesPerSecond: peerBps, downloadBytesPerSecond: peerBps, uploadSlots: 50 },
    seed: { uploadBytesPerSecond: gbit(10), downloadBytesPerSecond: gbit(10), uploadSlots: 200 },
    origin: { idc: "idcA", uploadBytesPerSecond: gbit(o.originGbit ?? 2) },
    scheduler: { idc: "idcA" },
    latency: { intraIdcRttMs: 0.2, interIdcRttMs: o.interIdcRttMs ?? 5 },
    arrival: { spreadSeconds: o.spreadSeconds ?? 0 },
    strategies: ["direct", "p2p"]
  }
}
