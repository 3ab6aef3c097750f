// How the scheduler asks a seed peer to start fetching a task from the origin.
import { Context, type Effect } from "effect"
import type { Host, TaskId } from "../domain.ts"

export interface SeedRequest {
  readonly taskId: TaskId
  readonly url: string
  readonly pieceLength: number
  readonly headers: Readonly<Record<string, string>>
}

export class SeedPeerTrigger extends Context.Service<SeedPeerTrigger, {
  /** Fire and forget: the seed registers with the scheduler like any peer once it starts. */
  trigger(seed: Host, request: SeedRequest): Effect.Effect<void>
}>()("damselfly/core/SeedPeerTrigger") {}
