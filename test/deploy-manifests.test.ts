// Every YAML document under deploy/ is parsed and validated against the Kubernetes OpenAPI schemas
// (kubernetes-models' compiled validators), then checked for what a schema cannot see: cross-references
// between objects, the roles' flags, and the commands actually starting. The init step and the
// containers' command lines are run here for real (fake API server, local processes).
import { type ChildProcess, execFile, spawn } from "node:child_process"
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs"
import { mkdtemp, rm } from "node:fs/promises"
import { createServer, type Server } from "node:http"
import { type AddressInfo, createServer as createNetServer } from "node:net"
import { tmpdir } from "node:os"
import * as path from "node:path"
import { promisify } from "node:util"
import * as apps from "kubernetes-models/apps/v1"
import * as autoscaling from "kubernetes-models/autoscaling/v2"
import * as batch from "kubernetes-models/batch/v1"
import * as networking from "kubernetes-models/networking.k8s.io/v1"
import * as policy from "kubernetes-models/policy/v1"
import * as rbac from "kubernetes-models/rbac.authorization.k8s.io/v1"
import * as core from "kubernetes-models/v1"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { parseAllDocuments } from "yaml"

const ROOT = path.resolve(import.meta.dirname, "..")
const DEPLOY = path.join(ROOT, "deploy")
const NAMESPACE = "damselfly"
const IMAGE = "damselfly"

type Obj = {
  apiVersion: string
  kind: string
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> }
  spec?: any
  data?: Record<string, string>
  [k: string]: any
}

interface Model {
  new (data: any): { validate(): void }
  readonly apiVersion: string
  readonly kind: string
}

/** apiVersion/kind → the model class whose validate() runs the official schema. */
const MODELS = new Map<string, Model>()
for (const group of [core, apps, batch, policy, rbac, networking, autoscaling] as ReadonlyArray<Record<string, unknown>>) {
  for (const value of Object.values(group)) {
    if (typeof value !== "function") continue
    const m = value as unknown as { apiVersion?: unknown; kind?: unknown }
    if (typeof m.apiVersion === "string" && typeof m.kind === "string") MODELS.set(`${m.apiVersion}/${m.kind}`, value as unknown as Model)
  }
}

/** Throws with the schema's messages when the object is not a valid Kubernetes object of its kind. */
const validateObject = (o: Obj): void => {
  if (typeof o?.apiVersion !== "string" || typeof o?.kind !== "string") throw new Error("apiVersion and kind must be strings")
  const model = MODELS.get(`${o.apiVersion}/${o.kind}`)
  if (model === undefined) throw new Error(`no schema for ${o.apiVersion} ${o.kind}`)
  new model(o).validate()
}

const CLUSTER_SCOPED = new Set(["Namespace", "ClusterRole", "ClusterRoleBinding", "PersistentVolume", "StorageClass", "PriorityClass"])
const WORKLOADS = new Set(["Deployment", "StatefulSet", "DaemonSet"])

const yamlFiles = (dir: string): Array<string> =>
  readdirSync(dir).flatMap((name) => {
    const p = path.join(dir, name)
    return statSync(p).isDirectory() ? yamlFiles(p) : /\.ya?ml$/.test(name) ? [p] : []
  }).sort()

interface Doc {
  readonly file: string
  readonly obj: Obj
}

