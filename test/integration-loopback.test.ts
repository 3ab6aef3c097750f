// End to end on loopback with real processes: one scheduler, one seed daemon, four daemons, four
// concurrent `damselfly get`s. The origin should send about one copy of the content in total.
import { mkdtemp, rm } from "node:fs/promises"
import { tmpdir } from "node:os"
import * as path from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import {
  damselfly,
  freePort,
  getJson,
  killAll,
  type Origin,
  sha256File,
  startOrigin,
  waitFor,
  waitHealthy
} from "../runtime/testing/harness.ts"

const SIZE = 64 * 1024 * 1024
const DAEMONS = 4

let dir: string
let origin: Origin
let schedulerUrl: string
const daemonUrls: Array<string> = []

describe("damselfly on loopback", () => {
  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), "damselfly-it-"))
    origin = await startOrigin(dir, SIZE)
    const schedulerPort = await freePort()
    schedulerUrl = `http://127.0.0.1:${schedulerPort}`
    const scheduler = damselfly("scheduler", ["scheduler", "--port", String(schedulerPort)])
    const seedPort = await freePort()
    const seed = damselfly("seed", ["daemon", "--seed", "--port", String(seedPort), "--data", path.join(dir, "seed"), "--scheduler", schedulerUrl, "--host-id", "seed-0"])
    const daemons: Array<ReturnType<typeof damselfly>> = []
    for (let i = 0; i < DAEMONS; i++) {
      const port = await freePort()
      daemonUrls.push(`http://127.0.0.1:${port}`)
      daemons.push(damselfly(`daemon-${i}`, ["daemon", "--port", String(port), "--data", path.join(dir, `daemon-${i}`), "--scheduler", schedulerUrl, "--host-id", `peer-${i}`]))
    }
    await waitHealthy(schedulerUrl, scheduler)
    await waitHealthy(`http://127.0.0.1:${seedPort}`, seed)
    await Promise.all(daemonUrls.map((u, i) => waitHealthy(u, daemons[i])))
    await waitFor("the scheduler to know the seed host", async () => (await getJson(`${schedulerUrl}/healthy`)).body.seeds?.includes("seed-0"))
  }, 300_000)

  afterAll(async () => {
    await killAll()
    await origin?.close()
    if (dir !== undefined) await rm(dir, { recursive: true, force: true })
  })

  it("four concurrent gets through four daemons fetch about one copy from the origin", async () => {
    const started = Date.now()
    const gets = daemonUrls.map((daemon, i) =>
      damselfly(`get-${i}`, ["get", origin.url, "-O", path.join(dir, `out-${i}.bin`), "--daemon", daemon, "--digest", `sha256:${origin.sha256}`])
    )
    const codes = await Promise.all(gets.map((g) => g.exited))
    const seconds = (Date.now() - started) / 1000
    codes.forEach((code, i) => expect(code, `get-${i} failed: ${gets[i].stderr()}`).toBe(0))
    for (let i = 0; i < DAEMONS; i++) {
      expect(await sha256File(path.join(dir, `out-${i}.bin`))).toBe(origin.sha256)
      expect(JSON.parse(gets[i].stdout()).via).toBe("daemon")
    }
    const copies = origin.bytesSent() / SIZE
    console.log(`64 MiB to ${DAEMONS} daemons: origin sent ${copies.toFixed(2)} copies in ${seconds.toFixed(1)} s; per get: ${gets.map((g) => g.stdout().trim()).join(" | ")}`)
    expect(copies).toBeLessThanOrEqual(1.5)
  }, 180_000)

  it("get downloads straight from the origin when no daemon answers", async () => {
    const deadPort = await freePort()
    const out = path.join(dir, "direct.bin")
    const get = damselfly("get-direct", ["get", origin.url, "-O", out, "--daemon", `http://127.0.0.1:${deadPort}`, "--digest", `sha256:${origin.sha256}`])
    expect(await get.exited, get.stderr()).toBe(0)
    expect(JSON.parse(get.stdout()).via).toBe("origin")
    expect(await sha256File(out)).toBe(origin.sha256)
  }, 120_000)

  it("get fails clearly when the digest does not match", async () => {
    const deadPort = await freePort()
    const get = damselfly("get-bad", ["get", origin.url, "-O", path.join(dir, "bad.bin"), "--daemon", `http://127.0.0.1:${deadPort}`, "--digest", `sha256:${"0".repeat(64)}`])
    expect(await get.exited).not.toBe(0)
    expect(get.stderr()).toMatch(/digest mismatch/)
  }, 120_000)
})
