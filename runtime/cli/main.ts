// The `damselfly` entry point: `scheduler` and `daemon` run servers until a signal, `get` fetches one
// URL, `sim` hands its raw arguments to the simulator's own CLI (loaded only when asked for, so the
// runtime never depends on the simulator).
import { NodeRuntime, NodeServices } from "@effect/platform-node"
import { Console, Effect, Layer, Option } from "effect"
import { Argument, Command, Flag } from "effect/cli"
import { cacheExport, cacheImport, cacheStat } from "../cache.ts"
import { DAEMON_FAULTS, daemonServer } from "../daemon.ts"
import { get, GetFailed } from "../get.ts"
import { JsonStderrLogger } from "../logging.ts"
import { parseSchedulerList } from "../scheduler-ring.ts"
import { schedulerServer } from "../scheduler-server.ts"
import { strategyNames } from "../../core/strategies.ts"

const VERSION = "0.1.0"
const DEFAULT_DAEMON = "http://127.0.0.1:65001"
const DEFAULT_SCHEDULER = "http://127.0.0.1:8002"

const listen = Flag.String("listen").pipe(Flag.withDescription("Address to listen on"), Flag.withDefault("127.0.0.1"))
const orUndefined = <A>(o: Option.Option<A>) => Option.getOrUndefined(o)
const token = Flag.String("token").pipe(
  Flag.withDescription("Shared secret: requests must carry Authorization: Bearer TOKEN (except /healthy); default $DAMSELFLY_TOKEN"),
  Flag.optional
)
const maxConnections = Flag.Int("max-connections").pipe(Flag.withDescription("Open connections at most (default 4096)"), Flag.optional)

/** Runs a server Layer until the process is told to stop. */
const serveForever = <E>(layer: Layer.Layer<never, E>) => Layer.launch(layer).pipe(Effect.provide(JsonStderrLogger))

const strategy = Flag.Literals("strategy", strategyNames).pipe(
  Flag.withDescription(`Distribution strategy (core/strategies.ts): ${strategyNames.join(", ")}; give the scheduler and every daemon the same (default dragonfly)`),
  Flag.withDefault("dragonfly" as const)
)

const scheduler = Command.make(
  "scheduler",
  {
    port: Flag.Int("port").pipe(Flag.withDescription("HTTP port"), Flag.withDefault(8002)),
    listen,
    token,
    maxConnections,
    strategy
  },
  (o) => serveForever(schedulerServer({ ...o, token: orUndefined(o.token), maxConnections: orUndefined(o.maxConnections) }))
).pipe(Command.withDescription("Run the scheduler: peers register, report and ask for parents over HTTP"))

const daemon = Command.make(
  "daemon",
  {
    port: Flag.Int("port").pipe(Flag.withDescription("HTTP port (API and piece uploads)"), Flag.withDefault(65001)),
    listen,
    data: Flag.String("data").pipe(Flag.withDescription("Directory for pieces and content")),
    scheduler: Flag.String("scheduler").pipe(
      Flag.withDescription(`Scheduler base URL; repeat the flag or separate URLs with commas for several schedulers (tasks are placed by consistent hashing of the task id; default ${DEFAULT_SCHEDULER})`),
      Flag.atLeast(0)
    ),
    schedulerDown: Flag.Int("scheduler-down-seconds").pipe(
      Flag.withDescription("Seconds an unreachable scheduler is passed over (its tasks go to the next one on the ring) before it is tried again (default 10)"),
      Flag.optional
    ),
    seed: Flag.Boolean("seed").pipe(Flag.withDescription("Run as a seed peer (fetches from the origin when triggered)"), Flag.withDefault(false)),
    hostId: Flag.String("host-id").pipe(Flag.withDescription("Host id (default: hostname-port)"), Flag.optional),
    idc: Flag.String("idc").pipe(Flag.withDescription("IDC (data centre) of this host"), Flag.withDefault("")),
    location: Flag.String("location").pipe(Flag.withDescription("Location country|province|city|zone"), Flag.withDefault("")),
    uploadBandwidth: Flag.Int("upload-bandwidth").pipe(Flag.withDescription("Upload limit in bytes per second (default: unlimited)"), Flag.optional),
    uploadSlots: Flag.Int("upload-slots").pipe(Flag.withDescription("Pieces uploaded at once"), Flag.withDefault(16)),
    concurrentPieces: Flag.Int("concurrent-pieces").pipe(Flag.withDescription("Pieces downloaded at once (default: the strategy's)"), Flag.optional),
    strategy,
    token,
    maxConnections,
    uploadQueueMillis: Flag.Int("upload-queue-millis").pipe(Flag.withDescription("How long a piece request waits for an upload slot before 503 busy (default 15000)"), Flag.optional),
    originTimeout: Flag.Int("origin-timeout").pipe(Flag.withDescription("Seconds of silence from the origin before a piece fails and is retried (default 30)"), Flag.optional),
    originOutage: Flag.Int("origin-outage").pipe(Flag.withDescription("Seconds an origin may keep failing (retried with backoff) before a download fails (default 60)"), Flag.optional),
    fault: Flag.Literals("fault", DAEMON_FAULTS).pipe(
      Flag.withDescription("TEST ONLY fault injection, never in production: corrupt-uploads serves pieces with a flipped byte"),
      Flag.optional
    )
  },
  (o) =>
    serveForever(daemonServer({
      ...o,
      hostId: orUndefined(o.hostId),
      schedulers: parseSchedulerList(o.scheduler.length === 0 ? [DEFAULT_SCHEDULER] : o.scheduler),
      schedulerDownMillis: Option.getOrUndefined(Option.map(o.schedulerDown, (s) => s * 1000)),
      uploadBandwidth: orUndefined(o.uploadBandwidth),
      concurrentPieces: orUndefined(o.concurrentPieces),
      token: orUndefined(o.token),
      maxConnections: orUndefined(o.maxConnections),
      uploadQueueMillis: orUndefined(o.uploadQueueMillis),
      originIdleMillis: Option.getOrUndefined(Option.map(o.originTimeout, (s) => s * 1000)),
      originOutageMillis: Option.getOrUndefined(Option.map(o.originOutage, (s) => s * 1000)),
      fault: orUndefined(o.fault)
    }))
).pipe(Command.withDescription("Run a peer daemon: downloads for local clients, uploads pieces to other peers"))

