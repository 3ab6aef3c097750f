// A small loopback cluster of real processes for fault tests: one scheduler (or several, on a ring), one seed, N daemons,
// each with its port and data dir, plus what a test needs to watch them (a daemon's progress on a
// task, the task id a `get` will use) and to hurt them (SIGKILL, restart on the same port).
import { createHash } from "node:crypto"
import { damselfly, getJson, type Server, spawnDaemon, spawnScheduler, waitFor, waitHealthy } from "./harness.ts"

export type Node = Server

export interface ClusterOptions {
  readonly dir: string
  readonly daemons: number
  /** Scheduler processes (default 1); every daemon lists them all. */
  readonly schedulers?: number
  readonly seedArgs?: ReadonlyArray<string>
  readonly daemonArgs?: ReadonlyArray<string>
  readonly schedulerArgs?: ReadonlyArray<string>
  readonly env?: Record<string, string>
  /** How long each process may take to answer /healthy (default: 30 s + 10 s per process). */
  readonly startMillis?: number
}

export interface Cluster {
  /** The first scheduler (the only one unless `schedulers` was given). */
  readonly scheduler: Node
  readonly schedulers: ReadonlyArray<Node>
  readonly seed: Node
  readonly daemons: ReadonlyArray<Node>
  /** Starts a fresh scheduler process on the killed one's port (the first scheduler by default). */
  restartScheduler(index?: number): Promise<void>
}

export const startCluster = async (o: ClusterOptions): Promise<Cluster> => {
  const schedulers: Array<Node> = []
  for (let i = 0; i < (o.schedulers ?? 1); i++) {
    schedulers.push(await spawnScheduler(i === 0 ? "scheduler" : `scheduler-${i}`, o.schedulerArgs ?? [], { env: o.env }))
  }
  const urls = schedulers.map((s) => s.url)
  const seed = await spawnDaemon("seed", { seed: true, dir: o.dir, schedulers: urls, hostId: "seed-0", args: o.seedArgs ?? [], env: o.env })
  const daemons: Array<Node> = []
  for (let i = 0; i < o.daemons; i++) {
    daemons.push(await spawnDaemon(`daemon-${i}`, { dir: o.dir, schedulers: urls, hostId: `peer-${i}`, args: o.daemonArgs ?? [], env: o.env }))
  }
  // Many processes starting at once on a small machine: give them time.
  const startMillis = o.startMillis ?? 30_000 + 10_000 * (schedulers.length + o.daemons)
  await Promise.all(schedulers.map((s) => waitHealthy(s.url, s.proc, startMillis)))
  await waitHealthy(seed.url, seed.proc, startMillis)
  await Promise.all(daemons.map((d) => waitHealthy(d.url, d.proc, startMillis)))
  for (const s of schedulers) {
    await waitFor(`every host to announce itself to ${s.name}`, async () => (await getJson(`${s.url}/healthy`)).body.hosts === o.daemons + 1)
  }
  return {
    scheduler: schedulers[0],
    schedulers,
    seed,
    daemons,
    restartScheduler: async (index = 0) => {
      const s = schedulers[index]
      s.proc = damselfly(`${s.name}-restarted`, ["scheduler", "--port", String(s.port), ...(o.schedulerArgs ?? [])], undefined, o.env)
      await waitHealthy(s.url, s.proc, 60_000)
    }
  }
}

/** The task id a daemon computes for a plain URL download (core/task-id.ts, no digest, no tag). */
export const taskIdFor = (url: string, pieceLength: number) =>
  createHash("sha256").update([url, "", "", String(pieceLength)].join("\n")).digest("hex")

/** Pieces a daemon holds of a task: 0 while it holds none or does not know the task yet. */
export const piecesHeld = async (node: Node, taskId: string): Promise<number> => {
  try {
    const r = await getJson(`${node.url}/v1/tasks/${taskId}/availability?since=0`, 1_000)
    return r.status === 200 ? Number(r.body.version) : 0
  } catch {
    return 0 // the long-poll waits while it holds nothing
  }
}

/** SIGKILL: no goodbye to anyone, as when a host dies. */
export const kill9 = async (node: Node) => {
  node.proc.child.kill("SIGKILL")
  await node.proc.exited
}
