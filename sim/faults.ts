// Fault plans: what goes wrong in a simulated deployment, and when. A plan is part of a scenario (the
// optional `faults` array); the World applies it at the service and network layer (scheduler channel,
// piece transfers, origin, stores, link capacities), never inside core/.
//
// Host references in a plan name a host id ("peer-idcA-0003", "seed-idcB-0000"), an IDC name (every
// host in it), "scheduler" or "origin".
import { Effect, Schema } from "effect"
import { OriginFailed, SchedulerUnavailable, StoreFailed, TransferFailed } from "../core/errors.ts"
import { PieceAvailability } from "../core/protocol.ts"
import type { PieceStore } from "../core/services/piece-store.ts"
import type { SimEngine } from "./engine.ts"
import type { Network, NetHost } from "./network.ts"

const Seconds = Schema.Number.check(Schema.isGreaterThanOrEqualTo(0)).annotate({ description: "virtual seconds, >= 0" })
const Fraction = Schema.Number.check(Schema.isGreaterThanOrEqualTo(0), Schema.isLessThanOrEqualTo(1))
const Factor = Schema.Number.check(Schema.isGreaterThan(0)).annotate({ description: "capacity multiplier, > 0" })
const HostRef = Schema.NonEmptyString.annotate({ description: "a host id, an IDC name, \"scheduler\" or \"origin\"" })
const fault = <K extends string, F extends Schema.Struct.Fields>(kind: K, fields: F) =>
  Schema.Struct({ kind: Schema.Literal(kind), ...fields })

export const SchedulerCrash = fault("scheduler-crash", {
  atSeconds: Seconds,
  /** A new scheduler (new epoch, empty state) starts then; without it the scheduler stays down. */
  restartAtSeconds: Schema.optionalKey(Seconds)
})
export const SchedulerPartition = fault("scheduler-partition", {
  hosts: Schema.Array(HostRef).check(Schema.isMinLength(1)),
  fromSeconds: Seconds,
  untilSeconds: Seconds
})
/** The host dies: its fibers stop, its store is gone, it serves nothing. */
export const PeerCrash = fault("peer-crash", { host: HostRef, atSeconds: Seconds })
/** The host leaves gracefully: it reports LeavePeer for every task it holds, then serves nothing. */
export const PeerLeave = fault("peer-leave", { host: HostRef, atSeconds: Seconds })
/** A parent's uplink capacity is scaled by `factor` (the scheduler is not told). */
export const SlowParent = fault("slow-parent", {
  host: HostRef,
  factor: Factor,
  fromSeconds: Seconds,
  untilSeconds: Schema.optionalKey(Seconds)
})
/** No traffic between the hosts matching `a` and those matching `b`, until it heals. */
export const LinkPartition = fault("link-partition", {
  a: HostRef,
  b: HostRef,
  fromSeconds: Seconds,
  untilSeconds: Schema.optionalKey(Seconds)
})
/** A fraction of peer-to-peer piece transfers fail (TransferFailed), drawn from the seed. */
export const TransferLoss = fault("transfer-loss", {
  fraction: Fraction,
  fromSeconds: Seconds,
  untilSeconds: Schema.optionalKey(Seconds)
})
/** The host serves pieces with flipped bytes; with `lieAboutDigests` it also advertises their digests. */
export const CorruptPeer = fault("corrupt-peer", {
  host: HostRef,
  fromSeconds: Seconds,
  lieAboutDigests: Schema.optionalKey(Schema.Boolean)
})
export const OriginOutage = fault("origin-outage", { fromSeconds: Seconds, untilSeconds: Seconds })
export const OriginSlow = fault("origin-slow", { factor: Factor, fromSeconds: Seconds, untilSeconds: Seconds })
/** The host's PieceStore.write fails with StoreFailed from then on. */
export const DiskFull = fault("disk-full", { host: HostRef, atSeconds: Seconds })

export const Fault = Schema.Union([
  SchedulerCrash,
  SchedulerPartition,
  PeerCrash,
  PeerLeave,
  SlowParent,
  LinkPartition,
  TransferLoss,
  CorruptPeer,
  OriginOutage,
  OriginSlow,
  DiskFull
])
export type Fault = typeof Fault.Type

