// Throughput check (issue #4): is peer-to-peer transfer fast enough not to matter? In one run, for the
// same file: `curl` straight from a local HTTP server into a file, then a daemon pulling it from one
// parent daemon (a seed, holding the task through `damselfly cache import`) into a file — every piece's
// sha256 checked by the downloading daemon, the output's sha256 checked here afterwards. Repeated N
// times (fresh task each time); prints MB/s of both, the ratio p2p/direct, and the median.
//
// Run: npx tsx runtime/testing/bench-throughput.ts [--size-mib 1024] [--runs 5] [--profile DIR] [--delete-direct] [--no-sync] [-- daemon flags…]
// --profile DIR writes V8 CPU profiles of both daemons (node --cpu-prof) into DIR/{parent,child}, and the
// p2p downloads' time windows (µs, the profiles' clock) into DIR/windows.json.
import { spawn, spawnSync } from "node:child_process"
import { randomFillSync } from "node:crypto"
import { createReadStream, promises as fs } from "node:fs"
import * as http from "node:http"
import type { AddressInfo } from "node:net"
import { loadavg, tmpdir } from "node:os"
import * as path from "node:path"
import { BIN, damselfly, freePort, killAll, postRaw, sha256File, waitHealthy } from "./harness.ts"
import { rangeOf, writeRangeHead } from "./range.ts"

const argv = process.argv.slice(2)
const flag = (name: string, fallback: string) => {
  const i = argv.indexOf(name)
  return i >= 0 && i + 1 < argv.length ? argv[i + 1]! : fallback
}
const dash = argv.indexOf("--")
const daemonFlags = dash >= 0 ? argv.slice(dash + 1) : []
const SIZE = Number(flag("--size-mib", "1024")) * 1024 * 1024
const RUNS = Number(flag("--runs", "5"))
const PROFILE = flag("--profile", "")
/**
 * Each run's direct download stays on disk until the end, as the daemon keeps what it downloaded in its
 * cache, so both sides write into new page-cache pages. --delete-direct removes it after each run (as
 * this bench did before; in measurements here it made no visible difference to curl).
 */
const DELETE_DIRECT = argv.includes("--delete-direct")
/**
 * Before each timed transfer, `sync`: dirty pages left by the previous phase (the parent's import, curl's
 * file, the last run's) are written back first, so neither side starts with the other's backlog. It did
 * not remove the occasional run where one side spends 1–3 CPU-s more in the kernel: perf put that time in
 * the copy into fresh page-cache pages (the same bytes, copied slower; see README), with or without the
 * reclaim and compaction stalls `kernelStalls` prints per run. --no-sync leaves the page cache alone.
 */
const SYNC = !argv.includes("--no-sync")
const settleDisk = () => {
  if (SYNC) spawnSync("sync", { stdio: "ignore" })
}

/**
 * Machine-wide counts of allocations that stalled to reclaim memory (allocstall_*) or to compact it
 * (compact_stall), from /proc/vmstat: whoever allocates pages then pays in system time, so a run whose
 * transfer saw many of them measured the machine's memory, not the data path.
 */
const kernelStalls = async () => {
  const text = await fs.readFile("/proc/vmstat", "utf8").catch(() => "")
  let reclaim = 0
  let compact = 0
  for (const line of text.split("\n")) {
    const [name, value] = line.split(" ")
    if (name?.startsWith("allocstall_")) reclaim += Number(value)
    else if (name === "compact_stall") compact += Number(value)
  }
  return { reclaim, compact }
}

const MB = 1e6
const median = (xs: ReadonlyArray<number>) => {
  const s = [...xs].sort((a, b) => a - b)
  return s.length % 2 === 1 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2
}

/** A plain static-file server (read stream per request, Range supported): the "direct" baseline. */
const startFileServer = async (file: string, size: number) => {
  const server = http.createServer((req, res) => {
    const span = writeRangeHead(res, rangeOf(req.headers.range, size), size)
    if (span === undefined) return
    if (req.method === "HEAD") return void res.end()
    createReadStream(file, { start: span.start, end: span.end, highWaterMark: 1024 * 1024 }).pipe(res)
  })
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r))
  return { base: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, close: () => new Promise<void>((r) => (server.closeAllConnections(), server.close(() => r()))) }
}

