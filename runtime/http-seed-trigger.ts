// The scheduler's way to wake a seed peer: POST the SeedRequest to the seed daemon. Fire and forget,
// so a slow or dead seed never holds up a scheduling round; failures are only logged (the peers'
// rounds then find no source and fall back to the origin).
import { Effect, Layer } from "effect"
import { SeedPeerTrigger } from "../core/services/seed-peer-trigger.ts"
import { authHeaders } from "./auth.ts"
import { describe, postJson } from "./http-call.ts"

export const httpSeedPeerTrigger = (token?: string) => Layer.effect(SeedPeerTrigger)(
  Effect.gen(function*() {
    const scope = yield* Effect.scope
    return SeedPeerTrigger.of({
      trigger: (seed, request) => {
        const url = `http://${seed.ip}:${seed.port}/v1/seed`
        const post = postJson(url, request, 10_000, authHeaders(token)).pipe(
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

export const HttpSeedPeerTrigger = httpSeedPeerTrigger()