// deploy/config/ holds damselfly's own config files (runtime/config.ts), not Kubernetes objects.
const files = yamlFiles(DEPLOY).filter((f) => !f.startsWith(path.join(DEPLOY, "config") + path.sep))
const docs: Array<Doc> = files.flatMap((file) =>
  parseAllDocuments(readFileSync(file, "utf8")).flatMap((d) => {
    if (d.errors.length > 0) throw new Error(`${path.relative(ROOT, file)}: ${d.errors.map((e) => e.message).join("; ")}`)
    const obj = d.toJS() as Obj | null
    return obj === null ? [] : [{ file, obj }]
  })
)
const kustomizations = docs.filter((d) => d.obj.kind === "Kustomization")
const objects = docs.filter((d) => d.obj.kind !== "Kustomization")
const named = (kind: string, name: string): Obj => {
  const found = objects.find((d) => d.obj.kind === kind && d.obj.metadata.name === name)
  if (found === undefined) throw new Error(`no ${kind} ${name}`)
  return found.obj
}
const workloads = objects.map((d) => d.obj).filter((o) => WORKLOADS.has(o.kind))
const podSpecs = workloads.map((w) => ({ w, pod: w.spec.template.spec }))
const containersOf = (pod: any): Array<any> => [...(pod.initContainers ?? []), ...pod.containers]
const scheduler = named("Deployment", "damselfly-scheduler")
const seed = named("StatefulSet", "damselfly-seed-peer")
const daemon = named("DaemonSet", "damselfly-daemon")
const config = named("ConfigMap", "damselfly-config")
const mainContainer = (w: Obj) => w.spec.template.spec.containers[0]
const matches = (selector: Record<string, string>, labels: Record<string, string> | undefined) =>
  Object.entries(selector).every(([k, v]) => labels?.[k] === v)
const clone = <A>(a: A): A => structuredClone(a)

describe("YAML under deploy/", () => {
  it("finds the manifests", () => {
    const kinds = objects.map((d) => d.obj.kind)
    for (const k of ["Namespace", "ConfigMap", "Deployment", "Service", "StatefulSet", "DaemonSet"]) expect(kinds).toContain(k)
  })

  it("validates every object against the Kubernetes schemas", () => {
    for (const { file, obj } of objects) {
      expect(() => validateObject(obj), `${path.relative(ROOT, file)}: ${obj.kind} ${obj.metadata?.name}`).not.toThrow()
    }
  })

  it("names every object once, and puts every namespaced object in the damselfly namespace", () => {
    const keys = objects.map((d) => `${d.obj.kind}/${d.obj.metadata.namespace ?? ""}/${d.obj.metadata.name}`)
    expect(new Set(keys).size).toBe(keys.length)
    for (const { obj } of objects) {
      if (CLUSTER_SCOPED.has(obj.kind)) expect(obj.metadata.namespace, `${obj.kind} ${obj.metadata.name}`).toBeUndefined()
      else expect(obj.metadata.namespace, `${obj.kind} ${obj.metadata.name}`).toBe(NAMESPACE)
    }
    expect(named("Namespace", NAMESPACE)).toBeDefined()
  })

  it("has one kustomization listing every manifest file, each once", () => {
    expect(kustomizations).toHaveLength(1)
    const k = kustomizations[0]
    expect(k.obj.apiVersion).toBe("kustomize.config.k8s.io/v1beta1")
    expect(k.obj.namespace).toBe(NAMESPACE)
    const listed = (k.obj.resources as Array<string>).map((r) => path.resolve(path.dirname(k.file), r))
    const manifestFiles = [...new Set(objects.map((d) => d.file))]
    expect([...listed].sort()).toEqual([...manifestFiles].sort())
    // kubectl apply -f on the folder: the Namespace's file sorts first.
    expect(path.basename([...manifestFiles].sort()[0])).toMatch(/namespace/)
    for (const image of k.obj.images ?? []) expect(image.name).toBe(IMAGE)
  })
})

describe("the validator rejects invalid manifests", () => {
  it("a string where an integer is required", () => {
    const bad = clone(scheduler)
    bad.spec.replicas = "3"
    expect(() => validateObject(bad)).toThrow(/replicas must be integer/)
  })

  it("a missing required field", () => {
    const bad = clone(scheduler)
    delete bad.spec.selector
    expect(() => validateObject(bad)).toThrow(/required property 'selector'|required property selector/)
    const noName = clone(daemon)
    delete noName.spec.template.spec.containers[0].name
    expect(() => validateObject(noName)).toThrow(/name/)
  })

  it("a malformed quantity and a port out of type", () => {
    const bad = clone(seed)
    bad.spec.template.spec.containers[0].resources.limits.memory = "lots"
    expect(() => validateObject(bad)).toThrow(/quantity/)
    const port = clone(daemon)
    port.spec.template.spec.containers[0].ports[0].hostPort = "65001"
    expect(() => validateObject(port)).toThrow(/hostPort must be integer/)
  })

  it("a kind it has no schema for", () => {
    expect(() => validateObject({ apiVersion: "apps/v1", kind: "Deploymnet", metadata: { name: "x" } })).toThrow(/no schema/)
  })
})

