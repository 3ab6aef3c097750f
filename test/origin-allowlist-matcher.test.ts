// The `--origin-allow` matcher (runtime/origin-allowlist.ts): patterns match the parsed URL's scheme, host,
// port and path, never its text, and the config module names the malformed entry.
import fc from "fast-check"
import { describe, expect, it } from "vitest"
import { ConfigError, DAEMON_OPTIONS, decodeConfig, flagValues, SCHEDULER_OPTIONS } from "../runtime/config.ts"
import { makeOriginAllowlist, parseOriginPattern } from "../runtime/origin-allowlist.ts"

const allows = (patterns: ReadonlyArray<string>, url: string) => makeOriginAllowlist(patterns, "test").allows(url)

/** fast-check with a fixed seed; the seed is printed when a property fails. */
const check = (seed: number, property: fc.IProperty<any>, numRuns = 400) => {
  try {
    fc.assert(property, { seed, numRuns })
  } catch (e) {
    throw new Error(`failing seed ${seed}: ${String(e)}`)
  }
}

describe("origin patterns", () => {
  it("a URL prefix: scheme, host and port (the scheme's default) must be the URL's", () => {
    const p = ["https://good.com"]
    for (const u of ["https://good.com/", "https://good.com/a/b?x=1", "https://GOOD.com:443/x", "https://good.com./x"]) expect(allows(p, u), u).toBe(true)
    for (const u of [
      "https://good.com.evil.net/", "https://good.com@evil.net/", "https://evil.net/?https://good.com", "https://evil.net/good.com",
      "http://good.com/", "https://good.com:8443/", "https://a.good.com/", "https://goodXcom/", "ftp://good.com/", "not a url", ""
    ]) expect(allows(p, u), u).toBe(false)
    expect(allows(["http://127.0.0.1:5000"], "http://127.0.0.1:5000/v2/")).toBe(true)
    expect(allows(["http://127.0.0.1:5000"], "http://127.0.0.1:5001/v2/")).toBe(false)
    expect(allows(["http://127.0.0.1:5000"], "http://127.0.0.1/v2/")).toBe(false)
    // The WHATWG parser's forms of one address are one address.
    expect(allows(["http://127.0.0.1"], "http://2130706433/x")).toBe(true)
    expect(allows(["http://127.0.0.1"], "http://0x7f.1/x")).toBe(true)
  })

  it("a path is a prefix cut at a slash, after dot segments are removed", () => {
    const p = ["https://files.example.com/pub"]
    expect(allows(p, "https://files.example.com/pub")).toBe(true)
    expect(allows(p, "https://files.example.com/pub/a.tar")).toBe(true)
    expect(allows(p, "https://files.example.com/public/a.tar")).toBe(false)
    expect(allows(p, "https://files.example.com/pub/../admin")).toBe(false)
    expect(allows(p, "https://files.example.com/pub/%2e%2e/admin")).toBe(false)
    expect(allows(["https://r.example.com/v2/library/"], "https://r.example.com/v2/library/x/blobs/sha256:1")).toBe(true)
    expect(allows(["https://r.example.com/v2/library/"], "https://r.example.com/v2/libraryx/blobs/sha256:1")).toBe(false)
  })

  it("*.domain: any host under it (not the domain itself, not a look-alike), any port unless one is given", () => {
    const p = ["*.example.com"]
    for (const u of ["https://a.example.com/", "http://a.b.example.com:8080/x", "https://A.EXAMPLE.COM/"]) expect(allows(p, u), u).toBe(true)
    for (const u of ["https://example.com/", "https://example.com.evil.org/", "https://badexample.com/", "https://a.example.com.evil.org/", "https://a.example.co/"]) {
      expect(allows(p, u), u).toBe(false)
    }
    expect(allows(["*.example.com:5000"], "http://r.example.com:5000/")).toBe(true)
    expect(allows(["*.example.com:5000"], "http://r.example.com/")).toBe(false)
    expect(allows(["https://*.example.com"], "http://r.example.com/")).toBe(false)
    expect(allows(["https://*.example.com"], "https://r.example.com/")).toBe(true)
  })

  it("host[:port]: http or https; a CIDR block: hosts written as an address in it", () => {
    expect(allows(["registry.local"], "http://registry.local:5000/v2/")).toBe(true)
    expect(allows(["registry.local"], "https://registry.local/v2/")).toBe(true)
    expect(allows(["registry.local:5000"], "https://registry.local/v2/")).toBe(false)
    expect(allows(["10.0.0.0/8"], "http://10.1.2.3:8080/x")).toBe(true)
    expect(allows(["10.0.0.0/8"], "http://11.1.2.3/x")).toBe(false)
    expect(allows(["10.0.0.0/8"], "http://10.example.com/x")).toBe(false)
    expect(allows(["fd00::/8"], "http://[fd12::1]:80/x")).toBe(true)
    expect(allows(["fd00::/8"], "http://[fe80::1]/x")).toBe(false)
    expect(allows(["[::1]:8080"], "http://[::1]:8080/x")).toBe(true)
  })

  it("no list allows everything; a list allows only what it names", () => {
    expect(makeOriginAllowlist(undefined, "x").allows("http://169.254.169.254/latest/meta-data")).toBe(true)
    const list = makeOriginAllowlist(["https://registry.example.com/"], "this scheduler")
    expect(list.problem("url", "http://169.254.169.254/latest/meta-data")).toBe(
      "url: origin http://169.254.169.254 is not allowed by this scheduler's --origin-allow (https://registry.example.com/)"
    )
    expect(list.problem("url", "https://registry.example.com/v2/x")).toBeUndefined()
  })

  it("malformed patterns are refused with what was expected", () => {
    for (const bad of ["", "ftp://x.com", "https://", "https://x.com?q=1", "https://x.com#f", "https://u@x.com", "*.com", "*.10.0.0.1", "x.*.com", "*example.com",
      "10.0.0.0/33", "10.0.0.0/x", "example.com/path", "https://x.com:99999", "host name", "*"]) {
      expect(typeof parseOriginPattern(bad), bad).toBe("string")
    }
    for (const ok of ["https://x.com", "https://x.com/", "http://x.com:5000/v2/", "x.com", "x.com:443", "*.x.com", "10.0.0.0/8", "fd00::/8", "[::1]:80", "127.0.0.1"]) {
      expect(typeof parseOriginPattern(ok), ok).toBe("object")
    }
  })

  const label = fc.stringMatching(/^[a-z][a-z0-9]{0,7}$/)
  const domain = fc.array(label, { minLength: 2, maxLength: 3 }).map((ls) => ls.join("."))

  it("property: a host that merely starts or ends like the allowed one never matches", () => {
    check(20261129, fc.property(domain, domain, fc.constantFrom("http", "https"), (good, evil, scheme) => {
      fc.pre(good !== evil)
      const p = [`${scheme}://${good}`]
      expect(allows(p, `${scheme}://${good}/x`)).toBe(true)
      expect(allows(p, `${scheme}://${good}.${evil}/x`)).toBe(false)
      expect(allows(p, `${scheme}://${good}@${evil}/x`)).toBe(false)
      expect(allows(p, `${scheme}://${evil}/${good}`)).toBe(false)
      expect(allows(p, `${scheme}://x${good}/`)).toBe(false)
      expect(allows(p, `${scheme === "http" ? "https" : "http"}://${good}/`)).toBe(false)
    }))
  })

  it("property: *.domain matches exactly the hosts ending in .domain", () => {
    check(7, fc.property(domain, label, domain, (base, sub, other) => {
      fc.pre(base !== other && !other.endsWith(`.${base}`))
      const p = [`*.${base}`]
      expect(allows(p, `https://${sub}.${base}/`)).toBe(true)
      expect(allows(p, `https://${base}/`)).toBe(false)
      expect(allows(p, `https://${base}.${other}/`)).toBe(false)
      expect(allows(p, `https://${sub}${base}/`)).toBe(false)
      expect(allows(p, `https://${other}/`)).toBe(false)
    }))
  })

  it("property: a port in the pattern is the only port that matches", () => {
    check(42, fc.property(domain, fc.integer({ min: 1, max: 65535 }), fc.integer({ min: 1, max: 65535 }), (host, port, other) => {
      fc.pre(port !== other)
      expect(allows([`http://${host}:${port}`], `http://${host}:${port}/a`)).toBe(true)
      expect(allows([`http://${host}:${port}`], `http://${host}:${other}/a`)).toBe(false)
      expect(allows([`${host}:${port}`], `https://${host}:${port}/a`)).toBe(true)
      expect(allows([`${host}:${port}`], `https://${host}:${other}/a`)).toBe(false)
    }))
  })
})

