// Machine-wide settings the swarm benchmark needs for a faithful emulation, applied for the run and put
// back afterwards. Both keep the emulated network from being an artefact of this one 2-core machine:
//
// - TCP congestion control. This kernel defaults to BBR (v1). BBRv1 paces at its bandwidth estimate and
//   does not back off on loss, and the links here are tbf with a 5 ms queue: in a 16-host run the uplinks
//   dropped 24–37% of their packets (`tc -s qdisc`), the seed's origin fetch ran at ~50% of its link and
//   loss recovery cost the daemons ~40% of their CPU. Cubic, the usual Linux default, lost 0.2% on the same
//   links. A namespace may only pick an algorithm the root namespace allows
//   (`net.ipv4.tcp_allowed_congestion_control`), so that list gets the algorithm for the run.
// - Softirq priority. Every packet between two namespaces is moved by the kernel (veth, bridge, tbf's
//   dequeue timer), and on a busy machine that work runs in the ksoftirqd threads at nice 0. With the
//   benchmark's processes at a negative nice (`--nice`), the wire itself waited for CPU: the seed's
//   128 MiB origin fetch took 16.9–17.4 s instead of 11.5 s (it takes 11.5 s in a 2-host run); with
//   ksoftirqd at the processes' own nice still 16.6 s, at nice −15 or SCHED_FIFO 13.3–13.7 s. A real
//   network is hardware no host's CPU load can slow, so ksoftirqd runs at nice −20 for the run.
import { readdirSync, readFileSync, writeFileSync } from "node:fs"
import { execFileSync } from "node:child_process"

const ALLOWED_CC = "/proc/sys/net/ipv4/tcp_allowed_congestion_control"
const AVAILABLE_CC = "/proc/sys/net/ipv4/tcp_available_congestion_control"
/** The kernel's packet work outranks every emulated host (see above). */
const SOFTIRQ_NICE = -20

export interface HostSettings {
  /** Per-namespace sysctls to add (the congestion control), for Topology. */
  readonly namespaceSysctls: Readonly<Record<string, string>>
  /** What was changed, for the report. */
  readonly applied: ReadonlyArray<string>
  /** Puts everything back (idempotent). */
  readonly restore: () => void
}

/** The nice value of a thread (field 19 of /proc/PID/stat, counted after the command name's ")"). */
const niceOf = (pid: number): number => Number(readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ")[16])

const ksoftirqds = (): Array<number> =>
  readdirSync("/proc").filter((d) => /^\d+$/.test(d)).map(Number).filter((pid) => {
    try {
      return /^ksoftirqd\/\d+$/.test(readFileSync(`/proc/${pid}/comm`, "utf8").trim())
    } catch {
      return false
    }
  })

/**
 * `congestionControl`: the algorithm every namespace uses ("default": the machine's own, untouched).
 * ksoftirqd is raised to SOFTIRQ_NICE whatever it is.
 */
export const applyHostSettings = (congestionControl: string): HostSettings => {
  const undo: Array<() => void> = []
  const applied: Array<string> = []
  const namespaceSysctls: Record<string, string> = {}
  if (congestionControl !== "default") {
    const available = readFileSync(AVAILABLE_CC, "utf8").trim().split(/\s+/)
    if (!available.includes(congestionControl)) {
      throw new Error(`--cc: expected one of this kernel's congestion controls (${available.join(", ")}) or "default", got ${JSON.stringify(congestionControl)}`)
    }
    const allowed = readFileSync(ALLOWED_CC, "utf8").trim()
    if (!allowed.split(/\s+/).includes(congestionControl)) {
      writeFileSync(ALLOWED_CC, `${allowed} ${congestionControl}`)
      undo.push(() => writeFileSync(ALLOWED_CC, allowed))
    }
    namespaceSysctls["net.ipv4.tcp_congestion_control"] = congestionControl
    applied.push(`TCP congestion control ${congestionControl} in every namespace`)
  }
  for (const pid of ksoftirqds()) {
    const before = niceOf(pid)
    if (before <= SOFTIRQ_NICE) continue
    execFileSync("renice", ["-n", String(SOFTIRQ_NICE), "-p", String(pid)], { stdio: "pipe" })
    undo.push(() => {
      try {
        execFileSync("renice", ["-n", String(before), "-p", String(pid)], { stdio: "pipe" })
      } catch {}
    })
  }
  applied.push(`ksoftirqd at nice ${SOFTIRQ_NICE}`)
  let restored = false
  return {
    namespaceSysctls,
    applied,
    restore: () => {
      if (restored) return
      restored = true
      for (const u of undo.reverse()) {
        try {
          u()
        } catch {}
      }
    }
  }
}
