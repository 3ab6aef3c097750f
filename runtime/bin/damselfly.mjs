#!/usr/bin/env node
// The installed `damselfly` command: registers tsx in this very process and runs the TypeScript entry,
// so signals reach the servers directly (no wrapper child to forward them through).
import { register } from "tsx/esm/api"

register()
await import(new URL("../cli/main.ts", import.meta.url).href)
