// Hosts as Linux network namespaces on one bridge, each link shaped with `tc tbf` in both directions,
// and processes started inside them that are always stopped again (root only).
//
//   root ns: bridge <prefix>-br (10.77.x.254/24)
//     └─ veth <prefix>-<node>  (host side, egress = the node's DOWNLOAD, tbf at the node's down rate)
//          └─ eth0 in netns <prefix>-<node> (egress = the node's UPLOAD, tbf at its up rate)
import { type ChildProcess, execFileSync, spawn } from "node:child_process"
import { createWriteStream, readFileSync, type WriteStream } from "node:fs"

export const sh = (cmd: string, args: ReadonlyArray<string>, options: { quiet?: boolean } = {}): string => {
  try {
    return execFileSync(cmd, args, { stdio: ["ignore", "pipe", "pipe"], encoding: "utf8" })
  } catch (e) {
    if (options.quiet) return ""
    const err = e as { stderr?: string; message: string }
    throw new Error(`${cmd} ${args.join(" ")}: ${err.stderr?.trim() || err.message}`)
  }
}

export interface NodeSpec {
  /** Short name (≤ 6 characters with the prefix: interface names are at most 15). */
  readonly name: string
  /** Last octet of the node's address. */
  readonly octet: number
  /** Shaped rates in Mbit/s; undefined = not shaped in that direction. */
  readonly upMbit: number | undefined
  readonly downMbit: number | undefined
}

export interface NetNode extends NodeSpec {
  readonly ns: string
  readonly ip: string
  /** The host-side end of the node's veth (on the bridge). */
  readonly hostIf: string
}

/** The queue a shaped link may hold, in time at its rate. One TCP flow between two namespaces reaches the
 *  same rate with 5 ms as with 20 ms (95.4% vs 95.1% of 100 Mbit/s, curl), but every request and every
 *  availability answer that crosses a busy link waits behind the queue: a small GET across a loaded
 *  uplink took a median 10.6 ms with 5 ms, 14.3 ms with 20 ms. */
export const TBF_QUEUE_MILLIS = 5

/**
 * How much link time a tbf bucket holds (at least 32 KiB: a GSO super-packet must fit). tbf sends only when
 * its dequeue timer fires, in softirq; on this loaded 2-core machine that is often late, and tokens beyond
 * the bucket are lost: with ~2 ms (25 KB at 100 Mbit/s) every late dequeue cost link time, and the seed's
 * 128 MiB origin fetch in a 16-host run took 16.6–17.0 s instead of 11.5 s. 10 ms lets a late link catch up
 * (12.4–14.1 s; README "The emulation's TCP and softirq settings") while the long-run rate stays the rate.
 */
export const TBF_BURST_MILLIS = 10

/** tbf at `mbit` with a bucket of `burstMillis` of traffic and TBF_QUEUE_MILLIS of queue. */
const tbfArgs = (mbit: number, burstMillis: number): Array<string> => {
  const bytesPerSecond = (mbit * 1e6) / 8
  const burst = Math.max(32 * 1024, Math.round((bytesPerSecond * burstMillis) / 1000))
  return ["tbf", "rate", `${mbit}mbit`, "burst", String(burst), "latency", `${TBF_QUEUE_MILLIS}ms`]
}

/** USER_HZ: /proc/PID/stat counts CPU time in these (100 on Linux for every architecture that matters here). */
const CLOCK_TICKS = 100

export class Topology {
  readonly nodes = new Map<string, NetNode>()
  readonly bridge: string
  readonly bridgeIp: string
  private created = false
  private readonly procs = new Set<ChildProcess>()

