/**
 * The DNS messages of the `dns` health probe (RFC 1035): one query out, one reply checked. Pure: the shell
 * owns the socket and draws the query ID from a seeded Rng.
 *
 * A query asks one question (class IN, recursion desired). A reply passes when it carries the query's ID,
 * has the QR bit set, echoes the question (names compared case-insensitively, as resolvers may randomise
 * case) and its RCODE is NOERROR, or NXDOMAIN when the cluster accepts that. Over TCP each message is
 * preceded by its length in two bytes (RFC 1035 §4.2.2).
 *
 * @module
 */

/** What a `dns` health probe asks, validated. */
export interface DnsProbeSettings {
  /** The name asked for, absolute, without the trailing dot ("" is the root). */
  readonly name: string;
  /** The query type's number (1 = A, 2 = NS, 28 = AAAA, ...). */
  readonly type: number;
  /** UDP, or TCP with the two-byte length prefix. */
  readonly transport: "udp" | "tcp";
  /** NXDOMAIN counts as healthy (a resolver that answers "no such name" is answering). */
  readonly acceptNxdomain: boolean;
}

/** The defaults: the root's NS records over UDP, the question every recursive resolver can answer. */
export const DEFAULT_DNS_PROBE: DnsProbeSettings = {
  name: "",
  type: 2,
  transport: "udp",
  acceptNxdomain: false,
};

/** Query types known by name; any other type can be given by number. */
export const DNS_TYPES: Readonly<Record<string, number>> = {
  A: 1,
  NS: 2,
  CNAME: 5,
  SOA: 6,
  PTR: 12,
  MX: 15,
  TXT: 16,
  AAAA: 28,
  SRV: 33,
  ANY: 255,
};

const RCODES = ["NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED"];
const HEADER = 12;

/** A query type by name (case-insensitive) or number 1–65535; a string says why not. */
export function parseDnsType(value: string | number): number | string {
  if (typeof value === "number") {
    return Number.isInteger(value) && value >= 1 && value <= 65535 ? value : "a type number is 1 to 65535";
  }
  const known = DNS_TYPES[value.toUpperCase()];
  if (known !== undefined) return known;
  if (/^(TYPE)?[0-9]{1,5}$/i.test(value)) return parseDnsType(Number(value.replace(/^type/i, "")));
  return `unknown DNS type "${value}" (known: ${Object.keys(DNS_TYPES).join(", ")}, or a number)`;
}

/**
 * A name as the probe stores it (lower case, no trailing dot; "." is the root, ""), or a string saying why
 * it cannot be asked: labels of 1–63 letters, digits, '-' or '_', 253 characters at most.
 */
export function normalizeDnsName(value: string): { name: string } | string {
  const name = value === "." ? "" : value.endsWith(".") ? value.slice(0, -1) : value;
  if (name.length > 253) return "a DNS name is 253 characters at most";
  if (name === "") return { name };
  for (const label of name.split(".")) {
    if (label.length === 0) return `empty label in "${value}"`;
    if (label.length > 63) return `label "${label.slice(0, 20)}..." is longer than 63 characters`;
    if (!/^[A-Za-z0-9_-]+$/.test(label)) {
      return `label "${label}" has characters other than letters, digits, - and _`;
    }
  }
  return { name: name.toLowerCase() };
}

/** The question section of a query: the name in labels, then type and class IN. */
function question(name: string, type: number): Uint8Array {
  const labels = name === "" ? [] : name.split(".");
  let n = 1 + 4;
  for (const l of labels) n += 1 + l.length;
  const out = new Uint8Array(n);
  let at = 0;
  for (const l of labels) {
    out[at++] = l.length;
    for (let i = 0; i < l.length; i++) out[at++] = l.charCodeAt(i);
  }
  out[at++] = 0;
  out[at++] = type >>> 8;
  out[at++] = type & 0xff;
  out[at++] = 0;
  out[at] = 1; // class IN
  return out;
}

/** A query for `settings` with `id` (0–65535), framed for its transport (TCP: the length first). */
export function encodeDnsQuery(id: number, settings: DnsProbeSettings): Uint8Array {
  const q = question(settings.name, settings.type);
  const size = HEADER + q.byteLength;
  const off = settings.transport === "tcp" ? 2 : 0;
  const out = new Uint8Array(off + size);
  if (off === 2) {
    out[0] = size >>> 8;
    out[1] = size & 0xff;
  }
  out[off] = (id >>> 8) & 0xff;
  out[off + 1] = id & 0xff;
  out[off + 2] = 0x01; // RD: a recursive resolver answers from cache or recursion
  out[off + 5] = 1; // QDCOUNT = 1
  out.set(q, off + HEADER);
  return out;
}

/**
 * Whether `reply` (one DNS message, without a TCP length prefix) answers the query `id` for `settings`:
 * null when it does, else why not ("RCODE SERVFAIL", "ID mismatch", ...).
 */
export function checkDnsReply(reply: Uint8Array, id: number, settings: DnsProbeSettings): string | null {
  if (reply.byteLength < HEADER) return `reply of ${reply.byteLength} bytes is no DNS message`;
  if (((reply[0] << 8) | reply[1]) !== (id & 0xffff)) return "reply ID does not match the query";
  if ((reply[2] & 0x80) === 0) return "reply has no QR bit (a query, not a response)";
  const rcode = reply[3] & 0x0f;
  if (rcode !== 0 && !(rcode === 3 && settings.acceptNxdomain)) {
    return `RCODE ${RCODES[rcode] ?? rcode}`;
  }
  // The question must come back as asked: a reply to some other query with a colliding ID does not count.
  if (((reply[4] << 8) | reply[5]) !== 1) return "reply does not carry exactly one question";
  const q = question(settings.name, settings.type);
  if (reply.byteLength < HEADER + q.byteLength) return "reply question cut short";
  for (let i = 0; i < q.byteLength; i++) {
    const a = reply[HEADER + i];
    if ((a >= 65 && a <= 90 ? a | 0x20 : a) !== q[i]) return "reply question differs from the query's";
  }
  return null;
}

/**
 * The first whole message in TCP bytes received so far (`data` starts at a length prefix), or null while
 * it is incomplete.
 */
export function dnsTcpMessage(data: Uint8Array): Uint8Array | null {
  if (data.byteLength < 2) return null;
  const size = (data[0] << 8) | data[1];
  return data.byteLength < 2 + size ? null : data.subarray(2, 2 + size);
}

/** The query type's name for messages and the config writer ("NS", or the number). */
export function dnsTypeName(type: number): string {
  for (const [name, n] of Object.entries(DNS_TYPES)) if (n === type) return name;
  return String(type);
}
