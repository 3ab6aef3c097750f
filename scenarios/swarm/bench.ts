// A real swarm on this machine: hosts are network namespaces on one bridge with tbf-shaped links; the
// origin, the scheduler (and BitTorrent tracker) and one seed daemon each have a namespace too. Modes run
// one after another with fresh processes and data: `direct`, `damselfly`, `bittorrent`.
import { execFileSync } from "node:child_process"
import { createHash, randomBytes } from "node:crypto"
import { existsSync, promises as fs } from "node:fs"
import { freemem, loadavg, tmpdir } from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { Effect } from "effect"
import { strategyPieceLength } from "../../core/strategies.ts"
import { Sha256 } from "../../core/services/sha256.ts"
import { taskIdOf } from "../../core/task-id.ts"
import { httpJson, sha256File, waitFor } from "../../runtime/testing/harness.ts"
import { applyHostSettings } from "./host-settings.ts"
import { type NodeSpec, sh, TBF_BURST_MILLIS, Topology } from "./netns.ts"
import { PAYLOAD_FRACTION, type Prediction, predict } from "./predict.ts"

/** `damselfly` runs the scheduler and daemons with the damselfly strategy, `dragonfly` the same processes with Dragonfly's. */
export const MODES = ["direct", "damselfly", "dragonfly", "bittorrent"] as const
/** What `--modes` runs when not told. */
export const DEFAULT_MODES: ReadonlyArray<Mode> = ["direct", "damselfly", "bittorrent"]
export type Mode = typeof MODES[number]

export interface SwarmOptions {
  readonly hosts: number
  readonly rateMbit: number
  /** The origin's uplink (default: rateMbit). */
  readonly originMbit?: number
  readonly sizeMiB: number
  /** The daemons' piece length in bytes (default: their strategy's rule, core/strategies.ts: damselfly 2 MiB below 1 GiB, dragonfly 4 MiB below 2 GiB). */
  readonly pieceLength?: number
  readonly modes: ReadonlyArray<Mode>
  /** How a host asks for the file: `curl` (direct: curl from the origin; damselfly: curl POST
   *  /v1/download to the local daemon, the very request `damselfly get` sends) or `get` (the
   *  `damselfly get` CLI itself; for direct with a dead --daemon URL, so it falls back to the origin). */
  readonly client?: "curl" | "get"
  /** Names of namespaces/interfaces start with this (default "dfs"); tests use another. */
  readonly prefix?: string
  /** First three octets of the /24 (default "10.77.0"). */
  readonly subnet?: string
  /** Keep every process log, scheduler snapshots and per-host progress here. */
  readonly logDir?: string
  /** Seconds a mode may take before it is abandoned (default: max(120, 30 × bound)). */
  readonly timeoutSeconds?: number
  /** Nice value of every process the benchmark starts in a namespace (default 0; negative needs root and puts
   *  them ahead of unrelated work on a shared machine). */
  readonly niceness?: number
  /** sysctls set in every namespace (e.g. net.ipv4.tcp_congestion_control=cubic). */
  readonly sysctls?: Readonly<Record<string, string>>
  /** TCP congestion control in every namespace (default "cubic"; "default" keeps the machine's): see host-settings.ts. */
  readonly congestionControl?: string
  /** Each tbf bucket, in milliseconds at its link's rate (default TBF_BURST_MILLIS, netns.ts). */
  readonly tbfBurstMillis?: number
  /** Skip the simulator's prediction. */
  readonly noPredict?: boolean
  /** Write a V8 CPU profile of the damselfly scheduler and every daemon here (node --cpu-prof; one
   *  directory per node, written when the process exits). */
  readonly cpuProfDir?: string
  /** Damselfly modes: before the timed download, every host fetches another task of this many MiB (the first
   *  MiB of the content, at /warmup) through the same daemons, so the timed run is served by daemons that have
   *  served before (a long-running node) rather than just-started ones. 0 (default): none. */
  readonly warmupMiB?: number
  readonly log?: (line: string) => void
}

export interface HostResult {
  readonly host: string
  /** Seconds from the common start to the host holding the whole file; null if it never did. */
  readonly seconds: number | null
  readonly sha256ok: boolean
  readonly detail?: unknown
}

export interface ModeResult {
  readonly mode: Mode
  readonly hosts: number
  readonly finished: number
  readonly verified: number
  readonly p50: number | null
  readonly max: number | null
  readonly maxOverBound: number | null
  /** Bytes on the wire out of the origin namespace (L2 frames incl. headers) / F. */
  readonly originWireCopies: number
  /** Payload the origin sent / F: the origin server's body bytes (+ the BitTorrent seeder's upload). */
  readonly originPayloadCopies: number | null
  readonly wallSeconds: number
  /** The machine's 1-minute load average when the mode started and the highest seen while it ran (every second). */
  readonly load: { readonly start: number; readonly max: number }
  /** CPU seconds each node's processes used from the common start to the last host's completion (processes
   *  that already exited, like direct mode's curls, are not counted). */
  readonly cpuSeconds: Readonly<Record<string, number>>
  readonly perHost: ReadonlyArray<HostResult>
  /** Damselfly modes: what the scheduler answered, from its /metrics at the end (`schedule <request>`:
   *  /v1/schedule requests by type, `answer <answer>`: by answer, `report <type>`: /v1/report by type). */
  readonly schedulerRequests?: Readonly<Record<string, number>>
  readonly error?: string
}

