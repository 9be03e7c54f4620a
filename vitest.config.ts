import { cloudflareTest, readD1Migrations } from "@cloudflare/vitest-pool-workers";
import { fileURLToPath } from "node:url";
import { defineConfig } from "vitest/config";

const migrationsDir = fileURLToPath(new URL("./d1/migrations", import.meta.url));

export default defineConfig({
  test: {
    projects: [
      {
        // Unit and integration tests run inside workerd with real D1, R2 and Durable Objects.
        plugins: [
          cloudflareTest(async () => ({
            main: "./workers/index.ts",
            wrangler: { configPath: "./wrangler.toml" },
            miniflare: {
              bindings: {
                MASTER_KEY: "q8l6Jk1o8rW5yq4H0m8c8bSg2mV1Q2b3c4d5e6f7g8E=",
                PLATFORM_ADMIN_KEY: "test-platform-admin-key-0123456789abcdef",
                OPENAI_API_KEY: "",
                // Stripe billing (test/billing-integration.test.ts): fake test-mode secrets; the API host is a
                // stand-in that the tests answer by stubbing fetch (nothing leaves the process).
                STRIPE_SECRET_KEY: "sk_test_parley_0123456789",
                STRIPE_WEBHOOK_SECRET: "whsec_test_parley_0123456789abcdef",
                STRIPE_API_BASE: "http://stripe-stub.test:12111",
                STRIPE_PRICE_IDS: "price_parley_basic,price_parley_pro",
                ALLOW_INSECURE_CALLBACKS: "true",
                TEST_MIGRATIONS: await readD1Migrations(migrationsDir),
              },
              // Low-limit twins of the wrangler.toml limiters: test/rate-limit-integration.test.ts swaps them in
              // to see a real binding refuse requests without sending a thousand of them.
              ratelimits: {
                TEST_LOW_API_RATE_LIMITER: { simple: { limit: 5, period: 60 } },
                TEST_LOW_CHANNEL_RATE_LIMITER: { simple: { limit: 5, period: 60 } },
              },
            },
          })),
        ],
        test: {
          name: "workers",
          include: ["test/*.test.ts"],
          setupFiles: ["./test/apply-migrations.ts"],
          // CI runs this project beside the e2e project on two cores: allow for a loaded machine.
          testTimeout: 30_000,
        },
      },
      {
        // End-to-end tests: a real `wrangler dev`, real HTTP clients, local provider stand-ins.
        test: {
          name: "e2e",
          environment: "node",
          include: ["test/e2e/**/*.test.ts"],
          exclude: ["test/e2e/bench-smoke.test.ts"],
          testTimeout: 120_000,
          hookTimeout: 180_000,
          fileParallelism: false,
        },
      },
      {
        // Every bench once on tiny knobs. `npm test` runs this project on its own, after the others:
        // the benches start dev servers and fork processes, which would slow the other tests down.
        test: {
          name: "bench",
          environment: "node",
          include: ["test/e2e/bench-smoke.test.ts"],
          testTimeout: 600_000,
        },
      },
    ],
  },
});
