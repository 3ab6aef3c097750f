// Kraken's published benchmark (github.com/uber/kraken, README "Performance"): a 3 GB image in 2
// layers pulled by 2,600 hosts at once (5,200 blob downloads), each agent limited to 300 MB/s up and
// down. Kraken reports p50 10 s, p99 18 s, p99.9 22 s. Not stated there, and chosen here: the layer
// split (even, 1.5 GB each), the origin cluster (3 origins at the agent limit: 900 MB/s, and 3 seed
// hosts), one IDC of 65 non-blocking racks, 4 MB pieces as Kraken uses.
import { GB, MB, type ScenarioInput } from "../sim/scenario.ts"

const agent = { uploadBytesPerSecond: 300 * MB, downloadBytesPerSecond: 300 * MB }

const scenario: ScenarioInput = {
  name: "kraken-2600",
  file: { url: "https://registry.example/v2/app/kraken-3g", sizeBytes: 3 * GB, layers: 2, pieceLength: 4 * MB },
  idcs: [{ name: "dc", location: "us|west|dc", peers: 2600, seeds: 3, racks: 65 }],
  peer: { ...agent, uploadSlots: 50 },
  seed: { ...agent, uploadSlots: 200 },
  origin: { idc: "dc", uploadBytesPerSecond: 900 * MB },
  latency: { intraIdcRttMs: 0.3, interIdcRttMs: 0.3 },
  reported: { source: "Kraken README (uber/kraken)", p50Seconds: 10, p99Seconds: 18, p999Seconds: 22 }
}

export default scenario
