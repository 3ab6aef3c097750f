// A peer's PieceStore in memory: per task, the core PieceLedger and the bytes of each piece.
import { Effect } from "effect"
import type { TaskId } from "../core/domain.ts"
import { StoreFailed } from "../core/errors.ts"
import { PieceLedger } from "../core/piece-ledger.ts"
import type { PieceEntry } from "../core/protocol.ts"
import type { PieceStore, StoredTask } from "../core/services/piece-store.ts"
import type { Trace } from "./trace.ts"

/** A task's piece bytes by index (an array, not a Map: a large run holds millions). */
export class PieceBytes {
  private readonly bytes: Array<Uint8Array | undefined>
  size = 0

  constructor(pieceCount: number) {
    this.bytes = new Array(pieceCount).fill(undefined)
  }

  get(index: number): Uint8Array | undefined {
    return this.bytes[index]
  }

  has(index: number): boolean {
    return this.bytes[index] !== undefined
  }

  set(index: number, bytes: Uint8Array): void {
    if (this.bytes[index] === undefined) this.size++
    this.bytes[index] = bytes
  }
}

export interface StoredContent {
  readonly task: StoredTask
  readonly ledger: PieceLedger
  readonly pieces: PieceBytes
  committed: boolean
}

/**
 * One log entry per piece content, shared by every ledger that holds it: a simulated copy is its
 * parent's array (never mutated), so the array identifies the entry. A large run holds millions.
 */
const entries = new WeakMap<Uint8Array, PieceEntry>()
/** The entry last handed out per piece index, checked before the WeakMap: a swarm of one task writes
 *  the same (index, digest) millions of times. Entries are immutable values: which of two equal ones a
 *  ledger logs makes no difference. */
const lastEntry: Array<PieceEntry | undefined> = []
const entryOf = (index: number, bytes: Uint8Array, digest: string): PieceEntry => {
  const last = lastEntry[index]
  if (last !== undefined && last.digest === digest) return last
  const e = entryByBytes(index, bytes, digest)
  if (index < 1 << 20) {
    while (lastEntry.length < index) lastEntry.push(undefined)
    lastEntry[index] = e
  }
  return e
}
const entryByBytes = (index: number, bytes: Uint8Array, digest: string): PieceEntry => {
  const e = entries.get(bytes)
  if (e !== undefined && e.index === index && e.digest === digest) return e
  const made = { index, digest }
  entries.set(bytes, made)
  return made
}

export class MemoryStore {
  readonly tasks = new Map<TaskId, StoredContent>()

  constructor(
    private readonly hostId: string,
    private readonly record: (line: string) => void,
    /** The engine's trace and clock, when the store records into one: a piece's line is then written
     *  straight into it instead of being built as a string (a line per piece per peer). */
    private readonly traced?: { readonly now: number; readonly trace: Trace }
  ) {}

  ledger(taskId: TaskId): PieceLedger | undefined {
    return this.tasks.get(taskId)?.ledger
  }

  /** `service.write` without an Effect (the simulator's fault-free fast path): the failure, if any. */
  writeNow(taskId: TaskId, index: number, bytes: Uint8Array, digest: string): StoreFailed | undefined {
    const c = this.tasks.get(taskId)
    if (c === undefined) return new StoreFailed({ message: `write: task ${taskId} is not open on ${this.hostId}` })
    return this.writeInto(c, index, bytes, digest)
  }

  /** `writeNow` into a task's content the caller looked up (`tasks.get`) before: one lookup per download, not per piece. */
  writeInto(c: StoredContent, index: number, bytes: Uint8Array, digest: string): StoreFailed | undefined {
    if (index < 0 || index >= c.ledger.pieceCount) {
      return new StoreFailed({ message: `write: piece ${index} outside 0..${c.ledger.pieceCount - 1}` })
    }
    if (!c.pieces.has(index)) {
      const t = this.traced
      if (t !== undefined) t.trace.begin(t.now, this.hostId.length + 32).text("store ").text(this.hostId).text(" ").int(index).end()
      else this.record(`store ${this.hostId} ${index}`)
    }
    c.pieces.set(index, bytes)
    // The ledger is what children long-poll; adding is idempotent if the caller adds too.
    c.ledger.addEntry(entryOf(index, bytes, digest))
    return undefined
  }

  readonly service: PieceStore["Service"] = {
    open: (task) =>
      Effect.sync(() => {
        let c = this.tasks.get(task.taskId)
        if (c === undefined) {
          const ledger = new PieceLedger(task.taskId, task.contentLength, task.pieceLength)
          c = { task, ledger, pieces: new PieceBytes(ledger.pieceCount), committed: false }
          this.tasks.set(task.taskId, c)
          this.record(`open ${this.hostId} ${task.contentLength}/${task.pieceLength}`)
        }
        return c.ledger
      }),
    write: (taskId, index, bytes, digest) =>
      Effect.suspend(() => {
        const failure = this.writeNow(taskId, index, bytes, digest)
        return failure === undefined ? Effect.void : Effect.fail(failure)
      }),
    read: (taskId, index) =>
      Effect.suspend(() => {
        const bytes = this.tasks.get(taskId)?.pieces.get(index)
        return bytes === undefined
          ? Effect.fail(new StoreFailed({ message: `read: ${this.hostId} holds no piece ${index} of ${taskId}` }))
          : Effect.succeed(bytes)
      }),
    held: () => Effect.sync(() => [...this.tasks.values()].map((c) => ({ task: c.task, ledger: c.ledger }))),
    commit: (taskId) =>
      Effect.suspend(() => {
        const c = this.tasks.get(taskId)
        if (c === undefined) return Effect.fail(new StoreFailed({ message: `commit: task ${taskId} is not open` }))
        if (!c.ledger.complete) {
          return Effect.fail(new StoreFailed({ message: `commit: ${c.ledger.version}/${c.ledger.pieceCount} pieces held` }))
        }
        c.committed = true
        this.record(`commit ${this.hostId}`)
        return Effect.void
      })
  }
}
