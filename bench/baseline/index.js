/**
 * Baseline Worker for bench/webhook-load.ts: Hono, one route taking the same
 * JSON events as Parley's custom webhook, and one SQLite Durable Object per
 * sender that only appends a row. No signature check, no D1, no encryption,
 * no dedupe: the floor Parley's ingest path is compared with.
 *
 * Plain JavaScript on purpose: tsconfig.node.json type-checks bench/ with Node
 * types only, and this file runs in workerd.
 */
import { DurableObject } from "cloudflare:workers";
import { Hono } from "hono";

export class AppendLog extends DurableObject {
  /** @param {DurableObjectState} ctx @param {unknown} env */
  constructor(ctx, env) {
    super(ctx, env);
    this.sql = ctx.storage.sql;
    this.sql.exec("CREATE TABLE IF NOT EXISTS rows (seq INTEGER PRIMARY KEY AUTOINCREMENT, event_id TEXT NOT NULL, body TEXT NOT NULL, at INTEGER NOT NULL)");
  }

  /** @param {string} eventId @param {string} body */
  append(eventId, body) {
    const row = this.sql.exec("INSERT INTO rows (event_id, body, at) VALUES (?, ?, ?) RETURNING seq", eventId, body, Date.now()).one();
    return { seq: Number(row.seq) };
  }

  eventIds() {
    return this.sql
      .exec("SELECT event_id FROM rows ORDER BY seq")
      .toArray()
      .map((r) => String(r.event_id));
  }
}

const app = new Hono();

app.get("/health", (c) => c.json({ ok: true }));

app.post("/webhooks/custom/:channelId", async (c) => {
  const body = await c.req.text();
  const event = JSON.parse(body);
  const stub = c.env.LOG.get(c.env.LOG.idFromName(`${c.req.param("channelId")}:${event.from}`));
  const { seq } = await stub.append(String(event.id), body);
  return c.json({ received: true, seq });
});

/** Event ids stored for one sender, in append order (the bench's exactly-once check). */
app.get("/rows/:channelId/:from", async (c) => {
  const stub = c.env.LOG.get(c.env.LOG.idFromName(`${c.req.param("channelId")}:${c.req.param("from")}`));
  return c.json({ eventIds: await stub.eventIds() });
});

export default app;
