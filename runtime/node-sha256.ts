// Sha256 on node:crypto (native, streams through OpenSSL): the runtime's hashing is never the bottleneck.
import { createHash } from "node:crypto"
import { Layer } from "effect"
import { Sha256 } from "../core/services/sha256.ts"

export const sha256Hex = (data: Uint8Array | string): string => createHash("sha256").update(data).digest("hex")

export const NodeSha256 = Layer.succeed(Sha256)(Sha256.of({ hex: sha256Hex }))
