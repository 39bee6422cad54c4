/**
 * The struct layouts and constants of the native data path (shell/datapath/native/layout.ts): checked against the
 * C compiler's own `offsetof`/`sizeof` and <sys/socket.h> values when `cc` is installed (Linux only), and
 * the encoders round-tripped in pure JS everywhere.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as L from "../shell/datapath/native/layout.ts";
import { nativeArch } from "../shell/datapath/native/ffi.ts";
import { type ControlSeen, IpText, replyPktinfo, scanControl } from "../shell/datapath/native/peers.ts";
import { Errno, ErrnoCounts, errnoName, NativeError } from "../shell/datapath/native/errno.ts";
import type { Libc } from "../shell/datapath/native/ffi.ts";
import { chooseDatapath, requestedDatapath } from "../shell/datapath/native/select.ts";

const isLinux =
  ("Bun" in globalThis
    ? (globalThis as unknown as { process: { platform: string } }).process.platform
    : Deno.build.os) === "linux";

function hasCc(): boolean {
  try {
    execFileSync("cc", ["--version"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

/** name → value as the C compiler sees it. */
const C_SOURCE = `
#define _GNU_SOURCE
#include <stddef.h>
#include <stdio.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/uio.h>
#define P(name, value) printf("\\"%s\\": %ld,\\n", name, (long)(value))
int main(void) {
  printf("{\\n");
  P("iovec.size", sizeof(struct iovec)); P("iovec.base", offsetof(struct iovec, iov_base));
  P("iovec.len", offsetof(struct iovec, iov_len));
  P("msghdr.size", sizeof(struct msghdr)); P("msghdr.name", offsetof(struct msghdr, msg_name));
  P("msghdr.namelen", offsetof(struct msghdr, msg_namelen)); P("msghdr.iov", offsetof(struct msghdr, msg_iov));
  P("msghdr.iovlen", offsetof(struct msghdr, msg_iovlen));
  P("msghdr.control", offsetof(struct msghdr, msg_control));
  P("msghdr.controllen", offsetof(struct msghdr, msg_controllen));
  P("msghdr.flags", offsetof(struct msghdr, msg_flags));
  P("mmsghdr.size", sizeof(struct mmsghdr)); P("mmsghdr.len", offsetof(struct mmsghdr, msg_len));
  P("sockaddr_in.size", sizeof(struct sockaddr_in)); P("sockaddr_in.port", offsetof(struct sockaddr_in, sin_port));
  P("sockaddr_in.addr", offsetof(struct sockaddr_in, sin_addr));
  P("sockaddr_in6.size", sizeof(struct sockaddr_in6));
  P("sockaddr_in6.port", offsetof(struct sockaddr_in6, sin6_port));
  P("sockaddr_in6.flowinfo", offsetof(struct sockaddr_in6, sin6_flowinfo));
  P("sockaddr_in6.addr", offsetof(struct sockaddr_in6, sin6_addr));
  P("sockaddr_in6.scopeId", offsetof(struct sockaddr_in6, sin6_scope_id));
  P("cmsghdr.size", sizeof(struct cmsghdr)); P("cmsghdr.level", offsetof(struct cmsghdr, cmsg_level));
  P("cmsghdr.type", offsetof(struct cmsghdr, cmsg_type)); P("cmsghdr.data", CMSG_LEN(0));
  P("cmsg_space_4", CMSG_SPACE(4)); P("cmsg_space_12", CMSG_SPACE(12)); P("cmsg_space_20", CMSG_SPACE(20));
  P("cmsg_len_12", CMSG_LEN(12));
  P("in_pktinfo.size", sizeof(struct in_pktinfo)); P("in_pktinfo.specDst", offsetof(struct in_pktinfo, ipi_spec_dst));
  P("in_pktinfo.addr", offsetof(struct in_pktinfo, ipi_addr));
  P("in6_pktinfo.size", sizeof(struct in6_pktinfo));
  P("in6_pktinfo.ifindex", offsetof(struct in6_pktinfo, ipi6_ifindex));
  P("epoll_event.size", sizeof(struct epoll_event)); P("epoll_event.data", offsetof(struct epoll_event, data));
  P("AF_INET", AF_INET); P("AF_INET6", AF_INET6); P("SOCK_DGRAM", SOCK_DGRAM);
  P("SOCK_NONBLOCK", SOCK_NONBLOCK); P("SOCK_CLOEXEC", SOCK_CLOEXEC); P("SOL_SOCKET", SOL_SOCKET);
  P("IPPROTO_IP", IPPROTO_IP); P("IPPROTO_IPV6", IPPROTO_IPV6); P("SOL_UDP", SOL_UDP);
  P("SO_REUSEADDR", SO_REUSEADDR); P("SO_SNDBUF", SO_SNDBUF); P("SO_RCVBUF", SO_RCVBUF);
  P("SO_REUSEPORT", SO_REUSEPORT); P("SO_RXQ_OVFL", SO_RXQ_OVFL); P("IP_PKTINFO", IP_PKTINFO);
  P("IPV6_V6ONLY", IPV6_V6ONLY); P("IPV6_RECVPKTINFO", IPV6_RECVPKTINFO); P("IPV6_PKTINFO", IPV6_PKTINFO);
  P("UDP_SEGMENT", UDP_SEGMENT); P("UDP_GRO", UDP_GRO);
  P("MSG_CTRUNC", MSG_CTRUNC); P("MSG_TRUNC", MSG_TRUNC); P("MSG_DONTWAIT", MSG_DONTWAIT);
  P("EPOLLIN", EPOLLIN); P("EPOLLERR", EPOLLERR); P("EPOLL_CTL_ADD", EPOLL_CTL_ADD);
  P("EPOLL_CTL_DEL", EPOLL_CTL_DEL); P("EPOLL_CLOEXEC", EPOLL_CLOEXEC);
  P("EFD_CLOEXEC", EFD_CLOEXEC); P("EFD_NONBLOCK", EFD_NONBLOCK);
  P("EPERM", EPERM); P("EINTR", EINTR); P("EBADF", EBADF); P("EAGAIN", EAGAIN); P("ENOMEM", ENOMEM);
  P("EACCES", EACCES); P("EFAULT", EFAULT); P("EINVAL", EINVAL); P("ENFILE", ENFILE); P("EMFILE", EMFILE);
  P("EMSGSIZE", EMSGSIZE); P("EAFNOSUPPORT", EAFNOSUPPORT); P("EADDRINUSE", EADDRINUSE);
  P("EADDRNOTAVAIL", EADDRNOTAVAIL); P("ENETUNREACH", ENETUNREACH); P("ENOBUFS", ENOBUFS);
  P("ECONNREFUSED", ECONNREFUSED); P("EHOSTUNREACH", EHOSTUNREACH);
  printf("\\"end\\": 0}\\n");
  return 0;
}
`;

