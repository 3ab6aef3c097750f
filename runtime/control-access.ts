// Who may drive a daemon. Every peer holds the cluster token (runtime/auth.ts): it needs it for the piece
// routes. The token therefore cannot also guard what only a client on the daemon's own host should do —
// read a local file into the cache (`/v1/cache/import`), write one anywhere the daemon's user may
// (`/v1/cache/export`, `/v1/download`'s `output`), fetch any URL (`/v1/object`, the registry mirror and
// proxy). Those local control routes are served only to a caller on this host (the connection comes from
// a loopback address or from the daemon's own address), to a source listed in `--control-from`, or to a
// request carrying the separate control token (`--control-token`, header x-damselfly-control-token).
// Dragonfly's dfdaemon keeps that API on a local socket for the same reason. The peer routes (what other
// daemons and the schedulers call) are listed here explicitly; everything else is control, so a route
// added later is local until someone decides otherwise.
import type { IncomingMessage, ServerResponse } from "node:http"
import { BlockList, isIP } from "node:net"
import type { Duplex } from "node:stream"
import { NodeHttpServerRequest } from "@effect/platform-node"
import { Effect } from "effect"
import { HttpRouter, HttpServerRequest } from "effect/http"
import { CONTROL_TOKEN_HEADER, sameSecret } from "./auth.ts"
import { errorResponse } from "./http-json.ts"

/** `--control-from any`: every source may use the control routes (a test harness, a gateway in front). */
export const ANY_SOURCE = "any"

/**
 * What the daemon's own HTTP server serves to other hosts (with the cluster token when one is set).
 * Parameters are strict (no `.`, `%` or `/`), so no path a router might normalise differently can pass
 * for one of these and reach a control handler.
 */
const PEER_ROUTES: ReadonlyArray<{ readonly methods: ReadonlyArray<string>; readonly path: RegExp; readonly who: string }> = [
  { methods: ["GET", "HEAD"], path: /^\/healthy$/, who: "probes, load balancers, other daemons (strategy)" },
  { methods: ["GET", "HEAD"], path: /^\/metrics$/, who: "Prometheus" },
  { methods: ["GET"], path: /^\/v1\/tasks\/[0-9A-Za-z_-]+\/availability$/, who: "child peers (long-poll)" },
  { methods: ["GET"], path: /^\/v1\/tasks\/[0-9A-Za-z_-]+\/pieces\/[0-9A-Za-z_-]+$/, who: "child peers" },
  { methods: ["POST"], path: /^\/v1\/seed$/, who: "the scheduler's seed trigger" },
  { methods: ["POST"], path: /^\/v1\/preheat$/, who: "the scheduler's preheat jobs" },
  { methods: ["GET"], path: /^\/v1\/preheat\/[0-9A-Za-z_-]+$/, who: "the scheduler's preheat jobs" }
]

/** A route other hosts may call; false for the local control routes (and for anything unknown). */
export const isPeerRoute = (method: string, url: string): boolean => {
  const q = url.indexOf("?")
  const path = q === -1 ? url : url.slice(0, q)
  for (const r of PEER_ROUTES) if (r.path.test(path) && r.methods.includes(method)) return true
  return false
}

const LOOPBACK = new BlockList()
LOOPBACK.addSubnet("127.0.0.0", 8, "ipv4")
LOOPBACK.addAddress("::1", "ipv6")

export const familyOf = (address: string): "ipv4" | "ipv6" | undefined => {
  const v = isIP(address)
  return v === 4 ? "ipv4" : v === 6 ? "ipv6" : undefined
}

/** Adds `entry`, an address or a CIDR block (`10.0.0.0/8`), to `list`; false (nothing added) when it is neither. */
export const addAddressOrBlock = (list: BlockList, entry: string): boolean => {
  const [address, prefix, extra] = entry.split("/")
  const family = familyOf(address)
  if (family === undefined || extra !== undefined) return false
  if (prefix === undefined) {
    list.addAddress(address, family)
    return true
  }
  if (!/^\d{1,3}$/.test(prefix) || Number(prefix) > (family === "ipv4" ? 32 : 128)) return false
  list.addSubnet(address, Number(prefix), family)
  return true
}

