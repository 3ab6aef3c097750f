// The mirror's parsing in isolation: distribution routes, upstream choice (header, ns, config),
// Range spans, and the containerd hosts.toml writer (its files, and bad input named).
import { promises as fs } from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { Option } from "effect"
import fc from "fast-check"
import { describe, expect, it } from "vitest"
import { seedCredentialsApply } from "../runtime/blob-access.ts"
import { hostsFileFor, writeContainerdConfig } from "../runtime/containerd-config.ts"
import { spanOf } from "../runtime/registry-mirror.ts"
import { chooseUpstream, parseUpstreams, routeOf, UpstreamChoiceError, upstreamUrlOf } from "../runtime/registry-upstream.ts"

const HEX = "a".repeat(64)

describe("distribution routes", () => {
  it("recognises base, manifests by tag and digest, blobs; nested names", () => {
    expect(routeOf("/v2/")).toEqual({ kind: "base" })
    expect(routeOf("/v2/library/redis/manifests/7.2-alpine")).toEqual({ kind: "manifest", name: "library/redis", reference: "7.2-alpine" })
    expect(routeOf(`/v2/a/b/c/manifests/sha256:${HEX}`)).toEqual({ kind: "manifest", name: "a/b/c", reference: `sha256:${HEX}` })
    expect(routeOf(`/v2/app/blobs/sha256:${HEX}`)).toEqual({ kind: "blob", name: "app", digest: `sha256:${HEX}` })
    expect(routeOf("/v2/app/tags/list")).toEqual({ kind: "other" })
    expect(routeOf("/v2/App/blobs/x")).toEqual({ kind: "other" })
  })
})

describe("upstream choice", () => {
  const configured = parseUpstreams(["http://10.0.0.1:5000", "https://reg.example.com"])
  it("header first, then ns (scheme from the configured upstream with that host), then the default", () => {
    expect(chooseUpstream("http://other:5000", "reg.example.com", configured).href).toBe("http://other:5000/")
    expect(chooseUpstream(undefined, "10.0.0.1:5000", configured).href).toBe("http://10.0.0.1:5000/")
    expect(chooseUpstream(undefined, "unknown.example:443", configured).href).toBe("https://unknown.example/")
    expect(chooseUpstream(undefined, "docker.io", configured).href).toBe("https://registry-1.docker.io/")
    expect(chooseUpstream(undefined, null, configured).href).toBe("http://10.0.0.1:5000/")
    expect(chooseUpstream(undefined, null, []).href).toBe("https://registry-1.docker.io/")
  })
  it("names the malformed field", () => {
    expect(() => chooseUpstream("ftp://x", null, configured)).toThrow(/X-Dragonfly-Registry header/)
    expect(() => chooseUpstream("https://user:pw@x", null, configured)).toThrow(UpstreamChoiceError)
    expect(() => chooseUpstream(undefined, "a/b", configured)).toThrow(/ns query parameter/)
    expect(() => parseUpstreams(["nope"])).toThrow(/--mirror-upstream/)
  })
  it("drops ns from the upstream URL and keeps other parameters", () => {
    const u = upstreamUrlOf(new URL("http://r:5000"), "/v2/app/manifests/v1", new URLSearchParams("ns=r:5000&n=10"))
    expect(u.href).toBe("http://r:5000/v2/app/manifests/v1?n=10")
  })
})

describe("Range spans", () => {
  it("single satisfiable ranges become spans; anything else is left to the upstream", () => {
    expect(spanOf(undefined, 100)).toBeUndefined()
    expect(spanOf("bytes=0-9", 100)).toEqual({ start: 0, end: 9 })
    expect(spanOf("bytes=90-", 100)).toEqual({ start: 90, end: 99 })
    expect(spanOf("bytes=-10", 100)).toEqual({ start: 90, end: 99 })
    expect(spanOf("bytes=50-500", 100)).toEqual({ start: 50, end: 99 })
    expect(spanOf("bytes=100-", 100)).toBe("unsupported")
    expect(spanOf("bytes=0-1,5-6", 100)).toBe("unsupported")
    expect(spanOf("items=0-1", 100)).toBe("unsupported")
  })
  it("every span lies inside the content (property, seed 5)", () => {
    fc.assert(
      fc.property(fc.nat(1_000_000), fc.option(fc.nat(2_000_000)), fc.option(fc.nat(2_000_000)), (size, a, b) => {
        const s = spanOf(`bytes=${a ?? ""}-${b ?? ""}`, size)
        if (s === undefined || s === "unsupported") return true
        return s.start >= 0 && s.start <= s.end && s.end < size
      }),
      { seed: 5, numRuns: 2000 }
    )
  })
})

