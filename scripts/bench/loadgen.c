/*
 * loadgen.c — load generator for Ferry's relay benchmark (scripts/bench.sh). Loopback only.
 *
 *   loadgen freeport                      print a 127.0.0.1 port free for both UDP and TCP
 *   loadgen probe udp|tcp HOST:PORT [S]   exit 0 once one echo round trip through HOST:PORT works (S s max)
 *   loadgen udp     -a HOST:PORT [-f FLOWS] [-w INFLIGHT] [-s BYTES] [-d SECS] [-W WARMUP] [-o TIMEOUT_MS]
 *   loadgen tcprr   -a HOST:PORT [-c CONNS] [-w INFLIGHT] [-s BYTES] [-d SECS] [-W WARMUP]
 *   loadgen tcpbulk -a HOST:PORT [-b CHUNK] [-d SECS] [-W WARMUP]
 *
 * One thread, one epoll loop, always ends after WARMUP + SECS (plus at most one epoll tick).
 *
 * udp: FLOWS client sockets (each connected to the relay, i.e. one relay flow each), each keeping INFLIGHT
 *   datagrams outstanding. Each datagram carries {magic, flow, slot, seq, send time}; a reply counts only if
 *   it comes back on the same socket with the slot's current seq and the full length ("matched"); the slot
 *   is then re-armed with a new seq. A slot unanswered for TIMEOUT_MS is counted lost and re-armed, so
 *   loss never stalls a flow; a reply that arrives after its slot was re-armed counts as "stale". At the
 *   end it stops sending and waits (at most one timeout) for the replies in flight before closing.
 * tcprr: CONNS connections, each with INFLIGHT (default 1) BYTES-sized requests outstanding; the echoed
 *   stream is checked message by message (seq in order) and each reply's latency recorded.
 * tcpbulk: one connection; writes a known byte pattern as fast as the peer takes it (at most 4 MiB ahead
 *   of what came back), reads the echo, checks every byte, reports MB/s (10^6 bytes) echoed back.
 *
 * Counts, rates and latency percentiles cover only the SECS window after the WARMUP seconds.
 * Result: one line of key=value pairs on stdout (parsed by run.sh); a readable summary on stderr.
 * Latency histogram: 1 µs buckets up to 2 s, from clock_gettime(CLOCK_MONOTONIC).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "measure.h"

#define MAGIC 0xFE44A11Cu
#define BATCH 64
#define MAXDGRAM 65536

static void die(const char *what) {
  perror(what);
  exit(2);
}

static struct sockaddr_in parse_addr(const char *s) {
  struct sockaddr_in a;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  char host[64];
  const char *colon = strrchr(s, ':');
  if (!colon || (size_t)(colon - s) >= sizeof host) {
    fprintf(stderr, "bad address %s (want HOST:PORT)\n", s);
    exit(2);
  }
  memcpy(host, s, (size_t)(colon - s));
  host[colon - s] = 0;
  if (inet_pton(AF_INET, host, &a.sin_addr) != 1) {
    fprintf(stderr, "bad host %s\n", host);
    exit(2);
  }
  a.sin_port = htons((uint16_t)atoi(colon + 1));
  return a;
}

/* ---- options -------------------------------------------------------------------------------- */

struct opts {
  struct sockaddr_in addr;
  int have_addr;
  int flows, inflight, size, timeout_ms, chunk;
  double secs, warmup;
};

static struct opts parse_opts(int argc, char **argv, int conns_default) {
  struct opts o = {.flows = conns_default, .inflight = 0, .size = 64, .timeout_ms = 100, .chunk = 65536,
                   .secs = 10, .warmup = 1};
  int c;
  while ((c = getopt(argc, argv, "a:f:c:w:s:d:W:o:b:")) != -1) {
    switch (c) {
      case 'a': o.addr = parse_addr(optarg); o.have_addr = 1; break;
      case 'f': case 'c': o.flows = atoi(optarg); break;
      case 'w': o.inflight = atoi(optarg); break;
      case 's': o.size = atoi(optarg); break;
      case 'd': o.secs = atof(optarg); break;
      case 'W': o.warmup = atof(optarg); break;
      case 'o': o.timeout_ms = atoi(optarg); break;
      case 'b': o.chunk = atoi(optarg); break;
      default: fprintf(stderr, "bad option\n"); exit(2);
    }
  }
  if (!o.have_addr) { fprintf(stderr, "-a HOST:PORT is required\n"); exit(2); }
  if (o.flows < 1 || o.flows > 4096) { fprintf(stderr, "flows/conns must be 1..4096\n"); exit(2); }
  if (o.secs <= 0 || o.secs > 3600 || o.warmup < 0 || o.warmup > 60) { fprintf(stderr, "bad -d/-W\n"); exit(2); }
  if (o.chunk < 1024 || o.chunk > (1 << 20)) { fprintf(stderr, "-b must be 1 KiB..1 MiB\n"); exit(2); }
  return o;
}

