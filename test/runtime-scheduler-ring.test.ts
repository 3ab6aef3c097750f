// The scheduler ring every daemon builds from its `--scheduler` list: the same placement whatever the
// list's order, tasks spread over the schedulers, and losing one moves only its tasks, each to the
// next scheduler clockwise (which is where the daemon's failover sends them).
import { createHash } from "node:crypto"
import { describe, expect, it } from "vitest"
import { parseSchedulerList, SchedulerRing } from "../runtime/scheduler-ring.ts"

const NODES = ["http://10.0.0.1:8002", "http://10.0.0.2:8002", "http://10.0.0.3:8002"]
const keys = Array.from({ length: 3000 }, (_, i) => createHash("sha256").update(`task-${i}`).digest("hex"))

describe("scheduler ring", () => {
  it("parses repeated and comma-separated flags into distinct URLs", () => {
    expect(parseSchedulerList(["http://a:1/", "http://b:2,http://c:3", " http://a:1 ", ""])).toEqual(["http://a:1", "http://b:2", "http://c:3"])
  })

  it("places a task the same way whatever the order of the list", () => {
    const a = new SchedulerRing(NODES)
    const b = new SchedulerRing([...NODES].reverse().map((u) => `${u}/`))
    for (const k of keys.slice(0, 500)) expect(b.preference(k)).toEqual(a.preference(k))
  })

  it("spreads tasks over every scheduler, and a preference list names each scheduler once", () => {
    const ring = new SchedulerRing(NODES)
    const count = new Map<string, number>()
    for (const k of keys) {
      const order = ring.preference(k)
      expect([...order].sort()).toEqual([...NODES].sort())
      count.set(order[0], (count.get(order[0]) ?? 0) + 1)
    }
    for (const n of NODES) expect(count.get(n)! / keys.length).toBeGreaterThan(0.2)
  })

  it("losing a scheduler moves only its tasks, each to the next one on the ring", () => {
    const full = new SchedulerRing(NODES)
    const lost = NODES[1]
    const rest = new SchedulerRing(NODES.filter((n) => n !== lost))
    for (const k of keys) {
      const order = full.preference(k)
      expect(rest.owner(k)).toBe(order[0] === lost ? order[1] : order[0])
    }
  })
})
