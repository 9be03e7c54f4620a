/** Worker entry point: the HTTP app, the cron sweeps and the Conversation Durable Object class. */
import { app } from "./app";
import { runBackupExpirySweep, runNightlyBackups } from "./backups";
import { runRetentionSweep } from "./sweeps";

export { Conversation } from "../durable-objects/conversation";

/** Cron expressions in wrangler.toml, and what each runs. */
export const CRONS = {
  retention: "*/15 * * * *",
  backup: "30 2 * * *",
  backupExpiry: "0 3 * * *",
} as const;

export default {
  fetch: app.fetch,
  /** Sweeps take "now" from the event's scheduledTime, so a run can be replayed or simulated in the future. */
  async scheduled(controller, env, ctx) {
    const now = controller.scheduledTime;
    switch (controller.cron) {
      case CRONS.retention:
        ctx.waitUntil(runRetentionSweep(env, now).then(() => undefined));
        break;
      case CRONS.backup:
        ctx.waitUntil(runNightlyBackups(env, now).then(() => undefined));
        break;
      case CRONS.backupExpiry:
        ctx.waitUntil(runBackupExpirySweep(env, now).then(() => undefined));
        break;
      default:
        console.warn("unknown cron", controller.cron);
    }
  },
} satisfies ExportedHandler<Env>;