describe("cross-references", () => {
  it("every workload's selector matches its own pod template", () => {
    for (const w of workloads) expect(matches(w.spec.selector.matchLabels, w.spec.template.metadata.labels), `${w.kind} ${w.metadata.name}`).toBe(true)
  })

  it("every Service selects some workload's pods, and its target ports exist on them", () => {
    for (const { obj: svc } of objects.filter((d) => d.obj.kind === "Service")) {
      const targets = workloads.filter((w) => matches(svc.spec.selector, w.spec.template.metadata.labels))
      expect(targets.length, `Service ${svc.metadata.name} selects a workload`).toBeGreaterThan(0)
      for (const w of targets) {
        const ports = w.spec.template.spec.containers.flatMap((c: any) => c.ports ?? [])
        for (const p of svc.spec.ports) {
          const target = p.targetPort ?? p.port
          expect(ports.some((cp: any) => cp.name === target || cp.containerPort === target), `Service ${svc.metadata.name} → ${w.metadata.name}:${target}`).toBe(true)
        }
      }
    }
  })

  it("probes hit /healthy on a port the container declares", () => {
    for (const { w, pod } of podSpecs) {
      for (const c of pod.containers) {
        for (const kind of ["startupProbe", "readinessProbe", "livenessProbe"]) {
          const probe = c[kind]
          expect(probe, `${w.metadata.name}/${c.name} ${kind}`).toBeDefined()
          expect(probe.httpGet.path).toBe("/healthy")
          const port = probe.httpGet.port
          expect((c.ports ?? []).some((p: any) => p.name === port || p.containerPort === port), `${w.metadata.name}/${c.name} ${kind} port ${port}`).toBe(true)
        }
      }
    }
  })

  it("volume mounts, ConfigMap keys, Secrets and service accounts resolve", () => {
    for (const { w, pod } of podSpecs) {
      const volumes = new Set([...(pod.volumes ?? []).map((v: any) => v.name), ...(w.spec.volumeClaimTemplates ?? []).map((v: any) => v.metadata.name)])
      for (const v of pod.volumes ?? []) {
        if (v.configMap !== undefined) {
          const cm = named("ConfigMap", v.configMap.name)
          for (const item of v.configMap.items ?? []) expect(cm.data?.[item.key], `${w.metadata.name} volume ${v.name} key ${item.key}`).toBeDefined()
        }
      }
      for (const c of containersOf(pod)) {
        for (const m of c.volumeMounts ?? []) expect(volumes.has(m.name), `${w.metadata.name}/${c.name} mounts ${m.name}`).toBe(true)
        for (const e of c.env ?? []) {
          const cmRef = e.valueFrom?.configMapKeyRef
          if (cmRef !== undefined) expect(named("ConfigMap", cmRef.name).data?.[cmRef.key], `${w.metadata.name}/${c.name} env ${e.name}`).toBeDefined()
          // The token Secret is the operator's to create: a reference to it must be optional.
          if (e.valueFrom?.secretKeyRef !== undefined) expect(e.valueFrom.secretKeyRef.optional, `${w.metadata.name}/${c.name} env ${e.name}`).toBe(true)
        }
        // Every $(VAR) in command and args is defined in the container's env.
        const defined = new Set((c.env ?? []).map((e: any) => e.name))
        for (const word of [...(c.command ?? []), ...(c.args ?? [])]) {
          for (const m of String(word).matchAll(/\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g)) expect(defined.has(m[1]), `${w.metadata.name}/${c.name} uses $(${m[1]})`).toBe(true)
        }
      }
      if (pod.serviceAccountName !== undefined) named("ServiceAccount", pod.serviceAccountName)
    }
  })

  it("every container runs the damselfly image at a pinned tag, non-root, with requests and limits", () => {
    for (const { w, pod } of podSpecs) {
      expect(pod.securityContext.runAsNonRoot, w.metadata.name).toBe(true)
      expect(pod.securityContext.runAsUser).toBe(10001) // the Dockerfile's USER
      for (const c of containersOf(pod)) {
        const where = `${w.metadata.name}/${c.name}`
        expect(c.image, where).toMatch(new RegExp(`^${IMAGE}:[\\w.-]+$`))
        expect(c.image, where).not.toMatch(/:latest$/)
        for (const r of ["requests", "limits"]) {
          expect(c.resources?.[r]?.cpu, `${where} ${r}.cpu`).toBeDefined()
          expect(c.resources?.[r]?.memory, `${where} ${r}.memory`).toBeDefined()
        }
        expect(c.securityContext?.allowPrivilegeEscalation, where).toBe(false)
      }
    }
  })
})

