// The default scenario: a flash crowd of 100 peers in two IDCs fetching one 1 GiB file, with the origin
// (2 Gbit/s) and one seed peer in IDC A.
import { GiB, gbit, type ScenarioInput } from "../sim/scenario.ts"

const scenario: ScenarioInput = {
  name: "default: 100 peers, 2 IDCs, 1 GiB",
  file: { url: "https://origin.example/blobs/model-1g.bin", sizeBytes: 1 * GiB },
  idcs: [
    { name: "idcA", location: "cn|hz|idcA", peers: 50, seeds: 1, racks: 5 },
    { name: "idcB", location: "cn|sh|idcB", peers: 50, seeds: 0, racks: 5 }
  ],
  peer: { uploadBytesPerSecond: gbit(10), downloadBytesPerSecond: gbit(10), uploadSlots: 50 },
  seed: { uploadBytesPerSecond: gbit(10), downloadBytesPerSecond: gbit(10), uploadSlots: 200 },
  origin: { idc: "idcA", uploadBytesPerSecond: gbit(2) },
  scheduler: { idc: "idcA" },
  latency: { intraIdcRttMs: 0.2, interIdcRttMs: 5 },
  arrival: { spreadSeconds: 0 },
  strategies: ["direct", "p2p"]
}

export default scenario
