// Strategies are configurations of the ONE core (core/strategies.ts): a scheduler config, an
// evaluator, a parent-handout policy and peer options. Here they become what a simulated world needs.
import type { PeerOptions } from "../core/peer/conductor.ts"
import type { SchedulerConfig } from "../core/scheduler/config.ts"
import type { Evaluator } from "../core/scheduler/evaluator.ts"
import { Scheduler } from "../core/scheduler/scheduler.ts"
import { strategies } from "../core/strategies.ts"
import type { Strategy } from "./scenario.ts"

export interface StrategySetup {
  readonly config: SchedulerConfig
  readonly evaluator: Evaluator
  /** Whether the scenario's seed hosts take part. */
  readonly seeds: boolean
  readonly peerOptions: Partial<PeerOptions>
  /** A scheduler with empty state; a restart (chaos) makes another with a new epoch. */
  makeScheduler(epoch: string): Scheduler
}

export const strategySetup = (strategy: Strategy): StrategySetup => {
  const s = strategies[strategy]
  return {
    config: s.config,
    evaluator: s.evaluator,
    seeds: s.seeds,
    peerOptions: s.peerOptions,
    makeScheduler: (epoch) => new Scheduler(s.config, s.evaluator, epoch, s.handout)
  }
}
