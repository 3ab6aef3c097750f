// From an image reference to the blobs to fetch: the registry's auth dance (a 401 with
// `WWW-Authenticate: Bearer realm=…` → the token endpoint with basic credentials; or plain Basic),
// the manifest fetched with every manifest media type accepted, a multi-arch index resolved by
// platform, and the config and layer blobs listed. Manifests fetched by digest are verified.
// Standalone: every request goes through the RegistryFetch it is given.
import { createHash } from "node:crypto"
import { Effect, Schema } from "effect"
import { type RegistryFetch, type RegistryReply, RegistryFetchError } from "./oci-fetch.ts"
import { blobUrl, DIGEST, formatReference, type ImageReference, manifestUrl } from "./oci-reference.ts"

export const MEDIA_TYPES = {
  ociIndex: "application/vnd.oci.image.index.v1+json",
  ociManifest: "application/vnd.oci.image.manifest.v1+json",
  dockerList: "application/vnd.docker.distribution.manifest.list.v2+json",
  dockerManifest: "application/vnd.docker.distribution.manifest.v2+json"
} as const

const ACCEPT = [MEDIA_TYPES.ociIndex, MEDIA_TYPES.ociManifest, MEDIA_TYPES.dockerList, MEDIA_TYPES.dockerManifest].join(", ")

const Digest = Schema.String.check(Schema.isPattern(DIGEST)).annotate({ description: "a digest sha256:<64 hex>" })
const Platform = Schema.Struct({
  architecture: Schema.String,
  os: Schema.String,
  variant: Schema.optional(Schema.String)
})
const Descriptor = Schema.Struct({
  mediaType: Schema.optional(Schema.String),
  digest: Digest,
  size: Schema.Int.check(Schema.isGreaterThanOrEqualTo(0)),
  platform: Schema.optional(Platform)
})
export type Descriptor = typeof Descriptor.Type
const ImageManifest = Schema.Struct({
  schemaVersion: Schema.Literal(2),
  mediaType: Schema.optional(Schema.String),
  config: Descriptor,
  layers: Schema.Array(Descriptor)
})
const ImageIndex = Schema.Struct({
  schemaVersion: Schema.Literal(2),
  mediaType: Schema.optional(Schema.String),
  manifests: Schema.Array(Descriptor)
})

export class ManifestError extends Error {
  readonly _tag = "ManifestError"
}

export interface RegistryCredentials {
  readonly username?: string | undefined
  readonly password?: string | undefined
  /** Extra headers for every registry request (e.g. an Authorization the caller already has). */
  readonly headers?: Readonly<Record<string, string>> | undefined
}

export interface BlobToFetch {
  readonly digest: string
  readonly size: number
  readonly mediaType: string
  readonly url: string
  readonly kind: "config" | "layer"
}

export interface ResolvedImage {
  readonly reference: string
  /** Digest of the platform manifest the blobs come from. */
  readonly manifestDigest: string
  readonly blobs: ReadonlyArray<BlobToFetch>
  /** The Authorization that worked, to send with blob downloads (undefined: the registry needed none). */
  readonly authorization: string | undefined
}

/** `linux/amd64`, `linux/arm64/v8`: os/architecture[/variant]. */
export const parsePlatform = (text: string) => {
  const parts = text.split("/")
  if (parts.length < 2 || parts.length > 3 || parts.some((p) => p === "")) {
    throw new ManifestError(`platform: expected os/architecture[/variant] such as linux/amd64, got ${JSON.stringify(text)}`)
  }
  return { os: parts[0], architecture: parts[1], variant: parts[2] }
}

