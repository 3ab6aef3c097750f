// Spegel's benchmark matrix (spegel.dev, "Benchmark"): images of {10 MB, 100 MB, 1 GB} in {1, 4}
// layers on a 10-node cluster; the deployment is created on every node at once, then rolled out
// again as an update in batches of 20%. A family: each (size, layers) gives two cases, "create" (all
// 10 nodes pull at t=0) and "rolling" (batches of 2 nodes; the next batch starts when the previous one
// has pulled). The update pulls an image no node holds yet (a new build: every layer changed), so the
// origin serves the first batch and later batches can pull from the earlier ones. Chosen here: nodes
// with 10 Gbit/s NICs, the registry at 1 Gbit/s, no seed hosts (a plain cluster).
import { GB, gbit, MB, type ScenarioInput } from "../sim/scenario.ts"

const sizes = [
  { label: "10MB", bytes: 10 * MB },
  { label: "100MB", bytes: 100 * MB },
  { label: "1GB", bytes: 1 * GB }
] as const
const layerCounts = [1, 4] as const
const rollouts = [
  { label: "create", arrival: { kind: "flash" } },
  { label: "rolling", arrival: { kind: "rolling", batchFraction: 0.2 } }
] as const

const node = { uploadBytesPerSecond: gbit(10), downloadBytesPerSecond: gbit(10), uploadSlots: 50 }

const cases: Array<ScenarioInput> = sizes.flatMap((size) =>
  layerCounts.flatMap((layers) =>
    rollouts.map((rollout): ScenarioInput => ({
      name: `spegel-matrix/${size.label}-${layers}layer${layers > 1 ? "s" : ""}-${rollout.label}`,
      file: { url: `https://registry.example/v2/bench/${size.label}-${layers}`, sizeBytes: size.bytes, ...(layers > 1 ? { layers } : {}) },
      idcs: [{ name: "cluster", location: "eu|west|cluster", peers: 10, seeds: 0, racks: 1 }],
      peer: node,
      seed: node,
      origin: { idc: "cluster", uploadBytesPerSecond: gbit(1) },
      latency: { intraIdcRttMs: 0.5, interIdcRttMs: 0.5 },
      arrival: rollout.arrival
    }))))

export default cases
