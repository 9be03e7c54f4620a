// `wrangler dev` without its DevTools inspector, for benches (bench/lib-wrangler.ts).
//
// wrangler dev always attaches an inspector proxy to the Worker and enables the DevTools
// Network domain, so workerd serialises every subrequest (each D1 query and its full answer)
// into inspector events even when no DevTools window is open. Production has no such cost,
// and it grows with the number of subrequests, so it would skew a comparison between Workers
// that make different numbers of them. This starts the same Worker through wrangler's own API
// (unstable_startWorker: same Miniflare/workerd, bindings and local persistence) with the
// inspector off. Plain JavaScript: it runs in Node as its own process group, like wrangler dev.
//
//   node bench/dev-server.mjs --port 8787 --ip 127.0.0.1 --persist-to DIR [--env-file FILE]
// (the Worker's wrangler.toml is taken from the current directory)
import { join } from "node:path";
import { unstable_startWorker } from "wrangler";

const args = new Map();
for (let i = 2; i < process.argv.length; i += 2) args.set(process.argv[i], process.argv[i + 1]);
const port = Number(args.get("--port"));
if (!Number.isInteger(port) || port <= 0) throw new Error("--port is required");

const worker = await unstable_startWorker({
  config: join(process.cwd(), "wrangler.toml"),
  ...(args.get("--env-file") ? { envFiles: [args.get("--env-file")] } : {}),
  dev: {
    inspector: false,
    persist: args.get("--persist-to") ?? join(process.cwd(), ".wrangler", "state"),
    server: { hostname: args.get("--ip") ?? "127.0.0.1", port },
    watch: false,
    liveReload: false,
  },
});
await worker.ready;
process.stdout.write(`Ready on ${String(await worker.url)}\n`);

let stopping = false;
const stop = async () => {
  if (stopping) return;
  stopping = true;
  await worker.dispose().catch(() => undefined);
  process.exit(0);
};
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