/** A container's env as kubelet would resolve it, for a given pod. */
const resolveEnv = (c: any, pod: { name: string; node: string; ip: string }): Record<string, string> => {
  const env: Record<string, string> = {}
  for (const e of c.env ?? []) {
    if (e.value !== undefined) env[e.name] = e.value
    const field = e.valueFrom?.fieldRef?.fieldPath
    if (field !== undefined) env[e.name] = ({ "metadata.name": pod.name, "spec.nodeName": pod.node, "status.podIP": pod.ip, "status.hostIP": pod.ip } as Record<string, string>)[field]
    const cm = e.valueFrom?.configMapKeyRef
    if (cm !== undefined) env[e.name] = named("ConfigMap", cm.name).data![cm.key]
  }
  return env
}
/** kubelet's $(VAR) expansion in command and args. */
const expand = (word: string, env: Record<string, string>) => word.replace(/\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g, (all, v: string) => env[v] ?? all)
const flagValue = (args: ReadonlyArray<string>, flag: string) => {
  const i = args.indexOf(flag)
  return i < 0 ? undefined : args[i + 1]
}

describe("roles", () => {
  it("schedulers: a Deployment of 3 behind a ClusterIP Service on 8002 that the peers are pointed at", () => {
    expect(scheduler.spec.replicas).toBe(3)
    const c = mainContainer(scheduler)
    expect(c.args[0]).toBe("scheduler")
    expect(flagValue(c.args, "--port")).toBe("8002")
    expect(flagValue(c.args, "--listen")).toBe("0.0.0.0")
    const svc = named("Service", "damselfly-scheduler")
    expect(svc.spec.type).toBe("ClusterIP")
    expect(svc.spec.ports.map((p: any) => p.port)).toEqual([8002])
    expect(matches(svc.spec.selector, scheduler.spec.template.metadata.labels)).toBe(true)
    expect(svc.spec.sessionAffinity).toBe("ClientIP")
    const url = new URL(config.data!["scheduler-url"])
    expect([svc.metadata.name, `${svc.metadata.name}.${NAMESPACE}`, `${svc.metadata.name}.${NAMESPACE}.svc`]).toContain(url.hostname)
    expect(url.port).toBe("8002")
  })

  it("seed peers: a StatefulSet of 2 with --seed, a volume claim per pod, a headless Service, host id = pod name", () => {
    expect(seed.spec.replicas).toBe(2)
    const c = mainContainer(seed)
    expect(c.args[0]).toBe("daemon")
    expect(c.args).toContain("--seed")
    const claim = seed.spec.volumeClaimTemplates[0]
    expect(c.volumeMounts.find((m: any) => m.name === claim.metadata.name)?.mountPath).toBe(flagValue(c.args, "--data"))
    const headless = named("Service", seed.spec.serviceName)
    expect(headless.spec.clusterIP).toBe("None")
    expect(matches(headless.spec.selector, seed.spec.template.metadata.labels)).toBe(true)
    expect(flagValue(c.args, "--host-id")).toBe("$(POD_NAME)")
    expect(c.env.find((e: any) => e.name === "POD_NAME").valueFrom.fieldRef.fieldPath).toBe("metadata.name")
  })

  it("daemons: a DaemonSet on hostPath storage, the daemon port on the host, host id = node name", () => {
    const c = mainContainer(daemon)
    expect(c.args[0]).toBe("daemon")
    expect(c.args).not.toContain("--seed")
    const port = Number(flagValue(c.args, "--port"))
    expect(c.ports.find((p: any) => p.containerPort === port)?.hostPort).toBe(port)
    const dataMount = c.volumeMounts.find((m: any) => m.mountPath === flagValue(c.args, "--data"))
    const dataVolume = daemon.spec.template.spec.volumes.find((v: any) => v.name === dataMount?.name)
    expect(dataVolume?.hostPath?.path).toBe("/var/lib/damselfly")
    expect(flagValue(c.args, "--host-id")).toBe("$(NODE_NAME)")
    expect(c.env.find((e: any) => e.name === "NODE_NAME").valueFrom.fieldRef.fieldPath).toBe("spec.nodeName")
    // Clients on the node reach the control routes through the hostPort, from the node's IP (runtime/control-access.ts).
    expect(flagValue(c.args, "--control-from")).toBe("$(HOST_IP)")
    expect(c.env.find((e: any) => e.name === "HOST_IP").valueFrom.fieldRef.fieldPath).toBe("status.hostIP")
    // A surge pod could not bind the hostPort the old one holds.
    expect(daemon.spec.updateStrategy.rollingUpdate.maxSurge).toBe(0)
  })

  it("peers listen on (and so announce) the pod IP, and take IDC and location from the init step", () => {
    for (const w of [seed, daemon]) {
      const c = mainContainer(w)
      expect(flagValue(c.args, "--listen")).toBe("$(POD_IP)")
      expect(c.env.find((e: any) => e.name === "POD_IP").valueFrom.fieldRef.fieldPath).toBe("status.podIP")
      expect(flagValue(c.args, "--scheduler")).toBe("$(SCHEDULER_URL)")
      const script = c.command.join(" ")
      expect(script).toMatch(/exec node runtime\/bin\/damselfly\.mjs "\$@" --idc .* --location /)
      expect(w.spec.template.spec.initContainers.map((i: any) => i.name)).toContain("node-topology")
    }
  })

  it("uses only flags the CLI has", async () => {
    const help = async (sub: string) =>
      (await promisify(execFile)(process.execPath, ["runtime/bin/damselfly.mjs", sub, "--help"], { cwd: ROOT })).stdout
    const known = async (sub: string) => new Set([...(await help(sub)).matchAll(/(--[a-z][a-z-]*)/g)].map((m) => m[1]))
    const [schedulerFlags, daemonFlags] = await Promise.all([known("scheduler"), known("daemon")])
    for (const [w, flags] of [[scheduler, schedulerFlags], [seed, daemonFlags], [daemon, daemonFlags]] as const) {
      const c = mainContainer(w)
      const used = [...c.args, ...(c.command ?? [])].flatMap((a: string) => [...a.matchAll(/(?:^|\s)(--[a-z][a-z-]*)/g)].map((m) => m[1]))
      for (const flag of used) expect(flags.has(flag), `${w.metadata.name}: ${flag}`).toBe(true)
    }
  })
})