/** An address without its IPv6 zone (`fe80::1%eth0`), and the zone. */
const splitZone = (address: string): [string, string] => {
  const i = address.indexOf("%")
  return i === -1 ? [address, ""] : [address.slice(0, i), address.slice(i + 1)]
}

/** 127.0.0.0/8, ::1, and IPv4-mapped loopback (::ffff:127.x.y.z, as a dual-stack socket reports it). */
export const isLoopback = (address: string): boolean => {
  const family = familyOf(address)
  return family !== undefined && LOOPBACK.check(address, family)
}

/** The same address however written: `::ffff:10.0.0.1` is `10.0.0.1`, `fd00:0::1` is `fd00::1`. */
export const sameAddress = (a: string, b: string): boolean => {
  const [addrA, zoneA] = splitZone(a)
  const [addrB, zoneB] = splitZone(b)
  const fa = familyOf(addrA)
  const fb = familyOf(addrB)
  if (fa === undefined || fb === undefined || zoneA !== zoneB) return false
  const one = new BlockList()
  one.addAddress(addrA, fa)
  return one.check(addrB, fb)
}

/** Sources allowed besides this host: `--control-from` entries (addresses, CIDR blocks, or `any`). */
export interface ControlSources {
  readonly any: boolean
  readonly list: BlockList
  readonly entries: ReadonlyArray<string>
}

/** Why `entry` is not an address, a CIDR block or `any`; undefined when it is one. */
export const controlSourceProblem = (entry: string): string | undefined => {
  if (entry === ANY_SOURCE) return undefined
  const [address, prefix, extra] = entry.split("/")
  const family = familyOf(address)
  if (family === undefined || extra !== undefined) return `expected an IP address, a CIDR block like 10.0.0.0/8, or "any", got ${JSON.stringify(entry)}`
  if (prefix === undefined) return undefined
  const max = family === "ipv4" ? 32 : 128
  return /^\d{1,3}$/.test(prefix) && Number(prefix) <= max ? undefined : `${JSON.stringify(entry)}: prefix length must be 0 to ${max}`
}

export const parseControlSources = (entries: ReadonlyArray<string>): ControlSources => {
  const list = new BlockList()
  for (const entry of entries) {
    const problem = controlSourceProblem(entry)
    if (problem !== undefined) throw new Error(`control-from: ${problem}`)
    if (entry !== ANY_SOURCE) addAddressOrBlock(list, entry)
  }
  return { any: entries.includes(ANY_SOURCE), list, entries }
}

export interface ControlAccess {
  /** The control token (`--control-token` / DAMSELFLY_CONTROL_TOKEN); undefined: none is accepted. */
  readonly token?: string | undefined
  /** `--control-from`: further sources taken as local; `any` opens the control routes to every source. */
  readonly from?: ReadonlyArray<string> | undefined
}

export interface Connection {
  readonly remoteAddress: string | undefined
  readonly localAddress: string | undefined
}

/** The connection comes from this host: a loopback address, or the very address it was made to. */
export const isThisHost = ({ remoteAddress: remote, localAddress: local }: Connection): boolean =>
  remote !== undefined && (isLoopback(remote) || (local !== undefined && sameAddress(remote, local)))

