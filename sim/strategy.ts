// Strategies are configurations of the ONE core (core/strategies.ts): a scheduler config, an
// evaluator, a parent-handout policy and peer options. Here they become what a simulated world needs.
import type { PeerOptions } from "../core/peer/conductor.ts"
import { type Deployment, deployedConfig, type SchedulerConfig } from "../core/scheduler/config.ts"
import type { Evaluator } from "../core/scheduler/evaluator.ts"
import { Scheduler } from "../core/scheduler/scheduler.ts"
import { strategies, strategyNames } from "../core/strategies.ts"
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

export const strategySetup = (strategy: Strategy, deployment: Deployment = {}): StrategySetup => {
  const s = strategies[strategy]
  const config = deployedConfig(s.config, deployment)
  return {
    config,
    evaluator: s.evaluator,
    seeds: s.seeds,
    peerOptions: s.peerOptions,
    makeScheduler: (epoch) => new Scheduler(config, s.evaluator, epoch, s.handout)
  }
}

/**
 * The strategy this one is the same configuration as (same scheduler config, evaluator, handout, peer
 * options and seeds), if any: an alias (core/strategies.ts says so in its description, e.g. p2p of
 * dragonfly). An alias's runs are its original's, trace hash included, so the library runs it only
 * when asked by name.
 */
export const aliasOf = (strategy: Strategy): Strategy | undefined => {
  const s = strategies[strategy]
  const same = strategyNames.filter((name) => {
    const o = strategies[name]
    return name !== strategy && o.config === s.config && o.evaluator === s.evaluator && o.handout === s.handout &&
      o.peerOptions === s.peerOptions && o.seeds === s.seeds
  })
  if (same.length === 0) return undefined
  const named = same.find((name) => s.description.includes(`alias of ${name}`))
  if (named !== undefined) return named
  if (same.some((name) => strategies[name].description.includes(`alias of ${strategy}`))) return undefined
  // Otherwise the first of the group is the original.
  return strategyNames.indexOf(same[0]) < strategyNames.indexOf(strategy) ? same[0] : undefined
}
