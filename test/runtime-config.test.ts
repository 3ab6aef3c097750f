// Configuration (runtime/config.ts): YAML files decoded by Schema, errors that name the field and say
// what was expected, flags that override the file — checked in-process on the decoder and on real
// `damselfly daemon` / `damselfly scheduler` processes, with the example files in deploy/config/.
import { mkdtemp, rm, writeFile } from "node:fs/promises"
import { tmpdir } from "node:os"
import * as path from "node:path"
import { Option } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import {
  ConfigError,
  DAEMON_OPTIONS,
  daemonOptionsFrom,
  decodeConfig,
  flagValues,
  loadConfigFile,
  mergeValues,
  SCHEDULER_OPTIONS,
  schedulerOptionsFrom
} from "../runtime/config.ts"
import { parseBytes, parseDuration, parseRate } from "../runtime/config-units.ts"
import { damselfly, freePort, getJson, killAll, waitHealthy } from "../runtime/testing/harness.ts"

const MiB = 1024 * 1024
const REPO = path.resolve(import.meta.dirname, "..")
let dir: string

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), "damselfly-config-"))
})

afterAll(async () => {
  await killAll()
  await rm(dir, { recursive: true, force: true })
})

const errorOf = (f: () => unknown): string => {
  try {
    f()
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError)
    return (e as Error).message
  }
  throw new Error("expected a ConfigError")
}

