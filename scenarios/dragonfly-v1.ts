// Dragonfly's published v1 benchmark: a 200 MB file, clients at 200 Mbit/s, 2 servers (supernodes, here
// seed peers) at 2,000 Mbit/s; Dragonfly reports ~12 s, flat from 200 to 7,000 clients. This file is the
// 200-client point; scenarios/dragonfly-v1.grid.yaml sweeps the client count.
import { mbit, type ScenarioInput } from "../sim/scenario.ts"

const scenario: ScenarioInput = {
  name: "dragonfly-v1",
  file: { url: "https://origin.example/files/200mb.bin", sizeBytes: 200_000_000 },
  idcs: [{ name: "dc", location: "cn|hz|dc", peers: 200, seeds: 2, racks: 10 }],
  peer: { uploadBytesPerSecond: mbit(200), downloadBytesPerSecond: mbit(200), uploadSlots: 8 },
  seed: { uploadBytesPerSecond: mbit(2000), downloadBytesPerSecond: mbit(2000), uploadSlots: 200 },
  origin: { idc: "dc", uploadBytesPerSecond: mbit(2000) },
  latency: { intraIdcRttMs: 0.5, interIdcRttMs: 0.5 },
  reported: { source: "Dragonfly v1 README (dragonflyoss/Dragonfly)", note: "~12 s per download, flat from 200 to 7,000 clients" }
}

export default scenario
