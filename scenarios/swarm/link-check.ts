// Does an emulated link carry its rate when the machine is busy? One shaped link (origin → h00, tbf as in
// the swarm benchmark), one curl download over it, for each tbf bucket size, on a quiet machine and with
// CPU hogs at the benchmark's niceness standing in for the swarm's daemons. A link that delivers less
// under load is an artefact of the emulation (a real NIC is not slowed by the host's CPU), so the swarm
// benchmark's bucket must be one that holds the rate here. Needs root.
//
//   npx tsx scenarios/swarm/link-check.ts [--buckets 10,25,40] [--size-mib 64] [--rate-mbit 100]
//     [--hogs 2] [--crowd 0] [--nice -10] [--runs 2] [--pattern one|bidir|two] [--prefix lchk --subnet 10.78.0]
import { type ChildProcess, execFileSync, spawn } from "node:child_process"
import { randomBytes } from "node:crypto"
import { promises as fs } from "node:fs"
import { tmpdir } from "node:os"
import * as path from "node:path"
import { applyHostSettings } from "./host-settings.ts"
import { Topology } from "./netns.ts"

const REPO = path.resolve(import.meta.dirname, "../..")
const ORIGIN_SERVER = path.join(import.meta.dirname, "origin-server.ts")
const PORT = 8080
const MiB = 1024 * 1024

const args = process.argv.slice(2)
const value = (name: string, fallback: string): string => {
  const i = args.indexOf(name)
  if (i < 0) return fallback
  const v = args[i + 1]
  if (v === undefined || v.startsWith("--")) throw new Error(`${name}: expected a value`)
  return v
}
const int = (name: string, fallback: number, min: number): number => {
  const raw = value(name, String(fallback))
  const n = Number(raw)
  if (!Number.isInteger(n) || n < min) throw new Error(`${name}: expected an integer ≥ ${min}, got ${JSON.stringify(raw)}`)
  return n
}
const buckets = value("--buckets", "10,25,40").split(",").map((s) => {
  const n = Number(s)
  if (!Number.isFinite(n) || n <= 0) throw new Error(`--buckets: expected positive milliseconds, got ${JSON.stringify(s)}`)
  return n
})
const sizeMiB = int("--size-mib", 64, 1)
const rateMbit = int("--rate-mbit", 100, 1)
const hogs = int("--hogs", 2, 0)
const runs = int("--runs", 2, 1)
const niceness = Number(value("--nice", "-10"))
const prefix = value("--prefix", "lchk")
/** Other shaped links kept busy meanwhile (pairs of namespaces sending each other the file in a loop, both
 *  ways): the packet work a swarm gives the kernel (veth, bridge, every tbf's dequeue timer), without which
 *  CPU load alone does not delay tbf. Used in the loaded runs only. */
const crowd = int("--crowd", 0, 0)
/** one: a single download; bidir: the same while h00's uplink is saturated by a download from h00 (its ACKs
 *  queue behind that data, as a relay's do); two: two downloads at once on the link. */
const pattern = value("--pattern", "one")
if (!["one", "bidir", "two"].includes(pattern)) throw new Error(`--pattern: expected one, bidir or two, got ${JSON.stringify(pattern)}`)
const subnet = value("--subnet", "10.78.0")
if (process.getuid?.() !== 0) throw new Error("link-check needs root (network namespaces, tc)")

/** A busy loop at the benchmark's niceness: the daemons' CPU demand, without their packets. */
const startHog = (): ChildProcess =>
  spawn("nice", ["-n", String(niceness), process.execPath, "-e", "for(;;){}"], { stdio: "ignore", detached: true })