// --- Running it: the init step against a fake API server, then the three roles' command lines ---

const freePort = () =>
  new Promise<number>((resolve, reject) => {
    const s = createNetServer()
    s.on("error", reject)
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as AddressInfo).port
      s.close(() => resolve(port))
    })
  })

const NODES: Record<string, unknown> = {
  "node-a": { metadata: { name: "node-a", labels: { "topology.kubernetes.io/region": "eu-west", "topology.kubernetes.io/zone": "eu-west-1a" } } },
  "node-b": {
    metadata: {
      name: "node-b",
      labels: { "topology.kubernetes.io/zone": "z1", "damselfly.io/idc": "dc7" },
      annotations: { "damselfly.io/location": "fr|idf|paris|rack-3" }
    }
  },
  "node-c": { metadata: { name: "node-c" } }
}

let work: string
let api: Server
let apiUrl: string
const requests: Array<{ url: string; authorization: string | undefined }> = []
const children: Array<ChildProcess> = []

beforeAll(async () => {
  work = await mkdtemp(path.join(tmpdir(), "damselfly-deploy-"))
  mkdirSync(path.join(work, "sa"))
  writeFileSync(path.join(work, "sa", "token"), "test-token\n")
  writeFileSync(path.join(work, "node-topology.mjs"), config.data!["node-topology.mjs"])
  api = createServer((req, res) => {
    requests.push({ url: req.url ?? "", authorization: req.headers.authorization })
    const m = /^\/api\/v1\/nodes\/([^/]+)$/.exec(req.url ?? "")
    const node = m === null ? undefined : NODES[decodeURIComponent(m[1])]
    if (req.headers.authorization !== "Bearer test-token") res.writeHead(401).end("{}")
    else if (node === undefined) res.writeHead(403, { "content-type": "application/json" }).end(JSON.stringify({ message: "forbidden" }))
    else res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(node))
  })
  await new Promise<void>((resolve) => api.listen(0, "127.0.0.1", resolve))
  apiUrl = `http://127.0.0.1:${(api.address() as AddressInfo).port}`
})

