// Image references (both spellings), registry challenges and platforms: pure parsing, no I/O.
import fc from "fast-check"
import { describe, expect, it } from "vitest"
import { parseChallenge, parsePlatform } from "../runtime/oci-manifest.ts"
import { blobUrl, formatReference, manifestUrl, parseImageReference } from "../runtime/oci-reference.ts"

const D = `sha256:${"ab".repeat(32)}`

describe("image references", () => {
  it.each([
    ["http://127.0.0.1:5000/v2/app/manifests/v1", { scheme: "http", registry: "127.0.0.1:5000", repository: "app", reference: "v1" }],
    ["https://reg.example/v2/team/app/manifests/latest", { scheme: "https", registry: "reg.example", repository: "team/app", reference: "latest" }],
    [`https://reg.example/v2/app/manifests/${D}`, { scheme: "https", registry: "reg.example", repository: "app", reference: D }],
    ["127.0.0.1:5000/app:v1", { scheme: "http", registry: "127.0.0.1:5000", repository: "app", reference: "v1" }],
    ["localhost/app", { scheme: "http", registry: "localhost", repository: "app", reference: "latest" }],
    ["reg.example:443/team/app@" + D, { scheme: "https", registry: "reg.example:443", repository: "team/app", reference: D }],
    ["ubuntu:22.04", { scheme: "https", registry: "registry-1.docker.io", repository: "library/ubuntu", reference: "22.04" }],
    ["bitnami/redis", { scheme: "https", registry: "registry-1.docker.io", repository: "bitnami/redis", reference: "latest" }]
  ])("%s", (input, expected) => {
    expect(parseImageReference(input)).toEqual(expected)
  })

  it.each([
    ["ftp://reg.example/app", /url: expected http\(s\):\/\/HOST\/v2/],
    ["127.0.0.1:5000/App:v1", /repository "App"/],
    ["127.0.0.1:5000/app:bad tag!", /neither a tag nor a sha256 digest/],
    ["127.0.0.1:5000/app@sha256:short", /neither a tag nor a sha256 digest/]
  ])("refuses %s", (input, message) => {
    expect(() => parseImageReference(input)).toThrow(message)
  })

  it("a reference survives format → parse, and its URLs are the registry API's", () => {
    const name = fc.stringMatching(/^[a-z0-9]{1,8}(\/[a-z0-9]{1,8}){0,2}$/)
    const tag = fc.stringMatching(/^[a-z0-9][a-z0-9._-]{0,10}$/)
    fc.assert(fc.property(name, tag, fc.integer({ min: 1, max: 65535 }), (repo, t, port) => {
      const ref = parseImageReference(`127.0.0.1:${port}/${repo}:${t}`)
      expect(parseImageReference(formatReference(ref))).toEqual(ref)
      expect(manifestUrl(ref)).toBe(`http://127.0.0.1:${port}/v2/${repo}/manifests/${t}`)
      expect(blobUrl(ref, D)).toBe(`http://127.0.0.1:${port}/v2/${repo}/blobs/${D}`)
      expect(parseImageReference(manifestUrl(ref))).toEqual(ref)
    }), { seed: 5005, numRuns: 200 })
  })
})

describe("registry challenges and platforms", () => {
  it("parses Bearer and Basic challenges", () => {
    expect(parseChallenge(`Bearer realm="https://auth.example/token",service="registry.example",scope="repository:app:pull"`)).toEqual({
      scheme: "bearer",
      params: { realm: "https://auth.example/token", service: "registry.example", scope: "repository:app:pull" }
    })
    expect(parseChallenge(`Basic realm="damselfly"`)).toEqual({ scheme: "basic", params: { realm: "damselfly" } })
    expect(parseChallenge(undefined)).toBeUndefined()
  })

  it("parses os/architecture[/variant] and names a bad one", () => {
    expect(parsePlatform("linux/arm64/v8")).toEqual({ os: "linux", architecture: "arm64", variant: "v8" })
    expect(parsePlatform("linux/amd64")).toEqual({ os: "linux", architecture: "amd64", variant: undefined })
    expect(() => parsePlatform("amd64")).toThrow(/platform: expected os\/architecture/)
  })
})