static void set_bufs(int fd, int bytes) {
  setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &bytes, sizeof bytes);
  setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &bytes, sizeof bytes);
}

/* ---- udp ------------------------------------------------------------------------------------ */

struct dg_hdr {
  uint32_t magic;
  uint16_t flow;
  uint16_t slot;
  uint64_t seq;
  uint64_t sent_ns;
};

struct uflow {
  int fd;
  uint64_t next_seq;
  uint64_t *slot_seq;     /* seq currently outstanding in each slot */
  uint64_t *slot_sent;    /* its send time (ns); 0 = slot idle */
  int nq;                 /* datagrams queued for the next sendmmsg */
  uint16_t qslot[BATCH];
};

static unsigned char fill_byte(uint64_t seq) { return (unsigned char)(seq * 131u + 7u); }

static int run_udp(struct opts o) {
  if (o.inflight <= 0) o.inflight = 8;
  if (o.size < (int)sizeof(struct dg_hdr) || o.size > 65000) {
    fprintf(stderr, "-s must be %zu..65000 for udp\n", sizeof(struct dg_hdr));
    return 2;
  }
  if (o.inflight > BATCH) { fprintf(stderr, "-w must be <= %d\n", BATCH); return 2; }
  int ep = epoll_create1(0);
  struct uflow *fl = calloc((size_t)o.flows, sizeof *fl);
  for (int i = 0; i < o.flows; i++) {
    fl[i].fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
    if (fl[i].fd < 0) die("socket");
    set_bufs(fl[i].fd, 1 << 20);
    struct sockaddr_in any = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (bind(fl[i].fd, (struct sockaddr *)&any, sizeof any) < 0) die("bind");
    if (connect(fl[i].fd, (struct sockaddr *)&o.addr, sizeof o.addr) < 0) die("connect");
    fl[i].slot_seq = calloc((size_t)o.inflight, sizeof(uint64_t));
    fl[i].slot_sent = calloc((size_t)o.inflight, sizeof(uint64_t));
    struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)i};
    epoll_ctl(ep, EPOLL_CTL_ADD, fl[i].fd, &ev);
  }
  /* send buffers: one per queued datagram; receive buffers: one batch */
  unsigned char *txbuf = calloc(BATCH, (size_t)o.size);
  unsigned char *rxbuf = calloc(BATCH, MAXDGRAM);
  struct iovec txiov[BATCH], rxiov[BATCH];
  struct mmsghdr txm[BATCH], rxm[BATCH];
  memset(txm, 0, sizeof txm);
  memset(rxm, 0, sizeof rxm);
  for (int i = 0; i < BATCH; i++) {
    txiov[i].iov_base = txbuf + (size_t)i * (size_t)o.size;
    txiov[i].iov_len = (size_t)o.size;
    txm[i].msg_hdr.msg_iov = &txiov[i];
    txm[i].msg_hdr.msg_iovlen = 1;
    rxiov[i].iov_base = rxbuf + (size_t)i * MAXDGRAM;
    rxiov[i].iov_len = MAXDGRAM;
    rxm[i].msg_hdr.msg_iov = &rxiov[i];
    rxm[i].msg_hdr.msg_iovlen = 1;
  }

  uint64_t t0 = now_ns();
  uint64_t t_meas = t0 + (uint64_t)(o.warmup * 1e9);
  uint64_t t_end = t_meas + (uint64_t)(o.secs * 1e9);
  uint64_t timeout_ns = (uint64_t)o.timeout_ms * 1000000ull;
  uint64_t sent = 0, matched = 0, lost = 0, stale = 0, bad = 0, send_err = 0, recv_err = 0;
  int measuring = 0;

  /* queue a fresh datagram in `slot` of flow f; flushed by flush_flow */
