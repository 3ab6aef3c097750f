// The `damselfly` entry point: `scheduler` and `daemon` run servers until a signal, `get` fetches one
// URL, `sim` hands its raw arguments to the simulator's own CLI (loaded only when asked for, so the
// runtime never depends on the simulator).
import { NodeRuntime, NodeServices } from "@effect/platform-node"
import { Console, Effect, Layer, Option } from "effect"
import { Argument, Command, Flag } from "effect/cli"
import { cacheExport, cacheImport, cacheStat } from "../cache.ts"
import { writeContainerdConfig } from "../containerd-config.ts"
import { DAEMON_FAULTS, daemonServer } from "../daemon.ts"
import { get, GetFailed, parseHeaders } from "../get.ts"
import { progressDisplay } from "../get-progress.ts"
import { JsonStderrLogger } from "../logging.ts"
import { preheat, PreheatFailed } from "../preheat-client.ts"
import { ConfigError, DAEMON_OPTIONS, DEFAULT_SCHEDULER_URL, daemonOptionsFrom, flagsOf, type OptionSpec, type OptionValues, resolveOptions, SCHEDULER_OPTIONS, schedulerOptionsFrom } from "../config.ts"
import { schedulerServer } from "../scheduler-server.ts"

const VERSION = "0.1.0"
const DEFAULT_DAEMON = "http://127.0.0.1:65001"

const orUndefined = <A>(o: Option.Option<A>) => Option.getOrUndefined(o)
const token = Flag.String("token").pipe(
  Flag.withDescription("Shared secret: requests must carry Authorization: Bearer TOKEN (except /healthy); default $DAMSELFLY_TOKEN"),
  Flag.optional
)

const controlToken = Flag.String("control-token").pipe(
  Flag.withDescription("The daemon's control token, sent in x-damselfly-control-token: needed only for a daemon on another host; default $DAMSELFLY_CONTROL_TOKEN"),
  Flag.optional
)

/** Runs a server Layer until the process is told to stop. */
const serveForever = <E>(layer: Layer.Layer<never, E>) => Layer.launch(layer).pipe(Effect.provide(JsonStderrLogger))

const configFlag = Flag.String("config").pipe(
  Flag.withDescription("YAML config file (see deploy/config/); flags given override it"),
  Flag.withMetavar("FILE"),
  Flag.optional
)

/** Resolves file + flags (runtime/config.ts) and runs the server; a bad option is one clear line and exit 2. */
const serveConfigured = <A, E>(
  configFile: Option.Option<string>,
  specs: ReadonlyArray<OptionSpec>,
  given: Readonly<Record<string, unknown>>,
  build: (v: OptionValues) => A,
  server: (options: A) => Layer.Layer<never, E>
) =>
  Effect.tryPromise({ try: () => resolveOptions(orUndefined(configFile), specs, given, build), catch: (e) => e }).pipe(
    Effect.matchEffect({
      onFailure: (e) =>
        Effect.sync(() => {
          process.stderr.write(`damselfly: ${e instanceof ConfigError || e instanceof Error ? e.message : String(e)}\n`)
          process.exitCode = 2
        }),
      onSuccess: (options) => serveForever(server(options))
    })
  )

const scheduler = Command.make(
  "scheduler",
  { config: configFlag, ...flagsOf(SCHEDULER_OPTIONS) },
  ({ config, ...given }) => serveConfigured(config, SCHEDULER_OPTIONS, given, schedulerOptionsFrom, schedulerServer)
).pipe(Command.withDescription("Run the scheduler: peers register, report and ask for parents over HTTP"))

const daemon = Command.make(
  "daemon",
  {
    config: configFlag,
    ...flagsOf(DAEMON_OPTIONS),
    fault: Flag.Literals("fault", DAEMON_FAULTS).pipe(
      Flag.withDescription("TEST ONLY fault injection, never in production: corrupt-uploads serves pieces with a flipped byte"),
      Flag.optional
    )
  },
  ({ config, fault, ...given }) =>
    serveConfigured(config, DAEMON_OPTIONS, given, (v) => ({ ...daemonOptionsFrom(v), fault: orUndefined(fault) }), daemonServer)
).pipe(Command.withDescription("Run a peer daemon: downloads for local clients, uploads pieces to other peers"))