/** What layout.ts and errno.ts claim, under the same names. */
function ours(): Record<string, number> {
  const ev = L.epollEventLayout(nativeArch() ?? "x86_64");
  return {
    "iovec.size": L.IOVEC.size,
    "iovec.base": L.IOVEC.base,
    "iovec.len": L.IOVEC.len,
    "msghdr.size": L.MSGHDR.size,
    "msghdr.name": L.MSGHDR.name,
    "msghdr.namelen": L.MSGHDR.namelen,
    "msghdr.iov": L.MSGHDR.iov,
    "msghdr.iovlen": L.MSGHDR.iovlen,
    "msghdr.control": L.MSGHDR.control,
    "msghdr.controllen": L.MSGHDR.controllen,
    "msghdr.flags": L.MSGHDR.flags,
    "mmsghdr.size": L.MMSGHDR.size,
    "mmsghdr.len": L.MMSGHDR.len,
    "sockaddr_in.size": L.SOCKADDR_IN.size,
    "sockaddr_in.port": L.SOCKADDR_IN.port,
    "sockaddr_in.addr": L.SOCKADDR_IN.addr,
    "sockaddr_in6.size": L.SOCKADDR_IN6.size,
    "sockaddr_in6.port": L.SOCKADDR_IN6.port,
    "sockaddr_in6.flowinfo": L.SOCKADDR_IN6.flowinfo,
    "sockaddr_in6.addr": L.SOCKADDR_IN6.addr,
    "sockaddr_in6.scopeId": L.SOCKADDR_IN6.scopeId,
    "cmsghdr.size": L.CMSGHDR.size,
    "cmsghdr.level": L.CMSGHDR.level,
    "cmsghdr.type": L.CMSGHDR.type,
    "cmsghdr.data": L.CMSGHDR.data,
    "cmsg_space_4": L.cmsgSpace(4),
    "cmsg_space_12": L.cmsgSpace(12),
    "cmsg_space_20": L.cmsgSpace(20),
    "cmsg_len_12": L.cmsgLen(12),
    "in_pktinfo.size": L.IN_PKTINFO.size,
    "in_pktinfo.specDst": L.IN_PKTINFO.specDst,
    "in_pktinfo.addr": L.IN_PKTINFO.addr,
    "in6_pktinfo.size": L.IN6_PKTINFO.size,
    "in6_pktinfo.ifindex": L.IN6_PKTINFO.ifindex,
    "epoll_event.size": ev.size,
    "epoll_event.data": ev.data,
    AF_INET: L.AF_INET,
    AF_INET6: L.AF_INET6,
    SOCK_DGRAM: L.SOCK_DGRAM,
    SOCK_NONBLOCK: L.SOCK_NONBLOCK,
    SOCK_CLOEXEC: L.SOCK_CLOEXEC,
    SOL_SOCKET: L.SOL_SOCKET,
    IPPROTO_IP: L.IPPROTO_IP,
    IPPROTO_IPV6: L.IPPROTO_IPV6,
    SOL_UDP: L.SOL_UDP,
    SO_REUSEADDR: L.SO_REUSEADDR,
    SO_SNDBUF: L.SO_SNDBUF,
    SO_RCVBUF: L.SO_RCVBUF,
    SO_REUSEPORT: L.SO_REUSEPORT,
    SO_RXQ_OVFL: L.SO_RXQ_OVFL,
    IP_PKTINFO: L.IP_PKTINFO,
    IPV6_V6ONLY: L.IPV6_V6ONLY,
    IPV6_RECVPKTINFO: L.IPV6_RECVPKTINFO,
    IPV6_PKTINFO: L.IPV6_PKTINFO,
    UDP_SEGMENT: L.UDP_SEGMENT,
    UDP_GRO: L.UDP_GRO,
    MSG_CTRUNC: L.MSG_CTRUNC,
    MSG_TRUNC: L.MSG_TRUNC,
    MSG_DONTWAIT: L.MSG_DONTWAIT,
    EPOLLIN: L.EPOLLIN,
    EPOLLERR: L.EPOLLERR,
    EPOLL_CTL_ADD: L.EPOLL_CTL_ADD,
    EPOLL_CTL_DEL: L.EPOLL_CTL_DEL,
    EPOLL_CLOEXEC: L.EPOLL_CLOEXEC,
    EFD_CLOEXEC: L.EFD_CLOEXEC,
    EFD_NONBLOCK: L.EFD_NONBLOCK,
    ...Errno,
  };
}

