// The real scheduler runs a named core strategy: `damselfly scheduler --strategy damselfly` hands out
// stripe-tree parents, daemons started with the same --strategy follow them, and four concurrent gets
// through four daemons cost the origin about one copy. A bad strategy name is refused, naming the flag.
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

const SIZE = 48 * 1024 * 1024
const DAEMONS = 4

let dir: string
let origin: Origin
let schedulerUrl: string
const daemonUrls: Array<string> = []

describe("the scheduler and daemons with --strategy damselfly", () => {
  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), "damselfly-strategy-"))
    origin = await startOrigin(dir, SIZE)
    const schedulerPort = await freePort()
    schedulerUrl = `http://127.0.0.1:${schedulerPort}`
    const scheduler = damselfly("scheduler", ["scheduler", "--port", String(schedulerPort), "--strategy", "damselfly"])
    const seedPort = await freePort()
    const common = ["--scheduler", schedulerUrl, "--strategy", "damselfly"]
    const seed = damselfly("seed", ["daemon", "--seed", "--port", String(seedPort), "--data", path.join(dir, "seed"), "--host-id", "seed-0", ...common])
    const daemons: Array<ReturnType<typeof damselfly>> = []
    for (let i = 0; i < DAEMONS; i++) {
      const port = await freePort()
      daemonUrls.push(`http://127.0.0.1:${port}`)
      daemons.push(damselfly(`daemon-${i}`, ["daemon", "--port", String(port), "--data", path.join(dir, `daemon-${i}`), "--host-id", `peer-${i}`, ...common]))
    }
    // Generous: six Node processes starting at once on a small shared machine.
    await waitHealthy(schedulerUrl, scheduler, 120_000)
    await waitHealthy(`http://127.0.0.1:${seedPort}`, seed, 120_000)
    await Promise.all(daemonUrls.map((u, i) => waitHealthy(u, daemons[i], 120_000)))
    await waitFor("the scheduler to know the seed host", async () => (await getJson(`${schedulerUrl}/healthy`)).body.seeds?.includes("seed-0"))
  }, 300_000)

  afterAll(async () => {
    await killAll()
    await origin?.close()
    if (dir !== undefined) await rm(dir, { recursive: true, force: true })
  })

  it("says which strategy it runs", async () => {
    expect((await getJson(`${schedulerUrl}/healthy`)).body.strategy).toBe("damselfly")
  })

  it("four concurrent gets verify and cost the origin about one copy", async () => {
    const gets = daemonUrls.map((daemon, i) =>
      damselfly(`get-${i}`, ["get", origin.url, "-O", path.join(dir, `out-${i}.bin`), "--daemon", daemon, "--digest", `sha256:${origin.sha256}`])
    )
    const codes = await Promise.all(gets.map((g) => g.exited))
    codes.forEach((code, i) => expect(code, `get-${i} failed: ${gets[i].stderr()}`).toBe(0))
    for (let i = 0; i < DAEMONS; i++) {
      expect(await sha256File(path.join(dir, `out-${i}.bin`))).toBe(origin.sha256)
      expect(JSON.parse(gets[i].stdout()).via).toBe("daemon")
    }
    const copies = origin.bytesSent() / SIZE
    expect(copies).toBeLessThanOrEqual(1.1)
  }, 180_000)

  it("refuses an unknown strategy, naming the flag", async () => {
    const port = await freePort()
    const bad = damselfly("scheduler-bad", ["scheduler", "--port", String(port), "--strategy", "nonesuch"])
    expect(await bad.exited).not.toBe(0)
    expect(bad.stderr()).toMatch(/strategy/)
  }, 60_000)
})