/** Parses `Bearer realm="…",service="…",scope="…"` (or `Basic realm="…"`). */
export const parseChallenge = (header: string | undefined) => {
  if (header === undefined) return undefined
  const m = /^\s*(\w+)\s*(.*)$/.exec(header)
  if (m === null) return undefined
  const params: Record<string, string> = {}
  for (const p of m[2].matchAll(/(\w+)\s*=\s*(?:"([^"]*)"|([^,\s]*))/g)) params[p[1].toLowerCase()] = p[2] ?? p[3] ?? ""
  return { scheme: m[1].toLowerCase(), params }
}

const basic = (c: RegistryCredentials) =>
  c.username === undefined ? undefined : `Basic ${Buffer.from(`${c.username}:${c.password ?? ""}`).toString("base64")}`

const TokenReply = Schema.Struct({ token: Schema.optional(Schema.String), access_token: Schema.optional(Schema.String) })

/**
 * A session with one registry and repository: remembers the Authorization that worked, so a token is
 * fetched once and reused for every later request (and handed to blob downloads).
 */
export const registrySession = (fetch: RegistryFetch, ref: ImageReference, credentials: RegistryCredentials) => {
  const extra: Record<string, string> = {}
  for (const [k, v] of Object.entries(credentials.headers ?? {})) extra[k.toLowerCase()] = v
  let authorization: string | undefined = extra.authorization
  delete extra.authorization

  const fetchToken = (params: Record<string, string>) =>
    Effect.gen(function*() {
      const realm = params.realm
      if (realm === undefined || !/^https?:\/\//.test(realm)) return yield* Effect.fail(new ManifestError(`registry ${ref.registry}: Bearer challenge without a usable realm`))
      const url = new URL(realm)
      if (params.service !== undefined) url.searchParams.set("service", params.service)
      url.searchParams.set("scope", params.scope ?? `repository:${ref.repository}:pull`)
      const creds = basic(credentials)
      const reply = yield* fetch({ url: url.toString(), headers: creds === undefined ? {} : { authorization: creds } })
      if (reply.status === 401 || reply.status === 403) {
        return yield* Effect.fail(new ManifestError(`registry ${ref.registry}: token endpoint refused ${credentials.username === undefined ? "anonymous access" : `the credentials of ${JSON.stringify(credentials.username)}`} (HTTP ${reply.status})`))
      }
      if (reply.status !== 200) return yield* Effect.fail(new ManifestError(`registry ${ref.registry}: token endpoint answered HTTP ${reply.status}`))
      const decoded = yield* Effect.try({ try: () => Schema.decodeUnknownSync(TokenReply)(JSON.parse(reply.body.toString("utf8"))), catch: () => new ManifestError(`registry ${ref.registry}: token endpoint answered something that is not a token`) })
      const token = decoded.token ?? decoded.access_token
      if (token === undefined) return yield* Effect.fail(new ManifestError(`registry ${ref.registry}: token endpoint answered no token`))
      return `Bearer ${token}`
    })

  /** One request; on a 401 answers the challenge once and retries. */
  const request = (method: "GET" | "HEAD", url: string, headers: Record<string, string> = {}): Effect.Effect<RegistryReply, ManifestError | RegistryFetchError> =>
    Effect.gen(function*() {
      const send = () => fetch({ method, url, headers: { ...extra, ...headers, ...(authorization === undefined ? {} : { authorization }) } })
      const first = yield* send()
      if (first.status !== 401) return first
      const challenge = parseChallenge(first.headers["www-authenticate"] as string | undefined)
      if (challenge?.scheme === "bearer") {
        authorization = yield* fetchToken(challenge.params)
      } else {
        const creds = basic(credentials)
        if (creds === undefined || authorization === creds) {
          return yield* Effect.fail(new ManifestError(`registry ${ref.registry}: authentication required (HTTP 401${credentials.username === undefined ? "; no username/password given" : `; the credentials of ${JSON.stringify(credentials.username)} were refused`})`))
        }
        authorization = creds
      }
      const second = yield* send()
      if (second.status === 401) {
        return yield* Effect.fail(new ManifestError(`registry ${ref.registry}: ${credentials.username === undefined ? "authentication required (no username/password given)" : `the credentials of ${JSON.stringify(credentials.username)} were refused`} (HTTP 401)`))
      }
      return second
    })

  return { request, authorization: () => authorization }
}

const sha256Of = (bytes: Uint8Array) => `sha256:${createHash("sha256").update(bytes).digest("hex")}`

const fetchManifestJson = (session: ReturnType<typeof registrySession>, ref: ImageReference, reference: string) =>
  Effect.gen(function*() {
    const url = manifestUrl(ref, reference)
    const reply = yield* session.request("GET", url, { accept: ACCEPT })
    if (reply.status === 404) return yield* Effect.fail(new ManifestError(`manifest ${formatReference({ ...ref, reference })} not found (HTTP 404)`))
    if (reply.status !== 200) return yield* Effect.fail(new ManifestError(`manifest ${url}: HTTP ${reply.status}: ${reply.body.subarray(0, 200).toString("utf8")}`))
    const digest = sha256Of(reply.body)
    if (DIGEST.test(reference) && digest !== reference) {
      return yield* Effect.fail(new ManifestError(`manifest ${url}: content digest ${digest} does not match the reference`))
    }
    const json = yield* Effect.try({ try: () => JSON.parse(reply.body.toString("utf8")) as Record<string, unknown>, catch: () => new ManifestError(`manifest ${url}: not JSON`) })
    const contentType = String(reply.headers["content-type"] ?? "").split(";")[0].trim()
    return { json, digest, mediaType: typeof json.mediaType === "string" ? json.mediaType : contentType, url }
  })

const decodeAs = <S extends Schema.Decoder<unknown>>(schema: S, json: unknown, url: string) =>
  Effect.try({
    try: () => Schema.decodeUnknownSync(schema)(json) as S["Type"],
    catch: (e) => new ManifestError(`manifest ${url}: ${e instanceof Error ? e.message : String(e)}`)
  })

const isIndex = (mediaType: string, json: Record<string, unknown>) =>
  mediaType === MEDIA_TYPES.ociIndex || mediaType === MEDIA_TYPES.dockerList || (Array.isArray(json.manifests) && json.layers === undefined)

/** Resolves the reference to the blobs of one platform's image (config first, then the layers in order). */
export const resolveImage = (
  fetch: RegistryFetch,
  ref: ImageReference,
  options: RegistryCredentials & { readonly platform?: string | undefined }
): Effect.Effect<ResolvedImage, ManifestError | RegistryFetchError> =>
  Effect.gen(function*() {
    const session = registrySession(fetch, ref, options)
    let top = yield* fetchManifestJson(session, ref, ref.reference)
    if (isIndex(top.mediaType, top.json)) {
      const index = yield* decodeAs(ImageIndex, top.json, top.url)
      const wanted = yield* Effect.try({ try: () => parsePlatform(options.platform ?? "linux/amd64"), catch: (e) => e as ManifestError })
      const match = index.manifests.find((m) =>
        m.platform !== undefined && m.platform.os === wanted.os && m.platform.architecture === wanted.architecture &&
        (wanted.variant === undefined || m.platform.variant === wanted.variant))
      if (match === undefined) {
        const offered = index.manifests.map((m) => m.platform === undefined ? "?" : [m.platform.os, m.platform.architecture, m.platform.variant].filter((x) => x !== undefined).join("/"))
        return yield* Effect.fail(new ManifestError(`platform: ${options.platform ?? "linux/amd64"} not in the index of ${formatReference(ref)} (it has ${offered.join(", ") || "none"})`))
      }
      top = yield* fetchManifestJson(session, ref, match.digest)
      if (isIndex(top.mediaType, top.json)) return yield* Effect.fail(new ManifestError(`manifest ${top.url}: an index inside an index is not supported`))
    }
    const manifest = yield* decodeAs(ImageManifest, top.json, top.url)
    const blob = (d: Descriptor, kind: "config" | "layer"): BlobToFetch => ({
      digest: d.digest,
      size: d.size,
      mediaType: d.mediaType ?? "",
      url: blobUrl(ref, d.digest),
      kind
    })
    // A layer listed twice (it happens) is one blob to fetch.
    const seen = new Set<string>()
    const blobs = [blob(manifest.config, "config"), ...manifest.layers.map((l) => blob(l, "layer"))].filter((b) => !seen.has(b.digest) && (seen.add(b.digest), true))
    return { reference: formatReference(ref), manifestDigest: top.digest, blobs, authorization: session.authorization() }
  })