describe("originAllow in the config", () => {
  it("a YAML list, each entry checked: the message names the entry and what was expected", () => {
    const ok = decodeConfig("s.yaml", "originAllow:\n  - https://registry.example.com/\n  - '*.corp.example'\n", SCHEDULER_OPTIONS)
    expect(ok.get("originAllow")).toEqual(["https://registry.example.com/", "*.corp.example"])
    expect(() => decodeConfig("s.yaml", "originAllow:\n  - https://a.example/\n  - b.example\n  - ftp://c.example/\n", SCHEDULER_OPTIONS))
      .toThrow(/^s\.yaml: originAllow\[2\]: expected a URL prefix https:\/\/host\[:port\]\[\/path\].*got "ftp:\/\/c\.example\/"$/)
    expect(() => decodeConfig("d.yaml", "originAllow: [7]\n", DAEMON_OPTIONS)).toThrow(/originAllow\[0\]: expected a string/)
    expect(() => decodeConfig("d.yaml", "originAllow: []\n", DAEMON_OPTIONS)).toThrow(/originAllow: expected at least one pattern/)
    expect(() => decodeConfig("s.yaml", "jobsToken: 5\n", SCHEDULER_OPTIONS)).toThrow(/jobsToken: expected a string/)
  })

  it("the flag, repeated or with commas, checked the same way", () => {
    expect(flagValues(DAEMON_OPTIONS, { "origin-allow": ["http://127.0.0.1:5000", "*.example.com,10.0.0.0/8"] }).get("originAllow"))
      .toEqual(["http://127.0.0.1:5000", "*.example.com", "10.0.0.0/8"])
    let error: unknown
    try {
      flagValues(SCHEDULER_OPTIONS, { "origin-allow": ["https://ok.example", "https://bad.example?x"] })
    } catch (e) {
      error = e
    }
    expect(error).toBeInstanceOf(ConfigError)
    expect(String((error as Error).message)).toMatch(/^--origin-allow\[1\]: expected .*got "https:\/\/bad\.example\?x"$/)
  })
})
