// The real scheduler runs a named core strategy: `damselfly scheduler --strategy damselfly` hands out
// stripe-tree parents, daemons started with the same --strategy follow them, and four concurrent gets
// through four daemons cost the origin about one copy. A bad strategy name is refused, naming the flag.
import { describe, expect, it } from "vitest"
import { damselfly, freePort, getJson } from "../runtime/testing/harness.ts"
import { expectDeliveredByDaemons, getThroughEach, useClusterWithOrigin } from "./fixtures/gets.ts"
import { useWorkspace } from "./fixtures/workspace.ts"

const SIZE = 48 * 1024 * 1024

const ws = useWorkspace("damselfly-strategy-")
const running = useClusterWithOrigin(ws, { size: SIZE, daemons: 4, args: ["--strategy", "damselfly"] })

describe("the scheduler and daemons with --strategy damselfly", () => {
  it("says which strategy it runs", async () => {
    expect((await getJson(`${running.cluster.scheduler.url}/healthy`)).body.strategy).toBe("damselfly")
  })

  it("four concurrent gets verify and cost the origin about one copy", async () => {
    const { origin, cluster } = running
    await expectDeliveredByDaemons(await getThroughEach(cluster.daemons, origin, ws.dir), origin)
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
