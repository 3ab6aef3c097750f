// End to end on real network namespaces (root only): a tiny swarm — 3 hosts, 8 MiB, 200 Mbit/s links —
// direct and damselfly (through the `damselfly get` CLI itself) and BitTorrent when aria2c, opentracker
// and mktorrent are installed. Every host's file must hash right, and damselfly's origin must send
// about one copy.
import { execFileSync } from "node:child_process"
import { readdirSync, readFileSync } from "node:fs"
import { describe, expect, it } from "vitest"
import { type Mode, runSwarm } from "../scenarios/swarm/bench.ts"
import { netnsUnavailable } from "../scenarios/swarm/netns.ts"

const unavailable = netnsUnavailable()
const has = (tool: string) => {
  try {
    execFileSync("sh", ["-c", `command -v ${tool}`], { stdio: "pipe" })
    return true
  } catch {
    return false
  }
}
const bittorrent = ["aria2c", "opentracker", "mktorrent"].every(has)

/** What the run changes machine-wide (scenarios/swarm/host-settings.ts) and must put back. */
const machineSettings = () => ({
  allowedCongestionControl: readFileSync("/proc/sys/net/ipv4/tcp_allowed_congestion_control", "utf8").trim(),
  ksoftirqdNice: readdirSync("/proc").filter((d) => /^\d+$/.test(d)).flatMap((pid) => {
    try {
      if (!readFileSync(`/proc/${pid}/comm`, "utf8").startsWith("ksoftirqd/")) return []
      return [Number(readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ")[16])]
    } catch {
      return []
    }
  })
})

describe.skipIf(unavailable !== undefined)(`swarm benchmark smoke${unavailable === undefined ? "" : ` (skipped: ${unavailable})`}`, () => {
  it("direct, damselfly and bittorrent deliver the right bytes to every host; damselfly's origin sends ~1 copy", async () => {
    const modes: Array<Mode> = bittorrent ? ["direct", "damselfly", "bittorrent"] : ["direct", "damselfly"]
    if (!bittorrent) console.warn("swarm smoke: bittorrent mode skipped (aria2c, opentracker or mktorrent missing)")
    const before = machineSettings()
    // Its own names and /24, so it never meets a benchmark running on the same machine.
    const r = await runSwarm({
      hosts: 3,
      rateMbit: 200,
      sizeMiB: 8,
      modes,
      client: "get",
      prefix: "dft",
      subnet: "10.77.200",
      timeoutSeconds: 30,
      log: () => {}
    })
    expect(r.modes.map((m) => m.mode)).toEqual(modes)
    for (const m of r.modes) {
      expect(m.error, `${m.mode}: ${m.error}`).toBeUndefined()
      expect(m.perHost.map((h) => [h.host, h.sha256ok]), m.mode).toEqual([["h00", true], ["h01", true], ["h02", true]])
      expect(m.finished, m.mode).toBe(3)
      expect(m.max!, m.mode).toBeGreaterThanOrEqual(r.boundSeconds * 0.9)
    }
    const direct = r.modes.find((m) => m.mode === "direct")!
    expect(direct.originPayloadCopies!).toBeCloseTo(3, 1)
    const damselfly = r.modes.find((m) => m.mode === "damselfly")!
    expect(damselfly.originPayloadCopies!).toBeLessThanOrEqual(1.5)
    expect(damselfly.originWireCopies).toBeLessThanOrEqual(1.5 * 1.05)
    // The simulator predicts every mode that names a core strategy (scenarios/swarm/predict.ts), damselfly included.
    expect(r.predictions.map((p) => p.strategy)).toEqual(expect.arrayContaining(["direct", "damselfly"]))
    for (const p of r.predictions) expect(p.verified, p.strategy).toBe(true)
    // The emulation's machine-wide settings were held for the run and put back.
    expect(r.config.congestionControl).toBe("cubic")
    expect(r.config.hostSettings).toEqual(["TCP congestion control cubic in every namespace", "ksoftirqd at nice -20"])
    expect(machineSettings()).toEqual(before)
    // Nothing left behind.
    expect(execFileSync("ip", ["netns", "list"], { encoding: "utf8" })).not.toMatch(/^dft-/m)
    expect(execFileSync("ip", ["-o", "link", "show"], { encoding: "utf8" })).not.toMatch(/ dft-/)
  }, 120_000)
})