#define ARM(F, SLOT, NOW)                                                                   \
  do {                                                                                      \
    struct uflow *f_ = (F);                                                                 \
    int s_ = (SLOT);                                                                        \
    f_->slot_seq[s_] = ++f_->next_seq;                                                      \
    f_->slot_sent[s_] = (NOW);                                                              \
    f_->qslot[f_->nq++] = (uint16_t)s_;                                                     \
  } while (0)

  int nflows = o.flows, size = o.size;
  /* build and send the queued datagrams of one flow */
#define FLUSH(F, FI)                                                                        \
  do {                                                                                      \
    struct uflow *f_ = (F);                                                                 \
    if (f_->nq == 0) break;                                                                 \
    uint64_t tnow_ = now_ns();                                                              \
    for (int q_ = 0; q_ < f_->nq; q_++) {                                                   \
      unsigned char *p_ = txbuf + (size_t)q_ * (size_t)size;                                \
      int s_ = f_->qslot[q_];                                                               \
      struct dg_hdr h_ = {MAGIC, (uint16_t)(FI), (uint16_t)s_, f_->slot_seq[s_], tnow_};    \
      f_->slot_sent[s_] = tnow_;                                                            \
      memcpy(p_, &h_, sizeof h_);                                                           \
      p_[size - 1] = fill_byte(h_.seq);                                                     \
    }                                                                                       \
    int off_ = 0;                                                                           \
    while (off_ < f_->nq) {                                                                 \
      int r_ = sendmmsg(f_->fd, txm + off_, (unsigned)(f_->nq - off_), 0);                  \
      if (r_ <= 0) { send_err++; break; } /* unsent slots simply time out (counted lost) */ \
      off_ += r_;                                                                           \
    }                                                                                       \
    if (measuring) sent += (uint64_t)f_->nq;                                                \
    f_->nq = 0;                                                                             \
  } while (0)

  for (int i = 0; i < nflows; i++) {
    for (int s = 0; s < o.inflight; s++) ARM(&fl[i], s, t0);
    FLUSH(&fl[i], i);
  }
  uint64_t next_scan = t0 + 10000000ull;
  /* At t_end: stop sending and wait (at most one timeout) for the replies still in flight, so that no
   * reply reaches a closed socket (the relay would get ICMP port unreachable). Not counted. */
  int draining = 0;
  uint64_t outstanding = (uint64_t)nflows * (uint64_t)o.inflight;
  struct epoll_event evs[256];
  for (;;) {
    int n = epoll_wait(ep, evs, 256, 1);
    uint64_t now = now_ns();
    if (now >= t_end && !draining) draining = 1, measuring = 0;
    if (draining && (outstanding == 0 || now >= t_end + timeout_ns + 50000000ull)) break;
    if (!draining && !measuring && now >= t_meas) measuring = 1;
    for (int e = 0; e < n; e++) {
      int fi = (int)evs[e].data.u32;
      struct uflow *f = &fl[fi];
      for (int round = 0; round < 4; round++) {
        int got = recvmmsg(f->fd, rxm, BATCH, MSG_DONTWAIT, NULL);
        if (got < 0) {
          if (errno != EAGAIN && errno != EWOULDBLOCK) recv_err++; /* e.g. ECONNREFUSED: relay gone */
          break;
        }
        uint64_t trx = now_ns();
        for (int m = 0; m < got; m++) {
          unsigned char *p = rxbuf + (size_t)m * MAXDGRAM;
          struct dg_hdr h;
          if (rxm[m].msg_len < sizeof h) { bad++; continue; }
          memcpy(&h, p, sizeof h);
          if (h.magic != MAGIC || h.flow != fi || h.slot >= o.inflight || rxm[m].msg_len != (unsigned)size ||
              p[size - 1] != fill_byte(h.seq)) {
            bad++;
            continue;
          }
          if (f->slot_sent[h.slot] == 0 || f->slot_seq[h.slot] != h.seq) { stale++; continue; }
          if (measuring) {
            matched++;
            hist_add(trx - h.sent_ns);
          }
          if (draining) f->slot_sent[h.slot] = 0, outstanding--;
          else ARM(f, h.slot, trx);
        }
        FLUSH(f, fi);
        if (got < BATCH) break;
      }
    }
    if (now >= next_scan) {
      now = now_ns(); /* slots armed above carry later times than the `now` read before them */
      next_scan = now + 10000000ull;
      for (int i = 0; i < nflows; i++) {
        for (int s = 0; s < o.inflight; s++) {
          if (fl[i].slot_sent[s] && now > fl[i].slot_sent[s] && now - fl[i].slot_sent[s] > timeout_ns) {
            if (draining) {
              fl[i].slot_sent[s] = 0;
              outstanding--;
              continue;
            }
            if (measuring) lost++;
            ARM(&fl[i], s, now);
          }
        }
        FLUSH(&fl[i], i);
      }
    }
  }
  double secs = o.secs;
  printf("rtps=%.0f p50_us=%.0f p99_us=%.0f p999_us=%.0f sent=%llu matched=%llu lost=%llu stale=%llu bad=%llu "
         "send_err=%llu recv_err=%llu cpu_s=%.2f\n",
         (double)matched / secs, hist_pct(0.50), hist_pct(0.99), hist_pct(0.999), (unsigned long long)sent,
         (unsigned long long)matched, (unsigned long long)lost, (unsigned long long)stale,
         (unsigned long long)bad, (unsigned long long)send_err, (unsigned long long)recv_err, cpu_s());
  fprintf(stderr, "udp %d flows x %d in flight, %d B, %.1f s: %.0f rt/s, p50 %.0f us, p99 %.0f us, p99.9 %.0f us, "
                  "lost %llu of %llu sent, stale %llu, bad %llu\n",
          o.flows, o.inflight, o.size, secs, (double)matched / secs, hist_pct(0.5), hist_pct(0.99),
          hist_pct(0.999), (unsigned long long)lost, (unsigned long long)sent, (unsigned long long)stale,
          (unsigned long long)bad);
  return matched > 0 ? 0 : 1;
}