export interface SwarmResult {
  readonly config: {
    hosts: number
    rateMbit: number
    originMbit: number
    sizeBytes: number
    pieceLengthDamselfly: number
    pieceLengthBittorrent: number
    client: "curl" | "get"
    payloadFraction: number
    niceness: number
    sysctls: Readonly<Record<string, string>>
    congestionControl: string
    tbfBurstMillis: number
    /** Machine-wide settings held for the run (scenarios/swarm/host-settings.ts). */
    hostSettings: ReadonlyArray<string>
  }
  /** Kumar–Ross bound at the payload rate; uploaders counted: origin, the seed daemon and every host. */
  readonly boundSeconds: number
  /** The same bound at the raw shaped rate. */
  readonly boundSecondsShaped: number
  readonly modes: ReadonlyArray<ModeResult>
  readonly predictions: ReadonlyArray<Prediction>
  readonly comparison: ReadonlyArray<{ real: Mode; predicted: string; realP50: number | null; predictedP50: number; p50Error: number | null; realMax: number | null; predictedMax: number; maxError: number | null }>
}

/** A daemon's upload-side counters from its /metrics: availability long-polls answered, pieces refused, bytes served. */
const daemonCounts = async (daemonUrl: string): Promise<Record<string, number>> => {
  const text = await fetch(`${daemonUrl}/metrics`, { signal: AbortSignal.timeout(5_000) }).then((r) => r.text(), () => "")
  const counts: Record<string, number> = {}
  for (const line of text.split("\n")) {
    const m = /^(damselfly_availability_answers_total|damselfly_upload_failures_total|damselfly_upload_bytes_total|damselfly_piece_duration_seconds_count)(\{[^}]*\})? ([0-9.e+]+)$/.exec(line)
    if (m === null) continue
    const label = /(?:outcome|reason|type)="([^"]+)"/.exec(m[2] ?? "")?.[1]
    const key = `${m[1].replace(/^damselfly_/, "")}${label === undefined ? "" : ` ${label}`}`
    counts[key] = (counts[key] ?? 0) + Number(m[3])
  }
  return counts
}

/** The scheduler's request and report counters (its Prometheus text at /metrics); {} when unreadable. */
const schedulerRequestCounts = async (schedulerUrl: string): Promise<Record<string, number>> => {
  const text = await fetch(`${schedulerUrl}/metrics`, { signal: AbortSignal.timeout(5_000) }).then((r) => r.text(), () => "")
  const counts: Record<string, number> = {}
  const series = [
    ["damselfly_schedule_duration_seconds_count", "request", "schedule"],
    ["damselfly_schedule_requests_total", "answer", "answer"],
    ["damselfly_reports_total", "type", "report"]
  ] as const
  for (const line of text.split("\n")) {
    for (const [name, label, key] of series) {
      const m = new RegExp(`^${name}\\{([^}]*)\\} (\\d+)$`).exec(line)
      const value = m === null ? null : new RegExp(`(?:^|,)${label}="([^"]+)"`).exec(m[1])
      if (m !== null && value !== null) counts[`${key} ${value[1]}`] = Number(m[2])
    }
  }
  return counts
}

const REPO = fileURLToPath(new URL("../../", import.meta.url))
const BIN = path.join(REPO, "runtime/bin/damselfly.mjs")
const ORIGIN_SERVER = path.join(REPO, "scenarios/swarm/origin-server.ts")
const ORIGIN_PORT = 8080
const SCHEDULER_PORT = 8002
const DAEMON_PORT = 65001
const TRACKER_PORT = 6969
const UPLOAD_SLOTS = 16 // the daemons' --upload-slots (the CLI's default), and the prediction's
const MiB = 2 ** 20

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))




const percentile = (sorted: ReadonlyArray<number>, q: number): number | null =>
  sorted.length === 0 ? null : sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]

/** Kumar–Ross: max(F/u_origin, F/d_min, N·F/(u_origin + Σu)), Σu over the seed daemon and every host. */
export const kumarRoss = (sizeBytes: number, hosts: number, rateBps: number, originBps: number): number =>
  Math.max(sizeBytes / originBps, sizeBytes / rateBps, (hosts * sizeBytes) / (originBps + rateBps * (hosts + 1)))

