"""A small sFlow v5 collector for the lab tests (Debian 12 has no sflowtool): decodes the
datagrams OVS sends — flow samples carrying a raw packet header (Ethernet, 802.1Q, IPv4, IPv6)
and counter samples — enough to assert that a known flow was sampled.

Run as `python -m harness.sflow --listen ADDRESS:PORT --out FILE` (inside a lab host's
namespace, where ovs-vswitchd runs): one JSON line per sample in FILE, flushed as it arrives.
Test code, not product code. Format: sFlow version 5 (sflow.org/sflow_version_5.txt)."""

from __future__ import annotations

import argparse
import ipaddress
import json
import socket
import struct
from collections.abc import Iterator
from typing import Any

FLOW_SAMPLE, COUNTER_SAMPLE, FLOW_SAMPLE_EXPANDED, COUNTER_SAMPLE_EXPANDED = 1, 2, 3, 4
RAW_PACKET_HEADER = 1
HEADER_ETHERNET = 1


def _address(data: bytes, off: int) -> tuple[str, int]:
    kind = struct.unpack_from("!I", data, off)[0]
    if kind == 1:
        return str(ipaddress.IPv4Address(data[off + 4:off + 8])), off + 8
    if kind == 2:
        return str(ipaddress.IPv6Address(data[off + 4:off + 20])), off + 20
    return "", off + 4


def packet(header: bytes) -> dict[str, Any]:
    """Ethernet (with any 802.1Q tags), then IPv4 or IPv6 addresses and protocol."""
    out: dict[str, Any] = {"eth_dst": header[0:6].hex(":"), "eth_src": header[6:12].hex(":")}
    off, ethertype = 12, struct.unpack_from("!H", header, 12)[0]
    while ethertype in (0x8100, 0x88A8) and len(header) >= off + 6:
        out.setdefault("vlans", []).append(struct.unpack_from("!H", header, off + 2)[0] & 0xFFF)
        off += 4
        ethertype = struct.unpack_from("!H", header, off)[0]
    out["ethertype"] = ethertype
    ip = header[off + 2:]
    if ethertype == 0x0800 and len(ip) >= 20:
        out.update(proto=ip[9], src=str(ipaddress.IPv4Address(ip[12:16])),
                   dst=str(ipaddress.IPv4Address(ip[16:20])))
    elif ethertype == 0x86DD and len(ip) >= 40:
        out.update(proto=ip[6], src=str(ipaddress.IPv6Address(ip[8:24])),
                   dst=str(ipaddress.IPv6Address(ip[24:40])))
    return out


def _flow_records(data: bytes, off: int, count: int) -> Iterator[dict[str, Any]]:
    for _ in range(count):
        fmt, length = struct.unpack_from("!II", data, off)
        body = data[off + 8:off + 8 + length]
        off += 8 + length
        if fmt == RAW_PACKET_HEADER:
            proto, frame_length, _stripped, hlen = struct.unpack_from("!IIII", body, 0)
            if proto == HEADER_ETHERNET:
                yield {"frame_length": frame_length, **packet(body[16:16 + hlen])}


def decode(data: bytes) -> Iterator[dict[str, Any]]:
    """Every sample of one datagram, as a dict (`type`: flow or counters)."""
    version = struct.unpack_from("!I", data, 0)[0]
    if version != 5:
        return
    agent, off = _address(data, 4)
    _sub, _seq, _uptime, count = struct.unpack_from("!IIII", data, off)
    off += 16
    for _ in range(count):
        fmt, length = struct.unpack_from("!II", data, off)
        body, off = data[off + 8:off + 8 + length], off + 8 + length
        kind = fmt & 0xFFF if fmt >> 12 == 0 else -1
        if kind == FLOW_SAMPLE:
            _seq, _src, rate, _pool, _drops, inp, outp, n = struct.unpack_from("!8I", body, 0)
            for rec in _flow_records(body, 32, n):
                yield {"type": "flow", "agent": agent, "rate": rate, "input": inp,
                       "output": outp, **rec}
        elif kind == FLOW_SAMPLE_EXPANDED:
            (_seq, _st, _si, rate, _pool, _drops, _if, inp, _of, outp,
             n) = struct.unpack_from("!11I", body, 0)
            for rec in _flow_records(body, 44, n):
                yield {"type": "flow", "agent": agent, "rate": rate, "input": inp,
                       "output": outp, **rec}
        elif kind in (COUNTER_SAMPLE, COUNTER_SAMPLE_EXPANDED):
            yield {"type": "counters", "agent": agent}


def serve(listen: str, out: str) -> None:
    host, _, port = listen.rpartition(":")
    host = host.strip("[]")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    sock.bind((host, int(port)))
    with open(out, "a") as sink:
        while True:
            data, _ = sock.recvfrom(65535)
            try:
                samples = list(decode(data))
            except struct.error:
                samples = [{"type": "undecodable", "length": len(data)}]
            for sample in samples:
                sink.write(json.dumps(sample) + "\n")
            sink.flush()


def read(path: str) -> list[dict[str, Any]]:
    """The samples a collector wrote so far."""
    try:
        with open(path) as f:
            return [json.loads(line) for line in f if line.strip()]
    except FileNotFoundError:
        return []


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--listen", required=True, help="ADDRESS:PORT ([IPv6]:PORT)")
    parser.add_argument("--out", required=True, help="JSON lines, one per sample")
    args = parser.parse_args()
    serve(args.listen, args.out)