/* ---- tcp request/response -------------------------------------------------------------------- */

struct tconn {
  int fd, alive;
  uint64_t tx_seq, rx_seq;
  int have;               /* bytes of the current reply read so far */
  unsigned char *msg;     /* the reply being assembled */
};

static int tcp_connect(struct sockaddr_in a) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) die("socket");
  if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0) { close(fd); return -1; }
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) < 0) die("fcntl");
  return fd;
}

/* write all of buf on a nonblocking socket (tiny messages: a full send buffer would be a bug here) */
static int write_all(int fd, const unsigned char *buf, size_t len) {
  size_t off = 0;
  while (off < len) {
    ssize_t w = write(fd, buf + off, len - off);
    if (w < 0) {
      if (errno == EAGAIN || errno == EINTR) {
        struct pollfd p = {.fd = fd, .events = POLLOUT};
        poll(&p, 1, 10);
        continue;
      }
      return -1;
    }
    off += (size_t)w;
  }
  return 0;
}

static int run_tcprr(struct opts o) {
  if (o.inflight <= 0) o.inflight = 1;
  if (o.size < 16 || o.size > 65536) { fprintf(stderr, "-s must be 16..65536 for tcprr\n"); return 2; }
  int ep = epoll_create1(0);
  struct tconn *cs = calloc((size_t)o.flows, sizeof *cs);
  unsigned char *req = calloc(1, (size_t)o.size);
  unsigned char *rbuf = malloc(1 << 16);
  uint64_t t0 = now_ns();
  uint64_t t_meas = t0 + (uint64_t)(o.warmup * 1e9);
  uint64_t t_end = t_meas + (uint64_t)(o.secs * 1e9);
  uint64_t matched = 0, bad = 0, errors = 0;
  int measuring = 0, alive = 0;
  for (int i = 0; i < o.flows; i++) {
    cs[i].fd = tcp_connect(o.addr);
    if (cs[i].fd < 0) { errors++; continue; }
    cs[i].alive = 1;
    alive++;
    cs[i].msg = calloc(1, (size_t)o.size);
    struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)i};
    epoll_ctl(ep, EPOLL_CTL_ADD, cs[i].fd, &ev);
  }
  /* request: {seq u64, sent_ns u64, filler}; the echo must come back byte for byte, in order */
