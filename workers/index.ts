/** Worker entry point: the HTTP app and the Conversation Durable Object class. */
import { app } from "./app";

export { Conversation } from "../durable-objects/conversation";

export default {
  fetch: app.fetch,
} satisfies ExportedHandler<Env>;