afterAll(async () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL")
  await new Promise<void>((resolve) => api.close(() => resolve()))
  await rm(work, { recursive: true, force: true })
})

/** Runs the manifest's init step (its command and env, with the test's API server) for one node. */
const runTopology = async (w: Obj, node: string) => {
  const init = w.spec.template.spec.initContainers.find((i: any) => i.name === "node-topology")
  const dir = path.join(work, `topology-${w.metadata.name}-${node}`)
  const env = { ...resolveEnv(init, { name: `${w.metadata.name}-0`, node, ip: "127.0.0.1" }), TOPOLOGY_DIR: dir }
  // The command's script path is the ConfigMap volume's mount; here it is the extracted copy.
  expect(init.command).toEqual(["node", "/etc/damselfly/node-topology.mjs"])
  const { stdout } = await promisify(execFile)(process.execPath, [path.join(work, "node-topology.mjs")], {
    env: { PATH: process.env.PATH ?? "", ...env, KUBERNETES_API: apiUrl, SERVICEACCOUNT_DIR: path.join(work, "sa") }
  })
  return { dir, stdout, idc: readFileSync(path.join(dir, "idc"), "utf8"), location: readFileSync(path.join(dir, "location"), "utf8") }
}

describe("the node-topology init step", () => {
  it("takes the IDC from the zone label and the location from region|zone", async () => {
    const r = await runTopology(daemon, "node-a")
    expect([r.idc, r.location]).toEqual(["eu-west-1a", "eu-west|eu-west-1a"])
    expect(requests.some((q) => q.url === "/api/v1/nodes/node-a" && q.authorization === "Bearer test-token")).toBe(true)
  })

  it("lets damselfly.io/idc and the damselfly.io/location annotation override the labels", async () => {
    const r = await runTopology(seed, "node-b")
    expect([r.idc, r.location]).toEqual(["dc7", "fr|idf|paris|rack-3"])
  })

  it("writes empty values, and succeeds, without labels or without access", async () => {
    expect(await runTopology(daemon, "node-c")).toMatchObject({ idc: "", location: "" })
    expect(await runTopology(daemon, "not-allowed")).toMatchObject({ idc: "", location: "" })
  })
})

const waitFor = async <A>(what: string, f: () => Promise<A | undefined>, ms = 45_000): Promise<A> => {
  const deadline = Date.now() + ms
  for (;;) {
    const a = await f().catch(() => undefined)
    if (a !== undefined) return a
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 250))
  }
}
const getJson = async (url: string) => {
  const r = await fetch(url)
  return r.ok ? ((await r.json()) as Record<string, any>) : undefined
}

