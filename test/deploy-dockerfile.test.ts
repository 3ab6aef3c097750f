// The Dockerfile cannot be built here (no container engine), so this checks what a build and a run
// depend on: pinned base images, a non-root user, an exec-form ENTRYPOINT that exists, COPY sources
// that are in the repository and not excluded by .dockerignore, and production dependencies that
// cover every package the copied code imports (the image installs with --omit=dev).
import { execFileSync } from "node:child_process"
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs"
import * as path from "node:path"
import { describe, expect, it } from "vitest"

const ROOT = path.resolve(import.meta.dirname, "..")

interface Instruction {
  readonly keyword: string
  readonly args: string
  readonly line: number
}

/** Instructions with continuation lines joined and comments dropped (enough of the Dockerfile syntax for these checks). */
const parseDockerfile = (text: string): Array<Instruction> => {
  const out: Array<Instruction> = []
  let buffer = ""
  let start = 0
  text.split("\n").forEach((raw, i) => {
    const line = raw.trimEnd()
    if (buffer === "" && /^\s*#/.test(line)) return
    if (buffer !== "" && /^\s*#/.test(line)) return // comments inside a continued instruction
    if (buffer === "") start = i + 1
    if (line.endsWith("\\")) {
      buffer += line.slice(0, -1) + " "
      return
    }
    buffer += line
    const m = /^\s*([A-Za-z]+)\s*(.*)$/.exec(buffer)
    if (m !== null) out.push({ keyword: m[1].toUpperCase(), args: m[2].trim(), line: start })
    buffer = ""
  })
  return out
}

interface Stage {
  readonly image: string
  readonly name: string | undefined
  readonly instructions: Array<Instruction>
}

/** FROM lines split the file into stages; ARGs declared before the first FROM are substituted into FROM. */
const stagesOf = (instructions: ReadonlyArray<Instruction>): Array<Stage> => {
  const globalArgs = new Map<string, string>()
  const stages: Array<Stage> = []
  for (const ins of instructions) {
    if (ins.keyword === "ARG" && stages.length === 0) {
      const [name, ...rest] = ins.args.split("=")
      globalArgs.set(name.trim(), rest.join("=").trim().replace(/^"(.*)"$/, "$1"))
    } else if (ins.keyword === "FROM") {
      const words = ins.args.split(/\s+/).filter((w) => !w.startsWith("--"))
      const image = words[0].replace(/\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?/g, (_, v: string) => globalArgs.get(v) ?? "")
      const name = words.length >= 3 && words[1].toUpperCase() === "AS" ? words[2] : undefined
      stages.push({ image, name, instructions: [] })
    } else if (stages.length > 0) {
      stages[stages.length - 1].instructions.push(ins)
    }
  }
  return stages
}

/** Sources of a COPY/ADD (exec or shell form), with its --from stage if any. */
const copySources = (ins: Instruction): { from: string | undefined; sources: Array<string> } => {
  let rest = ins.args
  let from: string | undefined
  for (;;) {
    const m = /^--([a-z-]+)(?:=(\S+))?\s+/.exec(rest)
    if (m === null) break
    if (m[1] === "from") from = m[2]
    rest = rest.slice(m[0].length)
  }
  const words = rest.startsWith("[") ? (JSON.parse(rest) as Array<string>) : rest.split(/\s+/)
  return { from, sources: words.slice(0, -1) }
}

const dockerfile = readFileSync(path.join(ROOT, "Dockerfile"), "utf8")
const instructions = parseDockerfile(dockerfile)
const stages = stagesOf(instructions)
const final = stages[stages.length - 1]
const packageJson = JSON.parse(readFileSync(path.join(ROOT, "package.json"), "utf8")) as {
  dependencies: Record<string, string>
  devDependencies: Record<string, string>
  engines: { node: string }
  bin: Record<string, string>
}

const isTracked = (rel: string): boolean => {
  if (!existsSync(path.join(ROOT, ".git"))) return true
  try {
    return execFileSync("git", ["ls-files", "--", rel], { cwd: ROOT, encoding: "utf8" }).trim() !== ""
  } catch {
    return true // no git binary: existence on disk is checked separately
  }
}

describe("parseDockerfile", () => {
  it("joins continuations, skips comments, substitutes global ARGs into FROM", () => {
    const parsed = parseDockerfile("# c\nARG BASE=node:20-slim\nFROM ${BASE} AS deps\nRUN a \\\n  # inner comment\n  && b\nFROM $BASE\nUSER 1000\n")
    expect(parsed.map((i) => i.keyword)).toEqual(["ARG", "FROM", "RUN", "FROM", "USER"])
    expect(parsed[2].args).toBe("a    && b")
    const st = stagesOf(parsed)
    expect(st.map((s) => [s.image, s.name])).toEqual([["node:20-slim", "deps"], ["node:20-slim", undefined]])
  })
})

describe("Dockerfile", () => {
  it("has a build stage and a final stage", () => {
    expect(stages.length).toBeGreaterThanOrEqual(1)
  })

  it("pins every base image to a tag or digest (never latest) on Node 20 bookworm-slim", () => {
    const stageNames = new Set(stages.map((s) => s.name).filter((n) => n !== undefined))
    for (const s of stages) {
      if (stageNames.has(s.image)) continue
      expect(s.image, `FROM ${s.image}`).toMatch(/^[a-z0-9./_-]+(:[\w.-]+)?(@sha256:[0-9a-f]{64})?$/)
      const tag = /:([\w.-]+)(@|$)/.exec(s.image)?.[1]
      expect(tag !== undefined || s.image.includes("@sha256:"), `FROM ${s.image}: no tag or digest`).toBe(true)
      expect(tag, `FROM ${s.image}`).not.toBe("latest")
      // package.json says node >=20; the image's Node major is 20 as well.
      expect(s.image).toMatch(/^node:20[.\w-]*bookworm-slim/)
    }
  })

  it("installs production dependencies from the lockfile and keeps tsx, which the bin needs at run time", () => {
    const runs = stages.flatMap((s) => s.instructions).filter((i) => i.keyword === "RUN").map((i) => i.args)
    expect(runs.some((r) => /npm ci\b.*--omit=dev/.test(r))).toBe(true)
    expect(packageJson.dependencies.tsx, "tsx must be a production dependency").toBeDefined()
    expect(readFileSync(path.join(ROOT, "runtime/bin/damselfly.mjs"), "utf8")).toContain("tsx/esm/api")
  })

  it("runs as a non-root user in the final stage", () => {
    const users = final.instructions.filter((i) => i.keyword === "USER")
    expect(users.length).toBeGreaterThan(0)
    const user = users[users.length - 1].args.split(":")[0]
    expect(["root", "0", ""]).not.toContain(user)
    // Numeric, so Kubernetes can verify runAsNonRoot without a runAsUser.
    expect(user).toMatch(/^[1-9]\d*$/)
  })

  it("has an exec-form ENTRYPOINT running the damselfly bin, which exists", () => {
    const entries = final.instructions.filter((i) => i.keyword === "ENTRYPOINT")
    expect(entries.length).toBe(1)
    const argv = JSON.parse(entries[0].args) as Array<string>
    expect(argv).toEqual(["node", "runtime/bin/damselfly.mjs"])
    expect(packageJson.bin.damselfly).toBe("./runtime/bin/damselfly.mjs")
    expect(existsSync(path.join(ROOT, argv[1]))).toBe(true)
  })

  it("copies only sources that exist and are tracked, from a build context .dockerignore lets through", () => {
    const ignore = readFileSync(path.join(ROOT, ".dockerignore"), "utf8").split("\n").map((l) => l.trim()).filter((l) => l !== "" && !l.startsWith("#"))
    // The file is an allow-list: everything is excluded, then named paths are let back in.
    expect(ignore[0]).toBe("*")
    const allowed = new Set(ignore.filter((l) => l.startsWith("!")).map((l) => l.slice(1).replace(/\/$/, "")))
    const copied: Array<string> = []
    for (const s of stages) {
      for (const ins of s.instructions.filter((i) => i.keyword === "COPY" || i.keyword === "ADD")) {
        const { from, sources } = copySources(ins)
        if (from !== undefined) {
          expect(stages.some((st) => st.name === from), `COPY --from=${from} names a stage`).toBe(true)
          continue
        }
        for (const src of sources) {
          copied.push(src)
          const rel = src.replace(/^\.\//, "").replace(/\/$/, "")
          expect(existsSync(path.join(ROOT, rel)), `COPY source ${src} (line ${ins.line}) exists`).toBe(true)
          expect(isTracked(rel), `COPY source ${src} is tracked by git`).toBe(true)
          expect(allowed.has(rel), `COPY source ${src} is let through by .dockerignore`).toBe(true)
        }
      }
    }
    for (const needed of ["package.json", "package-lock.json", "tsconfig.json", "core", "sim", "runtime", "scenarios"]) {
      expect(copied.map((c) => c.replace(/\/$/, "")), needed).toContain(needed)
    }
  })

  it("has every package the copied code imports among the production dependencies", () => {
    const files: Array<string> = []
    const walk = (dir: string) => {
      for (const name of readdirSync(dir)) {
        const p = path.join(dir, name)
        // Test helpers (runtime/testing) are copied but never run in the image.
        if (statSync(p).isDirectory()) { if (name !== "testing") walk(p) }
        else if (/\.(ts|mts|mjs|js)$/.test(name)) files.push(p)
      }
    }
    for (const dir of ["core", "sim", "runtime", "scenarios"]) walk(path.join(ROOT, dir))
    const missing = new Set<string>()
    const seen = new Set<string>()
    for (const file of files) {
      // Type-only imports are erased by tsx: they need nothing at run time.
      const text = readFileSync(file, "utf8").replace(/(?:import|export)\s+type\s[^;]*?from\s+"[^"]+"/g, "")
      for (const m of text.matchAll(/(?:from\s+|import\s*\(\s*|import\s+)"([^"]+)"/g)) {
        const spec = m[1]
        if (spec.startsWith(".") || spec.startsWith("/") || spec.startsWith("node:")) continue
        const pkg = spec.startsWith("@") ? spec.split("/").slice(0, 2).join("/") : spec.split("/")[0]
        seen.add(pkg)
        if (!(pkg in packageJson.dependencies)) missing.add(`${pkg} (${path.relative(ROOT, file)})`)
      }
    }
    expect([...missing]).toEqual([])
    for (const pkg of ["effect", "tsx", "@effect/platform-node"]) expect(seen, "the import scan finds imports").toContain(pkg)
  })
})
