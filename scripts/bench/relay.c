/*
 * relay.c — plain C epoll relay, the ceiling row of Ferry's benchmark (scripts/bench.sh). Loopback only.
 *
 *   relay udp|tcp LISTEN_PORT BACKEND_PORT [MAX_SECONDS]
 *
 * Listens on 127.0.0.1:LISTEN_PORT and relays to 127.0.0.1:BACKEND_PORT. No config, no balancing, no
 * flow expiry: just the data path a relay cannot do without.
 * udp: recvmmsg (batches of 64) on the listener; one connected upstream socket per client address (an
 *   open-addressing table keyed by ip:port), each flow's datagrams of a batch sent on it with one sendmmsg;
 *   replies read with recvmmsg on the upstream sockets into one batch, sent back on the listener with one
 *   sendmmsg per epoll round (or per 64), each addressed to its client.
 * tcp: accept, a blocking connect to the backend (loopback: immediate), then both sockets nonblocking;
 *   each direction has one 256 KiB buffer; when the receiving side does not take the bytes, the sending
 *   side stops being read until they are written (backpressure). EOF or error on either side closes both.
 * One thread, one level-triggered epoll loop. Exits after MAX_SECONDS (default 900) or on SIGTERM/SIGINT.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define BATCH 64
#define DGRAM 65536
#define MAXFD 65536
#define TABLE 131072 /* flow table slots (power of two) */
#define TCPBUF (256 * 1024)

static int ep;
static struct sockaddr_in backend;
static volatile sig_atomic_t stop;
static void on_signal(int sig) { (void)sig; stop = 1; }

static void die(const char *what) {
  perror(what);
  exit(2);
}

static void watch(int fd, unsigned events, int op) {
  struct epoll_event ev = {.events = events, .data.fd = fd};
  epoll_ctl(ep, op, fd, &ev);
}

static int listen_on(int type, int port) {
  int fd = socket(AF_INET, type | SOCK_NONBLOCK, 0);
  if (fd < 0) die("socket");
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (type == SOCK_DGRAM) {
    int sz = 4 << 20;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof sz);
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof sz);
  }
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((unsigned short)port),
                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  if (bind(fd, (struct sockaddr *)&a, sizeof a) < 0) die("bind");
  if (type == SOCK_STREAM && listen(fd, 1024) < 0) die("listen");
  watch(fd, EPOLLIN, EPOLL_CTL_ADD);
  return fd;
}

/* ---- udp ------------------------------------------------------------------------------------ */

struct flow {
  uint64_t key; /* ip << 16 | port, 0 = empty slot */
  int fd;
  struct sockaddr_in client;
};

static struct flow table[TABLE];
static struct flow *by_fd[MAXFD];

static struct flow *flow_for(const struct sockaddr_in *from) {
  uint64_t key = ((uint64_t)from->sin_addr.s_addr << 16 | from->sin_port) + 1;
  uint64_t h = key * 0x9E3779B97F4A7C15ull;
  for (uint64_t i = h >> 47;; i = (i + 1) & (TABLE - 1)) {
    struct flow *f = &table[i];
    if (f->key == key) return f;
    if (f->key == 0) {
      int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
      if (fd < 0 || fd >= MAXFD) { if (fd >= 0) close(fd); return NULL; }
      if (connect(fd, (struct sockaddr *)&backend, sizeof backend) < 0) { close(fd); return NULL; }
      f->key = key;
      f->fd = fd;
      f->client = *from;
      by_fd[fd] = f;
      watch(fd, EPOLLIN, EPOLL_CTL_ADD);
      return f;
    }
  }
}

/* replies waiting to go out on the listener: one sendmmsg per epoll round (or per full batch) */
static unsigned char tx_bufs[BATCH][DGRAM];
static struct iovec tx_iov[BATCH];
static struct mmsghdr tx_m[BATCH];
static int tx_n, lfd_udp;

static void tx_flush(void) {
  int off = 0;
  while (off < tx_n) {
    int s = sendmmsg(lfd_udp, tx_m + off, (unsigned)(tx_n - off), 0);
    if (s <= 0) break; /* dropped: the client times it out */
    off += s;
  }
  tx_n = 0;
}

