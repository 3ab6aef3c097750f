// PieceTransfer over HTTP to a parent daemon's upload server. Busy, timed-out or not-yet-held
// answers are temporary (retry the parent later); a parent that is gone or answers nonsense is not.
//
// The piece path is the hot one (a 1 GiB task is 256 of these), so it has its own client
// (runtime/piece-client.ts): the socket reads the body straight into a buffer of the announced length,
// hashed on the piece hash thread (runtime/piece-hash-thread.ts; a piece of up to 4 MiB whole once it is
// in, larger ones as they arrive), so hashing overlaps the network (other pieces') and leaves this thread; the digest is handed to the Sha256 service (runtime/node-sha256.ts), and the
// conductor checks it against the expected one as for any piece. With a `stage` (the daemon's disk
// store), the bytes also go to their place in the task's file as they arrive (runtime/disk-store.ts).
//
// Availability goes over one streamed response per (parent, task) (runtime/availability-feed.ts); a
// parent from before the feed is long-polled, one request per answer.
import { Effect, Layer, Schema } from "effect"
import { TransferFailed } from "../core/errors.ts"
import { PieceAvailability } from "../core/protocol.ts"
import { type ParentAddress, PieceTransfer } from "../core/services/piece-transfer.ts"
import { authHeaders } from "./auth.ts"
import { makeAvailabilityFeeds } from "./availability-feed.ts"
import { call, describe } from "./http-call.ts"
import { rememberDigest } from "./node-sha256.ts"
import { getPiece, PieceClientError, type PieceSink } from "./piece-client.ts"
import { statusFailure, transportFailure } from "./transfer-failure.ts"

/** The upload server answers a long-poll within ~20 s; this only catches a hung parent. */
const AVAILABILITY_TIMEOUT_MILLIS = 35_000
const PIECE_TIMEOUT_MILLIS = 120_000
/** Larger than any piece a sane layout makes (core caps computed lengths at 64 MiB); refused unread. */
const MAX_PIECE_BYTES = 1024 * 1024 * 1024

const decodeAvailability = Schema.decodeUnknownEffect(PieceAvailability)

const baseOf = (parent: ParentAddress) => `http://${parent.host.ip}:${parent.host.port}/v1/tasks`

/** One piece: the bytes (their digest remembered for the Sha256 service) on 200, else why not. */
const fetchPieceBytes = async (
  parent: ParentAddress,
  path: string,
  what: string,
  headers: Readonly<Record<string, string>>,
  signal: AbortSignal,
  sink: ((body: Buffer) => PieceSink | undefined) | undefined
) => {
  const reply = await getPiece({
    host: parent.host.ip,
    port: parent.host.port,
    path,
    headers,
    timeoutMillis: PIECE_TIMEOUT_MILLIS,
    maxBodyBytes: MAX_PIECE_BYTES,
    signal,
    sink
  }).catch((e: unknown) => {
    throw e instanceof PieceClientError
      ? new TransferFailed({ message: `${what}: ${e.message}`, temporary: e.timedOut })
      : new TransferFailed({ message: `${what}: ${String(e)}`, temporary: false })
  })
  if (reply.status !== 200) {
    const text = reply.body.subarray(0, 300).toString("utf8")
    throw statusFailure(reply.status, `${what}: HTTP ${reply.status}${text.length > 0 ? `: ${text}` : ""}`)
  }
  rememberDigest(reply.body, reply.digest!)
  return reply.body
}

/**
 * `taskHeaders`: extra headers per task (a private blob's capability, runtime/blob-access.ts).
 * `stage`: where a piece's bytes go while they arrive (the daemon's `DiskStore.stage`); the bytes are
 * returned and verified as ever, this only spares the store copying them again.
 */
export const makeHttpPieceTransfer = (
  token?: string,
  taskHeaders?: (taskId: string) => Record<string, string>,
  stage?: (taskId: string, index: number, body: Buffer) => PieceSink | undefined
) => {
  const auth = authHeaders(token)
  const headersFor = (taskId: string) => taskHeaders === undefined ? auth : { ...auth, ...taskHeaders(taskId) }
  const longPoll = (parent: ParentAddress, taskId: string, since: number) =>
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
    )
  const feeds = makeAvailabilityFeeds({ longPoll })
  return PieceTransfer.of({
    availability: (parent, taskId, since) => feeds.availability(parent, taskId, since, headersFor(taskId)),
    fetchPiece: (parent, taskId, index) =>
      Effect.tryPromise({
        try: (signal): Promise<Uint8Array> =>
          fetchPieceBytes(
            parent,
            `/v1/tasks/${taskId}/pieces/${index}`,
            `piece ${index} from ${parent.peerId}`,
            headersFor(taskId),
            signal,
            stage === undefined ? undefined : (body) => stage(taskId, index, body)
          ),
        catch: (e) => e instanceof TransferFailed ? e : new TransferFailed({ message: `piece ${index} from ${parent.peerId}: ${String(e)}`, temporary: false })
      })
  })
}

export const httpPieceTransfer = (token?: string, taskHeaders?: (taskId: string) => Record<string, string>) =>
  Layer.succeed(PieceTransfer)(makeHttpPieceTransfer(token, taskHeaders))

export const HttpPieceTransfer = httpPieceTransfer()