#define SEND_REQ(C)                                                                     \
  do {                                                                                  \
    uint64_t h_[2] = {(C)->tx_seq++, now_ns()};                                         \
    memcpy(req, h_, sizeof h_);                                                         \
    req[o.size - 1] = fill_byte(h_[0]);                                                 \
    if (write_all((C)->fd, req, (size_t)o.size) < 0) {                                  \
      errors++;                                                                         \
      (C)->alive = 0;                                                                   \
      alive--;                                                                          \
      epoll_ctl(ep, EPOLL_CTL_DEL, (C)->fd, NULL);                                      \
    }                                                                                   \
  } while (0)
  for (int i = 0; i < o.flows; i++)
    for (int k = 0; k < o.inflight && cs[i].alive; k++) SEND_REQ(&cs[i]);
  struct epoll_event evs[256];
  while (alive > 0) {
    int n = epoll_wait(ep, evs, 256, 1);
    uint64_t now = now_ns();
    if (now >= t_end) break;
    if (!measuring && now >= t_meas) measuring = 1;
    for (int e = 0; e < n; e++) {
      struct tconn *c = &cs[evs[e].data.u32];
      if (!c->alive) continue;
      ssize_t r = read(c->fd, rbuf, 1 << 16);
      if (r <= 0) {
        if (r < 0 && (errno == EAGAIN || errno == EINTR)) continue;
        errors++;
        c->alive = 0;
        alive--;
        epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
        continue;
      }
      uint64_t trx = now_ns();
      ssize_t off = 0;
      while (off < r) {
        ssize_t take = o.size - c->have;
        if (take > r - off) take = r - off;
        memcpy(c->msg + c->have, rbuf + off, (size_t)take);
        c->have += (int)take;
        off += take;
        if (c->have < o.size) break;
        c->have = 0;
        uint64_t h[2];
        memcpy(h, c->msg, sizeof h);
        if (h[0] != c->rx_seq || c->msg[o.size - 1] != fill_byte(h[0])) {
          bad++;
          c->rx_seq = h[0];
        }
        c->rx_seq++;
        if (measuring) {
          matched++;
          hist_add(trx - h[1]);
        }
        SEND_REQ(c);
        if (!c->alive) break;
      }
    }
  }
  printf("rtps=%.0f p50_us=%.0f p99_us=%.0f p999_us=%.0f matched=%llu bad=%llu errors=%llu cpu_s=%.2f\n",
         (double)matched / o.secs, hist_pct(0.50), hist_pct(0.99), hist_pct(0.999), (unsigned long long)matched,
         (unsigned long long)bad, (unsigned long long)errors, cpu_s());
  fprintf(stderr, "tcp rr %d conns x %d in flight, %d B, %.1f s: %.0f rt/s, p50 %.0f us, p99 %.0f us, "
                  "p99.9 %.0f us, bad %llu, errors %llu\n",
          o.flows, o.inflight, o.size, o.secs, (double)matched / o.secs, hist_pct(0.5), hist_pct(0.99),
          hist_pct(0.999), (unsigned long long)bad, (unsigned long long)errors);
  return matched > 0 && errors == 0 ? 0 : 1;
}

/* ---- tcp bulk ------------------------------------------------------------------------------- */

#define PAT 251 /* pattern period: prime, so it never lines up with chunk or buffer sizes */

static int run_tcpbulk(struct opts o) {
  unsigned char *pat = malloc((size_t)o.chunk + PAT);
  for (int i = 0; i < o.chunk + PAT; i++) pat[i] = (unsigned char)((i % PAT) * 7 + 3);
  unsigned char *rbuf = malloc((size_t)o.chunk);
  int fd = tcp_connect(o.addr);
  if (fd < 0) { fprintf(stderr, "connect failed\n"); return 1; }
  int ep = epoll_create1(0);
  struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.u32 = 0};
  epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
  const uint64_t max_ahead = 4u << 20;
  uint64_t tx = 0, rx = 0, rx_meas = 0, bad = 0, errors = 0;
  uint64_t t0 = now_ns();
  uint64_t t_meas = t0 + (uint64_t)(o.warmup * 1e9);
  uint64_t t_end = t_meas + (uint64_t)(o.secs * 1e9);
  int measuring = 0, want_out = 1, done = 0;
  while (!done) {
    struct epoll_event e;
    int n = epoll_wait(ep, &e, 1, 1);
    uint64_t now = now_ns();
    if (now >= t_end) break;
    if (!measuring && now >= t_meas) measuring = 1;
    if (n <= 0) continue;
    if (e.events & (EPOLLIN | EPOLLERR | EPOLLHUP)) {
      for (int k = 0; k < 8; k++) {
        ssize_t r = read(fd, rbuf, (size_t)o.chunk);
        if (r < 0 && (errno == EAGAIN || errno == EINTR)) break;
        if (r <= 0) { errors++; done = 1; break; }
        if (memcmp(rbuf, pat + rx % PAT, (size_t)r) != 0) bad++;
        rx += (uint64_t)r;
        if (measuring) rx_meas += (uint64_t)r;
        if (r < o.chunk) break;
      }
    }
    if ((e.events & EPOLLOUT) && tx - rx < max_ahead) {
      ssize_t w = write(fd, pat + tx % PAT, (size_t)o.chunk);
      if (w > 0) tx += (uint64_t)w;
      else if (w < 0 && errno != EAGAIN && errno != EINTR) { errors++; done = 1; }
    }
    int want = tx - rx < max_ahead;
    if (want != want_out) {
      want_out = want;
      ev.events = EPOLLIN | (want ? EPOLLOUT : 0);
      epoll_ctl(ep, EPOLL_CTL_MOD, fd, &ev);
    }
  }
  double mbps = (double)rx_meas / 1e6 / o.secs;
  printf("mbps=%.1f rx_bytes=%llu bad=%llu errors=%llu cpu_s=%.2f\n", mbps, (unsigned long long)rx_meas,
         (unsigned long long)bad, (unsigned long long)errors, cpu_s());
  fprintf(stderr, "tcp bulk 1 conn, %d B writes, %.1f s: %.1f MB/s echoed back, bad chunks %llu, errors %llu\n",
          o.chunk, o.secs, mbps, (unsigned long long)bad, (unsigned long long)errors);
  return rx_meas > 0 && bad == 0 && errors == 0 ? 0 : 1;
}

