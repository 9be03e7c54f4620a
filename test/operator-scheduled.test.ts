import { env } from "cloudflare:workers";
import { afterEach, describe, expect, it } from "vitest";
import { CRONS } from "../workers/cron";
import { api, createCustomChannel, createTenant, json, PLATFORM_KEY, postCustom } from "./helpers";

const mutable = env as { DEV_SCHEDULED_ENDPOINT?: string };
const MONTH_MS = 30.4375 * 86_400_000;

afterEach(() => {
  mutable.DEV_SCHEDULED_ENDPOINT = undefined;
});

describe("POST /v1/operator/scheduled (local development)", () => {
  it("is 404 unless DEV_SCHEDULED_ENDPOINT=true, and needs the platform key", async () => {
    const { ownerKey } = await createTenant("Dev cron off");
    expect((await api("POST", "/v1/operator/scheduled", PLATFORM_KEY, { cron: CRONS.retention })).status).toBe(404);
    mutable.DEV_SCHEDULED_ENDPOINT = "true";
    expect((await api("POST", "/v1/operator/scheduled", ownerKey, { cron: CRONS.retention })).status).toBe(401);
    expect((await api("POST", "/v1/operator/scheduled", undefined, { cron: CRONS.retention })).status).toBe(401);
    for (const bad of [{}, { cron: "* * * * *" }, { cron: CRONS.retention, time: -1 }, { cron: CRONS.retention, time: "soon" }, { cron: CRONS.retention, extra: 1 }]) {
      const res = await api("POST", "/v1/operator/scheduled", PLATFORM_KEY, bad);
      expect(res.status, JSON.stringify(bad)).toBe(400);
      expect(((await res.json()) as { error: { code: string } }).error.code).toBe("validation_error");
    }
  });

  it("runs the retention sweep at the given time and returns its report", async () => {
    mutable.DEV_SCHEDULED_ENDPOINT = "true";
    const { ownerKey } = await createTenant("Dev cron on");
    const channel = await createCustomChannel(ownerKey);
    const ack = (await json(await postCustom(channel.id, channel.secret, { type: "message", id: "dev-cron-1", from: "+393471234001", text: "Old message" }))) as { conversationId: string };
    const time = Date.now() + 25 * MONTH_MS;
    let deleted = 0;
    for (let i = 0; i < 20; i++) {
      const res = await api("POST", "/v1/operator/scheduled", PLATFORM_KEY, { cron: CRONS.retention, time });
      expect(res.status).toBe(200);
      const body = (await res.json()) as { cron: string; time: number; report: { done: boolean; locked: boolean; deleted: { conversations: number } } };
      expect(body).toMatchObject({ cron: CRONS.retention, time });
      deleted += body.report.deleted.conversations;
      if (body.report.done) break;
    }
    expect(deleted).toBeGreaterThanOrEqual(1);
    expect((await api("GET", `/v1/conversations/${ack.conversationId}`, ownerKey)).status).toBe(404);
  });
});