describe("config decoding", () => {
  it("units: sizes, rates and durations as operators write them", () => {
    expect(parseBytes("512MiB")).toBe(512 * MiB)
    expect(parseBytes("1.5GB")).toBe(1_500_000_000)
    expect(parseBytes("20Gi")).toBe(20 * 1024 * MiB)
    expect(parseBytes(4096)).toBe(4096)
    expect(parseBytes("lots")).toBeUndefined()
    expect(parseBytes(-1)).toBeUndefined()
    expect(parseRate("100MiB/s")).toBe(100 * MiB)
    expect(parseRate("8MiB")).toBe(8 * MiB)
    expect(parseRate(1e6)).toBe(1_000_000)
    expect(parseRate("0/s")).toBeUndefined()
    expect(parseDuration("6h")).toBe(6 * 3600_000)
    expect(parseDuration("1h30m")).toBe(5400_000)
    expect(parseDuration("500ms")).toBe(500)
    expect(parseDuration(30)).toBe(30_000)
    expect(parseDuration("soon")).toBeUndefined()
  })

  it("the example files in deploy/config decode, and give the options they say", async () => {
    const daemon = daemonOptionsFrom(await loadConfigFile(path.join(REPO, "deploy/config/daemon.yaml"), DAEMON_OPTIONS))
    expect(daemon).toMatchObject({
      port: 65001,
      listen: "0.0.0.0",
      data: "/var/lib/damselfly",
      schedulers: ["http://scheduler-0.damselfly:8002", "http://scheduler-1.damselfly:8002"],
      seed: false,
      uploadSlots: 16,
      uploadBandwidth: 100 * MiB,
      downloadLimit: 200 * MiB,
      backToSourceLimit: 50 * MiB,
      keepCache: true,
      originIdleMillis: 30_000,
      gc: { intervalMillis: 60_000, ttlMillis: 6 * 3600_000, quotaBytes: 50 * 1024 * MiB, highWatermark: 0.9, lowWatermark: 0.8, diskHighWatermark: 0.95 }
    })
    const seed = daemonOptionsFrom(await loadConfigFile(path.join(REPO, "deploy/config/seed.yaml"), DAEMON_OPTIONS))
    expect(seed).toMatchObject({ seed: true, uploadSlots: 64, backToSourceLimit: 500 * MiB, gc: { ttlMillis: 24 * 3600_000, lowWatermark: 0.7 } })
    const scheduler = schedulerOptionsFrom(await loadConfigFile(path.join(REPO, "deploy/config/scheduler.yaml"), SCHEDULER_OPTIONS))
    expect(scheduler).toMatchObject({ port: 8002, listen: "0.0.0.0", maxConnections: 4096 })
  })

  it("a bad field is named with what was expected and what was given; every bad field is listed", () => {
    const message = errorOf(() => decodeConfig("d.yaml", "gc:\n  highWatermark: x\nlimits:\n  download: fast\nport: 70000\n", DAEMON_OPTIONS))
    expect(message).toContain(`d.yaml: gc.highWatermark: expected a number between 0 and 1, got "x"`)
    expect(message).toContain(`d.yaml: limits.download: expected a rate in bytes per second, like 100MiB/s, got "fast"`)
    expect(message).toContain("d.yaml: port: expected a port number between 1 and 65535, got 70000")
    expect(errorOf(() => decodeConfig("d.yaml", "gc:\n  hihgWatermark: 0.5\n", DAEMON_OPTIONS)))
      .toMatch(/^d\.yaml: gc\.hihgWatermark: unknown option \(expected one of: interval, ttl, quota, highWatermark/)
    expect(errorOf(() => decodeConfig("d.yaml", "gc: 3\n", DAEMON_OPTIONS))).toMatch(/^d\.yaml: gc: expected a mapping of interval, ttl/)
    expect(errorOf(() => decodeConfig("d.yaml", "schedulers: [ftp://x]\n", DAEMON_OPTIONS)))
      .toBe(`d.yaml: schedulers: expected a list of http(s) URLs, got ["ftp://x"]`)
    expect(errorOf(() => decodeConfig("d.yaml", "port: [1\n", DAEMON_OPTIONS))).toMatch(/^d\.yaml: not valid YAML/)
    expect(errorOf(() => decodeConfig("d.yaml", "controlFrom: [10.0.0.0/33]\n", DAEMON_OPTIONS)))
      .toBe(`d.yaml: controlFrom: expected IP addresses or CIDR blocks (10.0.0.0/8), or "any", got ["10.0.0.0/33"]`)
    // Each field alone is fine, but together they contradict: named too.
    expect(errorOf(() => daemonOptionsFrom(decodeConfig("d.yaml", "data: /d\ngc:\n  highWatermark: 0.5\n  lowWatermark: 0.6\n", DAEMON_OPTIONS))))
      .toBe("gc.lowWatermark: expected at most gc.highWatermark (0.5), got 0.6")
    expect(errorOf(() => daemonOptionsFrom(decodeConfig("d.yaml", "port: 1\n", DAEMON_OPTIONS)))).toMatch(/^data: required/)
  })

  it("flags are checked by name and override the file", () => {
    const file = decodeConfig("d.yaml", "data: /d\nport: 7000\nlimits:\n  upload: 1MiB/s\ngc:\n  ttl: 1h\n", DAEMON_OPTIONS)
    const flags = flagValues(DAEMON_OPTIONS, { port: Option.none(), "host-id": Option.some("h"), "upload-limit": "2MiB/s", scheduler: ["http://a:1,http://b:2"] })
    const o = daemonOptionsFrom(mergeValues(file, flags))
    expect(o).toMatchObject({ data: "/d", port: 7000, uploadBandwidth: 2 * MiB, hostId: "h", schedulers: ["http://a:1", "http://b:2"], gc: { ttlMillis: 3600_000 } })
    expect(errorOf(() => flagValues(DAEMON_OPTIONS, { "gc-high-watermark": "x" }))).toBe(`--gc-high-watermark: expected a number between 0 and 1, got "x"`)
    const control = daemonOptionsFrom(mergeValues(decodeConfig("d.yaml", "data: /d\ncontrolToken: t\ncontrolFrom: [192.168.1.0/24]\n", DAEMON_OPTIONS),
      flagValues(DAEMON_OPTIONS, { "control-from": ["10.0.0.1,fd00::/64", "any"] })))
    expect(control).toMatchObject({ controlToken: "t", controlFrom: ["10.0.0.1", "fd00::/64", "any"] })
    expect(errorOf(() => flagValues(DAEMON_OPTIONS, { "control-from": ["localhost"] }))).toBe(`--control-from: expected IP addresses or CIDR blocks (10.0.0.0/8), or "any", got "localhost"`)
  })
})

describe("config files on real processes", () => {
  it("daemon: runs from a file; a flag overrides it; a bad field stops it with the field named", async () => {
    const filePort = await freePort()
    const flagPort = await freePort()
    const schedulerPort = await freePort()
    const file = path.join(dir, "daemon.yaml")
    await writeFile(file, [
      `port: ${filePort}`,
      `data: ${path.join(dir, "data")}`,
      `schedulers: [http://127.0.0.1:${schedulerPort}]`,
      "hostId: from-file",
      "idc: file-idc",
      "gc:",
      "  ttl: 1h"
    ].join("\n"))
    const fromFile = damselfly("daemon-file", ["daemon", "--config", file])
    await waitHealthy(`http://127.0.0.1:${filePort}`, fromFile)
    expect((await getJson(`http://127.0.0.1:${filePort}/healthy`)).body.hostId).toBe("from-file")
    fromFile.child.kill("SIGTERM")
    await fromFile.exited

    const overridden = damselfly("daemon-flag", ["daemon", "--config", file, "--port", String(flagPort), "--host-id", "from-flag"])
    await waitHealthy(`http://127.0.0.1:${flagPort}`, overridden)
    const health = (await getJson(`http://127.0.0.1:${flagPort}/healthy`)).body
    expect(health.hostId).toBe("from-flag")
    expect(health.schedulers.map((s: { url: string }) => s.url)).toEqual([`http://127.0.0.1:${schedulerPort}`])

    const bad = path.join(dir, "bad.yaml")
    await writeFile(bad, `data: ${path.join(dir, "data2")}\ngc:\n  highWatermark: "x"\n`)
    const refused = damselfly("daemon-bad", ["daemon", "--config", bad, "--port", String(await freePort())])
    expect(await refused.exited).toBe(2)
    expect(refused.stderr()).toContain(`gc.highWatermark: expected a number between 0 and 1, got "x"`)
    const badFlag = damselfly("daemon-bad-flag", ["daemon", "--data", path.join(dir, "data3"), "--download-limit", "fast"])
    expect(await badFlag.exited).toBe(2)
    expect(badFlag.stderr()).toContain(`--download-limit: expected a rate in bytes per second, like 100MiB/s, got "fast"`)
    const missing = damselfly("daemon-missing", ["daemon", "--config", path.join(dir, "nope.yaml")])
    expect(await missing.exited).toBe(2)
    expect(missing.stderr()).toMatch(/--config: cannot read .*nope\.yaml.*ENOENT/)
  }, 90_000)

  it("scheduler: runs from a file, and the flag wins", async () => {
    const filePort = await freePort()
    const flagPort = await freePort()
    const file = path.join(dir, "scheduler.yaml")
    await writeFile(file, `port: ${filePort}\nlisten: 127.0.0.1\n`)
    const s = damselfly("scheduler-flag", ["scheduler", "--config", file, "--port", String(flagPort)])
    await waitHealthy(`http://127.0.0.1:${flagPort}`, s)
    expect((await getJson(`http://127.0.0.1:${flagPort}/healthy`)).body.ok).toBe(true)
    await writeFile(file, "port: eighty\n")
    const bad = damselfly("scheduler-bad", ["scheduler", "--config", file])
    expect(await bad.exited).toBe(2)
    expect(bad.stderr()).toContain(`port: expected a port number between 1 and 65535, got "eighty"`)
  }, 60_000)
})
