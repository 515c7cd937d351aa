#!/usr/bin/env python3
"""A tiny authoritative DNS server for tests (Python 3 standard library only): answers
MX, A, AAAA and CNAME questions from a zone given as a dict, on UDP and TCP, on a
loopback address only.

    python3 dns_stub.py --port 0 --zone zone.json [--log queries.txt] [--no-tcp]
    python3 dns_stub.py --port 0 --zone-json '{"example.com": {"MX": [[10, "mx.example.com"]]}}'

prints the UDP port (the TCP port is the same number) on a line of its own once both
sockets listen, then serves until SIGTERM/SIGINT or, when its standard input is a
pipe, until that reaches end of file (a test holds the other end: when the test dies,
the stub goes too; /dev/null or a terminal is not watched). In Python:

    with DnsStub(zone) as dns:          # serves in a daemon thread
        ... smtp_dns_servers = 127.0.0.1:{dns.port} ...
        dns.queries                     # [("example.com", "MX", "udp"), ...]

The zone maps a name (without regard to case, trailing dot or not) to its types:

    {"example.com":     {"MX": [[10, "mx1.example.com"], [20, "mx2.example.com"]]},
     "mx1.example.com": {"A": ["192.0.2.1"], "AAAA": ["2001:db8::1"]},
     "www.example.com": {"CNAME": "mx1.example.com"},
     "null.example":    {"MX": [[0, "."]]},
     "broken.example":  "SERVFAIL",
     "slow.example":    {"MX": "DROP", "A": ["192.0.2.9"]},
     "big.example":     {"MX": {"records": [[10, "mx.big.example"]], "udp_truncated": true}}}

A name missing from the zone is NXDOMAIN; a type missing from a name's entry is
NODATA (NOERROR, no answer). A type's value (or the whole entry, for every type) may be
one of these behaviours instead of records:

    "SERVFAIL", "NXDOMAIN", "REFUSED"  that answer code
    "DROP"         no answer at all (the client times out)
    "TRUNCATED"    a reply cut short in the middle of its answer record (malformed)
    "LOOP"         an answer record whose owner name is a compression pointer to itself
    "RDATA_LOOP"   an MX record whose exchange name points to itself
    "BAD_POINTER"  an answer record whose owner name points past the end of the reply

and {"records": [...], "udp_truncated": true} answers over UDP with the TC bit and no
records, over TCP with the records (the client must retry over TCP).

Names in replies are compressed (pointers to the question and to earlier names), as
real servers do. A CNAME is followed inside the zone (at most 8 links), its records
and the target's put in the answer. Queries for another class, or with an opcode other
than QUERY, get NOTIMP; a query that cannot be parsed gets no reply.

Must never: bind anything but a loopback address, or send a packet anywhere but back
to the client of a query.
"""
import argparse
import ipaddress
import json
import os
import selectors
import signal
import socket
import stat
import struct
import sys
import threading

TYPES = {"A": 1, "CNAME": 5, "MX": 15, "AAAA": 28}
TYPE_NAMES = {number: name for name, number in TYPES.items()}
NOERROR, FORMERR, SERVFAIL, NXDOMAIN, NOTIMP, REFUSED = 0, 1, 2, 3, 4, 5
RCODES = {"SERVFAIL": SERVFAIL, "NXDOMAIN": NXDOMAIN, "REFUSED": REFUSED}
BEHAVIOURS = set(RCODES) | {"DROP", "TRUNCATED", "LOOP", "RDATA_LOOP", "BAD_POINTER"}
TTL = 300


def _key(name):
    return name.rstrip(".").lower()


