/** Hono environment shared by every route module. */
import type { KeyRole, Scope } from "../../lib/roles";

/** Who is calling, resolved from the bearer key. */
export interface AuthContext {
  tenantId: string;
  keyId: string;
  role: KeyRole;
  scopes: ReadonlySet<Scope>;
}

export interface AppEnv {
  Bindings: Env;
  Variables: { auth: AuthContext };
}