  /** `subnet` is the first three octets, e.g. "10.77.0". */
  /** `niceness`: every process started in a namespace runs at this nice value (negative: ahead of others). */
  /** `sysctls`: set in every namespace after it is made (per-namespace keys such as net.ipv4.tcp_*). */
  /** `burstMillis`: each tbf bucket, in time at its rate (TBF_BURST_MILLIS). */
  constructor(readonly prefix: string, readonly subnet: string, readonly niceness = 0, readonly sysctls: Readonly<Record<string, string>> = {}, readonly burstMillis = TBF_BURST_MILLIS) {
    this.bridge = `${prefix}-br`
    this.bridgeIp = `${subnet}.254`
  }

  /** Removes whatever an earlier, killed run with the same prefix left behind. */
  static sweep(prefix: string): void {
    for (const line of sh("ip", ["netns", "list"], { quiet: true }).split("\n")) {
      const ns = line.split(" ")[0]
      if (ns !== undefined && ns.startsWith(`${prefix}-`)) {
        for (const pid of sh("ip", ["netns", "pids", ns], { quiet: true }).split(/\s+/).filter(Boolean)) {
          try {
            process.kill(Number(pid), "SIGKILL")
          } catch {}
        }
        sh("ip", ["netns", "del", ns], { quiet: true })
      }
    }
    for (const line of sh("ip", ["-o", "link", "show"], { quiet: true }).split("\n")) {
      const m = /^\d+: ([^:@]+)[:@]/.exec(line)
      if (m !== null && m[1].startsWith(`${prefix}-`)) sh("ip", ["link", "del", m[1]], { quiet: true })
    }
  }

  create(specs: ReadonlyArray<NodeSpec>): void {
    Topology.sweep(this.prefix)
    this.created = true
    sh("ip", ["link", "add", this.bridge, "type", "bridge"])
    sh("ip", ["addr", "add", `${this.bridgeIp}/24`, "dev", this.bridge])
    sh("ip", ["link", "set", this.bridge, "up"])
    for (const s of specs) {
      const node: NetNode = { ...s, ns: `${this.prefix}-${s.name}`, ip: `${this.subnet}.${s.octet}`, hostIf: `${this.prefix}-${s.name}` }
      if (node.hostIf.length > 15) throw new Error(`interface name ${node.hostIf} is longer than 15 characters`)
      this.nodes.set(s.name, node)
      sh("ip", ["netns", "add", node.ns])
      sh("ip", ["link", "add", node.hostIf, "type", "veth", "peer", "name", "eth0", "netns", node.ns])
      sh("ip", ["link", "set", node.hostIf, "master", this.bridge, "up"])
      sh("ip", ["-n", node.ns, "addr", "add", `${node.ip}/24`, "dev", "eth0"])
      sh("ip", ["-n", node.ns, "link", "set", "eth0", "up"])
      sh("ip", ["-n", node.ns, "link", "set", "lo", "up"])
      for (const [key, value] of Object.entries(this.sysctls)) sh("ip", ["netns", "exec", node.ns, "sysctl", "-q", "-w", `${key}=${value}`])
      if (s.downMbit !== undefined) sh("tc", ["qdisc", "replace", "dev", node.hostIf, "root", ...tbfArgs(s.downMbit, this.burstMillis)])
      if (s.upMbit !== undefined) sh("tc", ["-n", node.ns, "qdisc", "replace", "dev", "eth0", "root", ...tbfArgs(s.upMbit, this.burstMillis)])
    }
  }

  node(name: string): NetNode {
    const n = this.nodes.get(name)
    if (n === undefined) throw new Error(`no node ${name}`)
    return n
  }

  /** Bytes the node has sent on its link so far (L2 frames: payload plus TCP/IP/Ethernet headers). */
  txBytes(name: string): number {
    const n = this.node(name)
    const j = JSON.parse(sh("ip", ["-n", n.ns, "-s", "-j", "link", "show", "eth0"])) as Array<{ stats64: { tx: { bytes: number } } }>
    return j[0].stats64.tx.bytes
  }

