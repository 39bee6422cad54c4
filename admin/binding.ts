/**
 * The one rule about where the admin API may listen: without a token, only on loopback. It is part of the
 * config's validation (core/config/build.ts), so `ferry check`, a reload and every API edit refuse what the
 * shell would refuse to start with; the shell checks it again before binding.
 *
 * @module
 */

export { adminBindingProblem as checkAdminBinding } from "../core/config/build.ts";
