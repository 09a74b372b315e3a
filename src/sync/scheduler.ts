/**
 * Periodic reverse sync: runs a refresh of the whole share every `intervalMs` (0 = off). Runs
 * never overlap; a run that fails is logged and the next one happens on schedule.
 */
import type { Logger } from '../log/index.js';

export interface RefreshResult {
  added: number;
  changed: number;
  removed: number;
  conflicts: number;
  directories: number;
}

export class RefreshScheduler {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private stopped = false;
  lastRun: { at: Date; result?: RefreshResult; error?: string } | undefined;

  constructor(
    private readonly run: () => Promise<RefreshResult>,
    private readonly intervalMs: number,
    private readonly log: Logger,
  ) {}

  start(): void {
    if (this.intervalMs <= 0) return;
    this.arm();
  }

  private arm(): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.running = this.once().finally(() => {
        this.running = undefined;
        this.arm();
      });
    }, this.intervalMs);
    this.timer.unref();
  }

  private async once(): Promise<void> {
    const t0 = Date.now();
    try {
      const result = await this.run();
      this.lastRun = { at: new Date(), result };
      const changes = result.added + result.changed + result.removed + result.conflicts;
      (changes > 0 ? this.log.info : this.log.debug)('periodic refresh finished', {
        ...result,
        ms: Date.now() - t0,
      });
    } catch (e) {
      this.lastRun = { at: new Date(), error: e instanceof Error ? e.message : String(e) };
      this.log.error('periodic refresh failed', { error: e });
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    await this.running;
  }
}