class Zone:
    """The records, checked once when given (a typo in a test's zone is an error, not
    a confusing answer)."""

    def __init__(self, data):
        if not isinstance(data, dict):
            raise ValueError("the zone is a JSON object of names")
        self.names = {}
        for name, entry in data.items():
            if isinstance(entry, str):
                self._behaviour(name, entry)
            elif not isinstance(entry, dict):
                raise ValueError(f"{name}: want an object of types or a behaviour")
            else:
                for rtype, value in entry.items():
                    if rtype not in TYPES:
                        raise ValueError(f"{name}: unknown type {rtype}")
                    self._check(name, rtype, value)
            self.names[_key(name)] = entry

    @staticmethod
    def _behaviour(name, value):
        if value not in BEHAVIOURS:
            raise ValueError(f"{name}: unknown behaviour {value!r}")

    def _check(self, name, rtype, value):
        if isinstance(value, str) and value in BEHAVIOURS:
            return
        if isinstance(value, dict):
            value = value.get("records", [])
        if rtype == "CNAME":
            if not isinstance(value, str):
                raise ValueError(f"{name}: CNAME wants one name")
            return
        if not isinstance(value, list):
            raise ValueError(f"{name} {rtype}: want a list of records")
        for record in value:
            if rtype == "A":
                ipaddress.IPv4Address(record)
            elif rtype == "AAAA":
                ipaddress.IPv6Address(record)
            elif not (isinstance(record, list) and len(record) == 2 and isinstance(record[0], int)):
                raise ValueError(f"{name} MX: want [preference, host]")

    def lookup(self, name, rtype):
        """(rcode or behaviour string, [(owner, type, value)], udp_truncated)."""
        answers = []
        seen = set()
        for _ in range(9):
            entry = self.names.get(_key(name))
            if entry is None:
                return (NXDOMAIN if not answers else NOERROR), answers, False
            if isinstance(entry, str):
                return RCODES.get(entry, entry), answers, False
            if rtype != "CNAME" and "CNAME" in entry and _key(name) not in seen:
                seen.add(_key(name))
                target = entry["CNAME"]
                if isinstance(target, str) and target in BEHAVIOURS:
                    return RCODES.get(target, target), answers, False
                answers.append((name, "CNAME", target))
                name = target
                continue
            value = entry.get(rtype)
            if value is None:
                return NOERROR, answers, False
            if isinstance(value, str) and value in BEHAVIOURS:
                return RCODES.get(value, value), answers, False
            truncated = False
            if isinstance(value, dict):
                truncated = bool(value.get("udp_truncated"))
                value = value.get("records", [])
            if rtype == "CNAME":
                value = [value]
            answers.extend((name, rtype, record) for record in value)
            return NOERROR, answers, truncated
        return SERVFAIL, answers, False


class Writer:
    """A reply being built, with name compression (RFC 1035 4.1.4)."""

    def __init__(self):
        self.data = bytearray()
        self.offsets = {}  # lower-cased suffix -> where it was written

    def name(self, name):
        labels = [label for label in name.rstrip(".").split(".") if label] if name not in ("", ".") else []
        for i in range(len(labels)):
            suffix = ".".join(labels[i:]).lower()
            if suffix in self.offsets:
                self.data += struct.pack("!H", 0xC000 | self.offsets[suffix])
                return
            if len(self.data) < 0x4000:
                self.offsets[suffix] = len(self.data)
            raw = labels[i].encode("ascii")
            if not 0 < len(raw) < 64:
                raise ValueError(f"bad label in {name!r}")
            self.data += bytes([len(raw)]) + raw
        self.data += b"\0"

    def record(self, owner, rtype, value):
        self.name(owner)
        self.data += struct.pack("!HHIH", TYPES[rtype], 1, TTL, 0)
        length_at = len(self.data) - 2
        if rtype == "A":
            self.data += ipaddress.IPv4Address(value).packed
        elif rtype == "AAAA":
            self.data += ipaddress.IPv6Address(value).packed
        elif rtype == "MX":
            self.data += struct.pack("!H", value[0])
            self.name(value[1])
        else:
            self.name(value)
        struct.pack_into("!H", self.data, length_at, len(self.data) - length_at - 2)


def parse_query(packet):
    """(id, flags, qname, qtype, qclass, question bytes) or None."""
    if len(packet) < 12:
        return None
    qid, flags, qdcount = struct.unpack("!HHH", packet[:6])
    if flags & 0x8000 or qdcount != 1:
        return None
    labels, at = [], 12
    while True:
        if at >= len(packet):
            return None
        length = packet[at]
        if length == 0:
            at += 1
            break
        if length > 63 or at + 1 + length > len(packet):
            return None
        labels.append(packet[at + 1:at + 1 + length].decode("ascii", "replace"))
        at += 1 + length
    if at + 4 > len(packet):
        return None
    qtype, qclass = struct.unpack("!HH", packet[at:at + 4])
    return qid, flags, ".".join(labels), qtype, qclass, packet[12:at + 4]


