// The daemon's registry front ends on their own ports (as containerd, Docker and CRI-O expect a mirror
// at a base URL, and HTTP_PROXY clients a proxy): the mirror (`--mirror-port`) and the generic proxy
// (`--proxy-port`). Plain node:http servers because both stream bodies through and the proxy must see
// CONNECT; created by http-listen's makeServer, so the same connection cap and timeouts apply. They
// live in the daemon's scope and close with it.
import type * as http from "node:http"
import { Effect } from "effect"
import { type ControlGate, gateNodeConnect, gateNodeRequest } from "./control-access.ts"
import { makeServer } from "./http-listen.ts"
import { connectHandler, parseProxyRules, proxyHandler } from "./proxy-server.ts"
import type { BlobSource } from "./registry-blob-source.ts"
import { type AuthorizedBlobHook, type MirrorLog, mirrorHandler } from "./registry-mirror.ts"
import { parseUpstreams } from "./registry-upstream.ts"

export interface RegistryFrontendOptions {
  readonly listen: string
  readonly maxConnections?: number | undefined
  /** Port of the OCI registry mirror; undefined: no mirror. */
  readonly mirrorPort?: number | undefined
  /** `--mirror-upstream` URLs (the first is the default upstream). */
  readonly mirrorUpstreams?: ReadonlyArray<string> | undefined
  /** Port of the generic HTTP proxy; undefined: no proxy. */
  readonly proxyPort?: number | undefined
  /** `--proxy-rule` regular expressions (default: registry blobs). */
  readonly proxyRules?: ReadonlyArray<string> | undefined
}

const listenOn = (server: http.Server, port: number, host: string) =>
  Effect.acquireRelease(
    Effect.callback<void, Error>((resume) => {
      server.once("error", (e) => resume(Effect.fail(e)))
      server.listen(port, host, () => resume(Effect.void))
    }),
    () =>
      Effect.callback<void>((resume) => {
        server.closeAllConnections()
        server.close(() => resume(Effect.void))
      })
  )

export const serveRegistryFrontends = (
  o: RegistryFrontendOptions,
  blobs: BlobSource,
  log: MirrorLog,
  /** Who may use them: clients on this host, listed sources, the control token (runtime/control-access.ts). */
  control: ControlGate,
  onAuthorizedBlob?: AuthorizedBlobHook
) =>
  Effect.gen(function*() {
    if (o.mirrorPort !== undefined) {
      const upstreams = yield* Effect.try({ try: () => parseUpstreams(o.mirrorUpstreams ?? []), catch: (e) => e as Error })
      const server = makeServer(o.maxConnections)()
      server.on("request", gateNodeRequest(control, "registry mirror", mirrorHandler({ upstreams, blobs, log, onAuthorizedBlob })))
      yield* listenOn(server, o.mirrorPort, o.listen)
      yield* Effect.logInfo("registry mirror listening").pipe(Effect.annotateLogs({ port: o.mirrorPort, upstreams: upstreams.map((u) => u.href) }))
    }
    if (o.proxyPort !== undefined) {
      const rules = yield* Effect.try({ try: () => parseProxyRules(o.proxyRules ?? []), catch: (e) => e as Error })
      const server = makeServer(o.maxConnections)()
      server.on("request", gateNodeRequest(control, "proxy", proxyHandler({ rules, blobs, log, onAuthorizedBlob })))
      server.on("connect", gateNodeConnect(control, connectHandler))
      yield* listenOn(server, o.proxyPort, o.listen)
      yield* Effect.logInfo("HTTP proxy listening").pipe(Effect.annotateLogs({ port: o.proxyPort, rules: rules.map(String) }))
    }
  })
