// The scheduler's way to wake a seed peer: POST the SeedRequest to the seed daemon, signed for that seed,
// task and body with the scheduler's key (runtime/scheduler-trigger.ts: the cluster token alone does not
// make a daemon fetch a URL). Fire and forget, so a slow or dead seed never holds up a scheduling round;
// failures are only logged (the peers' rounds then find no source and fall back to the origin).
import { Effect, Layer } from "effect"
import { SeedPeerTrigger } from "../core/services/seed-peer-trigger.ts"
import { authHeaders } from "./auth.ts"
import { call, describe } from "./http-call.ts"
import { TRIGGER_HEADER, type TriggerSigner } from "./scheduler-trigger.ts"

export const httpSeedPeerTrigger = (token: string | undefined, sign: TriggerSigner) => Layer.effect(SeedPeerTrigger)(
  Effect.gen(function*() {
    const scope = yield* Effect.scope
    return SeedPeerTrigger.of({
      trigger: (seed, request) => {
        const url = `http://${seed.ip}:${seed.port}/v1/seed`
        // Signed over the very bytes sent.
        const body = JSON.stringify(request)
        const post = Effect.suspend(() => call(url, {
          method: "POST",
          headers: { ...authHeaders(token), "content-type": "application/json", [TRIGGER_HEADER]: sign("seed", request.taskId, seed.id, body) },
          body,
          timeoutMillis: 10_000
        })).pipe(
          Effect.flatMap((reply) =>
            reply.status < 300
              ? Effect.logInfo("seed triggered").pipe(Effect.annotateLogs({ seed: seed.id, taskId: request.taskId }))
              : Effect.logWarning(`seed refused: ${describe(reply)}`).pipe(Effect.annotateLogs({ seed: seed.id }))
          ),
          Effect.catch((e) => Effect.logWarning(`seed trigger failed: ${e.message}`).pipe(Effect.annotateLogs({ seed: seed.id })))
        )
        return Effect.asVoid(Effect.forkIn(post, scope))
      }
    })
  })
)
