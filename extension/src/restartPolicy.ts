// When the helper dies: restart after the first delay, then after the second,
// then stay down until the user restarts it. Shaped like a Windows service's
// failure actions (SERVICE_FAILURE_ACTIONS: lpsaActions + dwResetPeriod).
// Pure: no vscode import, so unit tests drive it with a fake clock.

export interface RestartPolicyOptions {
  /** One entry per automatic restart, in milliseconds. */
  delaysMs: readonly number[];
  /** A failure this long after the previous one starts the count again. */
  resetAfterMs: number;
}

export type CrashDecision =
  | { action: 'restart'; delayMs: number; /** 1-based */ attempt: number; failures: number }
  | { action: 'stayDown'; failures: number };

export class RestartPolicy {
  private failures = 0;
  private lastFailureAt: number | undefined;

  constructor(private options: RestartPolicyOptions, private readonly now: () => number = Date.now) {}

  setOptions(options: RestartPolicyOptions): void {
    this.options = options;
  }

  get failureCount(): number {
    return this.failures;
  }

  /** Records a crash and says what to do about it. */
  onCrash(): CrashDecision {
    const t = this.now();
    if (this.lastFailureAt !== undefined && t - this.lastFailureAt >= this.options.resetAfterMs) this.failures = 0;
    this.lastFailureAt = t;
    this.failures++;
    const delay = this.options.delaysMs[this.failures - 1];
    if (delay === undefined) return { action: 'stayDown', failures: this.failures };
    return { action: 'restart', delayMs: Math.max(0, delay), attempt: this.failures, failures: this.failures };
  }

  /** The user asked for a restart: start counting from zero. */
  reset(): void {
    this.failures = 0;
    this.lastFailureAt = undefined;
  }
}

/** Settings are in seconds; bad values fall back to the defaults rather than disabling restarts. */
export function policyOptionsFromSettings(delaysSeconds: unknown, resetSeconds: unknown): RestartPolicyOptions {
  const delays = Array.isArray(delaysSeconds) && delaysSeconds.every((d) => typeof d === 'number' && Number.isFinite(d) && d >= 0)
    ? (delaysSeconds as number[])
    : [1, 5];
  const reset = typeof resetSeconds === 'number' && Number.isFinite(resetSeconds) && resetSeconds >= 0 ? resetSeconds : 60;
  return { delaysMs: delays.map((s) => Math.round(s * 1000)), resetAfterMs: Math.round(reset * 1000) };
}
