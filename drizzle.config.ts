import { defineConfig } from "drizzle-kit";

export default defineConfig({
  dialect: "sqlite",
  schema: ["./d1/schema.ts", "./d1/schema-privacy.ts", "./d1/schema-billing.ts"],
  out: "./d1/migrations",
});
