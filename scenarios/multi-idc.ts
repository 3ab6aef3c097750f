// Three IDCs joined by a thin WAN (1 Gbit/s each way per IDC) while hosts have 10 Gbit/s NICs and racks
// are 4:1 oversubscribed: a strategy that ignores topology drags copies across the WAN. The minimum
// cross-IDC traffic is one copy into each IDC without the origin (2 copies); results report both. The
// bound is one copy through a 1 Gbit/s WAN link (F / 125 MB/s ≈ 8.6 s), far above Kumar–Ross here.
import { GiB, gbit, type ScenarioInput } from "../sim/scenario.ts"

const idc = (name: string, location: string, seeds: number) => ({
  name,
  location,
  peers: 100,
  seeds,
  racks: 5,
  rackOversubscription: 4,
  wanBytesPerSecond: gbit(1)
})

const scenario: ScenarioInput = {
  name: "multi-idc",
  file: { url: "https://origin.example/blobs/multi-idc-1g.bin", sizeBytes: 1 * GiB },
  idcs: [idc("hz", "cn|zj|hz", 1), idc("sh", "cn|sh|sh", 1), idc("bj", "cn|bj|bj", 1)],
  peer: { uploadBytesPerSecond: gbit(10), downloadBytesPerSecond: gbit(10), uploadSlots: 50 },
  seed: { uploadBytesPerSecond: gbit(10), downloadBytesPerSecond: gbit(10), uploadSlots: 200 },
  origin: { idc: "hz", uploadBytesPerSecond: gbit(5) },
  scheduler: { idc: "hz" },
  latency: { intraIdcRttMs: 0.2, interIdcRttMs: 30 },
}

export default scenario
