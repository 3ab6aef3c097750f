// A URL task's id includes its piece length, and the piece length is the strategy's. A daemon started
// without --strategy takes its schedulers' (from their /healthy) on its first announcement, so it cuts
// tasks as the rest of a damselfly cluster does and fetches from its peers; an explicit flag wins.
import * as path from "node:path"
import { expect, it } from "vitest"
import { strategyPieceLength } from "../core/strategies.ts"
import { getJson, httpJson, spawnDaemon, spawnScheduler, startScheduler, waitHealthy } from "../runtime/testing/harness.ts"
import { useWorkspace } from "./fixtures/workspace.ts"

const ws = useWorkspace("damselfly-strategy-learned-")
const MiB = 1024 * 1024
const SIZE = 24 * MiB

it("a daemon without --strategy runs its schedulers' strategy; one with the flag keeps it", async () => {
  // The point of the test: these two strategies cut this file differently.
  expect(strategyPieceLength("damselfly", SIZE)).not.toBe(strategyPieceLength("dragonfly", SIZE))
  const origin = await ws.origin(SIZE)
  const scheduler = await startScheduler("scheduler", ["--strategy", "damselfly"])
  const start = (name: string, args: Array<string>) =>
    spawnDaemon(name, { data: path.join(ws.dir, name), schedulers: scheduler.url, hostId: name, args })
  const seeded = await start("seeded", ["--strategy", "damselfly"])
  const learner = await start("learner", [])
  const pinned = await start("pinned", ["--strategy", "dragonfly"])
  for (const d of [seeded, learner, pinned]) await waitHealthy(d.url, d.proc)
  // Learned before the daemon serves anything: its first answer already runs the schedulers' strategy.
  expect((await getJson(`${learner.url}/healthy`)).body).toMatchObject({ strategy: "damselfly", strategyFrom: "scheduler" })
  expect((await getJson(`${pinned.url}/healthy`)).body).toMatchObject({ strategy: "dragonfly", strategyFrom: "flag" })

  const download = (d: { url: string }, name: string) =>
    httpJson(`${d.url}/v1/download`, { method: "POST", body: JSON.stringify({ url: origin.url, output: path.join(ws.dir, "out", `${name}.bin`) }), timeoutMillis: 120_000 })
  const first = await download(seeded, "seeded")
  expect(first.status, JSON.stringify(first.body)).toBe(200)
  const second = await download(learner, "learner")
  expect(second.status, JSON.stringify(second.body)).toBe(200)
  expect(second.body.taskId).toBe(first.body.taskId)
  expect(second.body.bytesFromPeers).toBe(SIZE)
  const pieces = await getJson(`${learner.url}/v1/downloads/${second.body.taskId}/pieces`)
  expect(pieces.body.pieceLength).toBe(strategyPieceLength("damselfly", SIZE))
  const third = await download(pinned, "pinned")
  expect(third.status, JSON.stringify(third.body)).toBe(200)
  expect(third.body.taskId).not.toBe(first.body.taskId)
}, 180_000)

it("a scheduler restarted with another strategy is asked again; a flag still wins", async () => {
  const first = await spawnScheduler("scheduler-a", ["--strategy", "damselfly"])
  await waitHealthy(first.url, first.proc)
  const start = (name: string, args: Array<string>) =>
    spawnDaemon(name, { data: path.join(ws.dir, name), schedulers: first.url, hostId: name, args })
  const learner = await start("relearner", [])
  const pinned = await start("pinned-again", ["--strategy", "damselfly"])
  for (const d of [learner, pinned]) await waitHealthy(d.url, d.proc)
  expect((await getJson(`${learner.url}/healthy`)).body).toMatchObject({ strategy: "damselfly", strategyFrom: "scheduler" })
  // The scheduler goes away and comes back on the same address running Dragonfly's strategy (a new epoch).
  const exited = new Promise((resolve) => first.proc.child.once("exit", resolve))
  first.proc.child.kill("SIGTERM")
  await exited
  const second = await spawnScheduler("scheduler-b", ["--strategy", "dragonfly"], { port: first.port })
  await waitHealthy(second.url, second.proc)
  // An idle daemon announces every 30 s; the first announcement after the restart carries the new epoch.
  const deadline = Date.now() + 75_000
  let seen: unknown
  while (Date.now() < deadline) {
    seen = (await getJson(`${learner.url}/healthy`)).body
    if ((seen as { strategy?: string }).strategy === "dragonfly") break
    await new Promise((r) => setTimeout(r, 250))
  }
  expect(seen).toMatchObject({ strategy: "dragonfly", strategyFrom: "scheduler" })
  expect((await getJson(`${pinned.url}/healthy`)).body).toMatchObject({ strategy: "damselfly", strategyFrom: "flag" })
}, 150_000)
