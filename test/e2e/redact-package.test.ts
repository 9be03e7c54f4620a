/** The redactor as Node code imports it: `import { redact } from "parley/redact"` (built by npm run check / prepack). */
import { spawnSync } from "node:child_process";
import { describe, expect, it } from "vitest";
import { PROJECT_ROOT } from "./harness.ts";

describe("package export ./redact", () => {
  it("is importable from plain Node and redacts", () => {
    const build = spawnSync(process.execPath, ["scripts/build-redact.mjs"], { cwd: PROJECT_ROOT, encoding: "utf8" });
    expect(build.status, build.stderr).toBe(0);
    const script = `
      import { redact, restore, PlaceholderVault, detectSpecialCategories } from "parley/redact";
      const vault = new PlaceholderVault();
      const a = redact("Write to anna@example.com about order 483920", { vault });
      const b = redact("anna@example.com again, card 4111 1111 1111 1111", { vault });
      console.log(JSON.stringify({ a: a.text, b: b.text, back: restore("Sent to [EMAIL_1] [EMAIL_9]", vault), special: detectSpecialCategories("I have diabetes") }));
    `;
    const run = spawnSync(process.execPath, ["--input-type=module", "-e", script], { cwd: PROJECT_ROOT, encoding: "utf8" });
    expect(run.status, run.stderr).toBe(0);
    const out = JSON.parse(run.stdout) as { a: string; b: string; back: string; special: string[] };
    expect(out.a).toBe("Write to [EMAIL_1] about order 483920");
    expect(out.b).toBe("[EMAIL_1] again, card [CARD_1]");
    expect(out.back).toBe("Sent to anna@example.com");
    expect(out.special).toEqual(["health"]);
  });
});