def answer(zone, packet, transport, log):
    """The reply to one query (bytes), or None for no reply."""
    query = parse_query(packet)
    if query is None:
        return None
    qid, flags, qname, qtype, qclass, question = query
    type_name = TYPE_NAMES.get(qtype, str(qtype))
    log(qname, type_name, transport)
    opcode = (flags >> 11) & 0xF
    reply_flags = 0x8000 | (opcode << 11) | 0x0400 | (flags & 0x0100) | 0x0080  # QR AA RD RA

    def header(rcode, ancount, tc=False):
        return struct.pack("!HHHHHH", qid, reply_flags | (0x0200 if tc else 0) | rcode, 1, ancount, 0, 0)

    if opcode != 0 or qclass != 1:
        return header(NOTIMP, 0) + question
    if type_name not in TYPES:
        rcode, records, truncated = zone.lookup(qname, "none")
        records = [r for r in records if r[1] == "CNAME"]
    else:
        rcode, records, truncated = zone.lookup(qname, type_name)
    if rcode == "DROP":
        return None
    if isinstance(rcode, int):
        if truncated and transport == "udp":
            return header(rcode, 0, tc=True) + question
        writer = Writer()
        writer.data += header(rcode, len(records))
        writer.name(qname)
        writer.data += struct.pack("!HH", qtype, qclass)
        for owner, rtype, value in records:
            writer.record(owner, rtype, value)
        return bytes(writer.data)
    # A malformed reply on purpose: the question is right (the client takes the
    # reply as the one it waits for), what follows is not.
    body = bytearray(header(NOERROR, 1)) + question
    if rcode == "TRUNCATED":
        body += b"\xc0\x0c" + struct.pack("!HHIH", qtype, 1, TTL, 4)  # an RR claiming 4 octets
        return bytes(body) + b"\x7f"  # ... of which one is there
    if rcode == "LOOP":
        here = len(body)
        body += struct.pack("!H", 0xC000 | here)  # the owner name points at itself
        body += struct.pack("!HHIH", qtype, 1, TTL, 4) + bytes([192, 0, 2, 1])
        return bytes(body)
    if rcode == "BAD_POINTER":
        body += struct.pack("!H", 0xC000 | 0x3FFF)  # far past the end
        body += struct.pack("!HHIH", qtype, 1, TTL, 4) + bytes([192, 0, 2, 1])
        return bytes(body)
    if rcode == "RDATA_LOOP":
        body += b"\xc0\x0c" + struct.pack("!HHIH", TYPES["MX"], 1, TTL, 4)
        here = len(body) + 2
        body += struct.pack("!HH", 10, 0xC000 | here)  # the exchange points at itself
        return bytes(body)
    return None