const TICK = 100 // USER_HZ: /proc/<pid>/stat counts CPU time in 1/100 s on Linux

/** CPU seconds (user + system) a process has used so far. */
const cpuOf = async (pid: number) => {
  const stat = await fs.readFile(`/proc/${pid}/stat`, "utf8")
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ")
  return (Number(fields[11]) + Number(fields[12])) / TICK
}

/** CPU seconds of each thread, by thread id, as [user, system] (Node 20 leaves its threads unnamed). */
const threadCpuOf = async (pid: number) => {
  const out = new Map<string, readonly [number, number]>()
  for (const tid of await fs.readdir(`/proc/${pid}/task`).catch(() => [] as Array<string>)) {
    const stat = await fs.readFile(`/proc/${pid}/task/${tid}/stat`, "utf8").catch(() => "")
    if (stat === "") continue
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ")
    out.set(tid, [Number(fields[11]) / TICK, Number(fields[12]) / TICK])
  }
  return out
}
/** One process's CPU seconds over a run, [user, system] each: main (JS) thread, busiest other, the rest. */
interface ThreadSplit {
  readonly main: readonly [number, number]
  readonly other: readonly [number, number]
  readonly rest: readonly [number, number]
}
/**
 * The main (JS) thread, the busiest other thread (in a downloading daemon, the piece hash thread:
 * runtime/piece-hash-thread.ts; in the parent, usually libuv's fs pool reading pieces) and all the rest
 * (libuv's fs pool, V8's GC helpers) over a run.
 */
const threadDelta = (pid: number, after: Map<string, readonly [number, number]>, before: Map<string, readonly [number, number]>): ThreadSplit => {
  const used = [...after].map(([tid, [u, s]]) => [tid, [u - (before.get(tid)?.[0] ?? 0), s - (before.get(tid)?.[1] ?? 0)] as const] as const)
  const main = used.find(([tid]) => tid === String(pid))?.[1] ?? [0, 0] as const
  const others = used.filter(([tid]) => tid !== String(pid)).map(([, v]) => v).sort((a, b) => b[0] + b[1] - a[0] - a[1])
  const rest = others.slice(1).reduce((a, b) => [a[0] + b[0], a[1] + b[1]] as const, [0, 0] as const)
  return { main, other: others[0] ?? [0, 0], rest }
}
const us = (x: readonly [number, number]) => `${(x[0] + x[1]).toFixed(2)} (${x[0].toFixed(2)}u+${x[1].toFixed(2)}s)`
const showSplit = (t: ThreadSplit) => `main ${us(t.main)}, busiest other ${us(t.other)}, rest ${us(t.rest)}`

/** curl into a file; resolves to curl's own CPU seconds (bash's `times` of its finished child). */
const curl = (url: string, output: string) =>
  new Promise<number>((resolve, reject) => {
    const script = 'curl --silent --show-error --fail --output "$1" "$2" && times'
    const child = spawn("bash", ["-c", script, "bash", output, url], { stdio: ["ignore", "pipe", "pipe"] })
    let out = ""
    let err = ""
    child.stdout.on("data", (c) => (out += c))
    child.stderr.on("data", (c) => (err += c))
    child.on("exit", (code) => {
      if (code !== 0) return reject(new Error(`curl exited ${code}: ${err}`))
      // `times` prints the shell's, then its children's, user and system time as NmS.SSSs.
      const secs = [...out.split("\n")[1]!.matchAll(/(\d+)m([\d.]+)s/g)].map((m) => Number(m[1]) * 60 + Number(m[2]))
      resolve(secs.reduce((a, b) => a + b, 0))
    })
  })

