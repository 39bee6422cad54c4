/**
 * The words a shell uses to report what went wrong with a send: which way the datagram (or the bytes) were
 * going, and why the send failed. A leaf: any module may import it.
 *
 * @module
 */

/** Which way data was going: from the client towards the backend, or back to the client. */
export type Direction = "to_backend" | "to_client";

/**
 * Why a send failed. `refused`: the peer's port was unreachable (ECONNREFUSED, an ICMP port unreachable
 * seen on a connected socket); towards a backend it counts as a passive health failure. `error`: any other
 * failure (a full buffer, a closed socket, EINVAL, ...).
 */
export type SendFailure = "refused" | "error";