const getCommand = Command.make(
  "get",
  {
    url: Argument.String("url").pipe(Argument.withDescription("URL to download")),
    output: Flag.String("output").pipe(Flag.withAlias("O"), Flag.withDescription("File to write")),
    daemon: Flag.String("daemon").pipe(Flag.withDescription("Local daemon URL"), Flag.withDefault(DEFAULT_DAEMON)),
    digest: Flag.String("digest").pipe(Flag.withDescription("Expected content digest, sha256:<hex>"), Flag.optional),
    pieceLength: Flag.Int("piece-length").pipe(Flag.withDescription("Piece length in bytes (default: by content length)"), Flag.optional),
    header: Flag.String("header").pipe(
      Flag.withAlias("H"),
      Flag.withDescription("Request header for the origin, \"Name: value\" (repeat for several)"),
      Flag.atLeast(0)
    ),
    disableBackToSource: Flag.Boolean("disable-back-to-source").pipe(
      Flag.withDescription("Never fetch from the origin: fail unless peers have the content"),
      Flag.withDefault(false)
    ),
    progress: Flag.Boolean("progress").pipe(
      Flag.withDescription("Show a progress bar and a summary line on stderr (default: when stderr is a terminal); --no-progress hides them"),
      Flag.optional
    ),
    token,
    controlToken,
    timeout: Flag.Int("timeout").pipe(
      Flag.withDescription("Deadline in seconds for the whole download (daemon and direct alike): past it, get fails and writes nothing (default: none)"),
      Flag.optional
    ),
    idleTimeout: Flag.Int("idle-timeout").pipe(
      Flag.withDescription("Seconds without data after which a direct origin download fails (default 60)"),
      Flag.optional
    )
  },
  (o) => {
    const showProgress = Option.getOrElse(o.progress, () => process.stderr.isTTY === true)
    const display = showProgress ? progressDisplay(process.stderr, "damselfly get") : undefined
    return Effect.tryPromise({
      try: () =>
        get(
          {
            url: o.url,
            output: o.output,
            daemon: o.daemon,
            digest: orUndefined(o.digest),
            pieceLength: orUndefined(o.pieceLength),
            token: orUndefined(o.token),
            controlToken: orUndefined(o.controlToken),
            timeoutMillis: Option.getOrUndefined(Option.map(o.timeout, (s) => s * 1000)),
            idleTimeoutMillis: Option.getOrUndefined(Option.map(o.idleTimeout, (s) => s * 1000)),
            headers: parseHeaders(o.header),
            disableBackToSource: o.disableBackToSource,
            onProgress: display?.update
          },
          (line) => process.stderr.write(`damselfly get: ${line}\n`)
        ),
      catch: (e) => e
    }).pipe(
      Effect.tap((r) =>
        Effect.sync(() =>
          display?.finish({
            contentLength: r.contentLength,
            bytesFromPeers: Number(r.detail.bytesFromPeers ?? 0),
            bytesFromOrigin: Number(r.detail.bytesFromOrigin ?? (r.via === "origin" ? r.contentLength : 0)),
            via: r.via
          })
        )
      ),
      Effect.flatMap((r) => Console.log(JSON.stringify({ via: r.via, output: r.output, contentLength: r.contentLength, ...r.detail }))),
      Effect.catch((e) =>
        Effect.sync(() => {
          display?.abort()
          const message = e instanceof GetFailed || e instanceof Error ? e.message : String(e)
          process.stderr.write(`damselfly get: ${message}\n`)
          process.exitCode = 1
        })
      )
    )
  }
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
    token,
    controlToken
  },
  (o) => runCache("import", () => cacheImport({ daemon: o.daemon, token: orUndefined(o.token), controlToken: orUndefined(o.controlToken) }, { file: o.file, url: o.url, pieceLength: orUndefined(o.pieceLength) }))
).pipe(Command.withDescription("Put a local file into the daemon's cache as the task of a URL, and announce it to the scheduler"))

const cacheExportCommand = Command.make(
  "export",
  {
    url: Argument.String("url").pipe(Argument.withDescription("URL of the task (omit with --task-id)"), Argument.optional),
    output: Flag.String("output").pipe(Flag.withAlias("O"), Flag.withDescription("File to write")),
    pieceLength: cachePieceLength,
    taskId: cacheTaskId,
    daemon: daemonFlag,
    token,
    controlToken
  },
  (o) =>
    runCache("export", () =>
      cacheExport({ daemon: o.daemon, token: orUndefined(o.token), controlToken: orUndefined(o.controlToken) }, { url: orUndefined(o.url), taskId: orUndefined(o.taskId), pieceLength: orUndefined(o.pieceLength), output: o.output }))
).pipe(Command.withDescription("Copy a task held complete by the daemon to a file"))

