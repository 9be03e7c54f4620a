/** The cron jobs of wrangler.toml's `[triggers]`, and one dispatcher for them. */
import { runBackupExpirySweep, runNightlyBackups } from "./backups";
import { runRetentionSweep } from "./sweeps";

/** Cron expressions in wrangler.toml, and what each runs. */
export const CRONS = {
  retention: "*/15 * * * *",
  backup: "30 2 * * *",
  backupExpiry: "0 3 * * *",
} as const;

/** Every cron expression Parley schedules. */
export const CRON_EXPRESSIONS = Object.values(CRONS);

/**
 * Runs the job of `cron` with `nowMs` as "now" (the event's scheduledTime), and
 * resolves with the job's report; null for an unknown expression.
 */
export async function runCron(env: Env, cron: string, nowMs: number): Promise<unknown> {
  switch (cron) {
    case CRONS.retention:
      return runRetentionSweep(env, nowMs);
    case CRONS.backup:
      return runNightlyBackups(env, nowMs);
    case CRONS.backupExpiry:
      return runBackupExpirySweep(env, nowMs);
    default:
      return null;
  }
}
