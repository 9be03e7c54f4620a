import { env } from "cloudflare:workers";
import { afterEach, describe, expect, it, vi } from "vitest";
import { sha256Hex } from "../lib/crypto";
import { fromBase64, fromUtf8, utf8 } from "../lib/encoding";
import {
  checkMediaUrl,
  downloadTwilioMedia,
  downloadWhatsAppMedia,
  fetchAllowedMedia,
  MediaFetchError,
  twilioHostPolicy,
  whatsappHostPolicy,
  type MediaFetchFailure,
} from "../lib/media-fetch";
import { metaSignature, twilioSignature } from "../lib/signatures";
import { api, BASE, call, createTenant, json } from "./helpers";

afterEach(() => {
  vi.restoreAllMocks();
});

const twilio = twilioHostPolicy("https://api.twilio.com");
const whatsapp = whatsappHostPolicy("https://graph.facebook.com");

function refused(url: string, policy = twilio): MediaFetchFailure | "allowed" {
  try {
    checkMediaUrl(url, policy);
    return "allowed";
  } catch (err) {
    if (err instanceof MediaFetchError) return err.reason;
    throw err;
  }
}

/** A scripted fetcher: records every request (read inside the call) and answers from `route`. */
function scripted(route: (url: string, headers: Headers) => Response | Promise<Response>) {
  const seen: { url: string; headers: Headers; redirect: string | undefined }[] = [];
  const fetcher = async (input: string, init: RequestInit) => {
    const headers = new Headers(init.headers);
    seen.push({ url: input, headers, redirect: init.redirect });
    return route(input, headers);
  };
  return { seen, fetcher };
}

async function failure(promise: Promise<unknown>): Promise<MediaFetchFailure> {
  try {
    await promise;
  } catch (err) {
    if (err instanceof MediaFetchError) return err.reason;
    throw err;
  }
  throw new Error("expected a MediaFetchError");
}

describe("media URL allow-lists (no SSRF)", () => {
  it("allows the providers' media hosts over https", () => {
    expect(refused("https://api.twilio.com/2010-04-01/Accounts/AC1/Messages/MM1/Media/ME1")).toBe("allowed");
    expect(refused("https://mms.twiliocdn.com/media/abc")).toBe("allowed");
    expect(refused("https://a.b.twiliocdn.com/x")).toBe("allowed");
    expect(refused("https://API.TWILIO.COM/x")).toBe("allowed");
    expect(refused("https://graph.facebook.com/v21.0/123", whatsapp)).toBe("allowed");
    expect(refused("https://lookaside.fbsbx.com/whatsapp_business/attachments/?mid=1", whatsapp)).toBe("allowed");
  });

  it("refuses look-alike and evil hosts", () => {
    for (const url of [
      "https://evil.example.com/x",
      "https://api.twilio.com.evil.com/x",
      "https://evilapi.twilio.com.attacker.net/x",
      "https://twiliocdn.com/x",
      "https://eviltwiliocdn.com/x",
      "https://twiliocdn.com.evil.com/x",
      "https://api.twilio.com./x",
      "https://xn--pi-twilio-com-5ib.example/x",
      "https://аpi.twilio.com/x",
      "https://api.twiIio.com/x",
      "https://lookaside.fbsbx.com/x",
    ]) {
      expect(refused(url), url).toBe("host_not_allowed");
    }
    // Malformed IDN labels do not even parse.
    expect(refused("https://xn--api-twilio-9ab.com/x")).toBe("invalid_url");
    expect(refused("https://mms.twiliocdn.com/x", whatsapp)).toBe("host_not_allowed");
  });

  it("refuses userinfo tricks", () => {
    expect(refused("https://api.twilio.com@evil.com/x")).toBe("credentials_in_url");
    expect(refused("https://user:pass@api.twilio.com/x")).toBe("credentials_in_url");
    expect(refused("https://evil.com\\@api.twilio.com/x")).not.toBe("allowed");
    expect(refused("https://evil.com#@api.twilio.com/x")).toBe("host_not_allowed");
  });

  it("refuses IP literals in every spelling", () => {
    for (const url of [
      "https://127.0.0.1/x",
      "https://169.254.169.254/latest/meta-data/",
      "https://2130706433/x",
      "https://0x7f.0.0.1/x",
      "https://0177.0.0.1/x",
      "https://[::1]/x",
      "https://[::ffff:127.0.0.1]/x",
      "https://10.0.0.1/x",
    ]) {
      expect(refused(url), url).toBe("host_not_allowed");
    }
  });

  it("refuses other schemes, plain http and non-default ports", () => {
    expect(refused("http://api.twilio.com/x")).toBe("scheme_not_allowed");
    expect(refused("file:///etc/passwd")).toBe("scheme_not_allowed");
    expect(refused("ftp://api.twilio.com/x")).toBe("scheme_not_allowed");
    expect(refused("https://api.twilio.com:8443/x")).toBe("port_not_allowed");
    expect(refused("https://api.twilio.com:443/x")).toBe("allowed");
    expect(refused("not a url")).toBe("invalid_url");
    expect(refused("/relative/path")).toBe("invalid_url");
  });

  it("allows the configured API base exactly (scheme, host and port), so tests can use a local http server", () => {
    const local = twilioHostPolicy("http://127.0.0.1:8788");
    expect(refused("http://127.0.0.1:8788/2010-04-01/x", local)).toBe("allowed");
    expect(refused("http://127.0.0.1:8789/x", local)).toBe("scheme_not_allowed");
    expect(refused("https://127.0.0.1:8789/x", local)).toBe("host_not_allowed");
    expect(refused("http://127.0.0.1/x", local)).toBe("scheme_not_allowed");
    expect(refused("https://127.0.0.1:8788/x", local)).toBe("host_not_allowed");
    expect(refused("http://localhost:8788/x", local)).toBe("scheme_not_allowed");
    // An https base never opens plain http.
    expect(refused("http://graph.facebook.com/x", whatsappHostPolicy("https://graph.facebook.com"))).toBe("scheme_not_allowed");
    // A base with credentials is ignored rather than trusted.
    expect(refused("http://127.0.0.1:8788/x", twilioHostPolicy("http://u:p@127.0.0.1:8788"))).toBe("scheme_not_allowed");
  });
});