const cacheStatCommand = Command.make(
  "stat",
  {
    url: Argument.String("url").pipe(Argument.withDescription("URL of the task (omit with --task-id)"), Argument.optional),
    pieceLength: cachePieceLength,
    taskId: cacheTaskId,
    daemon: daemonFlag,
    token,
    controlToken
  },
  (o) => runCache("stat", () => cacheStat({ daemon: o.daemon, token: orUndefined(o.token), controlToken: orUndefined(o.controlToken) }, { url: orUndefined(o.url), taskId: orUndefined(o.taskId), pieceLength: orUndefined(o.pieceLength) }))
).pipe(Command.withDescription("Show what the daemon holds of a task (by URL, default piece length 4 MiB, or --task-id)"))

const cache = Command.make("cache").pipe(
  Command.withDescription("Import files into the local daemon's cache, export them, show cached tasks"),
  Command.withSubcommands([cacheImportCommand, cacheExportCommand, cacheStatCommand])
)

const containerdConfig = Command.make(
  "containerd-config",
  {
    registry: Flag.String("registry").pipe(Flag.withDescription("Registry to mirror (https://registry.example.com, http://host:5000, docker.io); repeat for several"), Flag.atLeast(1)),
    mirror: Flag.String("mirror").pipe(Flag.withDescription("The Damselfly mirror's base URL"), Flag.withDefault("http://127.0.0.1:65002")),
    dir: Flag.String("dir").pipe(Flag.withDescription("containerd's registry config_path"), Flag.withDefault("/etc/containerd/certs.d"))
  },
  (o) =>
    Effect.tryPromise({ try: () => writeContainerdConfig({ registries: o.registry, mirror: o.mirror, dir: o.dir }), catch: (e) => e }).pipe(
      Effect.flatMap((files) => Console.log(JSON.stringify({ written: files }))),
      Effect.catch((e) =>
        Effect.sync(() => {
          process.stderr.write(`damselfly containerd-config: ${e instanceof Error ? e.message : String(e)}\n`)
          process.exitCode = 1
        })
      )
    )
).pipe(Command.withDescription("Write containerd hosts.toml files (certs.d/<host>/hosts.toml): the Damselfly mirror first, the registry as fallback"))

// `damselfly preheat IMAGE`: a preheat job on the scheduler (runtime/preheat.ts), followed with --wait.
const preheatCommand = Command.make(
  "preheat",
  {
    url: Argument.String("image").pipe(Argument.withDescription("Image (HOST/REPO:TAG or http(s)://HOST/v2/REPO/manifests/TAG), or a file URL with --type file")),
    scheduler: Flag.String("scheduler").pipe(Flag.withDescription("Scheduler base URL"), Flag.withDefault(DEFAULT_SCHEDULER_URL)),
    type: Flag.Literals("type", ["image", "file"] as const).pipe(Flag.withDescription("image (resolve the manifest) or file (one URL)"), Flag.withDefault("image" as const)),
    platform: Flag.String("platform").pipe(Flag.withDescription("os/architecture[/variant] picked from a multi-arch index (default linux/amd64)"), Flag.optional),
    scope: Flag.Literals("scope", ["single_seed_peer", "all_seed_peers", "all_peers"] as const).pipe(Flag.withDescription("Which peers download (default single_seed_peer)"), Flag.optional),
    username: Flag.String("username").pipe(Flag.withDescription("Registry user name"), Flag.optional),
    password: Flag.String("password").pipe(Flag.withDescription("Registry password (or $DAMSELFLY_REGISTRY_PASSWORD)"), Flag.optional),
    ip: Flag.String("ip").pipe(Flag.withDescription("Only hosts with this IP (repeatable)"), Flag.atLeast(0)),
    count: Flag.Int("count").pipe(Flag.withDescription("all_peers: at most this many hosts"), Flag.optional),
    percentage: Flag.Int("percentage").pipe(Flag.withDescription("all_peers: this percentage of the hosts"), Flag.optional),
    wait: Flag.Boolean("wait").pipe(Flag.withDescription("Follow the job until it ends, printing progress; exit 1 on FAILURE"), Flag.withDefault(false)),
    jobsToken: Flag.String("jobs-token").pipe(Flag.withDescription("The scheduler's --jobs-token, sent in x-damselfly-jobs-token (needed unless the scheduler runs on this host without one); default $DAMSELFLY_JOBS_TOKEN"), Flag.withMetavar("TOKEN"), Flag.optional),
    token
  },
  (o) =>
    Effect.tryPromise({
      try: () =>
        preheat({
          scheduler: o.scheduler,
          url: o.url,
          type: o.type,
          platform: orUndefined(o.platform),
          scope: orUndefined(o.scope),
          username: orUndefined(o.username),
          password: orUndefined(o.password) ?? process.env.DAMSELFLY_REGISTRY_PASSWORD,
          ips: o.ip,
          count: orUndefined(o.count),
          percentage: orUndefined(o.percentage),
          token: orUndefined(o.token),
          jobsToken: orUndefined(o.jobsToken),
          wait: o.wait
        }, (line) => process.stderr.write(`damselfly preheat: ${line}\n`)),
      catch: (e) => e
    }).pipe(
      Effect.flatMap((job) => Console.log(JSON.stringify(job))),
      Effect.catch((e) =>
        Effect.sync(() => {
          process.stderr.write(`damselfly preheat: ${e instanceof PreheatFailed || e instanceof Error ? e.message : String(e)}\n`)
          process.exitCode = 1
        })
      )
    )
).pipe(Command.withDescription("Preheat an image (or a file) on seed peers or daemons through the scheduler's job API"))

