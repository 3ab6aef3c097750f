// Bandwidth limits on real processes (runtime/bandwidth.ts). Each test asserts only a lower bound on
// the time a transfer takes — the limiter must hold the rate down — never an upper bound, so a loaded
// machine cannot make them fail. The seed limits back-to-source, the daemon limits downloads from peers
// and uploads to them; each limit is exercised where no other one is in the way.
import { mkdtemp, rm } from "node:fs/promises"
import { tmpdir } from "node:os"
import * as path from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { type Cluster, startCluster, taskIdFor } from "../runtime/testing/cluster.ts"
import { assertSound, getJson, killAll, type Origin, rawRequest, sha256File, startOrigin } from "../runtime/testing/harness.ts"

const MiB = 1024 * 1024
const SIZE = 32 * MiB
const PIECE = 4 * MiB
const LIMIT = 8 * MiB
/** 32 MiB at 8 MiB/s is 4 s; the bucket's 100 ms burst and timer slack leave at least this. */
const AT_LEAST_SECONDS = 3.5

let dir: string
let origin: Origin
let cluster: Cluster

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), "damselfly-limits-"))
  origin = await startOrigin(dir, SIZE)
  cluster = await startCluster({
    dir,
    daemons: 1,
    seedArgs: ["--back-to-source-limit", "8MiB/s"],
    daemonArgs: ["--download-limit", "8MiB/s", "--upload-limit", String(LIMIT)]
  })
}, 120_000)

afterAll(async () => {
  await killAll()
  await origin?.close()
  await rm(dir, { recursive: true, force: true })
})

const download = async (base: string, name: string) => {
  const output = path.join(dir, `${name}.bin`)
  const started = performance.now()
  const r = await rawRequest(base, {
    method: "POST",
    path: "/v1/download",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ url: origin.url, output, pieceLength: PIECE }),
    timeoutMillis: 120_000
  })
  const seconds = (performance.now() - started) / 1000
  expect(r.status, r.text).toBe(200)
  expect(await sha256File(output)).toBe(origin.sha256)
  return { seconds, result: r.json }
}

describe("bandwidth limits", () => {
  it("back-to-source: a seed limited to 8 MiB/s takes at least 3.5 s for 32 MiB from the origin", async () => {
    const { seconds, result } = await download(cluster.seed.url, "seed")
    console.log(`[limits] seed back-to-source 32 MiB at 8 MiB/s: ${seconds.toFixed(2)} s, ${result.bytesFromOrigin} bytes from the origin`)
    expect(result.bytesFromOrigin).toBe(SIZE)
    expect(seconds).toBeGreaterThanOrEqual(AT_LEAST_SECONDS)
  }, 120_000)

  it("download: a daemon limited to 8 MiB/s takes at least 3.5 s for 32 MiB from an unlimited peer", async () => {
    const daemon = cluster.daemons[0]
    const { seconds, result } = await download(daemon.url, "daemon")
    console.log(`[limits] daemon download 32 MiB at 8 MiB/s from the seed: ${seconds.toFixed(2)} s`)
    // Every byte came from the seed (which holds the task complete), so only the download limit applies.
    expect(result.bytesFromPeers).toBe(SIZE)
    expect(seconds).toBeGreaterThanOrEqual(AT_LEAST_SECONDS)
    // The piece timer saw the peer pieces.
    const metrics = (await rawRequest(daemon.url, { path: "/metrics" })).text
    const count = /damselfly_piece_duration_seconds_count\{[^}]*type="peer"[^}]*\} (\d+)/.exec(metrics)
    expect(Number(count?.[1])).toBe(SIZE / PIECE)
  }, 120_000)

  it("upload: 8 pieces asked at once of a daemon limited to 8 MiB/s take at least 3.5 s", async () => {
    const daemon = cluster.daemons[0]
    const taskId = taskIdFor(origin.url, PIECE)
    const started = performance.now()
    const replies = await Promise.all(Array.from({ length: SIZE / PIECE }, (_, i) =>
      rawRequest(daemon.url, { path: `/v1/tasks/${taskId}/pieces/${i}`, timeoutMillis: 60_000 })))
    const seconds = (performance.now() - started) / 1000
    console.log(`[limits] 8 × 4 MiB pieces from a daemon limited to 8 MiB/s upload: ${seconds.toFixed(2)} s`)
    for (const r of replies) expect(r.status).toBe(200)
    expect(seconds).toBeGreaterThanOrEqual(AT_LEAST_SECONDS)
    expect((await getJson(`${daemon.url}/healthy`)).body.ok).toBe(true)
    assertSound(daemon.proc)
    assertSound(cluster.seed.proc)
  }, 120_000)
})