/**
 * Starts a container as kubelet would (command or the image's ENTRYPOINT, then args, $(VAR) expanded),
 * with the pod's paths moved under the test's folder and its port replaced by a free one.
 */
const startContainer = (c: any, env: Record<string, string>, moves: Record<string, string>, port: number, name: string) => {
  const move = (s: string) => Object.entries(moves).reduce((acc, [from, to]) => acc.split(from).join(to), s)
  const args = (c.args as Array<string>).map((a) => move(expand(a, env)))
  args[args.indexOf("--port") + 1] = String(port)
  const argv = c.command === undefined ? ["node", "runtime/bin/damselfly.mjs", ...args] : [...(c.command as Array<string>).map((a) => move(expand(a, env))), ...args]
  const [cmd, ...rest] = argv
  const child = spawn(cmd === "node" ? process.execPath : cmd, rest, {
    cwd: ROOT, // the image's WORKDIR holds the same tree
    env: { PATH: process.env.PATH ?? "", HOME: work, ...env },
    stdio: ["ignore", "ignore", "pipe"]
  })
  let stderr = ""
  child.stderr!.on("data", (d) => { stderr = (stderr + String(d)).slice(-4000) })
  child.on("exit", (code) => { if (code !== 0 && code !== null) console.error(`${name} exited ${code}: ${stderr}`) })
  children.push(child)
  return child
}

describe("the roles' command lines, run locally", () => {
  it("start a scheduler, a seed peer and a daemon that find each other", async () => {
    const [sPort, seedPort, dPort] = [await freePort(), await freePort(), await freePort()]
    const schedulerUrl = `http://127.0.0.1:${sPort}`
    const sc = mainContainer(scheduler)
    // 0.0.0.0 in a pod; loopback is enough here.
    startContainer({ ...sc, args: sc.args.map((a: string) => (a === "0.0.0.0" ? "127.0.0.1" : a)) }, { ...resolveEnv(sc, { name: "s", node: "n", ip: "127.0.0.1" }) }, {}, sPort, "scheduler")
    await waitFor("scheduler /healthy", () => getJson(`${schedulerUrl}/healthy`))

    const peers = [
      { w: seed, node: "node-b", pod: "damselfly-seed-peer-0", port: seedPort },
      { w: daemon, node: "node-a", pod: "damselfly-daemon-x7k2p", port: dPort }
    ]
    const started: Array<ChildProcess> = []
    for (const p of peers) {
      const topology = await runTopology(p.w, p.node)
      const c = mainContainer(p.w)
      const env = { ...resolveEnv(c, { name: p.pod, node: p.node, ip: "127.0.0.1" }), SCHEDULER_URL: schedulerUrl }
      const data = path.join(work, `data-${p.pod}`)
      started.push(startContainer(c, env, { "/topology": topology.dir, "/var/lib/damselfly": data }, p.port, p.pod))
    }
    const health = await Promise.all(peers.map((p) => waitFor(`${p.pod} /healthy`, () => getJson(`http://127.0.0.1:${p.port}/healthy`))))
    expect(health.map((h) => [h.hostId, h.type])).toEqual([["damselfly-seed-peer-0", "seed"], ["node-a", "normal"]])
    const view = await waitFor("both peers announced", async () => {
      const h = await getJson(`${schedulerUrl}/healthy`)
      return h !== undefined && h.hosts >= 2 ? h : undefined
    })
    expect(view.seeds).toEqual(["damselfly-seed-peer-0"])
    // The shell wrapper execs: the container's main process is node itself, so SIGTERM reaches it.
    for (const child of started) {
      if (existsSync(`/proc/${child.pid}/cmdline`)) expect(path.basename(readFileSync(`/proc/${child.pid}/cmdline`, "utf8").split("\0")[0])).toBe("node")
      const exited = new Promise((resolve) => child.once("exit", resolve))
      child.kill("SIGTERM")
      await exited
    }
  }, 90_000)
})
