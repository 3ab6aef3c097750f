// `damselfly scheduler --origin-idc IDC`: with a strategy that seeds near the origin (damselfly), every
// task's seed is a seed host in the origin's IDC, so its back-to-source fetch crosses no WAN link — the
// same scheduler config the simulator's multi-IDC scenarios run (core/scheduler/config.ts deployedConfig).
// Without it the seed is chosen by task id, so over four tasks both seeds would almost surely be used.
import { createHash } from "node:crypto"
import * as path from "node:path"
import { Effect } from "effect"
import { expect, it } from "vitest"
import { Sha256 } from "../core/services/sha256.ts"
import { taskIdOf } from "../core/task-id.ts"
import { damselfly, getJson, sha256File, spawnDaemon, startScheduler, waitFor, waitHealthy } from "../runtime/testing/harness.ts"
import { useWorkspace } from "./fixtures/workspace.ts"

const ws = useWorkspace("damselfly-origin-idc-")
const MiB = 1024 * 1024
// Four tasks of one URL (without a digest a task is URL × piece length), each above the 4 MiB direct-path limit.
const PIECE_LENGTHS = [512 * 1024, 1 * MiB, 2 * MiB, 4 * MiB]
const sha = Sha256.of({ hex: (d) => createHash("sha256").update(d).digest("hex") })

it("every task's seed is the seed host in the origin's IDC", async () => {
  const origin = await ws.origin(9 * MiB)
  const scheduler = await startScheduler("scheduler", ["--strategy", "damselfly", "--origin-idc", "east"])
  expect((await getJson(`${scheduler.url}/healthy`)).body.originIdc).toBe("east")
  const common = { dir: ws.dir, schedulers: scheduler.url }
  const nodes = [
    await spawnDaemon("seed-west", { ...common, seed: true, hostId: "seed-west", args: ["--strategy", "damselfly", "--idc", "west"] }),
    await spawnDaemon("seed-east", { ...common, seed: true, hostId: "seed-east", args: ["--strategy", "damselfly", "--idc", "east"] }),
    await spawnDaemon("peer-west", { ...common, hostId: "peer-west", args: ["--strategy", "damselfly", "--idc", "west"] })
  ]
  for (const n of nodes) await waitHealthy(n.url, n.proc, 120_000)
  await waitFor("both seeds announced", async () => (await getJson(`${scheduler.url}/healthy`)).body.seeds?.length === 2)

  for (const pieceLength of PIECE_LENGTHS) {
    const out = path.join(ws.dir, `out-${pieceLength}.bin`)
    const get = damselfly(`get-${pieceLength}`, ["get", origin.url, "-O", out, "--daemon", nodes[2].url, "--piece-length", String(pieceLength), "--no-progress"])
    expect(await get.exited, get.stderr()).toBe(0)
    expect(await sha256File(out)).toBe(origin.sha256)
    const taskId = Effect.runSync(Effect.provideService(taskIdOf({ url: origin.url, pieceLength }), Sha256, sha))
    const task = (await getJson(`${scheduler.url}/v1/tasks/${taskId}`)).body
    const seeds = task.peers.filter((p: { hostId: string }) => p.hostId.startsWith("seed-")).map((p: { hostId: string }) => p.hostId)
    expect(seeds, `task ${taskId} (piece length ${pieceLength})`).toEqual(["seed-east"])
  }
}, 300_000)
