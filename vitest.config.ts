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
                STRIPE_SECRET_KEY: "",
                STRIPE_WEBHOOK_SECRET: "",
                ALLOW_INSECURE_CALLBACKS: "true",
                TEST_MIGRATIONS: await readD1Migrations(migrationsDir),
              },
            },
          })),
        ],
        test: {
          name: "workers",
          include: ["test/*.test.ts"],
          setupFiles: ["./test/apply-migrations.ts"],
        },
      },
      {
        // End-to-end tests: a real `wrangler dev`, real HTTP clients, local provider stand-ins.
        test: {
          name: "e2e",
          environment: "node",
          include: ["test/e2e/**/*.test.ts"],
          testTimeout: 120_000,
          hookTimeout: 180_000,
          fileParallelism: false,
        },
      },
    ],
  },
});
