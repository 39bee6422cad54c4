/**
 * The configuration Ferry runs when started without a config file, and the reference of every key.
 *
 * Both are rendered from the declaration (`config/schema.ts`) with each key's doc line beside it, so the
 * built-in config that `ferry print-default-config` prints doubles as an annotated example, and the
 * README's reference block is the declaration itself (a test checks the README against it).
 *
 * @module
 */

import { annotatedToml } from "./config/annotate.ts";

const HEADER =
  `# Ferry configuration (built-in default). Durations: "500ms", "30s", "5m", "1h", "1m30s" or integer ms.
# An admin API on loopback; a UDP listener balancing over two local ports (start any UDP echo server on
# 7001 and 7002); and a TCP listener relaying to this process's own admin API, so
# curl http://127.0.0.1:7080/api/v1/status shows relaying with nothing else installed.
`;

/** The built-in config in file shape. */
export const DEFAULT_CONFIG_RAW = {
  relay: { grace_period: "30s", workers: 1, log_level: "info", log_format: "auto", datapath: "auto" },
  admin: { listen: "127.0.0.1:9901", token: "" },
  listeners: [
    {
      name: "echo-demo",
      protocol: "udp",
      address: "127.0.0.1:7000",
      cluster: "demo",
      max_flows: 0,
      max_datagram_size: 1500,
      sources: { reject: ["port0", "unspecified", "multicast", "broadcast"], deny: [], allow: [] },
    },
    { name: "admin-via-tcp", protocol: "tcp", address: "127.0.0.1:7080", cluster: "admin" },
  ],
  clusters: {
    admin: {
      balancer: "round_robin",
      connect_timeout: "5s",
      idle_timeout: "10m",
      backends: [{ address: "127.0.0.1:9901" }],
    },
    demo: {
      balancer: "maglev",
      affinity: "ip_port",
      requests: 0,
      responses: 0,
      front_timeout: "60s",
      back_timeout: "60s",
      proxy_protocol: "off",
      hash_seed: 0,
      fail_open: true,
      maglev_table_size: 65537,
      backends: [
        { address: "127.0.0.1:7001", weight: 1, state: "up" },
        { address: "127.0.0.1:7002", weight: 1, state: "up" },
      ],
    },
  },
};

/** The built-in config: annotated TOML, embedded in the binary so a bare `ferry` does something visible. */
export const DEFAULT_CONFIG_TOML: string = HEADER + "\n" +
  annotatedToml(DEFAULT_CONFIG_RAW, { allKeys: false });

/** The smallest config that names every section, from which the reference is rendered. */
const REFERENCE_RAW = {
  listeners: [{ name: "game", address: "0.0.0.0:7000", cluster: "game" }],
  clusters: { game: { backends: [{ address: "10.0.0.5:7000" }] } },
};

/**
 * Every key with its default and doc line (keys with no default, such as `recv_buffer`, commented with an
 * example): the README's configuration reference.
 */
export const REFERENCE_TOML: string = annotatedToml(REFERENCE_RAW, { allKeys: true });
