/**
 * The POSIX account the agent process runs as. It cannot change while the process lives, and
 * `userInfo()` is a passwd lookup (NSS: files, LDAP, sssd), so it is asked once.
 */
import { type UserInfo, userInfo } from "node:os";

let account: UserInfo<string> | undefined;

export function agentAccount(): UserInfo<string> {
  account ??= userInfo();
  return account;
}