  /** CPU seconds (user + system, with reaped children) used so far by each node's live processes. */
  cpuSecondsByNode(): Record<string, number> {
    const out: Record<string, number> = {}
    for (const n of this.nodes.values()) {
      let ticks = 0
      for (const pid of sh("ip", ["netns", "pids", n.ns], { quiet: true }).split(/\s+/).filter(Boolean)) {
        try {
          // Fields after the ")" that ends the command name: utime is the 12th, stime, cutime, cstime follow.
          const stat = readFileSync(`/proc/${pid}/stat`, "utf8")
          const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ")
          ticks += Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14])
        } catch {} // gone meanwhile
      }
      out[n.name] = ticks / CLOCK_TICKS
    }
    return out
  }

  /** Starts `cmd` inside the node's namespace; stdout/stderr go to `log` (a file) when given. */
  spawnIn(name: string, cmd: string, args: ReadonlyArray<string>, o: { log?: string; cwd?: string; env?: Record<string, string> } = {}): ChildProcess {
    const n = this.node(name)
    // `nice -n N` (root may raise priority): the benchmark's processes ahead of unrelated work on a shared machine.
    const niced = this.niceness === 0 ? [cmd, ...args] : ["nice", "-n", String(this.niceness), cmd, ...args]
    const child = spawn("ip", ["netns", "exec", n.ns, ...niced], {
      stdio: ["ignore", o.log === undefined ? "ignore" : "pipe", o.log === undefined ? "ignore" : "pipe"],
      cwd: o.cwd,
      env: { ...process.env, ...o.env },
      detached: true // its own process group: stopped as a whole, and not by the terminal's Ctrl-C first
    })
    if (o.log !== undefined) {
      const out: WriteStream = createWriteStream(o.log)
      child.stdout!.pipe(out, { end: false })
      child.stderr!.pipe(out, { end: false })
      child.on("close", () => out.end())
    }
    this.procs.add(child)
    child.on("exit", () => this.procs.delete(child))
    return child
  }

  /** Stops every process started here: SIGTERM to each process group, SIGKILL after `graceMillis`. */
  async stopAll(graceMillis = 3_000): Promise<void> {
    const running = [...this.procs].filter((c) => c.exitCode === null && c.signalCode === null)
    const kill = (c: ChildProcess, sig: NodeJS.Signals) => {
      try {
        if (c.pid !== undefined) process.kill(-c.pid, sig)
      } catch {}
    }
    for (const c of running) kill(c, "SIGTERM")
    const deadline = Date.now() + graceMillis
    while (Date.now() < deadline && running.some((c) => c.exitCode === null && c.signalCode === null)) {
      await new Promise((r) => setTimeout(r, 50))
    }
    for (const c of running) if (c.exitCode === null && c.signalCode === null) kill(c, "SIGKILL")
    // Anything else still inside our namespaces (a grandchild that left its group) is ours too.
    for (const n of this.nodes.values()) {
      for (const pid of sh("ip", ["netns", "pids", n.ns], { quiet: true }).split(/\s+/).filter(Boolean)) {
        try {
          process.kill(Number(pid), "SIGKILL")
        } catch {}
      }
    }
  }

  /** Synchronous, so it can also run from a signal or exit handler. */
  destroySync(): void {
    for (const c of this.procs) {
      try {
        if (c.pid !== undefined) process.kill(-c.pid, "SIGKILL")
      } catch {}
    }
    if (!this.created) return
    Topology.sweep(this.prefix)
    this.created = false
  }
}

export const isRoot = (): boolean => process.getuid?.() === 0

/** Why namespaces cannot be used here, or undefined when they can. */
export const netnsUnavailable = (): string | undefined => {
  if (!isRoot()) return "needs root (network namespaces, veth, tc)"
  try {
    execFileSync("ip", ["netns", "list"], { stdio: "pipe" })
    execFileSync("tc", ["-V"], { stdio: "pipe" })
  } catch (e) {
    return `ip netns / tc unavailable: ${(e as Error).message}`
  }
  return undefined
}