describe("native struct layouts", () => {
  const skipC = !isLinux
    ? "not Linux"
    : nativeArch() === null
    ? "not x86_64/aarch64"
    : !hasCc()
    ? "no cc"
    : false;
  test("match the C compiler's offsetof/sizeof and the system headers' constants", { skip: skipC }, () => {
    const dir = mkdtempSync(join(tmpdir(), "ferry-layout-"));
    try {
      writeFileSync(join(dir, "layout.c"), C_SOURCE);
      execFileSync("cc", ["-O0", "-o", join(dir, "layout"), join(dir, "layout.c")], { stdio: "pipe" });
      const c = JSON.parse(execFileSync(join(dir, "layout"), { encoding: "utf8" })) as Record<string, number>;
      delete c.end;
      assert.deepEqual(ours(), c);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("epoll_event is packed only on x86_64", () => {
    assert.deepEqual(L.epollEventLayout("x86_64"), { size: 12, data: 4 });
    assert.deepEqual(L.epollEventLayout("aarch64"), { size: 16, data: 8 });
  });

  test("control rooms: SO_RXQ_OVFL + the larger PKTINFO in; PKTINFO + UDP_SEGMENT out", () => {
    assert.equal(L.RECV_CONTROL, L.cmsgSpace(4) + L.cmsgSpace(20));
    assert.equal(L.RECV_CONTROL, 64);
    assert.equal(L.SEND_CONTROL, 64);
  });
});

describe("native struct encoders", () => {
  test("sockaddr_in: family little-endian, port big-endian, address bytes, zero padding", () => {
    const u8 = new Uint8Array(32).fill(0xee);
    assert.equal(L.writeSockaddr(u8, 4, { ip: "127.0.0.1", port: 0x1f90, family: 4 }), 16);
    assert.deepEqual([...u8.subarray(4, 20)], [2, 0, 0x1f, 0x90, 127, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0]);
    assert.equal(u8[3], 0xee); // nothing written outside
    assert.equal(u8[20], 0xee);
    assert.deepEqual(L.readSockaddr(u8, 4), { ip: "127.0.0.1", port: 8080, family: 4 });
  });

  test("sockaddr_in6: flowinfo and scope zeroed, canonical text back", () => {
    const u8 = new Uint8Array(28).fill(0xee);
    assert.equal(L.writeSockaddr(u8, 0, { ip: "2001:db8::1", port: 53, family: 6 }), 28);
    assert.deepEqual([...u8.subarray(0, 8)], [10, 0, 0, 53, 0, 0, 0, 0]);
    assert.deepEqual([...u8.subarray(8, 24)], [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
    assert.deepEqual([...u8.subarray(24, 28)], [0, 0, 0, 0]);
    assert.deepEqual(L.readSockaddr(u8, 0), { ip: "2001:db8::1", port: 53, family: 6 });
    L.writeSockaddr(u8, 0, { ip: "::1", port: 1, family: 6 });
    assert.deepEqual(L.readSockaddr(u8, 0), { ip: "::1", port: 1, family: 6 });
  });

  test("IPv4-mapped IPv6 reads as ::ffff:a.b.c.d, as the runtimes report it", () => {
    const u8 = new Uint8Array(28);
    L.writeSockaddr(u8, 0, { ip: "::ffff:10.1.2.3", port: 9, family: 6 });
    assert.deepEqual([...u8.subarray(18, 24)], [0xff, 0xff, 10, 1, 2, 3]);
    assert.equal(L.formatIpv6(u8, 8), "::ffff:10.1.2.3");
  });

  test("a family mismatch or another family is refused", () => {
    assert.throws(() => L.writeSockaddr(new Uint8Array(28), 0, { ip: "::1", port: 1, family: 4 }));
    assert.equal(L.readSockaddr(new Uint8Array(28), 0), null);
  });

  test("64-bit fields: little-endian halves, exact up to 2^53", () => {
    const dv = new DataView(new ArrayBuffer(16));
    for (const v of [0, 1, 0xffff_ffff, 0x1_0000_0000, 0x7fff_1234_5678, Number.MAX_SAFE_INTEGER]) {
      L.setU64(dv, 8, v);
      assert.equal(L.getU64(dv, 8), v);
      assert.equal(dv.getBigUint64(8, true), BigInt(v));
    }
  });

  test("msghdr and iovec land on the documented offsets", () => {
    const dv = new DataView(new ArrayBuffer(L.MSGHDR.size + L.IOVEC.size));
    L.writeMsghdr(dv, 0, 0x1000, 16, 0x2000, 2, 0x3000, 40);
    assert.equal(dv.getBigUint64(0, true), 0x1000n);
    assert.equal(dv.getUint32(8, true), 16);
    assert.equal(dv.getBigUint64(16, true), 0x2000n);
    assert.equal(dv.getBigUint64(24, true), 2n);
    assert.equal(dv.getBigUint64(32, true), 0x3000n);
    assert.equal(dv.getBigUint64(40, true), 40n);
    assert.equal(dv.getInt32(48, true), 0);
    L.writeIovec(dv, L.MSGHDR.size, 0xdead_beef_00, 1500);
    assert.equal(dv.getBigUint64(L.MSGHDR.size, true), 0xdead_beef_00n);
    assert.equal(dv.getBigUint64(L.MSGHDR.size + 8, true), 1500n);
  });

  test("cmsgs: written and walked; a malformed length stops the walk inside the buffer", () => {
    const buf = new Uint8Array(L.RECV_CONTROL);
    const dv = new DataView(buf.buffer);
    const d1 = L.writeCmsgHeader(dv, 0, L.SOL_SOCKET, L.SO_RXQ_OVFL, 4);
    dv.setUint32(d1, 7, true);
    const second = L.cmsgSpace(4);
    const d2 = L.writeCmsgHeader(dv, second, L.IPPROTO_IP, L.IP_PKTINFO, L.IN_PKTINFO.size);
    buf.set([127, 0, 0, 2], d2 + L.IN_PKTINFO.addr);
    const seen: ControlSeen = { overflows: -1, pktinfo: -1 };
    scanControl(dv, 0, second + L.cmsgLen(L.IN_PKTINFO.size), seen);
    assert.deepEqual(seen, { overflows: 7, pktinfo: second });
    // The reply's cmsg: IP_PKTINFO with ipi_spec_dst = the address the datagram was sent to, no ifindex.
    const pkt = replyPktinfo(buf, dv, second, null);
    const pv = new DataView(pkt.buffer);
    assert.equal(pkt.byteLength, L.cmsgSpace(12));
    assert.deepEqual([L.getU64(pv, 0), pv.getInt32(8, true), pv.getInt32(12, true)], [28, 0, L.IP_PKTINFO]);
    assert.deepEqual([...pkt.subarray(16, 28)], [0, 0, 0, 0, 127, 0, 0, 2, 0, 0, 0, 0]);
    assert.equal(replyPktinfo(buf, dv, second, pkt), pkt); // unchanged address: the same object
    L.setU64(dv, second, 4096); // claims more than the buffer holds
    scanControl(dv, 0, buf.byteLength, seen);
    assert.deepEqual(seen, { overflows: 7, pktinfo: -1 });
    L.setU64(dv, 0, 3); // shorter than its own header
    scanControl(dv, 0, buf.byteLength, seen);
    assert.deepEqual(seen, { overflows: -1, pktinfo: -1 });
  });

  test("IPv6 PKTINFO keeps the address and the interface (link-local needs it)", () => {
    const buf = new Uint8Array(64);
    const dv = new DataView(buf.buffer);
    const d = L.writeCmsgHeader(dv, 0, L.IPPROTO_IPV6, L.IPV6_PKTINFO, L.IN6_PKTINFO.size);
    buf.set([0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1], d);
    dv.setUint32(d + L.IN6_PKTINFO.ifindex, 3, true);
    const pkt = replyPktinfo(buf, dv, 0, null);
    assert.deepEqual([...pkt.subarray(0, 36)], [...buf.subarray(0, 36)]);
  });

  test("client addresses as text: IPv4, IPv4-mapped, IPv6; cached", () => {
    const t = new IpText();
    const u8 = new Uint8Array([10, 1, 2, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 0, 2, 1]);
    const a = t.ipv4(u8, 0);
    assert.equal(a, "10.1.2.3");
    assert.equal(t.ipv4(u8, 0), a);
    assert.equal(t.ipv6(u8, 4), "::ffff:192.0.2.1");
    assert.equal(t.ipv6(new Uint8Array([0x20, 1, 0xd, 0xb8, ...new Array(11).fill(0), 1]), 0), "2001:db8::1");
  });
});

describe("native errno", () => {
  test("names, counts and setup errors", () => {
    assert.equal(errnoName(Errno.ECONNREFUSED), "ECONNREFUSED");
    assert.equal(errnoName(71), "errno 71");
    const counts = new ErrnoCounts();
    counts.add("send", Errno.ECONNREFUSED);
    counts.add("send", Errno.ECONNREFUSED);
    counts.add("send", Errno.ENOBUFS);
    counts.add("sendmmsg", Errno.EAGAIN);
    assert.equal(counts.get("send"), 3);
    assert.equal(counts.get("send", Errno.ENOBUFS), 1);
    assert.deepEqual(counts.snapshot(), { "send:ECONNREFUSED": 2, "send:ENOBUFS": 1, "sendmmsg:EAGAIN": 1 });
    const e = new NativeError("bind", Errno.EADDRINUSE, "udp 127.0.0.1:53");
    assert.equal(e.message, "bind udp 127.0.0.1:53: EADDRINUSE");
    assert.equal(e.code, "EADDRINUSE");
  });
});

describe("datapath selection", () => {
  const libc = {} as Libc;
  const available = () => Promise.resolve({ libc });
  const missing = () => Promise.resolve({ reason: "the native data path needs Linux (this is darwin)" });

  test("a listener's auto follows relay.datapath; its own choice wins otherwise", () => {
    assert.equal(requestedDatapath("auto", "runtime"), "runtime");
    assert.equal(requestedDatapath("auto", "auto"), "auto");
    assert.equal(requestedDatapath("native", "runtime"), "native");
    assert.equal(requestedDatapath("runtime", "native"), "runtime");
  });

  test("auto: native where it runs, else the runtime path with the reason", async () => {
    assert.deepEqual(await chooseDatapath("auto", available), {
      datapath: "native",
      requested: "auto",
      reason: null,
      libc,
    });
    assert.deepEqual(await chooseDatapath("auto", missing), {
      datapath: "runtime",
      requested: "auto",
      reason: "the native data path needs Linux (this is darwin)",
    });
  });

  test("runtime never probes; native that cannot run is an error naming why", async () => {
    const never = () => Promise.reject(new Error("probed"));
    assert.deepEqual(await chooseDatapath("runtime", never), {
      datapath: "runtime",
      requested: "runtime",
      reason: null,
    });
    await assert.rejects(
      chooseDatapath("native", missing),
      /datapath = "native": the native data path needs Linux/,
    );
  });
});