/** Presence: how often hosts announce themselves when a plan is in force, and retry when unanswered. */
export const PRESENCE_INTERVAL_MILLIS = 5_000
export const PRESENCE_RETRY_MILLIS = 1_000
/** A request into a partition (packets dropped) fails after this long; to a dead process at once. */
export const CONNECT_TIMEOUT_MILLIS = 1_000

/** When the plan's last fault begins or ends (a fault without an end counts from its start). */
export const healSeconds = (plan: ReadonlyArray<Fault>): number =>
  plan.reduce((t, f) => {
    switch (f.kind) {
      case "scheduler-crash":
        return Math.max(t, f.restartAtSeconds ?? f.atSeconds)
      case "peer-crash":
      case "peer-leave":
      case "disk-full":
        return Math.max(t, f.atSeconds)
      case "corrupt-peer":
        return Math.max(t, f.fromSeconds)
      default:
        return Math.max(t, f.untilSeconds ?? f.fromSeconds)
    }
  }, 0)

/** What the Faults runtime needs from the world. */
export interface FaultTarget {
  readonly engine: SimEngine
  readonly network: Network
  readonly originNet: NetHost
  readonly schedulerNet: NetHost
  /** Every network host (peers, seeds, scheduler, origin). */
  readonly nets: ReadonlyArray<NetHost>
  idcOfNet(net: NetHost): string
  crashScheduler(): void
  restartScheduler(): void
  /** Stops a host: graceful = report LeavePeer first and keep the store; otherwise the store is gone. */
  stopHost(hostId: string, graceful: boolean): void
}

/** The faults in force at the current virtual instant, and the hooks services consult. */
export class Faults {
  schedulerDown = false
  readonly down = new Set<string>()
  readonly crashed = new Set<string>()
  readonly left = new Set<string>()
  readonly diskFull = new Set<string>()
  /** Host id → advertises the digests of its corrupt bytes. */
  readonly corrupt = new Map<string, boolean>()
  private readonly cuts: Array<{ readonly a: string; readonly b: string }> = []
  private readonly schedulerCuts: Array<ReadonlyArray<string>> = []
  private readonly losses: Array<number> = []
  private originOutages = 0
  private readonly listeners = new Set<() => void>()
  private readonly loss: ReturnType<SimEngine["subRandom"]>
  /** Bytes of corrupt pieces served, for tests. */
  corruptServed = 0

  constructor(readonly plan: ReadonlyArray<Fault>, private readonly target: FaultTarget) {
    this.loss = target.engine.subRandom("faults/loss")
    const names = new Set([...target.nets.map((n) => n.name), ...target.nets.map((n) => target.idcOfNet(n))])
    const known = (ref: string, i: number, field: string) => {
      if (!names.has(ref)) throw new Error(`faults[${i}].${field}: no host or IDC named ${JSON.stringify(ref)}`)
    }
    plan.forEach((f, i) => {
      if ("host" in f) known(f.host, i, "host")
      if (f.kind === "link-partition") (known(f.a, i, "a"), known(f.b, i, "b"))
      if (f.kind === "scheduler-partition") f.hosts.forEach((h, j) => known(h, i, `hosts[${j}]`))
      const from = "atSeconds" in f ? f.atSeconds : f.fromSeconds
      const until = f.kind === "scheduler-crash" ? f.restartAtSeconds : "untilSeconds" in f ? f.untilSeconds : undefined
      if (until !== undefined && until < from) throw new Error(`faults[${i}]: ends (${until}s) before it starts (${from}s)`)
    })
  }

  /** Whether guards are needed at all (a plan with no faults keeps the fault-free code path). */
  get active(): boolean {
    return this.plan.length > 0
  }

