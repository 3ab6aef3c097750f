// End to end on loopback with real processes: one scheduler, one seed daemon, four daemons, four
// concurrent `damselfly get`s. The origin should send about one copy of the content in total.
import * as path from "node:path"
import { describe, expect, it } from "vitest"
import { damselfly, freePort, sha256File } from "../runtime/testing/harness.ts"
import { expectDeliveredByDaemons, getThroughEach, useClusterWithOrigin } from "./fixtures/gets.ts"
import { useWorkspace } from "./fixtures/workspace.ts"

const SIZE = 64 * 1024 * 1024
const DAEMONS = 4

const ws = useWorkspace("damselfly-it-")
const running = useClusterWithOrigin(ws, { size: SIZE, daemons: DAEMONS })

describe("damselfly on loopback", () => {
  it("four concurrent gets through four daemons fetch about one copy from the origin", async () => {
    const { origin, cluster } = running
    const r = await getThroughEach(cluster.daemons, origin, ws.dir)
    await expectDeliveredByDaemons(r, origin)
    const copies = origin.bytesSent() / SIZE
    console.log(`64 MiB to ${DAEMONS} daemons: origin sent ${copies.toFixed(2)} copies in ${r.seconds.toFixed(1)} s; per get: ${r.gets.map((g) => g.stdout().trim()).join(" | ")}`)
    expect(copies).toBeLessThanOrEqual(1.5)
  }, 180_000)

  it("get downloads straight from the origin when no daemon answers", async () => {
    const { origin } = running
    const deadPort = await freePort()
    const out = path.join(ws.dir, "direct.bin")
    const get = damselfly("get-direct", ["get", origin.url, "-O", out, "--daemon", `http://127.0.0.1:${deadPort}`, "--digest", `sha256:${origin.sha256}`])
    expect(await get.exited, get.stderr()).toBe(0)
    expect(JSON.parse(get.stdout()).via).toBe("origin")
    expect(await sha256File(out)).toBe(origin.sha256)
  }, 120_000)

  it("get fails clearly when the digest does not match", async () => {
    const { origin } = running
    const deadPort = await freePort()
    const get = damselfly("get-bad", ["get", origin.url, "-O", path.join(ws.dir, "bad.bin"), "--daemon", `http://127.0.0.1:${deadPort}`, "--digest", `sha256:${"0".repeat(64)}`])
    expect(await get.exited).not.toBe(0)
    expect(get.stderr()).toMatch(/digest mismatch/)
  }, 120_000)
})