/** Runs the benchmark; the topology, processes and temp dir are removed whatever happens. */
export const runSwarm = async (o: SwarmOptions): Promise<SwarmResult> => {
  const log = o.log ?? ((line: string) => console.error(line))
  const prefix = o.prefix ?? "dfs"
  const subnet = o.subnet ?? "10.77.0"
  const client = o.client ?? "curl"
  const originMbit = o.originMbit ?? o.rateMbit
  const size = Math.round(o.sizeMiB * MiB)
  if (process.getuid?.() !== 0) throw new Error("the swarm benchmark needs root (network namespaces, veth, tc)")
  if (o.hosts < 1 || o.hosts > 200) throw new Error(`--hosts: expected 1..200, got ${o.hosts}`)
  if (o.modes.includes("bittorrent")) {
    for (const tool of ["aria2c", "opentracker", "mktorrent"]) {
      if (sh("sh", ["-c", `command -v ${tool}`], { quiet: true }).trim() === "") throw new Error(`bittorrent mode needs ${tool}: apt-get install aria2 opentracker mktorrent`)
    }
  }
  const congestionControl = o.congestionControl ?? "cubic"
  const host = applyHostSettings(congestionControl)
  const tbfBurstMillis = o.tbfBurstMillis ?? TBF_BURST_MILLIS
  const topo = new Topology(prefix, subnet, o.niceness ?? 0, { ...host.namespaceSysctls, ...o.sysctls }, tbfBurstMillis)
  const dir = await fs.mkdtemp(path.join(tmpdir(), `${prefix}-swarm-`))
  let unmount: (() => void) | undefined
  const cleanup = () => {
    topo.destroySync()
    host.restore()
    try {
      unmount?.()
    } catch {}
    unmount = undefined
    try {
      execFileSync("rm", ["-rf", dir])
    } catch {}
  }
  // Ctrl-C, kill, or an exit before the finally below runs: still leave nothing behind.
  const onSignal = (sig: NodeJS.Signals) => {
    log(`${sig}: cleaning up`)
    cleanup()
    process.exit(sig === "SIGINT" ? 130 : 143)
  }
  process.on("SIGINT", onSignal)
  process.on("SIGTERM", onSignal)
  process.on("exit", cleanup)
  try {
    // Everything in memory: a disk would be a bottleneck shared by every "host".
    const needMiB = Math.ceil((size / MiB) * (2 * (o.hosts + 1) + 2)) + 256
    if (needMiB * MiB < freemem() * 0.6) {
      execFileSync("mount", ["-t", "tmpfs", "-o", `size=${needMiB}m,mode=0755`, "tmpfs", dir], { stdio: "pipe" })
      unmount = () => execFileSync("umount", ["-l", dir], { stdio: "pipe" })
    } else {
      log(`not enough memory for a ${needMiB} MiB tmpfs: using ${dir} on disk`)
    }
    await fs.chmod(dir, 0o755)
    const logDir = o.logDir === undefined ? path.join(dir, "logs") : path.resolve(o.logDir)
    await fs.mkdir(logDir, { recursive: true })

    const hostNames = Array.from({ length: o.hosts }, (_, i) => `h${String(i).padStart(o.hosts > 100 ? 3 : 2, "0")}`)
    const specs: Array<NodeSpec> = [
      { name: "origin", octet: 1, upMbit: originMbit, downMbit: originMbit },
      { name: "sched", octet: 2, upMbit: undefined, downMbit: undefined }, // control only: unshaped
      { name: "seed", octet: 3, upMbit: o.rateMbit, downMbit: o.rateMbit },
      ...hostNames.map((name, i) => ({ name, octet: 11 + i, upMbit: o.rateMbit, downMbit: o.rateMbit }))
    ]
    log(`creating ${specs.length} namespaces on ${topo.bridge} (${subnet}.0/24), ${o.rateMbit} Mbit/s links, origin ${originMbit} Mbit/s`)
    topo.create(specs)

    // The content.
    const originDir = path.join(dir, "origin")
    await fs.mkdir(originDir, { recursive: true })
    const blob = path.join(originDir, "blob.bin")
    const content = randomBytes(size)
    await fs.writeFile(blob, content)
    const digest = createHash("sha256").update(content).digest("hex")
    const originIp = topo.node("origin").ip
    const url = `http://${originIp}:${ORIGIN_PORT}/blob`

    const payloadBps = (mbit: number) => (mbit * 1e6 * PAYLOAD_FRACTION) / 8
    const bound = kumarRoss(size, o.hosts, payloadBps(o.rateMbit), payloadBps(originMbit))
    const boundShaped = kumarRoss(size, o.hosts, (o.rateMbit * 1e6) / 8, (originMbit * 1e6) / 8)
    const timeoutMillis = (o.timeoutSeconds ?? Math.max(120, 30 * bound)) * 1000
    const damselflyPieceLength = o.pieceLength ?? strategyPieceLength("damselfly", size)

    const startOrigin = async () => {
      topo.spawnIn("origin", process.execPath, ["--import", "tsx", ORIGIN_SERVER, blob, originIp, String(ORIGIN_PORT), String(Math.round((o.warmupMiB ?? 0) * MiB))], { cwd: REPO, log: path.join(logDir, "origin.log") })
      await waitFor("the origin", async () => (await httpJson(`http://${originIp}:${ORIGIN_PORT}/stats`)).status === 200, 30_000)
    }
    const originBytes = async (): Promise<number> => (await httpJson(`http://${originIp}:${ORIGIN_PORT}/stats`)).body.bytesSent

    const hostDir = (h: string) => path.join(dir, "hosts", h)
    const freshHostDirs = async () => {
      await fs.rm(path.join(dir, "hosts"), { recursive: true, force: true })
      for (const h of hostNames) await fs.mkdir(hostDir(h), { recursive: true })
    }

    /** Waits for every host's completion (a promise each), with the mode's deadline. */
    const collect = async (t0: number, done: ReadonlyArray<Promise<{ at: number | null; detail?: unknown }>>) => {
      let timer: NodeJS.Timeout | undefined
      const deadline = new Promise<"timeout">((r) => (timer = setTimeout(() => r("timeout"), timeoutMillis)))
      const settled = await Promise.race([Promise.all(done), deadline])
      clearTimeout(timer)
      if (settled === "timeout") log(`mode timed out after ${timeoutMillis / 1000} s`)
      // Whatever finished by now counts; the rest did not finish.
      const results: Array<{ at: number | null; detail?: unknown }> = []
      for (const p of done) results.push(await Promise.race([p, Promise.resolve({ at: null })]))
      return results.map((r) => ({ seconds: r.at === null ? null : (r.at - t0) / 1000, detail: r.detail }))
    }

    const verify = async (files: ReadonlyArray<string>) =>
      Promise.all(files.map(async (f) => existsSync(f) && (await sha256File(f)) === digest))

    let load = { start: 0, max: 0 }
    let cpuAtStart: Record<string, number> = {}
    const markStart = () => {
      cpuAtStart = topo.cpuSecondsByNode()
      return Date.now()
    }
    const summarise = async (
      mode: Mode,
      wallStart: number,
      times: ReadonlyArray<{ seconds: number | null; detail?: unknown }>,
      files: ReadonlyArray<string>,
      wireBytes: number,
      payloadBytes: number | null,
      error?: string,
      schedulerRequests?: Readonly<Record<string, number>>
    ): Promise<ModeResult> => {
      const cpuNow = topo.cpuSecondsByNode()
      const cpuSeconds = Object.fromEntries(Object.entries(cpuNow).map(([n, c]) => [n, Math.round((c - (cpuAtStart[n] ?? 0)) * 100) / 100]))
      const ok = await verify(files)
      const perHost = hostNames.map((host, i) => ({ host, seconds: times[i]?.seconds ?? null, sha256ok: ok[i], ...(times[i]?.detail === undefined ? {} : { detail: times[i].detail }) }))
      const finished = perHost.filter((h) => h.seconds !== null).map((h) => h.seconds!).sort((a, b) => a - b)
      const max = finished.length === o.hosts ? finished[finished.length - 1] : null
      return {
        mode,
        hosts: o.hosts,
        finished: finished.length,
        verified: ok.filter(Boolean).length,
        p50: percentile(finished, 0.5),
        max,
        maxOverBound: max === null ? null : max / bound,
        originWireCopies: wireBytes / size,
        originPayloadCopies: payloadBytes === null ? null : payloadBytes / size,
        wallSeconds: (Date.now() - wallStart) / 1000,
        load,
        cpuSeconds,
        perHost,
        ...(schedulerRequests === undefined ? {} : { schedulerRequests }),
        ...(error === undefined ? {} : { error })
      }
    }

    const runMode = async (mode: Mode): Promise<ModeResult> => {
      const wallStart = Date.now()
      load = { start: loadavg()[0], max: loadavg()[0] }
      cpuAtStart = {}
      const loadSampler = setInterval(() => (load = { ...load, max: Math.max(load.max, loadavg()[0]) }), 1_000)
      await freshHostDirs()
      const files = hostNames.map((h) => path.join(hostDir(h), mode === "bittorrent" ? "blob.bin" : "out.bin"))
      let wire0 = topo.txBytes("origin")
      try {
        if (mode === "direct") {
          await startOrigin()
          wire0 = topo.txBytes("origin")
          const t0 = markStart()
          const done = hostNames.map((h, i) => {
            const child = client === "curl"
              ? topo.spawnIn(h, "curl", ["-sS", "-f", "-o", files[i], url], { log: path.join(logDir, `direct-${h}.log`) })
              // No daemon listens on port 9 of the host's loopback: `get` falls back to the origin.
              : topo.spawnIn(h, process.execPath, [BIN, "get", url, "-O", files[i], "--daemon", "http://127.0.0.1:9"], { cwd: REPO, log: path.join(logDir, `direct-${h}.log`) })
            return new Promise<{ at: number | null }>((r) => child.on("exit", (code) => r({ at: code === 0 ? Date.now() : null })))
          })
          const times = await collect(t0, done)
          const payload = await originBytes()
          return summarise(mode, wallStart, times, files, topo.txBytes("origin") - wire0, payload)
        }
        if (mode === "damselfly" || mode === "dragonfly") return await runDamselfly(mode, wallStart, files)
        return await runBittorrent(wallStart, files)
      } catch (e) {
        log(`${mode} failed: ${e instanceof Error ? e.message : String(e)}`)
        return summarise(mode, wallStart, [], files, topo.txBytes("origin") - wire0, null, e instanceof Error ? e.message : String(e))
      } finally {
        clearInterval(loadSampler)
        await topo.stopAll()
        await fs.rm(path.join(dir, "hosts"), { recursive: true, force: true })
        await fs.rm(path.join(dir, "state"), { recursive: true, force: true })
      }
    }

    /** Damselfly's scheduler and daemons, all running `strategy` (damselfly or dragonfly). */
    const runDamselfly = async (strategy: "damselfly" | "dragonfly", wallStart: number, files: ReadonlyArray<string>): Promise<ModeResult> => {
      // The piece length the daemons choose (the strategy's rule) unless --piece-kib fixed it.
      const pieceLength = o.pieceLength ?? strategyPieceLength(strategy, size)
      await startOrigin()
      const sched = topo.node("sched")
      const schedulerUrl = `http://${sched.ip}:${SCHEDULER_PORT}`
      const daemonUrl = (name: string) => `http://${topo.node(name).ip}:${DAEMON_PORT}`
      const nodeArgs = (name: string): Array<string> =>
        o.cpuProfDir === undefined ? [BIN] : ["--cpu-prof", "--cpu-prof-dir", path.resolve(o.cpuProfDir, `${strategy}-${name}`), BIN]
      // The bench itself (root namespace, the bridge's address) asks daemons for the warmup download and their
      // piece logs: control routes, otherwise only for clients on the daemon's own host (runtime/control-access.ts).
      const common = ["--port", String(DAEMON_PORT), "--scheduler", schedulerUrl, "--idc", "lan", "--location", "lab|bench|lan", "--strategy", strategy, "--upload-slots", String(UPLOAD_SLOTS), "--control-from", topo.bridgeIp]
      topo.spawnIn("sched", process.execPath, [...nodeArgs("scheduler"), "scheduler", "--listen", sched.ip, "--port", String(SCHEDULER_PORT), "--strategy", strategy], { cwd: REPO, log: path.join(logDir, `${strategy}-scheduler.log`) })
      await waitFor("the scheduler", async () => (await httpJson(`${schedulerUrl}/healthy`)).status === 200, 60_000)
      const state = path.join(dir, "state")
      topo.spawnIn("seed", process.execPath, [...nodeArgs("seed"), "daemon", "--seed", "--listen", topo.node("seed").ip, "--data", path.join(state, "seed"), "--host-id", "seed", ...common], { cwd: REPO, log: path.join(logDir, "damselfly-seed.log") })
      // Daemons start a node process each (~1.3 s of CPU): a few at a time on two cores.
      for (let i = 0; i < hostNames.length; i += 4) {
        const batch = hostNames.slice(i, i + 4)
        for (const h of batch) {
          topo.spawnIn(h, process.execPath, [...nodeArgs(h), "daemon", "--listen", topo.node(h).ip, "--data", path.join(state, h), "--host-id", h, ...common], { cwd: REPO, log: path.join(logDir, `damselfly-daemon-${h}.log`) })
        }
        await Promise.all(batch.map((h) => waitFor(`daemon ${h}`, async () => (await httpJson(`${daemonUrl(h)}/healthy`)).status === 200, 120_000)))
      }
      await waitFor("the seed", async () => (await httpJson(`${daemonUrl("seed")}/healthy`)).status === 200, 60_000)
      await waitFor("every host to announce itself", async () => (await httpJson(`${schedulerUrl}/healthy`)).body.hosts === o.hosts + 1, 60_000)
      const taskId = Effect.runSync(Effect.provideService(
        taskIdOf({ url, pieceLength }),
        Sha256,
        Sha256.of({ hex: (d) => createHash("sha256").update(d).digest("hex") })
      ))
      if ((o.warmupMiB ?? 0) > 0) {
        const warmupStart = Date.now()
        const cpu0 = topo.cpuSecondsByNode()
        const warmed = await Promise.all(hostNames.map(async (h) => {
          const body = JSON.stringify({ url: `http://${originIp}:${ORIGIN_PORT}/warmup`, output: path.join(hostDir(h), "warmup.bin") })
          const r = await httpJson(`${daemonUrl(h)}/v1/download`, { method: "POST", body, timeoutMillis: timeoutMillis }).catch(() => ({ status: 0 }))
          await fs.rm(path.join(hostDir(h), "warmup.bin"), { force: true })
          return r.status === 200
        }))
        const cpu1 = topo.cpuSecondsByNode()
        const cpu = Object.keys(cpu1).reduce((a, n) => a + cpu1[n] - (cpu0[n] ?? 0), 0)
        log(`warmup: ${warmed.filter(Boolean).length}/${hostNames.length} hosts fetched ${o.warmupMiB} MiB in ${((Date.now() - warmupStart) / 1000).toFixed(2)} s, ${cpu.toFixed(1)} CPU s`)
        if (!warmed.every(Boolean)) throw new Error("warmup: not every host fetched the warmup task")
      }
      await sleep(500)
      const wire0 = topo.txBytes("origin")
      const payload0 = await originBytes()

      // Progress: the scheduler's view of the task (states, parents) and each daemon's pieces, every second.
      // Only with --logs: it is ~17 requests a second to processes that are short of CPU already.
      const timeline: Array<unknown> = []
      let polling = o.logDir !== undefined
      const t0 = markStart()
      const poller = (async () => {
        while (polling) {
          const at = (Date.now() - t0) / 1000
          const snapshot = await httpJson(`${schedulerUrl}/v1/tasks/${taskId}`, { timeoutMillis: 1_000 }).then((r) => r.status === 200 ? r.body : null, () => null)
          const pieces = await Promise.all(hostNames.map((h) =>
            httpJson(`${daemonUrl(h)}/v1/tasks/${taskId}/availability?since=0`, { timeoutMillis: 300 }).then((r) => r.status === 200 ? Number(r.body.version) : null, () => null))) // null: no answer in time
          timeline.push({ at, pieces: Object.fromEntries(hostNames.map((h, i) => [h, pieces[i]])), snapshot })
          await sleep(1_000)
        }
      })()

      const done = hostNames.map((h, i) => {
        const body = JSON.stringify({ url, output: files[i], ...(o.pieceLength === undefined ? {} : { pieceLength: o.pieceLength }) })
        const reply = path.join(logDir, `damselfly-get-${h}.json`)
        const child = client === "curl"
          ? topo.spawnIn(h, "curl", ["-sS", "-f", "-o", reply, "-X", "POST", "-H", "content-type: application/json", "--data", body, `${daemonUrl(h)}/v1/download`], { log: path.join(logDir, `damselfly-get-${h}.log`) })
          : topo.spawnIn(h, process.execPath, [BIN, "get", url, "-O", files[i], "--daemon", daemonUrl(h), ...(o.pieceLength === undefined ? [] : ["--piece-length", String(o.pieceLength)])], { cwd: REPO, log: path.join(logDir, `damselfly-get-${h}.log`) })
        return new Promise<{ at: number | null; detail?: unknown }>((r) =>
          child.on("exit", async (code) => {
            const at = code === 0 ? Date.now() : null
            const detail = client === "curl" ? await fs.readFile(reply, "utf8").then((t) => JSON.parse(t), () => undefined) : undefined
            r({ at, ...(detail === undefined ? {} : { detail }) })
          }))
      })
      const times = await collect(t0, done)
      polling = false
      await poller
      const wire = topo.txBytes("origin") - wire0
      const payload = (await originBytes()) - payload0
      const finalSnapshot = await httpJson(`${schedulerUrl}/v1/tasks/${taskId}`).then((r) => r.body, () => null)
      // Per piece: which daemon got it from whom, when (ms from t0); and every range the origin served.
      const pieceLogs = Object.fromEntries(await Promise.all(["seed", ...hostNames].map(async (h) => {
        const r = await httpJson(`${daemonUrl(h)}/v1/downloads/${taskId}/pieces`).catch(() => ({ status: 0, body: null }))
        const pieces = r.status === 200 ? (r.body.pieces as Array<{ index: number; from: string; startedAt: number; endedAt: number }>) : []
        return [h, pieces.map((p) => ({ index: p.index, from: p.from, start: p.startedAt - t0, end: p.endedAt - t0 }))] as const
      })))
      const originLog = await httpJson(`http://${originIp}:${ORIGIN_PORT}/log`).then((r) =>
        (r.body.requests as Array<{ start: number; end: number; from: string; arrivedAt: number; finishedAt: number }>)
          .filter((q) => q.arrivedAt >= t0)
          .map((q) => ({ ...q, arrivedAt: q.arrivedAt - t0, finishedAt: q.finishedAt - t0 })), () => [])
      await fs.writeFile(path.join(logDir, `${strategy}-pieces.json`), JSON.stringify({ taskId, pieceLength, pieces: pieceLogs, origin: originLog }))
      await fs.writeFile(path.join(logDir, "damselfly-timeline.json"), JSON.stringify({ taskId, timeline, finalSnapshot }, null, 1))
      const perDaemon = await Promise.all(["seed", ...hostNames].map((h) => daemonCounts(daemonUrl(h))))
      const daemonTotals: Record<string, number> = {}
      for (const c of perDaemon) for (const [k, v] of Object.entries(c)) daemonTotals[k] = (daemonTotals[k] ?? 0) + v
      log(`mode ${strategy}: daemons (seed + hosts, summed): ${Object.entries(daemonTotals).map(([k, v]) => `${k} ${Math.round(v)}`).join(", ")}`)
      return summarise(strategy, wallStart, times, files, wire, payload, undefined, await schedulerRequestCounts(schedulerUrl))
    }

    const runBittorrent = async (wallStart: number, files: ReadonlyArray<string>): Promise<ModeResult> => {
      const bt = path.join(dir, "state", "bt")
      await fs.mkdir(bt, { recursive: true })
      const sched = topo.node("sched")
      const torrent = path.join(bt, "blob.torrent")
      // 1 MiB pieces (2^20): 4 MiB pieces were 25–45% slower for aria2 on a 128 MiB file.
      sh("mktorrent", ["-l", "20", "-a", `http://${sched.ip}:${TRACKER_PORT}/announce`, "-o", torrent, blob])
      const infoHash = /Info Hash: ([0-9a-f]{40})/.exec(sh("aria2c", ["-S", torrent]))?.[1]
      if (infoHash === undefined) throw new Error("aria2c -S did not show the torrent's info hash")
      // opentracker only serves whitelisted info hashes; it drops root for `nobody` and chroots to its cwd.
      await fs.writeFile(path.join(bt, "whitelist.txt"), `${infoHash}\n`)
      await fs.writeFile(path.join(bt, "opentracker.conf"), [`listen.tcp_udp ${sched.ip}:${TRACKER_PORT}`, `access.whitelist ${path.join(bt, "whitelist.txt")}`, ""].join("\n"))
      await fs.chmod(path.join(dir, "state"), 0o755)
      await fs.chmod(bt, 0o755)
      topo.spawnIn("sched", "opentracker", ["-f", path.join(bt, "opentracker.conf")], { cwd: bt, log: path.join(logDir, "bittorrent-opentracker.log") })
      await waitFor("opentracker", async () => (await httpJson(`http://${sched.ip}:${TRACKER_PORT}/stats`).catch(() => ({ status: 0 }))).status > 0, 30_000)

      const aria = [
        "--enable-dht=false", "--enable-dht6=false", "--bt-enable-lpd=false", "--disable-ipv6=true", "--enable-peer-exchange=true",
        "--seed-ratio=0.0", "--file-allocation=none", "--summary-interval=0", "--console-log-level=warn", "--listen-port=6881",
        "--bt-tracker-connect-timeout=5", "--allow-overwrite=true", "--auto-file-renaming=false"
      ]
      const rpc = `http://${originIp}:6800/jsonrpc`
      topo.spawnIn("origin", "aria2c", [...aria, "--check-integrity=true", `--dir=${originDir}`, "--enable-rpc=true", "--rpc-listen-all=true", "--rpc-listen-port=6800", torrent], { log: path.join(logDir, "bittorrent-seeder.log") })
      const tell = async () => {
        const r = await httpJson(rpc, { method: "POST", body: JSON.stringify({ jsonrpc: "2.0", id: "1", method: "aria2.tellActive", params: [["seeder", "uploadLength", "completedLength", "totalLength"]] }) })
        return (r.body?.result ?? []) as Array<{ seeder: string; uploadLength: string; completedLength: string; totalLength: string }>
      }
      await waitFor("the seeding aria2c", async () => (await tell()).some((t) => t.seeder === "true"), 120_000)
      await sleep(2_000) // its first announce
      const wire0 = topo.txBytes("origin")
      const upload0 = Number((await tell())[0]?.uploadLength ?? 0)

      const hook = path.join(bt, "done.sh")
      await fs.writeFile(hook, `#!/bin/sh\ndate +%s%3N > "$3.done"\n`, { mode: 0o755 })
      const t0 = markStart()
      for (const [i, h] of hostNames.entries()) {
        topo.spawnIn(h, "aria2c", [...aria, `--dir=${path.dirname(files[i])}`, `--on-bt-download-complete=${hook}`, torrent], { log: path.join(logDir, `bittorrent-${h}.log`) })
      }
      const done = files.map(async (f) => {
        while (Date.now() - t0 < timeoutMillis + 1_000) {
          const text = await fs.readFile(`${f}.done`, "utf8").catch(() => "")
          if (/^\d+/.test(text)) return { at: Number(text.trim()) }
          await sleep(50)
        }
        return { at: null }
      })
      const times = await collect(t0, done)
      const wire = topo.txBytes("origin") - wire0
      const upload = Number((await tell().catch(() => []))[0]?.uploadLength ?? NaN) - upload0
      return summarise("bittorrent", wallStart, times, files, wire, Number.isFinite(upload) ? upload : null)
    }

    const results: Array<ModeResult> = []
    for (const mode of o.modes) {
      log(`mode ${mode}: ${o.hosts} hosts × ${o.sizeMiB} MiB at ${o.rateMbit} Mbit/s (bound ${bound.toFixed(2)} s)`)
      const r = await runMode(mode)
      log(`mode ${mode}: p50 ${r.p50?.toFixed(2) ?? "-"} s, max ${r.max?.toFixed(2) ?? "-"} s, ${r.finished}/${r.hosts} finished, ${r.verified} verified, origin ${r.originPayloadCopies?.toFixed(2) ?? "-"} copies (${r.originWireCopies.toFixed(2)} on the wire), load ${r.load.start.toFixed(1)}→${r.load.max.toFixed(1)}, CPU s ${Object.entries(r.cpuSeconds).filter(([, c]) => c > 0).map(([n, c]) => `${n} ${c.toFixed(1)}`).join(", ")}`)
      if (r.schedulerRequests !== undefined) log(`mode ${mode}: scheduler ${Object.entries(r.schedulerRequests).map(([k, n]) => `${k} ${n}`).join(", ")}`)
      results.push(r)
    }

    const predictions = o.noPredict ? [] : predict({ hosts: o.hosts, rateMbit: o.rateMbit, originMbit, sizeBytes: size, pieceLength: o.pieceLength, uploadSlots: UPLOAD_SLOTS })
    const relErr = (real: number | null, p: number) => (real === null ? null : (p - real) / real)
    const comparison = results.flatMap((r) => {
      const p = predictions.find((x) => x.strategy === r.mode)
      return p === undefined ? [] : [{
        real: r.mode,
        predicted: `sim:${p.strategy}`,
        realP50: r.p50,
        predictedP50: p.p50,
        p50Error: relErr(r.p50, p.p50),
        realMax: r.max,
        predictedMax: p.max,
        maxError: relErr(r.max, p.max)
      }]
    })
    return {
      config: {
        hosts: o.hosts,
        rateMbit: o.rateMbit,
        originMbit,
        sizeBytes: size,
        pieceLengthDamselfly: damselflyPieceLength,
        pieceLengthBittorrent: MiB,
        client,
        payloadFraction: PAYLOAD_FRACTION,
        niceness: o.niceness ?? 0,
        sysctls: o.sysctls ?? {},
        congestionControl,
        tbfBurstMillis,
        hostSettings: host.applied
      },
      boundSeconds: bound,
      boundSecondsShaped: boundShaped,
      modes: results,
      predictions,
      comparison
    }
  } finally {
    await topo.stopAll().catch(() => {})
    cleanup()
    process.off("SIGINT", onSignal)
    process.off("SIGTERM", onSignal)
    process.off("exit", cleanup)
  }
}

