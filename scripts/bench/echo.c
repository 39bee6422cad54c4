/*
 * echo.c — UDP and TCP echo backend for Ferry's relay benchmark (scripts/bench.sh). Loopback only.
 *
 *   echo [-u UDP_PORT] [-t TCP_PORT] [-T MAX_SECONDS]
 *
 * Binds 127.0.0.1. UDP: every datagram goes back to its sender unchanged (recvmmsg + sendmmsg, batches of
 * 64). TCP: every byte read on a connection is written back on it; when the peer does not take the bytes,
 * the connection stops being read until they are written (backpressure, no unbounded buffer).
 * One thread, one level-triggered epoll loop. Exits by itself after MAX_SECONDS (default 900) or on
 * SIGTERM/SIGINT.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define BATCH 64
#define DGRAM 65536
#define TCPBUF (256 * 1024)
#define MAXFD 65536

struct conn {
  int fd;
  size_t off, len; /* pending echo bytes buf[off, len) */
  unsigned char buf[TCPBUF];
};

static struct conn *conns[MAXFD];
static int ep;

static void die(const char *what) {
  perror(what);
  exit(2);
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
  struct epoll_event ev = {.events = EPOLLIN, .data.fd = fd};
  epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
  return fd;
}

static void conn_close(struct conn *c) {
  epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
  close(c->fd);
  conns[c->fd] = NULL;
  free(c);
}

static void conn_interest(struct conn *c, unsigned events) {
  struct epoll_event ev = {.events = events, .data.fd = c->fd};
  epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
}

/* write pending bytes; returns 1 if all written, 0 if some remain, -1 on error */
static int conn_flush(struct conn *c) {
  while (c->off < c->len) {
    ssize_t w = write(c->fd, c->buf + c->off, c->len - c->off);
    if (w < 0) return (errno == EAGAIN || errno == EINTR) ? 0 : -1;
    c->off += (size_t)w;
  }
  c->off = c->len = 0;
  return 1;
}

static void on_conn(struct conn *c, unsigned events) {
  if (events & EPOLLOUT) {
    int r = conn_flush(c);
    if (r < 0) { conn_close(c); return; }
    if (r == 1) conn_interest(c, EPOLLIN);
    return;
  }
  for (int k = 0; k < 4; k++) {
    ssize_t r = read(c->fd, c->buf, TCPBUF);
    if (r < 0 && (errno == EAGAIN || errno == EINTR)) return;
    if (r <= 0) { conn_close(c); return; }
    c->off = 0;
    c->len = (size_t)r;
    int f = conn_flush(c);
    if (f < 0) { conn_close(c); return; }
    if (f == 0) { conn_interest(c, EPOLLOUT); return; }
    if (r < TCPBUF) return;
  }
}

static void on_accept(int lfd) {
  for (;;) {
    int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK);
    if (fd < 0) return;
    if (fd >= MAXFD) { close(fd); continue; }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct conn *c = calloc(1, sizeof *c);
    c->fd = fd;
    conns[fd] = c;
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = fd};
    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
  }
}

static volatile sig_atomic_t stop;
static void on_signal(int sig) { (void)sig; stop = 1; }

int main(int argc, char **argv) {
  int uport = 0, tport = 0, maxsec = 900, c;
  while ((c = getopt(argc, argv, "u:t:T:")) != -1) {
    if (c == 'u') uport = atoi(optarg);
    else if (c == 't') tport = atoi(optarg);
    else if (c == 'T') maxsec = atoi(optarg);
    else { fprintf(stderr, "usage: echo [-u UDP_PORT] [-t TCP_PORT] [-T MAX_SECONDS]\n"); return 2; }
  }
  if (!uport && !tport) { fprintf(stderr, "give -u and/or -t\n"); return 2; }
  signal(SIGTERM, on_signal);
  signal(SIGINT, on_signal);
  signal(SIGALRM, on_signal);
  signal(SIGPIPE, SIG_IGN);
  alarm((unsigned)maxsec);
  ep = epoll_create1(0);
  int ufd = uport ? listen_on(SOCK_DGRAM, uport) : -1;
  int tfd = tport ? listen_on(SOCK_STREAM, tport) : -1;

  static unsigned char bufs[BATCH][DGRAM];
  struct iovec iov[BATCH];
  struct sockaddr_in names[BATCH];
  struct mmsghdr m[BATCH];
  memset(m, 0, sizeof m);
  for (int i = 0; i < BATCH; i++) {
    iov[i].iov_base = bufs[i];
    m[i].msg_hdr.msg_iov = &iov[i];
    m[i].msg_hdr.msg_iovlen = 1;
    m[i].msg_hdr.msg_name = &names[i];
  }
  struct epoll_event evs[256];
  while (!stop) {
    int n = epoll_wait(ep, evs, 256, 200);
    for (int e = 0; e < n; e++) {
      int fd = evs[e].data.fd;
      if (fd == ufd) {
        for (int round = 0; round < 4; round++) {
          for (int i = 0; i < BATCH; i++) {
            iov[i].iov_len = DGRAM;
            m[i].msg_hdr.msg_namelen = sizeof names[i];
          }
          int got = recvmmsg(ufd, m, BATCH, MSG_DONTWAIT, NULL);
          if (got <= 0) break;
          for (int i = 0; i < got; i++) iov[i].iov_len = m[i].msg_len;
          int off = 0;
          while (off < got) {
            int s = sendmmsg(ufd, m + off, (unsigned)(got - off), 0);
            if (s <= 0) break; /* dropped: the load generator counts it lost */
            off += s;
          }
          if (got < BATCH) break;
        }
      } else if (fd == tfd) {
        on_accept(tfd);
      } else if (conns[fd]) {
        on_conn(conns[fd], evs[e].events);
      }
    }
  }
  return 0;
}
