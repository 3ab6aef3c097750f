// Throughput check: one daemon fetching 64 MiB back-to-source vs a plain streamed HTTP download of the
// same file. Run: npx tsx runtime/testing/bench-throughput.ts [daemon flags…]
import { mkdtemp, rm } from "node:fs/promises"
import { tmpdir } from "node:os"
import * as path from "node:path"
import { downloadDirect } from "../get.ts"
import { damselfly, freePort, killAll, postRaw, startOrigin, waitHealthy } from "./harness.ts"

const SIZE = 64 * 1024 * 1024
const dir = await mkdtemp(path.join(tmpdir(), "damselfly-bench-"))
const origin = await startOrigin(dir, SIZE)
try {
  const schedulerUrl = `http://127.0.0.1:${await freePort()}`
  damselfly("scheduler", ["scheduler", "--port", new URL(schedulerUrl).port])
  const daemonUrl = `http://127.0.0.1:${await freePort()}`
  damselfly("daemon", ["daemon", "--port", new URL(daemonUrl).port, "--data", path.join(dir, "d"), "--scheduler", schedulerUrl, ...process.argv.slice(2)])
  await waitHealthy(schedulerUrl)
  await waitHealthy(daemonUrl)
  let t0 = Date.now()
  const reply = await postRaw(`${daemonUrl}/v1/download`, JSON.stringify({ url: origin.url, output: path.join(dir, "via-daemon") }))
  const daemonMs = Date.now() - t0
  if (reply.status !== 200) throw new Error(JSON.stringify(reply))
  t0 = Date.now()
  await downloadDirect(origin.url, path.join(dir, "direct"), undefined)
  const directMs = Date.now() - t0
  const mbps = (ms: number) => (SIZE / 1024 / 1024 / (ms / 1000)).toFixed(0)
  console.log(`daemon ${daemonMs} ms (${mbps(daemonMs)} MiB/s), direct ${directMs} ms (${mbps(directMs)} MiB/s), ratio ${(directMs / daemonMs).toFixed(2)}`)
} finally {
  await killAll()
  await origin.close()
  await rm(dir, { recursive: true, force: true })
}
