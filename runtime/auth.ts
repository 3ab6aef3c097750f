// An optional shared secret between the components of one cluster. When a token is configured,
// every request but `/healthy` and `/metrics` (which load balancers, probes and Prometheus call without
// credentials; they expose status and counters, nothing a peer could abuse) must carry
// `Authorization: Bearer TOKEN`, else 401. It keeps strangers on the network from registering fake
// peers, triggering seeds or fetching pieces; it is not per-user access control.
import { createHash, timingSafeEqual } from "node:crypto"
import { Effect } from "effect"
import { HttpRouter, HttpServerRequest } from "effect/http"
import { errorResponse } from "./http-json.ts"

export const TOKEN_ENV = "DAMSELFLY_TOKEN"
/** A second secret only seed peers hold: with it, the scheduler takes no host as a seed without it
 *  (seeds fetch from the origin and may be handed a daemon's origin credentials). It rides its own
 *  header, next to the cluster token, so a seed works with schedulers that have no seed token too. */
export const SEED_TOKEN_ENV = "DAMSELFLY_SEED_TOKEN"
export const SEED_TOKEN_HEADER = "x-damselfly-seed-token"
/** A third secret, for the daemon's local control routes (runtime/control-access.ts): held by clients that
 *  drive a daemon from another host, never needed by peers. Its own header, next to the cluster token. */
export const CONTROL_TOKEN_ENV = "DAMSELFLY_CONTROL_TOKEN"
export const CONTROL_TOKEN_HEADER = "x-damselfly-control-token"
/** A fourth, the operator's, for the scheduler's preheat jobs API (runtime/preheat.ts): a job makes peers
 *  fetch a URL, so the cluster token alone must not create one. */
export const JOBS_TOKEN_ENV = "DAMSELFLY_JOBS_TOKEN"
export const JOBS_TOKEN_HEADER = "x-damselfly-jobs-token"

/** The flag's value, else the environment's; an empty string means no token. */
export const resolveToken = (flag: string | undefined, env = TOKEN_ENV): string | undefined => {
  const t = flag ?? process.env[env]
  return t === undefined || t === "" ? undefined : t
}

/** Headers a client adds to every call when it has a token. */
export const authHeaders = (token: string | undefined): Record<string, string> =>
  token === undefined ? {} : { authorization: `Bearer ${token}` }

/** Headers a client of a daemon's control routes adds: the cluster token and, when it has one, the control token. */
export const clientHeaders = (token: string | undefined, controlToken: string | undefined): Record<string, string> => {
  const control = resolveToken(controlToken, CONTROL_TOKEN_ENV)
  return { ...authHeaders(resolveToken(token)), ...(control === undefined ? {} : { [CONTROL_TOKEN_HEADER]: control }) }
}

/** Constant-time over digests, so response timing leaks neither how much of a guess was right nor the length. */
export const sameSecret = (given: string, expected: string) =>
  timingSafeEqual(createHash("sha256").update(given).digest(), createHash("sha256").update(expected).digest())

/** Why a request is refused, or undefined when it may pass. */
export const authProblem = (authorization: string | undefined, token: string): string | undefined => {
  if (authorization === undefined) return "missing Authorization: Bearer token"
  const m = /^Bearer (.+)$/.exec(authorization)
  if (m === null) return "Authorization: expected \"Bearer <token>\""
  return sameSecret(m[1], token) ? undefined : "Authorization: wrong token"
}

const OPEN_PATHS = new Set(["/healthy", "/metrics"])

/** A global router middleware: a Layer to merge next to the routes (nothing when there is no token). */
export const requireToken = (token: string) =>
  HttpRouter.middleware((handler) =>
    Effect.gen(function*() {
      const request = yield* HttpServerRequest.HttpServerRequest
      const pathname = request.url.split("?")[0]
      if (OPEN_PATHS.has(pathname)) return yield* handler
      const problem = authProblem(request.headers["authorization"], token)
      if (problem !== undefined) return errorResponse(401, problem)
      return yield* handler
    }), { global: true })