describe("fetchAllowedMedia", () => {
  it("follows allow-listed redirects by hand, sending credentials to the first origin only", async () => {
    const { seen, fetcher } = scripted((url) => {
      if (url.startsWith("https://api.twilio.com/")) return new Response(null, { status: 307, headers: { location: "https://mms.twiliocdn.com/m/1" } });
      if (url === "https://mms.twiliocdn.com/m/1") return new Response(null, { status: 302, headers: { location: "/m/2" } });
      return new Response(utf8("image-bytes"), { headers: { "content-type": "image/png" } });
    });
    const got = await fetchAllowedMedia("https://api.twilio.com/2010-04-01/Accounts/AC1/Messages/MM1/Media/ME1", { policy: twilio, headers: { authorization: "Basic c2VjcmV0" }, fetcher });
    expect(fromUtf8(got.bytes)).toBe("image-bytes");
    expect(got).toMatchObject({ contentType: "image/png", url: "https://mms.twiliocdn.com/m/2" });
    expect(seen.map((s) => s.url)).toEqual(["https://api.twilio.com/2010-04-01/Accounts/AC1/Messages/MM1/Media/ME1", "https://mms.twiliocdn.com/m/1", "https://mms.twiliocdn.com/m/2"]);
    expect(seen.map((s) => s.redirect)).toEqual(["manual", "manual", "manual"]);
    expect(seen[0]?.headers.get("authorization")).toBe("Basic c2VjcmV0");
    expect(seen[1]?.headers.get("authorization")).toBeNull();
    expect(seen[2]?.headers.get("authorization")).toBeNull();
  });

  it("refuses a redirect off the allow-list before requesting it", async () => {
    for (const location of ["http://169.254.169.254/latest/meta-data/", "https://evil.example.com/x", "https://api.twilio.com@evil.com/", "http://mms.twiliocdn.com/x", "https://[::1]/x"]) {
      const { seen, fetcher } = scripted(() => new Response(null, { status: 302, headers: { location } }));
      const reason = await failure(fetchAllowedMedia("https://api.twilio.com/m", { policy: twilio, fetcher }));
      expect(["host_not_allowed", "scheme_not_allowed", "credentials_in_url"], location).toContain(reason);
      expect(seen).toHaveLength(1);
    }
  });

  it("stops after 3 redirects, and on a redirect without Location", async () => {
    const loop = scripted((url) => new Response(null, { status: 301, headers: { location: `${url}x` } }));
    expect(await failure(fetchAllowedMedia("https://mms.twiliocdn.com/a", { policy: twilio, fetcher: loop.fetcher }))).toBe("too_many_redirects");
    expect(loop.seen).toHaveLength(4);
    const bare = scripted(() => new Response(null, { status: 302 }));
    expect(await failure(fetchAllowedMedia("https://mms.twiliocdn.com/a", { policy: twilio, fetcher: bare.fetcher }))).toBe("redirect_without_location");
  });

  it("enforces the size limit from Content-Length and while streaming", async () => {
    const declared = scripted(() => new Response("x".repeat(10), { headers: { "content-length": "999999" } }));
    expect(await failure(fetchAllowedMedia("https://mms.twiliocdn.com/a", { policy: twilio, maxBytes: 1000, fetcher: declared.fetcher }))).toBe("too_large");
    let pulled = 0;
    const endless = scripted(
      () =>
        new Response(
          new ReadableStream<Uint8Array>({
            pull(controller) {
              pulled++;
              controller.enqueue(new Uint8Array(400));
            },
          }),
        ),
    );
    expect(await failure(fetchAllowedMedia("https://mms.twiliocdn.com/a", { policy: twilio, maxBytes: 1000, fetcher: endless.fetcher }))).toBe("too_large");
    expect(pulled).toBeLessThan(10);
    const exact = scripted(() => new Response(new Uint8Array(1000)));
    expect((await fetchAllowedMedia("https://mms.twiliocdn.com/a", { policy: twilio, maxBytes: 1000, fetcher: exact.fetcher })).bytes.length).toBe(1000);
  });

  it("times out a hanging host, and reports HTTP and network errors", async () => {
    const hang = async (_input: string, init: RequestInit) =>
      new Promise<Response>((_resolve, reject) => {
        init.signal?.addEventListener("abort", () => reject(new DOMException("aborted", "AbortError")));
      });
    const started = Date.now();
    expect(await failure(fetchAllowedMedia("https://mms.twiliocdn.com/a", { policy: twilio, timeoutMs: 50, fetcher: hang }))).toBe("timeout");
    expect(Date.now() - started).toBeLessThan(2000);
    const notFound = scripted(() => new Response("no", { status: 404 }));
    const err = await fetchAllowedMedia("https://mms.twiliocdn.com/a", { policy: twilio, fetcher: notFound.fetcher }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(MediaFetchError);
    expect(err).toMatchObject({ reason: "http_error", status: 404 });
    expect(await failure(fetchAllowedMedia("https://mms.twiliocdn.com/a", { policy: twilio, fetcher: () => Promise.reject(new TypeError("boom")) }))).toBe("network_error");
  });

  it("downloads Twilio media with Basic auth (Account SID : Auth Token)", async () => {
    const { seen, fetcher } = scripted(() => new Response(utf8("jpeg")));
    await downloadTwilioMedia({ url: "https://api.twilio.com/m", accountSid: "AC123", authToken: "tok" }, { fetcher });
    const header = seen[0]?.headers.get("authorization") ?? "";
    expect(fromUtf8(fromBase64(header.replace(/^Basic /, "")) ?? new Uint8Array())).toBe("AC123:tok");
  });

  it("resolves WhatsApp media ids through the Graph API, checks the announced SHA-256, and refuses odd ids", async () => {
    const bytes = utf8("ogg-audio-bytes");
    const sha = await sha256Hex(bytes);
    const { seen, fetcher } = scripted((url) => {
      if (url === "https://graph.facebook.com/v21.0/1234567890") return Response.json({ url: "https://lookaside.fbsbx.com/whatsapp_business/attachments/?mid=1", mime_type: "audio/ogg", sha256: sha, file_size: bytes.length });
      return new Response(bytes);
    });
    const got = await downloadWhatsAppMedia({ mediaId: "1234567890", accessToken: "EAAG", apiBase: "https://graph.facebook.com/", apiVersion: "v21.0" }, { fetcher });
    expect(fromUtf8(got.bytes)).toBe("ogg-audio-bytes");
    expect(got.declaredType).toBe("audio/ogg");
    expect(seen.map((s) => s.headers.get("authorization"))).toEqual(["Bearer EAAG", "Bearer EAAG"]);
    const wrongDigest = scripted((url) => (url.includes("graph") ? Response.json({ url: "https://lookaside.fbsbx.com/x", sha256: "0".repeat(64) }) : new Response(bytes)));
    expect(await failure(downloadWhatsAppMedia({ mediaId: "1", accessToken: "t", apiBase: "https://graph.facebook.com", apiVersion: "v21.0" }, { fetcher: wrongDigest.fetcher }))).toBe("digest_mismatch");
    const evil = scripted((url) => (url.includes("graph") ? Response.json({ url: "http://169.254.169.254/latest/meta-data/" }) : new Response("secret")));
    expect(await failure(downloadWhatsAppMedia({ mediaId: "1", accessToken: "t", apiBase: "https://graph.facebook.com", apiVersion: "v21.0" }, { fetcher: evil.fetcher }))).toBe("scheme_not_allowed");
    expect(evil.seen).toHaveLength(1);
    const tooBig = scripted(() => Response.json({ url: "https://lookaside.fbsbx.com/x", file_size: 50 * 1024 * 1024 }));
    expect(await failure(downloadWhatsAppMedia({ mediaId: "1", accessToken: "t", apiBase: "https://graph.facebook.com", apiVersion: "v21.0" }, { fetcher: tooBig.fetcher }))).toBe("too_large");
    expect(tooBig.seen).toHaveLength(1);
    const none = scripted(() => new Response("x"));
    for (const mediaId of ["../../me", "1?fields=x", "1/../2", "", "a".repeat(129)]) {
      expect(await failure(downloadWhatsAppMedia({ mediaId, accessToken: "t", apiBase: "https://graph.facebook.com", apiVersion: "v21.0" }, { fetcher: none.fetcher })), mediaId).toBe("invalid_media_id");
    }
    expect(none.seen).toHaveLength(0);
  });
});

// ---------------------------------------------------------------- import through the webhooks

const ACCOUNT_SID = `AC${"b".repeat(32)}`;
const AUTH_TOKEN = "twilio-auth-token-media-0123";
const APP_SECRET = "meta-app-secret-media-0123";
const ACCESS_TOKEN = "EAAG-media-access-token";
const PHONE_NUMBER_ID = "106540352242922";
const IMAGE = utf8("\u0089PNG fake image bytes with a MARKER-7731 inside");

interface Attachment {
  id: string;
  contentType: string;
  size: number;
  download: string;
}

async function attachmentsOf(ownerKey: string, conversationId: string): Promise<Attachment[]> {
  return ((await json(await api("GET", `/v1/conversations/${conversationId}/attachments`, ownerKey))) as { data: Attachment[] }).data;
}

async function auditActions(tenantId: string): Promise<{ action: string; detail: Record<string, unknown> }[]> {
  const { results } = await env.DB.prepare("SELECT action, detail FROM audit_log WHERE tenant_id = ? AND action LIKE 'attachment.%' ORDER BY id")
    .bind(tenantId)
    .all<{ action: string; detail: string }>();
  return results.map((r) => ({ action: r.action, detail: JSON.parse(r.detail) as Record<string, unknown> }));
}

async function twilioInbound(channelId: string, sid: string, media: { url: string; type: string }[]) {
  const params: Record<string, string> = { MessageSid: sid, AccountSid: ACCOUNT_SID, From: "whatsapp:+393471234567", To: "+15005550006", Body: "", NumMedia: String(media.length) };
  media.forEach((m, i) => {
    params[`MediaUrl${i}`] = m.url;
    params[`MediaContentType${i}`] = m.type;
  });
  const path = `/webhooks/twilio/${channelId}`;
  const signature = await twilioSignature(AUTH_TOKEN, BASE + path, new Map(Object.entries(params).map(([k, v]) => [k, [v]] as [string, string[]])));
  return call(path, { method: "POST", headers: { "content-type": "application/x-www-form-urlencoded", "x-twilio-signature": signature }, body: new URLSearchParams(params).toString() });
}

async function conversationOf(ownerKey: string): Promise<string> {
  return ((await json(await api("GET", "/v1/conversations", ownerKey))) as { data: { id: string }[] }).data[0]?.id ?? "";
}

describe("channel media import", () => {
  it("imports Twilio media after the webhook answers: downloaded with Basic auth through the CDN redirect, stored encrypted, audited", async () => {
    const { tenantId, ownerKey } = await createTenant();
    const channel = (await json(
      await api("POST", "/v1/channels", ownerKey, { type: "twilio_whatsapp", name: "WA", config: { accountSid: ACCOUNT_SID, from: "+15005550006" }, secrets: { authToken: AUTH_TOKEN } }),
    )) as { id: string };
    const seen: { url: string; auth: string | null }[] = [];
    vi.spyOn(globalThis, "fetch").mockImplementation(async (input, init) => {
      const request = new Request(input, init);
      seen.push({ url: request.url, auth: request.headers.get("authorization") });
      if (request.url.startsWith("https://api.twilio.com/2010-04-01/")) return new Response(null, { status: 307, headers: { location: "https://mms.twiliocdn.com/ACbbb/abc123" } });
      if (request.url === "https://mms.twiliocdn.com/ACbbb/abc123") return new Response(IMAGE, { headers: { "content-type": "image/png" } });
      return new Response("unexpected", { status: 599 });
    });
    const mediaUrl = `https://api.twilio.com/2010-04-01/Accounts/${ACCOUNT_SID}/Messages/MM1/Media/ME1`;
    const sid = `MM${"7".repeat(32)}`;
    expect((await twilioInbound(channel.id, sid, [{ url: mediaUrl, type: "image/png" }])).status).toBe(200);
    const conv = await conversationOf(ownerKey);
    const list = await vi.waitFor(
      async () => {
        const found = await attachmentsOf(ownerKey, conv);
        if (found.length === 0) throw new Error("not imported yet");
        return found;
      },
      { timeout: 5000, interval: 50 },
    );
    expect(list).toHaveLength(1);
    expect(list[0]).toMatchObject({ contentType: "image/png", size: IMAGE.length });
    expect(seen.map((s) => s.url)).toEqual([mediaUrl, "https://mms.twiliocdn.com/ACbbb/abc123"]);
    expect(fromUtf8(fromBase64((seen[0]?.auth ?? "").replace(/^Basic /, "")) ?? new Uint8Array())).toBe(`${ACCOUNT_SID}:${AUTH_TOKEN}`);
    expect(seen[1]?.auth).toBeNull();
    const raw = new Uint8Array((await (await env.FILES.get(`t/${tenantId}/a/${list[0]?.id}`))?.arrayBuffer()) ?? new ArrayBuffer(0));
    expect(fromUtf8(raw)).not.toContain("MARKER-7731");
    expect(new Uint8Array(await (await api("GET", list[0]?.download ?? "", ownerKey)).arrayBuffer())).toEqual(IMAGE);
    const audits = await auditActions(tenantId);
    expect(audits[0]).toMatchObject({ action: "attachment.imported", detail: { conversationId: conv, provider: "twilio", index: 0, bytes: IMAGE.length } });
    // A retried webhook is a duplicate: nothing is downloaded again.
    expect((await twilioInbound(channel.id, sid, [{ url: mediaUrl, type: "image/png" }])).status).toBe(200);
    await new Promise((r) => setTimeout(r, 200));
    expect(seen).toHaveLength(2);
    expect(await attachmentsOf(ownerKey, conv)).toHaveLength(1);
  });

  it("refuses Twilio media on other hosts or redirected off the allow-list: nothing fetched there, nothing stored, failure audited", async () => {
    const { tenantId, ownerKey } = await createTenant();
    const channel = (await json(
      await api("POST", "/v1/channels", ownerKey, { type: "twilio_sms", name: "SMS", config: { accountSid: ACCOUNT_SID, from: "+15005550006" }, secrets: { authToken: AUTH_TOKEN } }),
    )) as { id: string };
    const seen: string[] = [];
    vi.spyOn(globalThis, "fetch").mockImplementation(async (input, init) => {
      const request = new Request(input, init);
      seen.push(request.url);
      if (request.url.startsWith("https://api.twilio.com/")) return new Response(null, { status: 302, headers: { location: "http://169.254.169.254/latest/meta-data/iam" } });
      return new Response("cloud credentials", { status: 200 });
    });
    const response = await twilioInbound(channel.id, `MM${"8".repeat(32)}`, [
      { url: "https://evil.example.com/steal", type: "image/png" },
      { url: "https://api.twilio.com@evil.example.com/x", type: "image/png" },
      { url: `https://api.twilio.com/2010-04-01/Accounts/${ACCOUNT_SID}/Messages/MM1/Media/ME2`, type: "image/png" },
    ]);
    expect(response.status).toBe(200);
    const audits = await vi.waitFor(
      async () => {
        const found = (await auditActions(tenantId)).filter((a) => a.action === "attachment.import_failed");
        if (found.length < 3) throw new Error("not done yet");
        return found;
      },
      { timeout: 5000, interval: 50 },
    );
    expect(audits.map((a) => a.detail.reason)).toEqual(["host_not_allowed", "credentials_in_url", "scheme_not_allowed"]);
    expect(JSON.stringify(audits)).not.toContain("evil.example.com");
    expect(seen).toEqual([`https://api.twilio.com/2010-04-01/Accounts/${ACCOUNT_SID}/Messages/MM1/Media/ME2`]);
    expect(await attachmentsOf(ownerKey, await conversationOf(ownerKey))).toHaveLength(0);
    expect((await env.FILES.list({ prefix: `t/${tenantId}/` })).objects).toHaveLength(0);
  });

  it("imports WhatsApp Cloud media by id (Graph lookup, then the lookaside URL with the token)", async () => {
    const { tenantId, ownerKey } = await createTenant();
    const channel = (await json(
      await api("POST", "/v1/channels", ownerKey, { type: "whatsapp_cloud", name: "WA", config: { phoneNumberId: PHONE_NUMBER_ID }, secrets: { appSecret: APP_SECRET, accessToken: ACCESS_TOKEN } }),
    )) as { id: string };
    const sha = await sha256Hex(IMAGE);
    const seen: { url: string; auth: string | null }[] = [];
    vi.spyOn(globalThis, "fetch").mockImplementation(async (input, init) => {
      const request = new Request(input, init);
      seen.push({ url: request.url, auth: request.headers.get("authorization") });
      if (request.url === `${env.WHATSAPP_API_BASE}/${env.WHATSAPP_API_VERSION}/987654321`) {
        return Response.json({ messaging_product: "whatsapp", url: "https://lookaside.fbsbx.com/whatsapp_business/attachments/?mid=987654321&ext=1", mime_type: "image/jpeg", sha256: sha, file_size: IMAGE.length, id: "987654321" });
      }
      if (request.url.startsWith("https://lookaside.fbsbx.com/")) return new Response(IMAGE, { headers: { "content-type": "image/jpeg" } });
      if (request.url === `${env.WHATSAPP_API_BASE}/${env.WHATSAPP_API_VERSION}/555`) return Response.json({ url: "https://attacker.example/x" });
      return new Response("unexpected", { status: 599 });
    });
    const payload = {
      object: "whatsapp_business_account",
      entry: [
        {
          id: "102290129340398",
          changes: [
            {
              field: "messages",
              value: {
                messaging_product: "whatsapp",
                metadata: { display_phone_number: "15550783881", phone_number_id: PHONE_NUMBER_ID },
                messages: [
                  { from: "393471234567", id: "wamid.media1", timestamp: "1700000000", type: "image", image: { id: "987654321", mime_type: "image/jpeg", caption: "my receipt" } },
                  { from: "393471234567", id: "wamid.media2", timestamp: "1700000001", type: "document", document: { id: "555", mime_type: "application/pdf" } },
                ],
              },
            },
          ],
        },
      ],
    };
    const raw = JSON.stringify(payload);
    const res = await call(`/webhooks/whatsapp/${channel.id}`, {
      method: "POST",
      headers: { "content-type": "application/json", "x-hub-signature-256": await metaSignature(APP_SECRET, utf8(raw)) },
      body: raw,
    });
    expect(res.status).toBe(200);
    const conv = await conversationOf(ownerKey);
    const audits = await vi.waitFor(
      async () => {
        const found = await auditActions(tenantId);
        if (found.length < 2) throw new Error("not done yet");
        return found;
      },
      { timeout: 5000, interval: 50 },
    );
    expect(audits.map((a) => [a.action, a.detail.provider, a.detail.reason ?? null])).toEqual([
      ["attachment.imported", "whatsapp", null],
      ["attachment.import_failed", "whatsapp", "host_not_allowed"],
    ]);
    const list = await attachmentsOf(ownerKey, conv);
    expect(list).toHaveLength(1);
    expect(list[0]?.contentType).toBe("image/jpeg");
    expect(new Uint8Array(await (await api("GET", list[0]?.download ?? "", ownerKey)).arrayBuffer())).toEqual(IMAGE);
    expect(seen.every((s) => s.auth === `Bearer ${ACCESS_TOKEN}`)).toBe(true);
    expect(seen.map((s) => new URL(s.url).host)).not.toContain("attacker.example");
  });
});
