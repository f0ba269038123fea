/** Xenon's auth service links, document kinds and wire names (xenon-cluster-auth.md C.2–C.4). */

export const USERS_LINK = '/core/authz/users';
export const USER_GROUPS_LINK = '/core/authz/user-groups';
export const RESOURCE_GROUPS_LINK = '/core/authz/resource-groups';
export const ROLES_LINK = '/core/authz/roles';
export const CREDENTIALS_LINK = '/core/auth/credentials';
export const BASIC_AUTH_LINK = '/core/authn/basic';
export const GUEST_USER_LINK = '/core/authz/guest-user';
export const SYSTEM_USER_LINK = '/core/authz/system-user';
/** krypton: answers the caller's own rights (`?path=&action=`); used by the migration POST check. */
export const VERIFICATION_LINK = '/core/authz/verification';
/** krypton: revoked (logged-out) tokens, system-only; a replicated factory so revocation reaches the group. */
export const REVOKED_TOKENS_LINK = '/core/authz/revoked-tokens';

const COMMON = 'com:vmware:xenon:services:common';
export const USER_KIND = `${COMMON}:UserService:UserState`;
export const USER_GROUP_KIND = `${COMMON}:UserGroupService:UserGroupState`;
export const RESOURCE_GROUP_KIND = `${COMMON}:ResourceGroupService:ResourceGroupState`;
export const ROLE_KIND = `${COMMON}:RoleService:RoleState`;
export const CREDENTIALS_KIND = `${COMMON}:AuthCredentialsService:AuthCredentialsServiceState`;
export const PATCH_QUERY_REQUEST_KIND = `${COMMON}:ResourceGroupService:PatchQueryRequest`;
export const REVOKED_TOKEN_KIND = 'krypton:auth:RevokedToken';

/**
 * krypton: when a password was last set on existing credentials (microseconds). Login tokens of the
 * user issued before that second are refused (AuthRuntime.identify). Kept by the host, never taken
 * from a client; a migration copies it with the rest of the document.
 */
export const PASSWORD_CHANGED_FIELD = 'passwordChangedTimeMicros';

export const AUTH_TOKEN_HEADER = 'x-xenon-auth-token';
export const AUTH_COOKIE = 'xenon-auth-cookie';

/**
 * Factories whose documents define who may do what, or whether a token still stands (revocations,
 * password changes): any write to them invalidates cached contexts and tokens.
 */
export const POLICY_FACTORIES: readonly string[] = [USERS_LINK, USER_GROUPS_LINK, RESOURCE_GROUPS_LINK, ROLES_LINK, REVOKED_TOKENS_LINK, CREDENTIALS_LINK];

/** Factories only the system identity may read (DECISIONS: credentials are never returned to anyone else). */
export const SYSTEM_READ_ONLY_FACTORIES: readonly string[] = [CREDENTIALS_LINK, REVOKED_TOKENS_LINK];