const sim = Command.make("sim", {}, () => Effect.void).pipe(
  Command.withDescription("Run the deterministic simulator (see `damselfly sim --help`)")
)
const sweep = Command.make("sweep", {}, () => Effect.void).pipe(
  Command.withDescription("Run a grid of simulations on worker threads into a JSONL file, resumable (see `damselfly sweep --help`)")
)
const report = Command.make("report", {}, () => Effect.void).pipe(
  Command.withDescription("Render charts (HTML with inline SVG, and PNGs) from simulation results (see `damselfly report --help`)")
)
const library = Command.make("library", {}, () => Effect.void).pipe(
  Command.withDescription("Run every strategy on every scenario of the library into JSONL and a markdown table (see `damselfly library --help`)")
)
const chaos = Command.make("chaos", {}, () => Effect.void).pipe(
  Command.withDescription("Random deployments and fault plans from seeds, checked for safety and liveness (see `damselfly chaos --help`)")
)

const damselfly = Command.make("damselfly").pipe(
  Command.withDescription("Peer-to-peer distribution of large files"),
  Command.withSubcommands([scheduler, daemon, getCommand, cache, containerdConfig, preheatCommand, sim, sweep, report, chaos, library])
)

const argv = process.argv.slice(2)
if (argv[0] === "sim") {
  // The simulator parses its own arguments; load it only now.
  // A computed specifier: sim/cli.ts is someone else's module and may not exist while this compiles.
  const simCli = "../../sim/cli.ts"
  const { runSimCommand } = (await import(simCli)) as { runSimCommand: (argv: ReadonlyArray<string>) => unknown }
  const code = await runSimCommand(argv.slice(1))
  if (typeof code === "number") process.exitCode = code
} else if (argv[0] === "sweep" || argv[0] === "report" || argv[0] === "chaos" || argv[0] === "library") {
  // Like `sim`: parsed by their own modules, loaded only when asked for.
  const modules = {
    sweep: ["../../sim/sweep.ts", "runSweepCommand"],
    report: ["../../notebooks/report.ts", "runReportCommand"],
    chaos: ["../../sim/chaos.ts", "runChaosCommand"],
    library: ["../../sim/library.ts", "runLibraryCommand"]
  } as const
  const [path, name] = modules[argv[0]]
  const mod = (await import(path)) as Record<string, (argv: ReadonlyArray<string>) => unknown>
  const code = await mod[name](argv.slice(1))
  if (typeof code === "number") process.exitCode = code
} else {
  Command.runWith(damselfly, { version: VERSION })(argv).pipe(Effect.provide(NodeServices.layer), NodeRuntime.runMain)
}