const dir = await fs.mkdtemp(path.join(tmpdir(), "damselfly-bench-"))
const file = path.join(dir, "blob.bin")
{
  const fh = await fs.open(file, "w")
  const chunk = Buffer.allocUnsafe(16 * 1024 * 1024)
  for (let written = 0; written < SIZE; written += chunk.length) {
    const n = Math.min(chunk.length, SIZE - written)
    randomFillSync(chunk, 0, n)
    await fh.write(chunk, 0, n)
  }
  await fh.close()
}
const expected = await sha256File(file)
const server = await startFileServer(file, SIZE)
/** Daemons spawned here with node flags (not through the harness, which would not pass them). */
const flagged: Array<import("node:child_process").ChildProcess> = []
try {
  const schedulerUrl = `http://127.0.0.1:${await freePort()}`
  damselfly("scheduler", ["scheduler", "--port", new URL(schedulerUrl).port])
  await waitHealthy(schedulerUrl)
  const parentUrl = `http://127.0.0.1:${await freePort()}`
  const parentArgs = ["daemon", "--port", new URL(parentUrl).port, "--data", path.join(dir, "parent"), "--scheduler", schedulerUrl, "--host-id", "parent", "--seed", ...daemonFlags]
  const childUrl = `http://127.0.0.1:${await freePort()}`
  const childArgs = ["daemon", "--port", new URL(childUrl).port, "--data", path.join(dir, "child"), "--scheduler", schedulerUrl, "--host-id", "child", ...daemonFlags]
  // --cpu-prof is refused in NODE_OPTIONS, so profiled daemons are spawned here with it as a node flag.
  const daemon = (name: string, args: ReadonlyArray<string>) => {
    if (PROFILE === "") return damselfly(name, args).child
    const p = spawn(process.execPath, [`--cpu-prof`, `--cpu-prof-dir=${path.resolve(PROFILE, name)}`, BIN, ...args], { stdio: "ignore" })
    flagged.push(p)
    return p
  }
  const parent = daemon("parent", parentArgs)
  const child = daemon("child", childArgs)
  await waitHealthy(parentUrl)
  await waitHealthy(childUrl)

  console.log(`size ${SIZE / 1024 / 1024} MiB, ${RUNS} runs, load average before: ${loadavg().map((x) => x.toFixed(2)).join(" ")}`)
  // CPU s: user + system seconds spent by curl and the file server (direct), by both daemons (p2p).
  console.log("run | direct MB/s | p2p MB/s | ratio | direct CPU s | p2p CPU s (parent + child) | load (1 min)")
  const rows: Array<{ direct: number; p2p: number; ratio: number; directCpu: number; parentCpu: number; childCpu: number }> = []
  /** The p2p downloads' [start, end] in µs of the monotonic clock V8's profiles use, to cut them out. */
  const windows: Array<[number, number]> = []
  const threadLines: Array<string> = []
  const splits: Array<{ parent: ThreadSplit; child: ThreadSplit }> = []
  for (let run = 1; run <= RUNS; run++) {
    // A fresh URL (so a fresh task) each run; the origin serves it but the child never asks it for data.
    const url = `${server.base}/blob.bin?run=${run}`
    const imported = await postRaw(`${parentUrl}/v1/cache/import`, JSON.stringify({ path: file, url }))
    if (imported.status !== 200) throw new Error(`import: ${JSON.stringify(imported)}`)

    const direct = path.join(dir, `direct-${run}.out`)
    settleDisk()
    const directStalls0 = await kernelStalls()
    const serverCpu0 = process.cpuUsage()
    let t0 = performance.now()
    const curlCpu = await curl(url, direct)
    const directSec = (performance.now() - t0) / 1000
    const serverCpu = process.cpuUsage(serverCpu0)
    const directCpu = curlCpu + (serverCpu.user + serverCpu.system) / 1e6
    const directStalls1 = await kernelStalls()
    if (await sha256File(direct) !== expected) throw new Error("direct download: wrong content")
    if (DELETE_DIRECT) await fs.rm(direct)

    const viaPeer = path.join(dir, "p2p.out")
    settleDisk()
    const p2pStalls0 = await kernelStalls()
    const parentCpu0 = await cpuOf(parent.pid!)
    const childCpu0 = await cpuOf(child.pid!)
    const threads0 = [await threadCpuOf(parent.pid!), await threadCpuOf(child.pid!)] as const
    const window0 = process.hrtime.bigint() / 1000n
    t0 = performance.now()
    const reply = await postRaw(`${childUrl}/v1/download`, JSON.stringify({ url, output: viaPeer }))
    const p2pSec = (performance.now() - t0) / 1000
    windows.push([Number(window0), Number(process.hrtime.bigint() / 1000n)])
    const parentCpu = (await cpuOf(parent.pid!)) - parentCpu0
    const childCpu = (await cpuOf(child.pid!)) - childCpu0
    const threads = { parent: threadDelta(parent.pid!, await threadCpuOf(parent.pid!), threads0[0]), child: threadDelta(child.pid!, await threadCpuOf(child.pid!), threads0[1]) }
    const p2pCpu = parentCpu + childCpu
    const p2pStalls1 = await kernelStalls()
    if (reply.status !== 200) throw new Error(`p2p download: ${JSON.stringify(reply)}`)
    if (reply.body.bytesFromPeers !== SIZE || reply.body.bytesFromOrigin !== 0) throw new Error(`p2p download did not come from the parent alone: ${JSON.stringify(reply.body)}`)
    if (await sha256File(viaPeer) !== expected) throw new Error("p2p download: wrong content")
    await fs.rm(viaPeer)

    const row = { direct: SIZE / MB / directSec, p2p: SIZE / MB / p2pSec, ratio: directSec / p2pSec, directCpu, parentCpu, childCpu }
    rows.push(row)
    console.log(`${run} | ${row.direct.toFixed(0)} | ${row.p2p.toFixed(0)} | ${row.ratio.toFixed(2)} | ${directCpu.toFixed(2)} | ${p2pCpu.toFixed(2)} (${parentCpu.toFixed(2)} + ${childCpu.toFixed(2)}) | ${loadavg()[0]!.toFixed(1)}`)
    const stalls = (a: { reclaim: number; compact: number }, b: { reclaim: number; compact: number }) => `reclaim ${b.reclaim - a.reclaim}, compact ${b.compact - a.compact}`
    threadLines.push(`${run} | CPU s by thread: parent: ${showSplit(threads.parent)}; child: ${showSplit(threads.child)} | kernel stalls (machine-wide): direct ${stalls(directStalls0, directStalls1)}; p2p ${stalls(p2pStalls0, p2pStalls1)}`)
    splits.push(threads)
  }
  for (const line of threadLines) console.log(line)
  const ratios = rows.map((r) => r.ratio)
  console.log(`median | ${median(rows.map((r) => r.direct)).toFixed(0)} | ${median(rows.map((r) => r.p2p)).toFixed(0)} | ${median(ratios).toFixed(2)} (ratio min ${Math.min(...ratios).toFixed(2)}, max ${Math.max(...ratios).toFixed(2)})`)
  const perGiB = (x: number) => (x / (SIZE / 1024 ** 3)).toFixed(2)
  console.log(`median CPU s/GiB | direct ${perGiB(median(rows.map((r) => r.directCpu)))} | p2p ${perGiB(median(rows.map((r) => r.parentCpu + r.childCpu)))} (parent ${perGiB(median(rows.map((r) => r.parentCpu)))}, child ${perGiB(median(rows.map((r) => r.childCpu)))})`)
  const sum = (x: readonly [number, number]) => x[0] + x[1]
  const med = (f: (s: { parent: ThreadSplit; child: ThreadSplit }) => number) => perGiB(median(splits.map(f)))
  console.log(`median CPU s/GiB by thread | parent main ${med((s) => sum(s.parent.main))}, other ${med((s) => sum(s.parent.other))}, rest ${med((s) => sum(s.parent.rest))} | child main ${med((s) => sum(s.child.main))}, hash thread ${med((s) => sum(s.child.other))}, rest ${med((s) => sum(s.child.rest))}`)
  console.log(`load average after: ${loadavg().map((x) => x.toFixed(2)).join(" ")}`)
  if (PROFILE !== "") {
    for (const p of [parent, child]) {
      const exited = new Promise((r) => p.once("exit", r))
      p.kill("SIGINT")
      await exited
    }
    await fs.writeFile(path.join(PROFILE, "windows.json"), JSON.stringify(windows))
    console.log(`CPU profiles of the parent and the child daemon in ${PROFILE}/{parent,child}; p2p windows in ${PROFILE}/windows.json`)
  }
} finally {
  for (const p of flagged) if (p.exitCode === null) p.kill("SIGKILL")
  await killAll()
  await server.close()
  await fs.rm(dir, { recursive: true, force: true })
}
