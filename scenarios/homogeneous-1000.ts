// The bound check: 1,000 nodes and the origin all at 10 Gbit/s, one 1 GiB file (256 pieces of 4 MiB).
// Here the fluid Kumar–Ross bound is F/u and the discrete-piece optimum (F/u)·(1 + ⌊log2 N⌋/M) is
// reported beside it.
import { GiB, gbit, type ScenarioInput } from "../sim/scenario.ts"

const u = gbit(10)

const scenario: ScenarioInput = {
  name: "homogeneous-1000",
  file: { url: "https://origin.example/blobs/homogeneous-1g.bin", sizeBytes: 1 * GiB },
  idcs: [{ name: "dc", location: "us|east|dc", peers: 1000, seeds: 1, racks: 25 }],
  peer: { uploadBytesPerSecond: u, downloadBytesPerSecond: u, uploadSlots: 50 },
  seed: { uploadBytesPerSecond: u, downloadBytesPerSecond: u, uploadSlots: 200 },
  origin: { idc: "dc", uploadBytesPerSecond: u },
  latency: { intraIdcRttMs: 0.2, interIdcRttMs: 0.2 },
}

export default scenario
