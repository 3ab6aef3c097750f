// PieceTransfer over HTTP to a parent daemon's upload server. Busy, timed-out or not-yet-held
// answers are temporary (retry the parent later); a parent that is gone or answers nonsense is not.
import { Effect, Layer, Schema } from "effect"
import { TransferFailed } from "../core/errors.ts"
import { PieceAvailability } from "../core/protocol.ts"
import { type ParentAddress, PieceTransfer } from "../core/services/piece-transfer.ts"
import { authHeaders } from "./auth.ts"
import { call, describe, type HttpCallError } from "./http-call.ts"

/** The upload server answers a long-poll within ~20 s; this only catches a hung parent. */
const AVAILABILITY_TIMEOUT_MILLIS = 35_000
const PIECE_TIMEOUT_MILLIS = 120_000

const decodeAvailability = Schema.decodeUnknownEffect(PieceAvailability)

const baseOf = (parent: ParentAddress) => `http://${parent.host.ip}:${parent.host.port}/v1/tasks`

const transportFailure = (e: HttpCallError) => new TransferFailed({ message: e.message, temporary: e.timedOut })

const statusFailure = (status: number, message: string) =>
  new TransferFailed({ message, temporary: status === 404 || status === 429 || status === 503 })

/** `taskHeaders`: extra headers per task (a private blob's capability, runtime/blob-access.ts). */
export const makeHttpPieceTransfer = (token?: string, taskHeaders?: (taskId: string) => Record<string, string>) => {
  const auth = authHeaders(token)
  const headersFor = (taskId: string) => taskHeaders === undefined ? auth : { ...auth, ...taskHeaders(taskId) }
  return PieceTransfer.of({
    availability: (parent, taskId, since) =>
      call(`${baseOf(parent)}/${taskId}/availability?since=${since}`, { timeoutMillis: AVAILABILITY_TIMEOUT_MILLIS, headers: headersFor(taskId) }).pipe(
        Effect.mapError(transportFailure),
        Effect.flatMap((reply) => {
          if (reply.status !== 200) return Effect.fail(statusFailure(reply.status, `availability from ${parent.peerId}: ${describe(reply)}`))
          return Effect.try({
            try: () => JSON.parse(reply.body.toString("utf8")) as unknown,
            catch: () => new TransferFailed({ message: `availability from ${parent.peerId}: not JSON`, temporary: false })
          }).pipe(Effect.flatMap((json) =>
            Effect.mapError(decodeAvailability(json), (e) =>
              new TransferFailed({ message: `availability from ${parent.peerId}: ${e.message}`, temporary: false }))
          ))
        })
      ),
    fetchPiece: (parent, taskId, index) =>
      call(`${baseOf(parent)}/${taskId}/pieces/${index}`, { timeoutMillis: PIECE_TIMEOUT_MILLIS, headers: headersFor(taskId) }).pipe(
        Effect.mapError(transportFailure),
        Effect.flatMap((reply) =>
          reply.status === 200
            ? Effect.succeed<Uint8Array>(reply.body)
            : Effect.fail(statusFailure(reply.status, `piece ${index} from ${parent.peerId}: ${describe(reply)}`))
        )
      )
  })
}

export const httpPieceTransfer = (token?: string, taskHeaders?: (taskId: string) => Record<string, string>) =>
  Layer.succeed(PieceTransfer)(makeHttpPieceTransfer(token, taskHeaders))

export const HttpPieceTransfer = httpPieceTransfer()
