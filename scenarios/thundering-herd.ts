// 1,000 cold pulls of the same 1 GiB layer at once against an origin with a 1 Gbit/s uplink: the
// origin is the bottleneck, so the best any strategy can do is about F/u_origin (8.6 s).
import { GiB, gbit, type ScenarioInput } from "../sim/scenario.ts"

const scenario: ScenarioInput = {
  name: "thundering-herd",
  file: { url: "https://registry.example/v2/app/blobs/sha256-layer", sizeBytes: 1 * GiB },
  idcs: [{ name: "dc", location: "us|east|dc", peers: 1000, seeds: 1, racks: 25 }],
  peer: { uploadBytesPerSecond: gbit(10), downloadBytesPerSecond: gbit(10), uploadSlots: 50 },
  seed: { uploadBytesPerSecond: gbit(10), downloadBytesPerSecond: gbit(10), uploadSlots: 200 },
  origin: { idc: "dc", uploadBytesPerSecond: gbit(1) },
  latency: { intraIdcRttMs: 0.2, interIdcRttMs: 0.2 },
}

export default scenario
