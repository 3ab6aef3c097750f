// Strategies are configurations of the ONE core scheduler, never separate code paths: "direct" is a
// scheduler that hands out no parents and lets everyone go to the origin at once; "p2p" is
// Dragonfly's defaults with its evaluator and the scenario's seed peers.
import { defaultSchedulerConfig, type SchedulerConfig } from "../core/scheduler/config.ts"
import { dragonflyEvaluator, type Evaluator } from "../core/scheduler/evaluator.ts"
import type { Strategy } from "./scenario.ts"

export interface StrategySetup {
  readonly config: SchedulerConfig
  readonly evaluator: Evaluator
  /** Whether the scenario's seed hosts take part. */
  readonly seeds: boolean
}

export const strategySetup = (strategy: Strategy): StrategySetup => {
  switch (strategy) {
    case "direct":
      return {
        config: {
          ...defaultSchedulerConfig,
          candidateParentLimit: 0,
          backToSourceCount: Infinity,
          // The first fruitless round already sends the peer to the origin.
          retryBackToSourceLimit: 1
        },
        evaluator: dragonflyEvaluator,
        seeds: false
      }
    case "p2p":
      return { config: defaultSchedulerConfig, evaluator: dragonflyEvaluator, seeds: true }
  }
}
