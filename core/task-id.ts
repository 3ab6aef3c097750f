// A task is "this content, cut this way". Peers that fetch the same URL (minus volatile query
// parameters such as signatures) with the same tag, application and piece length share one task;
// a caller that knows the content digest (an OCI blob) names the task by it, so mirrors agree.
import { Effect, Schema } from "effect"
import type { TaskId } from "./domain.ts"
import { Sha256 } from "./services/sha256.ts"

export interface TaskIdInput {
  readonly url: string
  readonly pieceLength: number
  readonly tag?: string
  readonly application?: string
  /** Query parameters that do not change the content (e.g. presigned-URL signatures). */
  readonly filteredQueryParams?: ReadonlyArray<string>
  /** "sha256:<hex>" when the caller knows the content digest. */
  readonly digest?: string
}

const DIGEST = /^sha256:([0-9a-f]{64})$/

export const stripQueryParams = (url: string, filtered: ReadonlyArray<string>): string => {
  if (filtered.length === 0) return url
  const parsed = new URL(url)
  for (const name of filtered) parsed.searchParams.delete(name)
  return parsed.toString()
}

export class InvalidDigest extends Schema.TaggedError<InvalidDigest>()("InvalidDigest", {
  message: Schema.String
}) {}

export const taskIdOf = (input: TaskIdInput): Effect.Effect<TaskId, InvalidDigest, Sha256> => {
  if (input.digest !== undefined) {
    const m = DIGEST.exec(input.digest)
    return m === null
      ? Effect.fail(new InvalidDigest({ message: `digest: expected "sha256:" and 64 lowercase hex characters, got ${JSON.stringify(input.digest)}` }))
      : Effect.succeed(m[1])
  }
  const url = stripQueryParams(input.url, input.filteredQueryParams ?? [])
  return Sha256.useSync((sha) => sha.hex([url, input.tag ?? "", input.application ?? "", String(input.pieceLength)].join("\n")))
}