const getCommand = Command.make(
  "get",
  {
    url: Argument.String("url").pipe(Argument.withDescription("URL to download")),
    output: Flag.String("output").pipe(Flag.withAlias("O"), Flag.withDescription("File to write")),
    daemon: Flag.String("daemon").pipe(Flag.withDescription("Local daemon URL"), Flag.withDefault(DEFAULT_DAEMON)),
    digest: Flag.String("digest").pipe(Flag.withDescription("Expected content digest, sha256:<hex>"), Flag.optional),
    pieceLength: Flag.Int("piece-length").pipe(Flag.withDescription("Piece length in bytes (default: by content length)"), Flag.optional),
    token,
    timeout: Flag.Int("timeout").pipe(Flag.withDescription("Seconds without data after which a direct origin download fails (default 60)"), Flag.optional)
  },
  (o) =>
    Effect.tryPromise({
      try: () =>
        get(
          {
            url: o.url,
            output: o.output,
            daemon: o.daemon,
            digest: orUndefined(o.digest),
            pieceLength: orUndefined(o.pieceLength),
            token: orUndefined(o.token),
            idleTimeoutMillis: Option.getOrUndefined(Option.map(o.timeout, (s) => s * 1000))
          },
          (line) => process.stderr.write(`damselfly get: ${line}\n`)
        ),
      catch: (e) => e
    }).pipe(
      Effect.flatMap((r) => Console.log(JSON.stringify({ via: r.via, output: r.output, contentLength: r.contentLength, ...r.detail }))),
      Effect.catch((e) =>
        Effect.sync(() => {
          const message = e instanceof GetFailed || e instanceof Error ? e.message : String(e)
          process.stderr.write(`damselfly get: ${message}\n`)
          process.exitCode = 1
        })
      )
    )
).pipe(Command.withDescription("Download a URL through the local daemon (or straight from the origin when no daemon answers)"))

// `damselfly cache import|export|stat`: talk to the local daemon's /v1/cache endpoints (runtime/cache.ts).
const daemonFlag = Flag.String("daemon").pipe(Flag.withDescription("Local daemon URL"), Flag.withDefault(DEFAULT_DAEMON))
const cachePieceLength = Flag.Int("piece-length").pipe(Flag.withDescription("Piece length in bytes (default: by content length, as a download would)"), Flag.optional)
const cacheTaskId = Flag.String("task-id").pipe(Flag.withDescription("Task id (64 hex) instead of URL and piece length"), Flag.optional)
const runCache = (what: string, f: () => Promise<unknown>) =>
  Effect.tryPromise({ try: f, catch: (e) => e }).pipe(
    Effect.flatMap((r) => Console.log(JSON.stringify(r))),
    Effect.catch((e) =>
      Effect.sync(() => {
        process.stderr.write(`damselfly cache ${what}: ${e instanceof Error ? e.message : String(e)}\n`)
        process.exitCode = 1
      })
    )
  )

