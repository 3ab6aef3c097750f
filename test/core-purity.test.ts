// core/ is the protocol state machine: no I/O, no wall clock, no ambient randomness, and it knows
// neither world that runs it. This reads every core file and fails on any such import or call.
import { readdirSync, readFileSync, statSync } from "node:fs"
import { join } from "node:path"
import { describe, expect, it } from "vitest"

const files = (dir: string): Array<string> =>
  readdirSync(dir).flatMap((f) => {
    const p = join(dir, f)
    return statSync(p).isDirectory() ? files(p) : p.endsWith(".ts") ? [p] : []
  })

const FORBIDDEN = [
  /from\s+["'](node:|fs|net|http|https|child_process|worker_threads|os|dgram|tls)["'/]/,
  /from\s+["'][./]*\/(sim|runtime)\//,
  /from\s+["']@effect\/platform-node/,
  /from\s+["']seedrandom["']/,
  /Math\.random\(/,
  /Date\.now\(/,
  /new Date\(/,
  /process\./,
  /require\(/
]

describe("core/ purity", () => {
  const sources = files("core")
  it("has source files to check", () => expect(sources.length).toBeGreaterThan(8))
  it.each(sources)("%s has no I/O, wall clock, ambient randomness or world imports", (file) => {
    const text = readFileSync(file, "utf8")
    for (const pattern of FORBIDDEN) expect(text, `${file} matches ${pattern}`).not.toMatch(pattern)
  })
})