class DnsStub:
    """The server: one UDP socket and (unless tcp=False) one TCP listener on the same
    loopback port, served by one selector loop."""

    def __init__(self, zone, address="127.0.0.1", port=0, tcp=True, log_path=None):
        if not ipaddress.ip_address(address).is_loopback:
            raise ValueError(f"{address} is not a loopback address: the stub serves loopback only")
        self.zone = zone if isinstance(zone, Zone) else Zone(zone)
        self.queries = []
        self._log_file = open(log_path, "a", encoding="utf-8") if log_path else None
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        for _ in range(20):
            self.udp = socket.socket(family, socket.SOCK_DGRAM)
            self.udp.bind((address, port))
            self.port = self.udp.getsockname()[1]
            self.tcp = None
            if not tcp:
                break
            self.tcp = socket.socket(family, socket.SOCK_STREAM)
            self.tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                self.tcp.bind((address, self.port))
                break
            except OSError:
                # The kernel gave a UDP port whose TCP twin is taken: another one.
                self.tcp.close()
                self.udp.close()
                if port != 0:
                    raise
        else:
            raise OSError("no free UDP+TCP port pair on " + address)
        if self.tcp:
            self.tcp.listen(16)
        self._selector = selectors.DefaultSelector()
        self._selector.register(self.udp, selectors.EVENT_READ, "udp")
        if self.tcp:
            self._selector.register(self.tcp, selectors.EVENT_READ, "accept")
        self._wake_r, self._wake_w = os.pipe()
        self._selector.register(self._wake_r, selectors.EVENT_READ, "stop")
        self._thread = None
        self._buffers = {}

    def _log(self, name, rtype, transport):
        self.queries.append((name, rtype, transport))
        if self._log_file:
            self._log_file.write(f"{name} {rtype} {transport}\n")
            self._log_file.flush()

    def serve_forever(self, extra_stop_fd=None):
        if extra_stop_fd is not None:
            self._selector.register(extra_stop_fd, selectors.EVENT_READ, "stdin")
        while True:
            for key, _ in self._selector.select():
                what = key.data
                if what == "stop":
                    return
                if what == "stdin":
                    if not os.read(key.fd, 4096):
                        return
                elif what == "udp":
                    try:
                        packet, peer = self.udp.recvfrom(65535)
                    except OSError:
                        continue
                    reply = answer(self.zone, packet, "udp", self._log)
                    if reply is not None:
                        if len(reply) > 512:
                            # Too long for UDP without EDNS: TC, the question alone.
                            (flags,) = struct.unpack("!H", reply[2:4])
                            question = parse_query(packet)[5]
                            reply = reply[:2] + struct.pack("!HHHHH", flags | 0x0200, 1, 0, 0, 0) + question
                        self.udp.sendto(reply, peer)
                elif what == "accept":
                    try:
                        conn, _ = self.tcp.accept()
                    except OSError:
                        continue
                    self._buffers[conn] = b""
                    self._selector.register(conn, selectors.EVENT_READ, "tcp")
                else:
                    self._tcp_read(key.fileobj)

    def _tcp_read(self, conn):
        try:
            data = conn.recv(65537)
        except OSError:
            data = b""
        if not data:
            self._selector.unregister(conn)
            del self._buffers[conn]
            conn.close()
            return
        buffer = self._buffers[conn] + data
        while len(buffer) >= 2:
            (length,) = struct.unpack("!H", buffer[:2])
            if len(buffer) < 2 + length:
                break
            packet, buffer = buffer[2:2 + length], buffer[2 + length:]
            reply = answer(self.zone, packet, "tcp", self._log)
            if reply is not None:
                try:
                    conn.sendall(struct.pack("!H", len(reply)) + reply)
                except OSError:
                    pass
        self._buffers[conn] = buffer

    def start(self):
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self):
        os.write(self._wake_w, b"x")
        if self._thread:
            self._thread.join(5)
        for conn in list(self._buffers):
            conn.close()
        self.udp.close()
        if self.tcp:
            self.tcp.close()
        os.close(self._wake_r)
        os.close(self._wake_w)
        if self._log_file:
            self._log_file.close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--address", default="127.0.0.1", help="a loopback address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="0: any free port (printed)")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--zone", help="a JSON file holding the zone")
    source.add_argument("--zone-json", help="the zone as JSON text")
    parser.add_argument("--log", help="append each query as 'NAME TYPE udp|tcp' to this file")
    parser.add_argument("--no-tcp", action="store_true", help="UDP only")
    args = parser.parse_args()
    try:
        if args.zone:
            with open(args.zone, encoding="utf-8") as f:
                zone = json.load(f)
        else:
            zone = json.loads(args.zone_json)
        stub = DnsStub(zone, args.address, args.port, tcp=not args.no_tcp, log_path=args.log)
    except (OSError, ValueError) as e:
        print(f"dns_stub: {e}", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, lambda *_: os.write(stub._wake_w, b"x"))
    signal.signal(signal.SIGINT, lambda *_: os.write(stub._wake_w, b"x"))
    print(stub.port, flush=True)
    # Standard input that is a pipe ends the stub when it reaches end of file: the
    # parent (a test) holds the other end, so the stub dies with it.
    stdin = sys.stdin.fileno() if stat.S_ISFIFO(os.fstat(sys.stdin.fileno()).st_mode) else None
    stub.serve_forever(stdin)
    return 0


if __name__ == "__main__":
    sys.exit(main())