  /** Puts every fault of the plan on the agenda. */
  schedule(): void {
    const { engine } = this.target
    const at = (seconds: number, what: string, run: () => void) =>
      engine.at(seconds * 1000, () => {
        engine.record(`fault ${what}`)
        run()
        this.changed()
      })
    const hostsOf = (ref: string) => this.target.nets.filter((n) => this.matches(ref, n) && n !== this.target.originNet && n !== this.target.schedulerNet)
    for (const f of this.plan) {
      switch (f.kind) {
        case "scheduler-crash":
          at(f.atSeconds, "scheduler-crash", () => this.target.crashScheduler())
          if (f.restartAtSeconds !== undefined) at(f.restartAtSeconds, "scheduler-restart", () => this.target.restartScheduler())
          break
        case "scheduler-partition":
          at(f.fromSeconds, `scheduler-partition ${f.hosts.join(",")}`, () => this.schedulerCuts.push(f.hosts))
          at(f.untilSeconds, `scheduler-heal ${f.hosts.join(",")}`, () => remove(this.schedulerCuts, f.hosts))
          break
        case "peer-crash":
        case "peer-leave":
          at(f.atSeconds, `${f.kind} ${f.host}`, () => {
            for (const n of hostsOf(f.host)) this.target.stopHost(n.name, f.kind === "peer-leave")
          })
          break
        case "slow-parent":
        case "origin-slow": {
          const nets = f.kind === "origin-slow" ? [this.target.originNet] : hostsOf(f.host)
          const label = f.kind === "origin-slow" ? "origin" : f.host
          at(f.fromSeconds, `${f.kind} ${label} x${f.factor}`, () => {
            for (const n of nets) this.target.network.setUplink(n, n.up * f.factor)
          })
          if (f.untilSeconds !== undefined) {
            at(f.untilSeconds, `${f.kind}-heal ${label}`, () => {
              for (const n of nets) this.target.network.setUplink(n, n.up / f.factor)
            })
          }
          break
        }
        case "link-partition": {
          const cut = { a: f.a, b: f.b }
          at(f.fromSeconds, `link-partition ${f.a}|${f.b}`, () => this.cuts.push(cut))
          if (f.untilSeconds !== undefined) at(f.untilSeconds, `link-heal ${f.a}|${f.b}`, () => remove(this.cuts, cut))
          break
        }
        case "transfer-loss":
          at(f.fromSeconds, `transfer-loss ${f.fraction}`, () => this.losses.push(f.fraction))
          if (f.untilSeconds !== undefined) at(f.untilSeconds, `transfer-loss-heal ${f.fraction}`, () => remove(this.losses, f.fraction))
          break
        case "corrupt-peer":
          at(f.fromSeconds, `corrupt-peer ${f.host}`, () => {
            for (const n of hostsOf(f.host)) this.corrupt.set(n.name, f.lieAboutDigests ?? false)
          })
          break
        case "origin-outage":
          at(f.fromSeconds, "origin-outage", () => this.originOutages++)
          at(f.untilSeconds, "origin-heal", () => this.originOutages--)
          break
        case "disk-full":
          at(f.atSeconds, `disk-full ${f.host}`, () => {
            for (const n of hostsOf(f.host)) this.diskFull.add(n.name)
          })
          break
      }
    }
  }

  // ------------------------------------------------------------ questions services ask

  private matches(ref: string, net: NetHost): boolean {
    return net.name === ref || this.target.idcOfNet(net) === ref
  }

  /** Whether traffic between the two hosts is cut by a link partition. */
  cut(a: NetHost, b: NetHost): boolean {
    for (const c of this.cuts) {
      if ((this.matches(c.a, a) && this.matches(c.b, b)) || (this.matches(c.a, b) && this.matches(c.b, a))) return true
    }
    return false
  }

  /** Why `me` cannot reach the scheduler right now, if it cannot. */
  schedulerProblem(me: NetHost): SchedulerUnavailable | undefined {
    if (this.schedulerDown) return new SchedulerUnavailable({ message: "scheduler: connection refused" })
    // Length checks first: asked for every report, and the closures below are made per call.
    if ((this.schedulerCuts.length > 0 && this.schedulerCuts.some((refs) => refs.some((r) => this.matches(r, me)))) || (this.cuts.length > 0 && this.cut(me, this.target.schedulerNet))) {
      return new SchedulerUnavailable({ message: `scheduler unreachable from ${me.name}: timed out` })
    }
    return undefined
  }

  /** Why `me` cannot talk to `parent` right now, if it cannot. */
  transferProblem(me: NetHost, parent: NetHost): TransferFailed | undefined {
    if (this.down.has(parent.name)) return new TransferFailed({ message: `${parent.name}: connection refused`, temporary: true })
    if (this.down.has(me.name)) return new TransferFailed({ message: `${me.name} is down`, temporary: true })
    if (this.cut(me, parent)) return new TransferFailed({ message: `${parent.name} unreachable: timed out`, temporary: true })
    return undefined
  }

