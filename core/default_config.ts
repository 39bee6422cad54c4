/**
 * The configuration Ferry runs when started without a config file.
 *
 * It is embedded in the binary so a bare `ferry` does something visible at once, and it is commented key by
 * key so that `ferry` printing it doubles as an annotated example to copy and edit. Every key is spelled out
 * with its default (except where noted), so the example also documents the defaults.
 *
 * @module
 */

/**
 * The built-in config: an admin API on loopback, a TCP listener that relays to that admin API (so
 * `curl http://127.0.0.1:7080/api/v1/status` shows relaying with nothing else installed), and a UDP
 * listener balancing over two local ports where any UDP echo server can be started.
 */
export const DEFAULT_CONFIG_TOML: string =
  `# Ferry configuration (built-in default). Durations: "500ms", "30s", "5m", "1h", "1m30s" or integer ms.

[relay]
grace_period = "30s"        # on SIGTERM/SIGINT: stop admitting, let flows run this long, then exit
workers = 1                 # relay workers sharing each port (SO_REUSEPORT)
log_level = "info"          # debug, info, warning or error
log_format = "auto"         # "auto" (text on a terminal, JSON lines otherwise), "text" or "json"
datapath = "auto"           # UDP data path: "native" (libc, batched syscalls), "runtime" or "auto"

[admin]
listen = "127.0.0.1:9901"   # admin HTTP API; keep it on loopback unless a token is set
token = ""                  # bearer token required by the admin API; "" = no token (loopback only!)

# One [[listeners]] block per listening socket.
[[listeners]]
name = "echo-demo"          # unique name, [a-z0-9_-]+; used in logs, metrics and the admin API
protocol = "udp"            # "udp" or "tcp"
address = "127.0.0.1:7000"  # ip:port to listen on; IPv6 as "[::1]:7000"
cluster = "demo"            # the [clusters.NAME] that receives this listener's traffic
max_flows = 0               # most live flows (udp) or connections (tcp); 0 = automatic limit
max_datagram_size = 1500    # larger datagrams are dropped (udp only, 1..65507)

[listeners.sources]         # which clients are accepted: reject, then deny, then allow
reject = ["port0", "unspecified", "multicast", "broadcast"]  # refused classes (also: "loopback")
deny = []                   # CIDR blocks refused, e.g. ["10.0.0.0/8"]
allow = []                  # when non-empty, only these CIDR blocks are accepted

# A TCP listener relaying to this process's own admin API: try curl http://127.0.0.1:7080/api/v1/status
[[listeners]]
name = "admin-via-tcp"
protocol = "tcp"
address = "127.0.0.1:7080"
cluster = "admin"

# One [clusters.NAME] table per group of backends.
[clusters.admin]
balancer = "round_robin"
connect_timeout = "5s"      # TCP: how long a backend connect may take
idle_timeout = "10m"        # TCP: close a connection idle this long both ways; 0 = never
proxy_protocol = "off"      # TCP: "off", or any other value to send a PROXY header at connect
proxy_protocol_version = 2  # TCP: PROXY header version, 1 (text) or 2 (binary); UDP always uses 2
backends = [{ address = "127.0.0.1:9901" }]

[clusters.demo]
balancer = "maglev"         # round_robin, random, least_flows, power_of_two, rendezvous or maglev
affinity = "ip_port"        # "ip_port": each client port picks anew; "ip": one backend per client IP
requests = 0                # close a flow after this many client datagrams; 0 = unlimited
responses = 0               # close a flow once each client datagram had this many replies; 0 = off (DNS: 1)
front_timeout = "60s"       # idle time allowed since the last client datagram; 0 = none
back_timeout = "60s"        # idle time allowed since the last backend reply; 0 = none (not both 0)
proxy_protocol = "off"      # PROXY v2 header to backends: "off", "first" datagram or "every" datagram
hash_seed = 0               # seed of hash balancers; equal seeds make every instance choose alike
fail_open = true            # with no backend up: true = use them anyway, false = drop
maglev_table_size = 65537   # maglev lookup table size; a prime, 3..1000003

[[clusters.demo.backends]]
address = "127.0.0.1:7001"  # backend ip:port
weight = 1                  # relative share of new flows, 1..1000
state = "up"                # "up", "down" (no traffic) or "draining" (no new flows)

[[clusters.demo.backends]]
address = "127.0.0.1:7002"
weight = 1
state = "up"
`;
