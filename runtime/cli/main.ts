// The `damselfly` entry point: `scheduler` and `daemon` run servers until a signal, `get` fetches one
// URL, `sim` hands its raw arguments to the simulator's own CLI (loaded only when asked for, so the
// runtime never depends on the simulator).
import { NodeRuntime, NodeServices } from "@effect/platform-node"
import { Console, Effect, Layer, Option } from "effect"
import { Argument, Command, Flag } from "effect/cli"
import { daemonServer } from "../daemon.ts"
import { get, GetFailed } from "../get.ts"
import { JsonStderrLogger } from "../logging.ts"
import { schedulerServer } from "../scheduler-server.ts"

const VERSION = "0.1.0"
const DEFAULT_DAEMON = "http://127.0.0.1:65001"
const DEFAULT_SCHEDULER = "http://127.0.0.1:8002"

const listen = Flag.String("listen").pipe(Flag.withDescription("Address to listen on"), Flag.withDefault("127.0.0.1"))
const orUndefined = <A>(o: Option.Option<A>) => Option.getOrUndefined(o)

/** Runs a server Layer until the process is told to stop. */
const serveForever = <E>(layer: Layer.Layer<never, E>) => Layer.launch(layer).pipe(Effect.provide(JsonStderrLogger))

const scheduler = Command.make(
  "scheduler",
  {
    port: Flag.Int("port").pipe(Flag.withDescription("HTTP port"), Flag.withDefault(8002)),
    listen
  },
  (o) => serveForever(schedulerServer(o))
).pipe(Command.withDescription("Run the scheduler: peers register, report and ask for parents over HTTP"))

const daemon = Command.make(
  "daemon",
  {
    port: Flag.Int("port").pipe(Flag.withDescription("HTTP port (API and piece uploads)"), Flag.withDefault(65001)),
    listen,
    data: Flag.String("data").pipe(Flag.withDescription("Directory for pieces and content")),
    scheduler: Flag.String("scheduler").pipe(Flag.withDescription("Scheduler base URL"), Flag.withDefault(DEFAULT_SCHEDULER)),
    seed: Flag.Boolean("seed").pipe(Flag.withDescription("Run as a seed peer (fetches from the origin when triggered)"), Flag.withDefault(false)),
    hostId: Flag.String("host-id").pipe(Flag.withDescription("Host id (default: hostname-port)"), Flag.optional),
    idc: Flag.String("idc").pipe(Flag.withDescription("IDC (data centre) of this host"), Flag.withDefault("")),
    location: Flag.String("location").pipe(Flag.withDescription("Location country|province|city|zone"), Flag.withDefault("")),
    uploadBandwidth: Flag.Int("upload-bandwidth").pipe(Flag.withDescription("Upload limit in bytes per second (default: unlimited)"), Flag.optional),
    uploadSlots: Flag.Int("upload-slots").pipe(Flag.withDescription("Pieces uploaded at once"), Flag.withDefault(16)),
    concurrentPieces: Flag.Int("concurrent-pieces").pipe(Flag.withDescription("Pieces downloaded at once (default: core's)"), Flag.optional)
  },
  (o) =>
    serveForever(daemonServer({
      ...o,
      hostId: orUndefined(o.hostId),
      uploadBandwidth: orUndefined(o.uploadBandwidth),
      concurrentPieces: orUndefined(o.concurrentPieces)
    }))
).pipe(Command.withDescription("Run a peer daemon: downloads for local clients, uploads pieces to other peers"))

const getCommand = Command.make(
  "get",
  {
    url: Argument.String("url").pipe(Argument.withDescription("URL to download")),
    output: Flag.String("output").pipe(Flag.withAlias("O"), Flag.withDescription("File to write")),
    daemon: Flag.String("daemon").pipe(Flag.withDescription("Local daemon URL"), Flag.withDefault(DEFAULT_DAEMON)),
    digest: Flag.String("digest").pipe(Flag.withDescription("Expected content digest, sha256:<hex>"), Flag.optional),
    pieceLength: Flag.Int("piece-length").pipe(Flag.withDescription("Piece length in bytes (default: by content length)"), Flag.optional)
  },
  (o) =>
    Effect.tryPromise({
      try: () =>
        get(
          { url: o.url, output: o.output, daemon: o.daemon, digest: orUndefined(o.digest), pieceLength: orUndefined(o.pieceLength) },
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

const sim = Command.make("sim", {}, () => Effect.void).pipe(
  Command.withDescription("Run the deterministic simulator (see `damselfly sim --help`)")
)

const damselfly = Command.make("damselfly").pipe(
  Command.withDescription("Peer-to-peer distribution of large files"),
  Command.withSubcommands([scheduler, daemon, getCommand, sim])
)

const argv = process.argv.slice(2)
if (argv[0] === "sim") {
  // The simulator parses its own arguments; load it only now.
  // A computed specifier: sim/cli.ts is someone else's module and may not exist while this compiles.
  const simCli = "../../sim/cli.ts"
  const { runSimCommand } = (await import(simCli)) as { runSimCommand: (argv: ReadonlyArray<string>) => unknown }
  const code = await runSimCommand(argv.slice(1))
  if (typeof code === "number") process.exitCode = code
} else {
  Command.runWith(damselfly, { version: VERSION })(argv).pipe(Effect.provide(NodeServices.layer), NodeRuntime.runMain)
}