const cacheImportCommand = Command.make(
  "import",
  {
    file: Argument.String("file").pipe(Argument.withDescription("Local file to import (a regular file)")),
    url: Flag.String("url").pipe(Flag.withDescription("URL the content is known by: peers downloading it get it from this daemon")),
    pieceLength: cachePieceLength,
    daemon: daemonFlag,
    token
  },
  (o) => runCache("import", () => cacheImport({ daemon: o.daemon, token: orUndefined(o.token) }, { file: o.file, url: o.url, pieceLength: orUndefined(o.pieceLength) }))
).pipe(Command.withDescription("Put a local file into the daemon's cache as the task of a URL, and announce it to the scheduler"))

const cacheExportCommand = Command.make(
  "export",
  {
    url: Argument.String("url").pipe(Argument.withDescription("URL of the task (omit with --task-id)"), Argument.optional),
    output: Flag.String("output").pipe(Flag.withAlias("O"), Flag.withDescription("File to write")),
    pieceLength: cachePieceLength,
    taskId: cacheTaskId,
    daemon: daemonFlag,
    token
  },
  (o) =>
    runCache("export", () =>
      cacheExport({ daemon: o.daemon, token: orUndefined(o.token) }, { url: orUndefined(o.url), taskId: orUndefined(o.taskId), pieceLength: orUndefined(o.pieceLength), output: o.output }))
).pipe(Command.withDescription("Copy a task held complete by the daemon to a file"))

const cacheStatCommand = Command.make(
  "stat",
  {
    url: Argument.String("url").pipe(Argument.withDescription("URL of the task (omit with --task-id)"), Argument.optional),
    pieceLength: cachePieceLength,
    taskId: cacheTaskId,
    daemon: daemonFlag,
    token
  },
  (o) => runCache("stat", () => cacheStat({ daemon: o.daemon, token: orUndefined(o.token) }, { url: orUndefined(o.url), taskId: orUndefined(o.taskId), pieceLength: orUndefined(o.pieceLength) }))
).pipe(Command.withDescription("Show what the daemon holds of a task (by URL, default piece length 4 MiB, or --task-id)"))

const cache = Command.make("cache").pipe(
  Command.withDescription("Import files into the local daemon's cache, export them, show cached tasks"),
  Command.withSubcommands([cacheImportCommand, cacheExportCommand, cacheStatCommand])
)

const sim = Command.make("sim", {}, () => Effect.void).pipe(
  Command.withDescription("Run the deterministic simulator (see `damselfly sim --help`)")
)
const sweep = Command.make("sweep", {}, () => Effect.void).pipe(
  Command.withDescription("Run a grid of simulations on worker threads into a JSONL file, resumable (see `damselfly sweep --help`)")
)
const report = Command.make("report", {}, () => Effect.void).pipe(
  Command.withDescription("Render charts (HTML with inline SVG, and PNGs) from simulation results (see `damselfly report --help`)")
)
const chaos = Command.make("chaos", {}, () => Effect.void).pipe(
  Command.withDescription("Random deployments and fault plans from seeds, checked for safety and liveness (see `damselfly chaos --help`)")
)

const damselfly = Command.make("damselfly").pipe(
  Command.withDescription("Peer-to-peer distribution of large files"),
  Command.withSubcommands([scheduler, daemon, getCommand, cache, sim, sweep, report, chaos])
)

const argv = process.argv.slice(2)
if (argv[0] === "sim") {
  // The simulator parses its own arguments; load it only now.
  // A computed specifier: sim/cli.ts is someone else's module and may not exist while this compiles.
  const simCli = "../../sim/cli.ts"
  const { runSimCommand } = (await import(simCli)) as { runSimCommand: (argv: ReadonlyArray<string>) => unknown }
  const code = await runSimCommand(argv.slice(1))
  if (typeof code === "number") process.exitCode = code
} else if (argv[0] === "sweep" || argv[0] === "report" || argv[0] === "chaos") {
  // Like `sim`: parsed by their own modules, loaded only when asked for.
  const modules = { sweep: ["../../sim/sweep.ts", "runSweepCommand"], report: ["../../notebooks/report.ts", "runReportCommand"], chaos: ["../../sim/chaos.ts", "runChaosCommand"] } as const
  const [path, name] = modules[argv[0]]
  const mod = (await import(path)) as Record<string, (argv: ReadonlyArray<string>) => unknown>
  const code = await mod[name](argv.slice(1))
  if (typeof code === "number") process.exitCode = code
} else {
  Command.runWith(damselfly, { version: VERSION })(argv).pipe(Effect.provide(NodeServices.layer), NodeRuntime.runMain)
}
