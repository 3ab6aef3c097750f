// Consistent hashing of tasks over schedulers. Every daemon builds the same ring from the same list of
// scheduler URLs (order does not matter), so every peer of a task talks to the same scheduler, and
// losing one scheduler moves only its tasks, each to the next scheduler clockwise.
//
// Not Effect's HashRing: failover needs the whole clockwise order of distinct schedulers from a key
// (`preference`), which it does not expose, and positions here come from sha256, so daemons built with
// different library versions still agree on where a task lives.
import { createHash } from "node:crypto"

const position = (s: string): number => createHash("sha256").update(s).digest().readUInt32BE(0)

/** A task id is already a sha256: its first 32 bits are its position; anything else is hashed. */
const keyPosition = (key: string): number => (/^[0-9a-f]{64}$/.test(key) ? parseInt(key.slice(0, 8), 16) : position(key))

/** A scheduler URL as one ring member: no trailing slashes. */
export const normalizeSchedulerUrl = (url: string) => url.trim().replace(/\/+$/, "")

/** `--scheduler` values, each possibly a comma-separated list, as distinct normalized URLs. */
export const parseSchedulerList = (values: ReadonlyArray<string>): Array<string> => [
  ...new Set(values.flatMap((v) => v.split(",")).map(normalizeSchedulerUrl).filter((v) => v !== ""))
]

export class SchedulerRing {
  readonly nodes: ReadonlyArray<string>
  /** Virtual points sorted by position: [position, node index]. */
  private readonly points: ReadonlyArray<readonly [number, number]>

  constructor(nodes: ReadonlyArray<string>, readonly virtualNodes = 160) {
    this.nodes = parseSchedulerList(nodes).sort()
    if (this.nodes.length === 0) throw new Error("a scheduler ring needs at least one scheduler")
    const points: Array<readonly [number, number]> = []
    this.nodes.forEach((node, n) => {
      for (let v = 0; v < virtualNodes; v++) points.push([position(`${node}#${v}`), n])
    })
    points.sort((a, b) => a[0] - b[0] || a[1] - b[1])
    this.points = points
  }

  /** Every scheduler, in the order a key tries them: its owner first, then the next ones clockwise. */
  preference(key: string): Array<string> {
    const at = keyPosition(key)
    let lo = 0
    let hi = this.points.length
    while (lo < hi) {
      const mid = (lo + hi) >>> 1
      if (this.points[mid][0] < at) lo = mid + 1
      else hi = mid
    }
    const order: Array<string> = []
    const seen = new Set<number>()
    for (let i = 0; i < this.points.length && order.length < this.nodes.length; i++) {
      const n = this.points[(lo + i) % this.points.length][1]
      if (!seen.has(n)) {
        seen.add(n)
        order.push(this.nodes[n])
      }
    }
    return order
  }

  owner(key: string): string {
    return this.preference(key)[0]
  }
}
