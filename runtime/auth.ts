// An optional shared secret between the components of one cluster. When a token is configured,
// every request but `/healthy` and `/metrics` (which load balancers, probes and Prometheus call without
// credentials; they expose status and counters, nothing a peer could abuse) must carry
// `Authorization: Bearer TOKEN`, else 401. It keeps strangers on the network from registering fake
// peers, triggering seeds or fetching pieces; it is not per-user access control.
import { timingSafeEqual } from "node:crypto"
import { Effect } from "effect"
import { HttpRouter, HttpServerRequest } from "effect/http"
import { errorResponse } from "./http-json.ts"

export const TOKEN_ENV = "DAMSELFLY_TOKEN"
/** A second secret only seed peers hold: with it, the scheduler takes no host as a seed without it
 *  (seeds fetch from the origin and may be handed a daemon's origin credentials). */
export const SEED_TOKEN_ENV = "DAMSELFLY_SEED_TOKEN"

/** The flag's value, else the environment's; an empty string means no token. */
export const resolveToken = (flag: string | undefined, env = TOKEN_ENV): string | undefined => {
  const t = flag ?? process.env[env]
  return t === undefined || t === "" ? undefined : t
}

/** Headers a client adds to every call when it has a token. */
export const authHeaders = (token: string | undefined): Record<string, string> =>
  token === undefined ? {} : { authorization: `Bearer ${token}` }

/** Constant-time, so response timing does not leak how much of a guess was right. */
const sameSecret = (given: string, expected: string) => {
  const a = Buffer.from(given)
  const b = Buffer.from(expected)
  return a.length === b.length && timingSafeEqual(a, b)
}

/** Why a request is refused, or undefined when it may pass. */
export const authProblem = (authorization: string | undefined, token: string): string | undefined => {
  if (authorization === undefined) return "missing Authorization: Bearer token"
  const m = /^Bearer (.+)$/.exec(authorization)
  if (m === null) return "Authorization: expected \"Bearer <token>\""
  return sameSecret(m[1], token) ? undefined : "Authorization: wrong token"
}

const OPEN_PATHS = new Set(["/healthy", "/metrics"])

/** Why a request is refused, or undefined when it carries any one of `tokens`. */
export const authProblemAny = (authorization: string | undefined, tokens: ReadonlyArray<string>): string | undefined => {
  let problem: string | undefined = "missing Authorization: Bearer token"
  for (const token of tokens) {
    problem = authProblem(authorization, token)
    if (problem === undefined) return undefined
  }
  return problem
}

/** A global router middleware accepting any of `tokens`: a Layer to merge next to the routes. */
export const requireToken = (...tokens: ReadonlyArray<string>) =>
  HttpRouter.middleware((handler) =>
    Effect.gen(function*() {
      const request = yield* HttpServerRequest.HttpServerRequest
      const pathname = request.url.split("?")[0]
      if (OPEN_PATHS.has(pathname)) return yield* handler
      const problem = authProblemAny(request.headers["authorization"], tokens)
      if (problem !== undefined) return errorResponse(401, problem)
      return yield* handler
    }), { global: true })
