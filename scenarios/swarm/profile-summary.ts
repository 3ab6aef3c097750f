// Where the damselfly processes' CPU went in a swarm run with `--cpu-prof DIR`: every main-thread profile
// (`DIR/<mode>-<node>/*.0.001.cpuprofile`) whose node matches NODES, its last SECONDS (0 = all: the
// profile also covers start-up), grouped by the kind of work at the top of the stack and by the first
// project module below it. Samples are weighted by wall time, as V8 records them: on a busy machine a
// descheduled process's next sample carries the wait, so read the shares, not the seconds.
//
//   npx tsx scenarios/swarm/profile-summary.ts DIR [NODES-REGEX] [SECONDS]
import { readdirSync, readFileSync } from "node:fs"
import * as path from "node:path"

interface CallFrame { readonly functionName: string; readonly url: string }
interface ProfileNode { readonly id: number; readonly callFrame: CallFrame; readonly children?: ReadonlyArray<number> }
interface Profile { readonly nodes: ReadonlyArray<ProfileNode>; readonly samples: ReadonlyArray<number>; readonly timeDeltas: ReadonlyArray<number>; readonly startTime: number; readonly endTime: number }

/** What kind of work the innermost frame is doing. */
export const kindOf = (cf: CallFrame): string => {
  const { url: f, functionName: fn } = cf
  if (fn === "(garbage collector)") return "GC"
  if (fn === "(program)") return "V8/native outside JS"
  if (/crypto\/hash/.test(f) || fn === "digest") return "sha256"
  if (["writeBuffer", "writev", "writeLatin1String", "writeUtf8String", "read"].includes(fn) || /stream_base_commons|node:net/.test(f)) return "socket/file syscalls"
  if (/node:_http|node:internal\/streams|node:events|node:internal\/url|abort_controller|add-abort-signal|end-of-stream/.test(f)) return "Node HTTP, streams, events"
  if (/effect\/dist\/(Schema|internal\/schema|SchemaAST|SchemaParser)/.test(f)) return "Effect Schema"
  if (/@effect\/platform-node|effect\/dist\/http/.test(f)) return "Effect HTTP"
  if (/effect\/dist/.test(f)) return "Effect runtime (fibers)"
  if (/task_queues|node:internal\/timers|node:timers|async_hooks/.test(f) || fn === "runMicrotasks") return "Node ticks, timers"
  if (/\/(core|runtime|scenarios)\//.test(f)) return "project code"
  return "other"
}

const OWNERS: ReadonlyArray<readonly [RegExp, string]> = [
  [/runtime\/disk-store/, "disk-store"], [/runtime\/piece-client/, "piece-client"], [/runtime\/upload-server/, "upload-server"],
  [/runtime\/http-scheduler-channel/, "http-scheduler-channel"], [/runtime\/http-piece-transfer/, "http-piece-transfer"],
  [/runtime\/http-call/, "http-call"], [/core\/piece-ledger/, "piece-ledger"], [/core\/peer\/machine/, "peer machine"],
  [/core\/peer\/conductor/, "conductor"], [/runtime\/scheduler-server/, "scheduler-server"], [/core\/scheduler\//, "core scheduler"],
  [/runtime\/http-json/, "http-json"], [/runtime\/http-serve/, "http-serve"], [/runtime\/(daemon|task-stream|progress)/, "daemon"],
  [/core\/protocol/, "protocol"], [/runtime\/metrics/, "metrics"]
]

const [dir, nodes = ".", seconds = "0"] = process.argv.slice(2)
if (dir === undefined) {
  console.error("usage: scenarios/swarm/profile-summary.ts DIR [NODES-REGEX] [SECONDS]")
  process.exit(2)
}
const byKind = new Map<string, number>()
const byOwner = new Map<string, number>()
let total = 0
for (const node of readdirSync(dir).sort()) {
  if (!new RegExp(nodes).test(node)) continue
  const file = readdirSync(path.join(dir, node)).find((f) => /\.0\.0*1\.cpuprofile$/.test(f))
  if (file === undefined) continue
  const p = JSON.parse(readFileSync(path.join(dir, node, file), "utf8")) as Profile
  const byId = new Map(p.nodes.map((n) => [n.id, n]))
  const parent = new Map<number, number>()
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id)
  const from = Number(seconds) > 0 ? p.endTime - Number(seconds) * 1e6 : -Infinity
  const memo = new Map<number, readonly [string, string]>()
  let t = p.startTime
  p.samples.forEach((id, i) => {
    t += p.timeDeltas[i]
    const n = byId.get(id)!
    if (t < from || n.callFrame.functionName === "(idle)") return
    let m = memo.get(id)
    if (m === undefined) {
      let owner = "(none: a callback from Node or Effect)"
      for (let c: number | undefined = id; c !== undefined; c = parent.get(c)) {
        const hit = OWNERS.find(([re]) => re.test(byId.get(c!)!.callFrame.url))
        if (hit !== undefined) {
          owner = hit[1]
          break
        }
      }
      m = [kindOf(n.callFrame), owner] as const
      memo.set(id, m)
    }
    const us = p.timeDeltas[i]
    total += us
    byKind.set(m[0], (byKind.get(m[0]) ?? 0) + us)
    byOwner.set(m[1], (byOwner.get(m[1]) ?? 0) + us)
  })
}
const show = (title: string, m: Map<string, number>) => {
  console.log(`\n| ${title} | share |\n|---|---|`)
  for (const [k, v] of [...m].sort((a, b) => b[1] - a[1])) if (v / total >= 0.005) console.log(`| ${k} | ${(100 * v / total).toFixed(1)}% |`)
}
console.log(`${(total / 1e6).toFixed(1)} s of (wall-weighted) samples`)
show("kind of work (innermost frame)", byKind)
show("first project module on the stack", byOwner)