  originProblem(client: NetHost): OriginFailed | undefined {
    if (this.originOutages > 0) return new OriginFailed({ message: "origin: 503 service unavailable", status: 503 })
    if (this.cut(client, this.target.originNet)) return new OriginFailed({ message: "origin unreachable: timed out", status: null })
    return undefined
  }

  /** Drawn once per piece transfer while a loss fault is in force. */
  lost(): boolean {
    if (this.losses.length === 0) return false
    const p = 1 - this.losses.reduce((keep, f) => keep * (1 - f), 1)
    return this.loss.nextDoubleUnsafe() < p
  }

  /** What a (possibly corrupt) parent hands out for a piece. */
  served(hostId: string, bytes: Uint8Array): Uint8Array {
    if (!this.corrupt.has(hostId)) return bytes
    this.corruptServed++
    return flip(bytes)
  }

  /** What a (possibly lying) parent advertises. */
  advertised(hostId: string, answer: PieceAvailability, sha: (b: Uint8Array) => string, read: (index: number) => Uint8Array | undefined): PieceAvailability {
    if (this.corrupt.get(hostId) !== true) return answer
    const pieces = answer.pieces.map((p) => {
      const bytes = read(p.index)
      return bytes === undefined ? p : { index: p.index, digest: sha(flip(bytes)) }
    })
    return new PieceAvailability({ ...answer, pieces })
  }

  /** A host's store as its peer program sees it: writes fail once its disk is full. */
  store(hostId: string, inner: PieceStore["Service"]): PieceStore["Service"] {
    return {
      ...inner,
      write: (taskId, index, bytes, digest) =>
        this.diskFull.has(hostId)
          ? Effect.fail(new StoreFailed({ message: `write: no space left on device (${hostId})` }))
          : inner.write(taskId, index, bytes, digest)
    }
  }

  // ------------------------------------------------------------ guards

  /**
   * Runs `effect` but fails it with `problem()` as soon as a fault makes it true (checked now and at
   * every fault event): an in-flight transfer to a host that crashes, a request to a scheduler that
   * dies. Without a plan the effect runs as is.
   */
  guard<A, E, E2>(effect: Effect.Effect<A, E>, problem: () => E2 | undefined): Effect.Effect<A, E | E2> {
    if (!this.active) return effect
    return Effect.suspend(() => {
      const now = problem()
      if (now !== undefined) return Effect.fail(now)
      const broken = Effect.callback<never, E2>((resume) => {
        const listener = () => {
          const p = problem()
          if (p !== undefined) {
            this.listeners.delete(listener)
            resume(Effect.fail(p))
          }
        }
        this.listeners.add(listener)
        return Effect.sync(() => this.listeners.delete(listener))
      })
      return Effect.raceFirst(effect, broken)
    })
  }

  /**
   * A call that starts only if nothing is wrong: a problem already in force fails it after a round
   * trip (refused) or a connect timeout (a partition drops packets); one arising later fails it then.
   */
  call<A, E, E2 extends { readonly message: string }>(
    effect: Effect.Effect<A, E>,
    problem: () => E2 | undefined,
    rttMillis: number
  ): Effect.Effect<A, E | E2> {
    if (!this.active) return effect
    return Effect.suspend(() => {
      const now = problem()
      if (now === undefined) return this.guard(effect, problem)
      const wait = now.message.endsWith("timed out") ? CONNECT_TIMEOUT_MILLIS : rttMillis
      return Effect.andThen(Effect.sleep(wait), Effect.fail(now))
    })
  }

  /** Tells every guard that the faults in force changed. */
  changed(): void {
    for (const l of [...this.listeners]) l()
  }
}

const remove = <A>(xs: Array<A>, x: A) => {
  const i = xs.indexOf(x)
  if (i >= 0) xs.splice(i, 1)
}

const flip = (bytes: Uint8Array): Uint8Array => {
  const out = new Uint8Array(bytes)
  for (let i = 0; i < out.length; i++) out[i] ^= 0xff
  if (out.length === 0) return new Uint8Array([0xff])
  return out
}