/** Why a control request on this connection is refused (a sentence to finish), or undefined when it may pass. */
export const controlProblem = (
  connection: Connection,
  givenToken: string | undefined,
  token: string | undefined,
  sources: ControlSources
): string | undefined => {
  if (sources.any) return undefined
  const { remoteAddress: remote } = connection
  if (isThisHost(connection)) return undefined
  if (remote !== undefined) {
    const family = familyOf(splitZone(remote)[0])
    if (family !== undefined && sources.list.check(splitZone(remote)[0], family)) return undefined
  }
  if (token !== undefined && givenToken !== undefined) {
    return sameSecret(givenToken, token) ? undefined : `${CONTROL_TOKEN_HEADER}: wrong control token`
  }
  const from = remote === undefined ? "an unknown address" : remote
  const where = `call it from this host (a loopback address or the daemon's own address, not ${from})`
  return token === undefined
    ? `${where}; this daemon has no --control-token, so other sources must be listed in its --control-from`
    : `${where}, from a --control-from source, or with the daemon's --control-token in ${CONTROL_TOKEN_HEADER}`
}

const headerValue = (v: string | ReadonlyArray<string> | undefined) => (typeof v === "string" ? v : v?.[0])

/** The gate for one daemon: the token and the parsed sources, checked per request. */
export const makeControlGate = (o: ControlAccess) => {
  const sources = parseControlSources(o.from ?? [])
  const check = (connection: Connection, headers: Readonly<Record<string, string | ReadonlyArray<string> | undefined>>) =>
    controlProblem(connection, headerValue(headers[CONTROL_TOKEN_HEADER]), o.token, sources)
  return { sources, check }
}
export type ControlGate = ReturnType<typeof makeControlGate>

/** The socket's addresses of a request served by Node's http server (not a forwarded-for header). */
export const connectionOf = (request: HttpServerRequest.HttpServerRequest): Connection => {
  try {
    const socket = (NodeHttpServerRequest.toIncomingMessage(request) as IncomingMessage).socket
    return { remoteAddress: socket?.remoteAddress, localAddress: socket?.localAddress }
  } catch {
    return { remoteAddress: undefined, localAddress: undefined }
  }
}

/** A global router middleware: control routes need this host, a listed source or the control token (403). */
export const requireLocalControl = (gate: ControlGate) =>
  HttpRouter.middleware((handler) =>
    Effect.gen(function*() {
      const request = yield* HttpServerRequest.HttpServerRequest
      if (isPeerRoute(request.method, request.url)) return yield* handler
      const problem = gate.check(connectionOf(request), request.headers)
      if (problem === undefined) return yield* handler
      const route = `${request.method} ${request.url.split("?")[0].slice(0, 200)}`
      return errorResponse(403, `${route} is a local control route: ${problem}`)
    }), { global: true })

/**
 * The registry mirror and proxy (runtime/registry-server.ts) are local front ends altogether: every
 * request passes this gate. The control token is taken off the request before it goes upstream.
 */
export const gateNodeRequest = (gate: ControlGate, what: string, handler: (req: IncomingMessage, res: ServerResponse) => void) =>
  (req: IncomingMessage, res: ServerResponse): void => {
    const problem = gate.check({ remoteAddress: req.socket.remoteAddress, localAddress: req.socket.localAddress }, req.headers)
    delete req.headers[CONTROL_TOKEN_HEADER]
    if (problem === undefined) return handler(req, res)
    const body = JSON.stringify({ error: `the ${what} is for clients on this host: ${problem}` })
    res.writeHead(403, { "content-type": "application/json", "content-length": Buffer.byteLength(body) })
    res.end(body)
  }

/** The same for the proxy's CONNECT tunnels. */
export const gateNodeConnect = (gate: ControlGate, handler: (req: IncomingMessage, client: Duplex, head: Buffer) => void) =>
  (req: IncomingMessage, client: Duplex, head: Buffer): void => {
    const problem = gate.check({ remoteAddress: req.socket.remoteAddress, localAddress: req.socket.localAddress }, req.headers)
    if (problem === undefined) return handler(req, client, head)
    client.end(`HTTP/1.1 403 Forbidden\r\ncontent-type: text/plain\r\n\r\nthe proxy is for clients on this host: ${problem}\n`)
  }