const f = (x: number | null | undefined, digits = 2) => (x === null || x === undefined || !Number.isFinite(x) ? "-" : x.toFixed(digits))
const pct = (x: number | null) => (x === null ? "-" : `${x >= 0 ? "+" : ""}${(100 * x).toFixed(0)}%`)

export const markdown = (r: SwarmResult): string => {
  const lines = [
    `Kumar–Ross bound ${f(r.boundSeconds)} s at the payload rate (${(r.config.payloadFraction * 100).toFixed(1)}% of the shaped rate; ${f(r.boundSecondsShaped)} s at the shaped rate); uploaders counted: origin, seed daemon, every host. tbf buckets of ${r.config.tbfBurstMillis} ms. Processes at nice ${r.config.niceness}.${r.config.hostSettings.length === 0 ? "" : ` For the run: ${r.config.hostSettings.join("; ")}.`}${Object.keys(r.config.sysctls).length === 0 ? "" : ` Namespaces' sysctls: ${Object.entries(r.config.sysctls).map(([k, v]) => `${k}=${v}`).join(", ")}.`}`,
    "",
    "| mode | hosts | finished | sha256 ok | p50 s | max s | max/bound | origin copies (payload) | origin copies (wire) | load (start/max) | CPU s (all nodes) |",
    "|---|---|---|---|---|---|---|---|---|---|---|"
  ]
  for (const m of r.modes) {
    lines.push(`| ${m.mode} | ${m.hosts} | ${m.finished} | ${m.verified} | ${f(m.p50)} | ${f(m.max)} | ${f(m.maxOverBound)} | ${f(m.originPayloadCopies)} | ${f(m.originWireCopies)} | ${f(m.load.start, 1)}/${f(m.load.max, 1)} | ${f(Object.values(m.cpuSeconds).reduce((a, b) => a + b, 0), 1)} |`)
  }
  for (const p of r.predictions) {
    lines.push(`| sim:${p.strategy} (predicted) | ${r.config.hosts} | ${p.finished} | ${p.verified ? p.finished : 0} | ${f(p.p50)} | ${f(p.max)} | ${f(p.max / r.boundSeconds)} | ${f(p.originCopies)} | - | - | - |`)
  }
  if (r.comparison.length > 0) {
    lines.push("", "| real | predicted | real p50 s | predicted p50 s | error | real max s | predicted max s | error |", "|---|---|---|---|---|---|---|---|")
    for (const c of r.comparison) {
      lines.push(`| ${c.real} | ${c.predicted} | ${f(c.realP50)} | ${f(c.predictedP50)} | ${pct(c.p50Error)} | ${f(c.realMax)} | ${f(c.predictedMax)} | ${pct(c.maxError)} |`)
    }
  }
  return lines.join("\n")
}