const measure = async (bucketMillis: number, blob: string, loaded: boolean): Promise<number> => {
  const topo = new Topology(prefix, subnet, niceness, {}, bucketMillis)
  const hogProcs: Array<ChildProcess> = []
  try {
    const others = loaded ? Array.from({ length: 2 * crowd }, (_, i) => `b${String(i).padStart(2, "0")}`) : []
    topo.create([
      { name: "origin", octet: 1, upMbit: rateMbit, downMbit: rateMbit },
      { name: "h00", octet: 11, upMbit: rateMbit, downMbit: rateMbit },
      ...others.map((name, i) => ({ name, octet: 100 + i, upMbit: rateMbit, downMbit: rateMbit }))
    ])
    for (const b of others) topo.spawnIn(b, process.execPath, ["--import", "tsx", ORIGIN_SERVER, blob, topo.node(b).ip, String(PORT), "0"], { cwd: REPO })
    if (others.length > 0) await new Promise((r) => setTimeout(r, 1_500))
    for (let i = 0; i < others.length; i++) {
      const peer = topo.node(others[i ^ 1]!).ip // b00 <-> b01, b02 <-> b03, …
      hogProcs.push(spawn("ip", ["netns", "exec", topo.node(others[i]!).ns, "nice", "-n", String(niceness), "sh", "-c", `while true; do curl -s -o /dev/null http://${peer}:${PORT}/blob; done`], { stdio: "ignore", detached: true }))
    }
    const origin = topo.node("origin").ip
    topo.spawnIn("origin", process.execPath, ["--import", "tsx", ORIGIN_SERVER, blob, origin, String(PORT), "0"], { cwd: REPO })
    const h00 = topo.node("h00").ip
    if (pattern === "bidir") topo.spawnIn("h00", process.execPath, ["--import", "tsx", ORIGIN_SERVER, blob, h00, String(PORT), "0"], { cwd: REPO })
    for (let i = 0; i < 100; i++) {
      try {
        execFileSync("ip", ["netns", "exec", topo.node("h00").ns, "curl", "-sS", "-o", "/dev/null", "-r", "0-0", `http://${origin}:${PORT}/blob`], { stdio: "pipe" })
        break
      } catch {
        await new Promise((r) => setTimeout(r, 100))
      }
    }
    if (loaded) for (let i = 0; i < hogs; i++) hogProcs.push(startHog())
    if (pattern === "bidir") {
      await new Promise((r) => setTimeout(r, 1_000)) // h00's server up
      // Loops until killed: h00's uplink stays full for the whole measured download.
      hogProcs.push(spawn("ip", ["netns", "exec", topo.node("origin").ns, "sh", "-c", `while true; do curl -s -o /dev/null http://${h00}:${PORT}/blob; done`], { stdio: "ignore", detached: true }))
      await new Promise((r) => setTimeout(r, 500))
    }
    const curl = (range: string) =>
      new Promise<string>((resolve, reject) => {
        const c = spawn("ip", ["netns", "exec", topo.node("h00").ns, "nice", "-n", String(niceness), "curl", "-sS", "-o", "/dev/null", ...(range === "" ? [] : ["-r", range]), "-w", "%{size_download}", `http://${origin}:${PORT}/blob`])
        let out = ""
        c.stdout.on("data", (d: Buffer) => (out += d.toString()))
        c.on("exit", (code) => (code === 0 ? resolve(out) : reject(new Error(`curl exited ${code}`))))
      })
    const half = (sizeMiB * MiB) / 2
    const started = performance.now()
    const sizes = pattern === "two" ? await Promise.all([curl(`0-${half - 1}`), curl(`${half}-`)]) : [await curl("")]
    const seconds = (performance.now() - started) / 1000
    const bytes = sizes.reduce((a, s) => a + Number(s), 0)
    if (bytes !== sizeMiB * MiB) throw new Error(`curl got ${bytes} bytes, expected ${sizeMiB * MiB}`)
    return (bytes * 8) / seconds / 1e6
  } finally {
    for (const h of hogProcs) {
      try {
        process.kill(-h.pid!, "SIGKILL")
      } catch {}
    }
    await topo.stopAll(1_000)
    topo.destroySync()
  }
}

const host = applyHostSettings("cubic")
const dir = await fs.mkdtemp(path.join(tmpdir(), `${prefix}-`))
try {
  await fs.chmod(dir, 0o755)
  const blob = path.join(dir, "blob.bin")
  await fs.writeFile(blob, randomBytes(sizeMiB * MiB))
  console.log(`one ${rateMbit} Mbit/s tbf link (queue as in the swarm benchmark), ${sizeMiB} MiB by curl (${pattern}), ${runs} run(s) each; loaded = ${hogs} busy loop(s) at nice ${niceness} and ${crowd} other pair(s) of links busy both ways`)
  console.log("\n| tbf bucket ms | quiet Mbit/s (payload) | loaded Mbit/s (payload) |\n|---|---|---|")
  for (const b of buckets) {
    const quiet: Array<string> = []
    const loaded: Array<string> = []
    for (let r = 0; r < runs; r++) {
      quiet.push((await measure(b, blob, false)).toFixed(1))
      loaded.push((await measure(b, blob, true)).toFixed(1))
    }
    console.log(`| ${b} | ${quiet.join(", ")} | ${loaded.join(", ")} |`)
  }
} finally {
  host.restore()
  execFileSync("rm", ["-rf", dir])
}
