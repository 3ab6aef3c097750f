// The swarm benchmark (issue #4 item 9): real hosts as network namespaces, tbf-shaped links, modes
// direct / damselfly / bittorrent one after another, plus the simulator's prediction. Needs root.
//
//   sudo npx tsx scenarios/swarm/run.ts --hosts 16 --rate-mbit 100 --size-mib 128 \
//     --modes direct,damselfly,bittorrent --json out/swarm.json [--client curl|get] [--logs DIR]
import { promises as fs } from "node:fs"
import * as path from "node:path"
import { DEFAULT_MODES, markdown, type Mode, MODES, runSwarm } from "./bench.ts"

const usage = `usage: scenarios/swarm/run.ts [--hosts N] [--rate-mbit R] [--origin-mbit R] [--size-mib S] [--piece-kib K]
  [--modes direct,damselfly,dragonfly,bittorrent] [--json PATH] [--client curl|get] [--logs DIR]
  [--timeout SECONDS] [--prefix NAME] [--subnet A.B.C] [--nice N] [--sysctl KEY=VALUE]... [--no-predict]
  [--cpu-prof DIR] [--warmup-mib M] [--cc cubic|bbr|reno|default] [--tbf-burst-ms MS]`

const args = process.argv.slice(2)
const value = (name: string): string | undefined => {
  const i = args.indexOf(name)
  if (i < 0) return undefined
  const v = args[i + 1]
  if (v === undefined || v.startsWith("--")) throw new Error(`${name}: expected a value\n${usage}`)
  return v
}
const number = (name: string, fallback: number): number => {
  const v = value(name)
  if (v === undefined) return fallback
  const n = Number(v)
  if (!Number.isFinite(n) || n <= 0) throw new Error(`${name}: expected a positive number, got ${JSON.stringify(v)}`)
  return n
}

const niceness = (v: string): number => {
  const n = Number(v)
  if (!Number.isInteger(n) || n < -20 || n > 19) throw new Error(`--nice: expected an integer from -20 to 19, got ${JSON.stringify(v)}`)
  return n
}

/** Every `--sysctl KEY=VALUE` (repeatable). */
const sysctls = (): Record<string, string> => {
  const out: Record<string, string> = {}
  args.forEach((a, i) => {
    if (a !== "--sysctl") return
    const m = /^([a-z0-9_.]+)=(.+)$/.exec(args[i + 1] ?? "")
    if (m === null) throw new Error(`--sysctl: expected KEY=VALUE like net.ipv4.tcp_slow_start_after_idle=0, got ${JSON.stringify(args[i + 1])}`)
    out[m[1]] = m[2]
  })
  return out
}

const main = async () => {
  if (args.includes("--help") || args.includes("-h")) {
    console.log(usage)
    return
  }
  if (process.getuid?.() !== 0) {
    console.error("scenarios/swarm/run.ts: refusing to run: needs root (network namespaces, veth, tc)")
    process.exitCode = 2
    return
  }
  const modes = (value("--modes") ?? DEFAULT_MODES.join(",")).split(",").map((m) => m.trim()).filter(Boolean)
  for (const m of modes) if (!(MODES as ReadonlyArray<string>).includes(m)) throw new Error(`--modes: expected some of ${MODES.join(", ")}, got ${JSON.stringify(m)}`)
  const client = value("--client") ?? "curl"
  if (client !== "curl" && client !== "get") throw new Error(`--client: expected curl or get, got ${JSON.stringify(client)}`)
  const subnet = value("--subnet")
  if (subnet !== undefined && !/^\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(subnet)) throw new Error(`--subnet: expected three octets like 10.77.0, got ${JSON.stringify(subnet)}`)
  const prefix = value("--prefix")
  if (prefix !== undefined && !/^[a-z][a-z0-9]{0,5}$/.test(prefix)) throw new Error(`--prefix: expected 1–6 lowercase letters/digits, got ${JSON.stringify(prefix)}`)
  const json = value("--json")
  const logs = value("--logs")
  const timeout = value("--timeout")
  const result = await runSwarm({
    hosts: Math.round(number("--hosts", 16)),
    rateMbit: number("--rate-mbit", 100),
    originMbit: number("--origin-mbit", number("--rate-mbit", 100)),
    sizeMiB: number("--size-mib", 128),
    ...(value("--piece-kib") === undefined ? {} : { pieceLength: Math.round(number("--piece-kib", 0) * 1024) }),
    modes: modes as Array<Mode>,
    client,
    ...(prefix === undefined ? {} : { prefix }),
    ...(subnet === undefined ? {} : { subnet }),
    ...(logs === undefined ? {} : { logDir: logs }),
    ...(timeout === undefined ? {} : { timeoutSeconds: number("--timeout", 0) }),
    ...(value("--nice") === undefined ? {} : { niceness: niceness(value("--nice")!) }),
    sysctls: sysctls(),
    noPredict: args.includes("--no-predict"),
    ...(value("--cpu-prof") === undefined ? {} : { cpuProfDir: value("--cpu-prof")! }),
    ...(value("--tbf-burst-ms") === undefined ? {} : { tbfBurstMillis: number("--tbf-burst-ms", 0) }),
    ...(value("--cc") === undefined ? {} : { congestionControl: value("--cc")! }),
    ...(value("--warmup-mib") === undefined ? {} : { warmupMiB: number("--warmup-mib", 0) })
  })
  console.log(markdown(result))
  if (json !== undefined) {
    await fs.mkdir(path.dirname(path.resolve(json)), { recursive: true })
    await fs.writeFile(json, JSON.stringify(result, null, 2))
    console.error(`wrote ${json}`)
  }
  const failed = result.modes.filter((m) => m.error !== undefined || m.verified !== m.hosts)
  if (failed.length > 0) {
    console.error(`incomplete: ${failed.map((m) => `${m.mode} (${m.verified}/${m.hosts} verified${m.error === undefined ? "" : `: ${m.error}`})`).join(", ")}`)
    process.exitCode = 1
  }
}

main().catch((e) => {
  console.error(e instanceof Error ? e.message : e)
  process.exitCode = 1
})
