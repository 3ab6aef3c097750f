// The origin server. The network charges each range its real length, but the bytes handed back are
// synthetic: 32 bytes = sha256 of "url:offset:length". The core still verifies real sha256 digests (of
// these stand-ins), and a 1 GiB file costs no memory.
import { createHash } from "node:crypto"
import { Effect } from "effect"
import { OriginFailed } from "../core/errors.ts"
import type { Origin } from "../core/services/piece-transfer.ts"
import type { Faults } from "./faults.ts"
import type { Network, NetHost } from "./network.ts"

export const syntheticBytes = (url: string, offset: number, length: number): Uint8Array =>
  new Uint8Array(createHash("sha256").update(`${url}:${offset}:${length}`).digest())

/** The digest a verified copy of this range must have. */
export const syntheticDigest = (url: string, offset: number, length: number): string =>
  createHash("sha256").update(syntheticBytes(url, offset, length)).digest("hex")

export interface OriginContent {
  readonly url: string
  readonly contentLength: number
}

/** The Origin service as seen from `client`. */
export const originService = (network: Network, origin: NetHost, client: NetHost, content: OriginContent, faults?: Faults): Origin["Service"] => {
  const problem = () => faults?.originProblem(client)
  const reach = <A>(effect: Effect.Effect<A, OriginFailed>) => faults === undefined ? effect : faults.call(effect, problem, network.rtt(client, origin))
  const notFound = (url: string) => new OriginFailed({ message: `origin: no content at ${url}`, status: 404 })
  return {
    probe: (request) =>
      reach(Effect.flatMap(Effect.sleep(network.rtt(client, origin)), () =>
        request.url === content.url ? Effect.succeed({ contentLength: content.contentLength }) : Effect.fail(notFound(request.url)))),
    fetchRange: (request, offset, length) => {
      if (request.url !== content.url) return Effect.fail(notFound(request.url))
      if (offset < 0 || length < 0 || offset + length > content.contentLength) {
        return Effect.fail(new OriginFailed({ message: `origin: range ${offset}+${length} outside 0..${content.contentLength}`, status: 416 }))
      }
      return reach(Effect.as(network.transfer(origin, client, length), syntheticBytes(request.url, offset, length)))
    }
  }
}
