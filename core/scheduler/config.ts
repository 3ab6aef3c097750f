// Scheduler knobs, defaulting to Dragonfly's (scheduler.yaml v2.0: backSourceCount 3,
// retryBackSourceLimit 5, retryLimit 10, retryInterval 50ms; 15 sampled candidates).
export interface SchedulerConfig {
  /** Parents handed to a peer per round. */
  readonly candidateParentLimit: number
  /** Peers sampled from the task before filtering (bounds the cost of a round). */
  readonly filterParentLimit: number
  /** Peers drawn per round for the handout policy, when it wants more than `filterParentLimit` (trackers). */
  readonly handoutSample?: number
  /** Peers of one task allowed to fetch from the origin (seeds excluded). */
  readonly backToSourceCount: number
  /** After this many fruitless rounds a peer is sent to the origin (if the task allows). */
  readonly retryBackToSourceLimit: number
  /** Rounds per peer before the scheduler gives up on it. */
  readonly retryLimit: number
  readonly retryIntervalMillis: number
  /** How long peers wait for a triggered seed peer to learn the task's length before counting rounds. */
  readonly seedWaitMillis: number
  /** The IDC the origin is in, when the deployment says (a seed there fetches without crossing a WAN). */
  readonly originIdc?: string | undefined
  /** Trigger a seed host in `originIdc` when there is one (else any, by task id, as Dragonfly does). */
  readonly seedNearOrigin?: boolean
}

export const defaultSchedulerConfig: SchedulerConfig = {
  candidateParentLimit: 3,
  filterParentLimit: 15,
  backToSourceCount: 3,
  retryBackToSourceLimit: 5,
  retryLimit: 10,
  retryIntervalMillis: 50,
  seedWaitMillis: 10_000
}

/** What a deployment tells every scheduler, the simulator's and the runtime's alike (a strategy's config decides whether it uses it). */
export interface Deployment {
  readonly originIdc?: string | undefined
}

export const deployedConfig = (config: SchedulerConfig, deployment: Deployment): SchedulerConfig =>
  deployment.originIdc === undefined || deployment.originIdc === "" ? config : { ...config, originIdc: deployment.originIdc }
