/** Worker entry point: the HTTP app, the cron sweeps and the Conversation Durable Object class. */
import { app } from "./app";
import { CRON_EXPRESSIONS, runCron } from "./cron";

export { Conversation } from "../durable-objects/conversation";
export { CRONS } from "./cron";

export default {
  fetch: app.fetch,
  /** Sweeps take "now" from the event's scheduledTime, so a run can be replayed or simulated in the future. */
  async scheduled(controller, env, ctx) {
    if (!(CRON_EXPRESSIONS as readonly string[]).includes(controller.cron)) {
      console.warn("unknown cron", controller.cron);
      return;
    }
    ctx.waitUntil(runCron(env, controller.cron, controller.scheduledTime).then(() => undefined));
  },
} satisfies ExportedHandler<Env>;
