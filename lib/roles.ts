/** Roles and scopes of tenant API keys: which key may do what. */

/** Every scope a key can carry. */
export const SCOPES = [
  "conversations:read",
  "conversations:write",
  "channels:read",
  "channels:write",
  "keys:read",
  "keys:write",
  "settings:read",
  "settings:write",
  "privacy:read",
  "privacy:write",
  "audit:read",
] as const;
export type Scope = (typeof SCOPES)[number];

export type KeyRole = "owner" | "admin" | "agent" | "viewer";

/** Scopes each role may hold; a key's scopes are always a subset of its role's. */
export const ROLE_SCOPES: Readonly<Record<KeyRole, readonly Scope[]>> = {
  owner: SCOPES,
  admin: SCOPES,
  agent: ["conversations:read", "conversations:write", "channels:read", "settings:read"],
  viewer: ["conversations:read", "channels:read", "settings:read"],
};

const RANK: Readonly<Record<KeyRole, number>> = { owner: 3, admin: 2, agent: 1, viewer: 0 };

/** True when a key of role `actor` may mint or revoke a key of role `target` (never above itself). */
export function canManageRole(actor: KeyRole, target: KeyRole): boolean {
  return RANK[actor] >= RANK[target] && RANK[actor] >= RANK.admin;
}

/**
 * Scopes for a new key: the requested ones (or the role's defaults), which must
 * lie within both the role's scopes and the creating key's own.
 */
export function resolveScopes(
  role: KeyRole,
  requested: readonly Scope[] | undefined,
  creatorScopes: ReadonlySet<Scope>,
): { ok: true; scopes: Scope[] } | { ok: false; notAllowed: Scope[] } {
  const allowed = new Set(ROLE_SCOPES[role]);
  const wanted = requested ?? ROLE_SCOPES[role];
  const notAllowed = wanted.filter((s) => !allowed.has(s) || !creatorScopes.has(s));
  if (notAllowed.length > 0) return { ok: false, notAllowed };
  return { ok: true, scopes: [...new Set(wanted)].sort() };
}