describe("containerd hosts.toml", () => {
  it("mirror first with pull/resolve, the registry as server; Docker Hub under docker.io", () => {
    const f = hostsFileFor("http://127.0.0.1:5000", "http://127.0.0.1:65002")
    expect(f.host).toBe("127.0.0.1:5000")
    expect(f.content).toContain(`server = "http://127.0.0.1:5000"`)
    expect(f.content).toContain(`[host."http://127.0.0.1:65002"]\n  capabilities = ["pull", "resolve"]`)
    const hub = hostsFileFor("docker.io", "http://127.0.0.1:65002")
    expect(hub.host).toBe("docker.io")
    expect(hub.server).toBe("https://registry-1.docker.io")
    expect(hostsFileFor("ghcr.io", "http://127.0.0.1:65002").server).toBe("https://ghcr.io")
  })
  it("writes one file per registry and names bad input", async () => {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), "damselfly-certs-"))
    const written = await writeContainerdConfig({ registries: ["https://a.example", "b.example:5000"], mirror: "http://127.0.0.1:65002", dir })
    expect(written).toEqual([path.join(dir, "a.example", "hosts.toml"), path.join(dir, "b.example:5000", "hosts.toml")])
    expect(await fs.readFile(written[1], "utf8")).toContain(`server = "https://b.example:5000"`)
    await expect(writeContainerdConfig({ registries: ["https://a.example/path"], mirror: "http://127.0.0.1:1", dir })).rejects.toThrow(/--registry/)
    await expect(writeContainerdConfig({ registries: ["a.example"], mirror: "ftp://x", dir })).rejects.toThrow(/--mirror/)
    await expect(writeContainerdConfig({ registries: ["a.example"], mirror: "http://127.0.0.1:1", dir: "relative" })).rejects.toThrow(/--dir/)
    await fs.rm(dir, { recursive: true, force: true })
  })
})

describe("mirror and proxy options", () => {
  it("decode from the config file and from flags; a bad value is named", async () => {
    const { daemonOptionsFrom, decodeConfig, DAEMON_OPTIONS, flagValues } = await import("../runtime/config.ts")
    const fromFile = daemonOptionsFrom(decodeConfig("d.yaml", [
      "data: /d",
      "mirror:",
      "  port: 65002",
      "  upstreams: [http://10.0.0.1:5000, https://reg.example.com]",
      "proxy:",
      "  port: 65003",
      "  rules: ['blobs/sha256.*', '\\.tar\\.gz$']"
    ].join("\n"), DAEMON_OPTIONS))
    expect(fromFile.registry).toEqual({
      mirrorPort: 65002,
      mirrorUpstreams: ["http://10.0.0.1:5000", "https://reg.example.com"],
      proxyPort: 65003,
      proxyRules: ["blobs/sha256.*", "\\.tar\\.gz$"]
    })
    const flags = flagValues(DAEMON_OPTIONS, { "mirror-upstream": ["http://a:5000", "http://b:5000"], "proxy-rule": Option.some("\\.iso$|blobs/sha256.*"), "mirror-port": Option.none() })
    expect(flags.get("mirror.upstreams")).toEqual(["http://a:5000", "http://b:5000"])
    expect(flags.get("proxy.rules")).toEqual(["\\.iso$|blobs/sha256.*"])
    expect(flags.has("mirror.port")).toBe(false)
    expect(() => flagValues(DAEMON_OPTIONS, { "proxy-rule": Option.some("[") })).toThrow(/--proxy-rule: expected regular expressions/)
    expect(() => decodeConfig("d.yaml", "proxy:\n  rules: ['(']\n", DAEMON_OPTIONS)).toThrow(/proxy\.rules: expected regular expressions/)
    expect(() => decodeConfig("d.yaml", "mirror:\n  upstreams: [ftp://x]\n", DAEMON_OPTIONS)).toThrow(/mirror\.upstreams: expected a list of http\(s\) URLs/)
    expect(() => decodeConfig("d.yaml", "mirror:\n  port: 0\n", DAEMON_OPTIONS)).toThrow(/mirror\.port: expected a port number/)
  })
})

describe("forwarded seed credentials", () => {
  const digest = "a".repeat(64)
  const blob = (host: string) => `https://${host}/v2/library/app/blobs/sha256:${digest}`
  it("ride a seed request only for the very URL their holder registered, never another registry's copy of the blob", () => {
    const registration = { taskId: digest, url: blob("private.example") }
    expect(seedCredentialsApply({ taskId: digest, url: blob("private.example") }, registration)).toBe(true)
    // Same blob digest (same task) first registered from a public registry: the seed fetches that URL.
    expect(seedCredentialsApply({ taskId: digest, url: blob("docker.io") }, registration)).toBe(false)
    expect(seedCredentialsApply({ taskId: "b".repeat(64), url: blob("private.example") }, registration)).toBe(false)
  })
})
