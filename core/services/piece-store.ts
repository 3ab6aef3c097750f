// Where a peer keeps pieces. `write` stores one verified piece atomically and records it in the
// task's ledger; a task is presented as complete only after every piece is in (`commit`).
import { Context, type Effect } from "effect"
import type { TaskId } from "../domain.ts"
import type { StoreFailed } from "../errors.ts"
import type { PieceLedger } from "../piece-ledger.ts"

export interface StoredTask {
  readonly taskId: TaskId
  readonly url: string
  readonly contentLength: number
  readonly pieceLength: number
}

export class PieceStore extends Context.Service<PieceStore, {
  /** Opens (or resumes) the task's storage and returns its ledger of held pieces. */
  open(task: StoredTask): Effect.Effect<PieceLedger, StoreFailed>
  /**
   * Takes ownership of `bytes`: the caller neither reads nor changes them afterwards (a store may
   * reuse the buffer once the piece is stored; one that keeps or copies them may ignore this).
   */
  write(taskId: TaskId, index: number, bytes: Uint8Array, digest: string): Effect.Effect<void, StoreFailed>
  read(taskId: TaskId, index: number): Effect.Effect<Uint8Array, StoreFailed>
  /** All pieces are in: make the content available as a whole. */
  commit(taskId: TaskId): Effect.Effect<void, StoreFailed>
  /** Every task this store holds pieces of, with its ledger (for re-registering after a scheduler restart). */
  held(): Effect.Effect<ReadonlyArray<{ readonly task: StoredTask; readonly ledger: PieceLedger }>>
}>()("damselfly/core/PieceStore") {}