/* read the replies waiting on one flow's upstream socket into the listener's send batch */
static void on_upstream(struct flow *f) {
  for (int round = 0; round < 4; round++) {
    if (tx_n == BATCH) tx_flush();
    int room = BATCH - tx_n;
    for (int i = tx_n; i < BATCH; i++) { /* no source address wanted: the flow tells the client */
      tx_iov[i].iov_len = DGRAM;
      tx_m[i].msg_hdr.msg_name = NULL;
      tx_m[i].msg_hdr.msg_namelen = 0;
    }
    int got = recvmmsg(f->fd, tx_m + tx_n, (unsigned)room, MSG_DONTWAIT, NULL);
    if (got <= 0) return;
    for (int i = tx_n; i < tx_n + got; i++) {
      tx_iov[i].iov_len = tx_m[i].msg_len;
      tx_m[i].msg_hdr.msg_name = &f->client;
      tx_m[i].msg_hdr.msg_namelen = sizeof f->client;
    }
    tx_n += got;
    if (got < room) return;
  }
}

static int run_udp(int port) {
  int lfd = listen_on(SOCK_DGRAM, port);
  lfd_udp = lfd;
  static unsigned char bufs[BATCH][DGRAM];
  struct iovec iov[BATCH];
  struct sockaddr_in names[BATCH];
  struct mmsghdr m[BATCH], out[BATCH];
  struct flow *to[BATCH];
  memset(m, 0, sizeof m);
  memset(out, 0, sizeof out);
  memset(tx_m, 0, sizeof tx_m);
  for (int i = 0; i < BATCH; i++) {
    iov[i].iov_base = bufs[i];
    m[i].msg_hdr.msg_iov = &iov[i];
    m[i].msg_hdr.msg_iovlen = 1;
    m[i].msg_hdr.msg_name = &names[i];
    tx_iov[i].iov_base = tx_bufs[i];
    tx_m[i].msg_hdr.msg_iov = &tx_iov[i];
    tx_m[i].msg_hdr.msg_iovlen = 1;
  }
  struct epoll_event evs[256];
  while (!stop) {
    int n = epoll_wait(ep, evs, 256, 200);
    for (int e = 0; e < n; e++) {
      int fd = evs[e].data.fd;
      if (fd != lfd) {
        if (by_fd[fd]) on_upstream(by_fd[fd]);
        continue;
      }
      /* client -> backend: each flow's datagrams of the batch in one sendmmsg on its upstream socket */
      for (int round = 0; round < 4; round++) {
        for (int i = 0; i < BATCH; i++) {
          iov[i].iov_len = DGRAM;
          m[i].msg_hdr.msg_namelen = sizeof names[i];
        }
        int got = recvmmsg(lfd, m, BATCH, MSG_DONTWAIT, NULL);
        if (got <= 0) break;
        for (int i = 0; i < got; i++) {
          to[i] = flow_for(&names[i]);
          iov[i].iov_len = m[i].msg_len;
        }
        for (int i = 0; i < got; i++) {
          struct flow *f = to[i];
          if (!f) continue;
          int k = 0;
          for (int j = i; j < got; j++) {
            if (to[j] != f) continue;
            out[k].msg_hdr.msg_iov = &iov[j];
            out[k].msg_hdr.msg_iovlen = 1;
            k++;
            to[j] = NULL;
          }
          int off = 0;
          while (off < k) {
            int s = sendmmsg(f->fd, out + off, (unsigned)(k - off), MSG_DONTWAIT);
            if (s <= 0) break;
            off += s;
          }
        }
        if (got < BATCH) break;
      }
    }
    tx_flush();
  }
  return 0;
}

/* ---- tcp ------------------------------------------------------------------------------------ */

struct side {
  int fd;
  struct side *peer;
  size_t off, len; /* bytes read from this side, not yet written to peer: buf[off, len) */
  unsigned char *buf;
};

static struct side *sides[MAXFD];

static void pair_close(struct side *s) {
  struct side *p = s->peer;
  struct side *both[2] = {s, p};
  for (int i = 0; i < 2; i++) {
    epoll_ctl(ep, EPOLL_CTL_DEL, both[i]->fd, NULL);
    close(both[i]->fd);
    sides[both[i]->fd] = NULL;
    free(both[i]->buf);
    free(both[i]);
  }
}

