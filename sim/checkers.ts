// Safety invariants, checked while a simulated world runs (chaos): they watch every PieceStore a peer
// program sees and every step of the scheduler, and collect violations with the virtual time and host.
//
//   store-digest    no peer ever stores a piece whose bytes do not hash to the origin's digest
//   commit-content  no peer presents (commits) a task that differs from the origin
//   acyclic         the scheduler's DAG of a task never has a cycle
//   committed-kept  a task reported complete keeps all its pieces to the end (unless the host crashed)
import { createHash } from "node:crypto"
import { Effect } from "effect"
import type { TaskId } from "../core/domain.ts"
import { pieceAt, pieceCountOf } from "../core/piece-layout.ts"
import type { Scheduler } from "../core/scheduler/scheduler.ts"
import type { PieceStore } from "../core/services/piece-store.ts"
import type { SimEngine } from "./engine.ts"
import type { SimHost, WorldMonitor } from "./host.ts"
import { syntheticDigest } from "./origin.ts"

export interface Violation {
  readonly invariant: "store-digest" | "commit-content" | "acyclic" | "committed-kept" | "liveness" | "determinism"
  readonly atSeconds: number
  readonly detail: string
}

export interface Content {
  readonly url: string
  readonly contentLength: number
  readonly pieceLength: number
  readonly taskId: TaskId
}

const sha = (b: Uint8Array) => createHash("sha256").update(b).digest("hex")

export class Checkers implements WorldMonitor {
  readonly violations: Array<Violation> = []
  /** Hosts that committed the task, and when. */
  readonly committed = new Map<string, number>()
  writes = 0
  dagChecks = 0
  private readonly expected: ReadonlyArray<string>
  private engine: SimEngine | undefined

  constructor(private readonly content: Content) {
    const n = pieceCountOf(content.contentLength, content.pieceLength)
    this.expected = Array.from({ length: n }, (_, i) => {
      const p = pieceAt(content.contentLength, content.pieceLength, i)
      return syntheticDigest(content.url, p.offset, p.length)
    })
  }

  /** The world's clock, for timestamps (the world is built after its monitor). */
  attach(engine: SimEngine): void {
    this.engine = engine
  }

  private violate(invariant: Violation["invariant"], detail: string): void {
    this.violations.push({ invariant, atSeconds: (this.engine?.now ?? 0) / 1000, detail })
  }

  /** Whether every piece of the task in `pieces` is there and matches the origin; the first problem otherwise. */
  private contentProblem(pieces: { get(index: number): Uint8Array | undefined } | undefined): string | undefined {
    if (pieces === undefined) return "no pieces"
    for (let i = 0; i < this.expected.length; i++) {
      const b = pieces.get(i)
      if (b === undefined) return `piece ${i} missing`
      if (sha(b) !== this.expected[i]) return `piece ${i} differs from the origin`
    }
    return undefined
  }

  store(me: SimHost, inner: PieceStore["Service"]): PieceStore["Service"] {
    const id = me.host.id
    return {
      ...inner,
      write: (taskId, index, bytes, digest) =>
        Effect.suspend(() => {
          this.writes++
          if (taskId === this.content.taskId) {
            const got = sha(bytes)
            if (got !== this.expected[index]) {
              this.violate("store-digest", `${id} stored piece ${index} with digest ${got.slice(0, 12)}…, origin's is ${this.expected[index]?.slice(0, 12)}… (claimed ${digest.slice(0, 12)}…)`)
            }
          }
          return inner.write(taskId, index, bytes, digest)
        }),
      commit: (taskId) =>
        Effect.tap(inner.commit(taskId), () =>
          Effect.sync(() => {
            if (taskId !== this.content.taskId) return
            const problem = this.contentProblem(me.store.tasks.get(taskId)?.pieces)
            if (problem !== undefined) this.violate("commit-content", `${id} committed the task but ${problem}`)
            if (!this.committed.has(id)) this.committed.set(id, this.engine?.now ?? 0)
          }))
    }
  }

  schedulerActivity(scheduler: Scheduler, message: { readonly _tag: string }): void {
    const what = message._tag
    // Only requests add edges to the DAG; checking there (and after a restart) covers every change,
    // plus departures, which rewire it.
    if (what === "PieceFinished" || what === "DownloadStarted" || what === "BackToSourceStarted" || what === "PieceFailed") return
    const snap = scheduler.snapshot(this.content.taskId)
    this.dagChecks++
    if (snap !== undefined && !snap.acyclic) this.violate("acyclic", `scheduler ${scheduler.epoch}: the DAG has a cycle after ${what}`)
  }

  /** At the end of a run: every host that committed still holds the whole, correct content. */
  finish(hostById: (id: string) => SimHost | undefined, crashed: ReadonlySet<string>): void {
    for (const id of this.committed.keys()) {
      if (crashed.has(id)) continue
      const h = hostById(id)
      const c = h?.store.tasks.get(this.content.taskId)
      const problem = c === undefined ? "task gone" : !c.committed ? "no longer committed" : this.contentProblem(c.pieces)
      if (problem !== undefined) this.violate("committed-kept", `${id} committed the task but at the end: ${problem}`)
    }
  }
}
