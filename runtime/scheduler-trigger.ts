// Scheduler-signed triggers: the requests a scheduler sends to daemons (`POST /v1/seed`, `POST /v1/preheat`,
// `GET /v1/preheat/:taskId`) carry a short-lived claim signed with the scheduler's Ed25519 key — the key
// that signs private-blob capabilities (runtime/blob-access.ts) — so the cluster token, which every node
// holds, is not enough to make a daemon fetch a URL back to source (SSRF into its network, then read
// through the peer routes).
//
// The claim names the route, the task, the target host and the sha256 of the exact request body (so the
// URL, piece length, headers, digest and capability too), and expires after `TRIGGER_TTL_SECONDS`. The
// daemon verifies it with the public keys of the schedulers it was configured with (`GET
// /v1/blob-access/keys`, refreshed on an unknown key id), and refuses (403) when the claim is missing,
// malformed, signed by a key none of them serves, expired, or made for another route, task, body or host.
// A claim seen on the wire can be replayed until it expires, but only as the very same request to the
// very same host: the download it starts is the one the scheduler asked for, and joining it is idempotent.
import { createHash, type KeyObject } from "node:crypto"
import { Schema } from "effect"
import { TaskId } from "../core/domain.ts"
import { openSignedToken, signClaims } from "./signed-token.ts"

export const TRIGGER_HEADER = "x-damselfly-trigger"
/** Long enough for a slow network and modest clock skew; short enough that a captured claim soon dies. */
export const TRIGGER_TTL_SECONDS = 60

export const TriggerRoute = Schema.Literals(["seed", "preheat", "preheat-status"])
export type TriggerRoute = typeof TriggerRoute.Type

/** What a trigger claim says; the header is base64url(JSON of this) "." base64url(Ed25519 signature). */
export const TriggerClaims = Schema.Struct({
  v: Schema.Literal(1),
  /** Which scheduler key signed it (`keyIdOf`, as for capabilities). */
  kid: Schema.String,
  route: TriggerRoute,
  task: TaskId,
  /** The target daemon's host id. */
  host: Schema.String,
  /** sha256 hex of the request body as sent; absent for a request without one (GET). */
  body: Schema.optionalKey(Schema.String),
  /** Expiry, seconds since the epoch. */
  exp: Schema.Number
})
export type TriggerClaims = typeof TriggerClaims.Type

/** What the scheduler hands its trigger senders: the header value for one request. */
export type TriggerSigner = (route: TriggerRoute, taskId: string, hostId: string, body?: string) => string

export const bodyDigest = (body: string) => createHash("sha256").update(body).digest("hex")

export const signTrigger = (claims: TriggerClaims, privateKey: KeyObject): string => signClaims(claims, privateKey)

/** The claims a scheduler signs for one request to `hostId` at `nowSeconds`. */
export const triggerClaims = (kid: string, route: TriggerRoute, taskId: string, hostId: string, body: string | undefined, nowSeconds: number): TriggerClaims => ({
  v: 1,
  kid,
  route,
  task: taskId,
  host: hostId,
  ...(body === undefined ? {} : { body: bodyDigest(body) }),
  exp: nowSeconds + TRIGGER_TTL_SECONDS
})

export interface TriggerExpectation {
  readonly route: TriggerRoute
  readonly taskId: string
  /** This daemon's host id. */
  readonly hostId: string
  /** The request body as received (undefined: the route has none). */
  readonly body?: string | undefined
}

/** Why `token` does not authorize this request, or undefined when it does. */
export const triggerProblem = (
  token: string | undefined,
  expected: TriggerExpectation,
  keys: ReadonlyMap<string, KeyObject>,
  nowSeconds: number
): string | undefined => {
  if (token === undefined || token === "") return `${TRIGGER_HEADER}: required (only a scheduler this daemon is configured with may call this route, and it signs each request)`
  const opened = openSignedToken(token, TRIGGER_HEADER, TriggerClaims, keys, " (none of this daemon's schedulers serves it)")
  if (opened.problem !== undefined) return opened.problem
  const { claims } = opened
  if (claims.exp <= nowSeconds) return `${TRIGGER_HEADER}: expired ${nowSeconds - claims.exp} s ago (are the clocks of scheduler and daemon apart?)`
  if (claims.exp > nowSeconds + 10 * TRIGGER_TTL_SECONDS) return `${TRIGGER_HEADER}: expires too far ahead`
  if (claims.route !== expected.route) return `${TRIGGER_HEADER}: issued for another route (${claims.route}, not ${expected.route})`
  if (claims.task !== expected.taskId) return `${TRIGGER_HEADER}: issued for another task`
  if (claims.host !== expected.hostId) return `${TRIGGER_HEADER}: issued for another host (${JSON.stringify(claims.host)}, this is ${JSON.stringify(expected.hostId)})`
  if (expected.body !== undefined && claims.body !== bodyDigest(expected.body)) return `${TRIGGER_HEADER}: issued for another request body (url, piece length or headers differ)`
  return undefined
}