/* interest of a side: read it while its buffer is empty; wait for write room while the peer's isn't */
static void update(struct side *s) {
  unsigned ev = (s->len == 0 ? EPOLLIN : 0) | (s->peer->len ? EPOLLOUT : 0);
  watch(s->fd, ev, EPOLL_CTL_MOD);
}

/* write s's pending bytes to its peer: 1 all written, 0 some remain, -1 error */
static int forward(struct side *s) {
  while (s->off < s->len) {
    ssize_t w = write(s->peer->fd, s->buf + s->off, s->len - s->off);
    if (w < 0) return (errno == EAGAIN || errno == EINTR) ? 0 : -1;
    s->off += (size_t)w;
  }
  s->off = s->len = 0;
  return 1;
}

static struct side *side_new(int fd) {
  struct side *s = calloc(1, sizeof *s);
  s->fd = fd;
  s->buf = malloc(TCPBUF);
  sides[fd] = s;
  return s;
}

static void on_accept(int lfd) {
  for (;;) {
    int cfd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK);
    if (cfd < 0) return;
    int bfd = socket(AF_INET, SOCK_STREAM, 0);
    if (cfd >= MAXFD || bfd < 0 || bfd >= MAXFD || connect(bfd, (struct sockaddr *)&backend, sizeof backend) < 0) {
      close(cfd);
      if (bfd >= 0) close(bfd);
      continue;
    }
    fcntl(bfd, F_SETFL, fcntl(bfd, F_GETFL) | O_NONBLOCK);
    int one = 1;
    setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    setsockopt(bfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct side *c = side_new(cfd), *b = side_new(bfd);
    c->peer = b;
    b->peer = c;
    watch(cfd, EPOLLIN, EPOLL_CTL_ADD);
    watch(bfd, EPOLLIN, EPOLL_CTL_ADD);
  }
}

static void on_side(struct side *s, unsigned events) {
  if (events & EPOLLOUT) {
    /* room on s: write what the peer had read */
    int r = forward(s->peer);
    if (r < 0) { pair_close(s); return; }
    if (r == 1) { update(s); update(s->peer); }
  }
  if ((events & (EPOLLIN | EPOLLHUP | EPOLLERR)) && s->len == 0) {
    for (int k = 0; k < 4; k++) {
      ssize_t r = read(s->fd, s->buf, TCPBUF);
      if (r < 0 && (errno == EAGAIN || errno == EINTR)) return;
      if (r <= 0) { pair_close(s); return; }
      s->off = 0;
      s->len = (size_t)r;
      int f = forward(s);
      if (f < 0) { pair_close(s); return; }
      if (f == 0) { update(s); update(s->peer); return; }
      if (r < TCPBUF) return;
    }
  }
}

static int run_tcp(int port) {
  int lfd = listen_on(SOCK_STREAM, port);
  struct epoll_event evs[256];
  while (!stop) {
    int n = epoll_wait(ep, evs, 256, 200);
    for (int e = 0; e < n; e++) {
      int fd = evs[e].data.fd;
      if (fd == lfd) on_accept(lfd);
      else if (sides[fd]) on_side(sides[fd], evs[e].events);
    }
  }
  return 0;
}

int main(int argc, char **argv) {
  if (argc < 4) {
    fprintf(stderr, "usage: relay udp|tcp LISTEN_PORT BACKEND_PORT [MAX_SECONDS]\n");
    return 2;
  }
  signal(SIGTERM, on_signal);
  signal(SIGINT, on_signal);
  signal(SIGALRM, on_signal);
  signal(SIGPIPE, SIG_IGN);
  alarm(argc > 4 ? (unsigned)atoi(argv[4]) : 900);
  ep = epoll_create1(0);
  backend.sin_family = AF_INET;
  backend.sin_port = htons((unsigned short)atoi(argv[3]));
  backend.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (strcmp(argv[1], "udp") == 0) return run_udp(atoi(argv[2]));
  if (strcmp(argv[1], "tcp") == 0) return run_tcp(atoi(argv[2]));
  fprintf(stderr, "mode must be udp or tcp\n");
  return 2;
}