/* ---- freeport, probe ------------------------------------------------------------------------- */

static int run_freeport(void) {
  for (int tries = 0; tries < 100; tries++) {
    int u = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    if (bind(u, (struct sockaddr *)&a, sizeof a) < 0 || getsockname(u, (struct sockaddr *)&a, &len) < 0) die("bind");
    int t = socket(AF_INET, SOCK_STREAM, 0);
    int ok = bind(t, (struct sockaddr *)&a, sizeof a) == 0;
    close(t);
    close(u);
    if (ok) {
      printf("%d\n", ntohs(a.sin_port));
      return 0;
    }
  }
  return 1;
}

static int run_probe(int argc, char **argv) {
  if (argc < 4) { fprintf(stderr, "probe udp|tcp HOST:PORT [SECS]\n"); return 2; }
  int udp = strcmp(argv[2], "udp") == 0;
  struct sockaddr_in a = parse_addr(argv[3]);
  double limit = argc > 4 ? atof(argv[4]) : 30;
  uint64_t deadline = now_ns() + (uint64_t)(limit * 1e9);
  const char msg[] = "ferry-bench-probe";
  char buf[64];
  while (now_ns() < deadline) {
    int fd = socket(AF_INET, udp ? SOCK_DGRAM : SOCK_STREAM, 0);
    struct timeval tv = {.tv_sec = 0, .tv_usec = 200000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) == 0 && write(fd, msg, sizeof msg) == (ssize_t)sizeof msg) {
      size_t have = 0;
      while (have < sizeof msg) {
        ssize_t r = read(fd, buf + have, sizeof buf - have);
        if (r <= 0) break;
        have += (size_t)r;
      }
      if (have == sizeof msg && memcmp(buf, msg, sizeof msg) == 0) {
        close(fd);
        return 0;
      }
    }
    close(fd);
    usleep(100000);
  }
  fprintf(stderr, "probe: no %s echo through %s within %.0f s\n", argv[2], argv[3], limit);
  return 1;
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: loadgen freeport | probe udp|tcp HOST:PORT [S] | udp|tcprr|tcpbulk -a HOST:PORT ...\n");
    return 2;
  }
  const char *mode = argv[1];
  if (strcmp(mode, "freeport") == 0) return run_freeport();
  if (strcmp(mode, "probe") == 0) return run_probe(argc, argv);
  hist = calloc(HIST_US, sizeof *hist);
  if (strcmp(mode, "udp") == 0) return run_udp(parse_opts(argc - 1, argv + 1, 16));
  if (strcmp(mode, "tcprr") == 0) return run_tcprr(parse_opts(argc - 1, argv + 1, 16));
  if (strcmp(mode, "tcpbulk") == 0) return run_tcpbulk(parse_opts(argc - 1, argv + 1, 1));
  fprintf(stderr, "unknown mode %s\n", mode);
  return 2;
}
