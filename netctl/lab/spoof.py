"""Crafted frames from a VM (scapy), captured on another VM: does VIF locking hold?

Shared by the demo and the tests. The sender's frames are broadcast or all-nodes multicast, so
if the sender's bridge lets them out they reach every VM of the network, on every host. Each
frame carries a name; the capture says which names arrived. Legitimate frames built the same
way are the control: if they do not arrive, the capture, not the locking, is what failed.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

from netctl.lab.lab import Lab

SCAPY_SEND = r"""
import sys
from scapy.all import ARP, BOOTP, DHCP, IP, UDP, Ether, IPv6, Raw, sendp
from scapy.layers.inet6 import (ICMPv6ND_NA, ICMPv6ND_NS, ICMPv6ND_RA, ICMPv6ND_Redirect,
                                ICMPv6NDOptDstLLAddr, ICMPv6NDOptSrcLLAddr)
iface, mac, ip4, ip6, other4, other6 = sys.argv[1:7]
evil = "02:66:66:66:66:66"
bc, an = "ff:ff:ff:ff:ff:ff", "33:33:00:00:00:01"
def udp4(src_mac, src_ip, tag):
    return Ether(src=src_mac, dst=bc) / IP(src=src_ip, dst="255.255.255.255") / UDP(
        sport=40000, dport=9999) / Raw(tag.encode())
def udp6(src_ip, tag):
    return Ether(src=mac, dst=an) / IPv6(src=src_ip, dst="ff02::1") / UDP(
        sport=40000, dport=9999) / Raw(tag.encode())
spoof4 = ip4.rsplit(".", 1)[0] + ".99"
frames = [
    udp4(mac, ip4, "legit-ipv4"),
    udp4(evil, ip4, "spoofed-mac"),
    udp4(mac, spoof4, "spoofed-ipv4"),
    Ether(src=mac, dst=bc) / ARP(op=1, hwsrc=mac, psrc=ip4, pdst="198.51.100.200"),
    Ether(src=mac, dst=bc) / ARP(op=1, hwsrc=mac, psrc=other4, pdst="198.51.100.201"),
    Ether(src=mac, dst=bc) / IP(src=ip4, dst="255.255.255.255") / UDP(sport=67, dport=68)
        / BOOTP(op=2, yiaddr="198.51.100.77") / DHCP(options=[("message-type", "offer"), "end"]),
]
spoof6 = ip6.rsplit(":", 1)[0] + ":99"
frames += [] if ip6 == "-" else [
    udp6(ip6, "legit-ipv6"),
    udp6(spoof6, "spoofed-ipv6"),
    Ether(src=mac, dst=an) / IPv6(src=ip6, dst="ff02::1") / ICMPv6ND_NA(tgt=other6)
        / ICMPv6NDOptDstLLAddr(lladdr=mac),
    Ether(src=mac, dst=an) / IPv6(src=ip6, dst="ff02::1") / ICMPv6ND_NS(tgt="2001:db8::200")
        / ICMPv6NDOptSrcLLAddr(lladdr=mac),
    Ether(src=mac, dst=an) / IPv6(src=ip6, dst="ff02::1") / ICMPv6ND_NS(tgt="2001:db8::201")
        / ICMPv6NDOptSrcLLAddr(lladdr=evil),
    Ether(src=mac, dst=an) / IPv6(src=ip6, dst="ff02::1") / ICMPv6ND_RA(),
    Ether(src=mac, dst=an) / IPv6(src=ip6, dst="ff02::1") / ICMPv6ND_Redirect(
        tgt="2001:db8::1", dst="2001:db8::202"),
]
for _ in range(3):
    sendp(frames, iface=iface, verbose=False)
"""

LEGIT_IPV4 = frozenset({"legit-ipv4", "legit-arp"})
LEGIT_IPV6 = frozenset({"legit-ipv6", "legit-ns"})
SPOOFED_IPV4 = frozenset({"spoofed-mac", "spoofed-ipv4", "spoofed-arp-sender",
                          "dhcp-server-reply"})
SPOOFED_IPV6 = frozenset({"spoofed-ipv6", "spoofed-na-target", "forged-ns-sll",
                          "router-advertisement", "redirect"})
LEGIT = LEGIT_IPV4 | LEGIT_IPV6
SPOOFED = SPOOFED_IPV4 | SPOOFED_IPV6


def expected_frames(ipv6: bool) -> tuple[frozenset[str], frozenset[str]]:
    """(legitimate, spoofed) frame names a check sends: the IPv6 ones only when both ends
    have IPv6 (a VM without IPv6 sends the IPv4 frames alone)."""
    if ipv6:
        return LEGIT, SPOOFED
    return LEGIT_IPV4, SPOOFED_IPV4


def seen_on(pcap: str, other6: str) -> set[str]:
    """Which of the crafted frames arrived, by name."""
    from scapy.all import ARP, BOOTP, UDP, Raw, rdpcap
    from scapy.layers.inet6 import ICMPv6ND_NA, ICMPv6ND_NS, ICMPv6ND_RA, ICMPv6ND_Redirect

    names = set()
    for pkt in rdpcap(pcap):
        if pkt.haslayer(Raw) and pkt.haslayer(UDP) and pkt[UDP].dport == 9999:
            names.add(bytes(pkt[Raw].load).decode(errors="replace"))
        if pkt.haslayer(ARP) and pkt[ARP].pdst in ("198.51.100.200", "198.51.100.201"):
            names.add("legit-arp" if pkt[ARP].pdst.endswith("200") else "spoofed-arp-sender")
        if pkt.haslayer(ICMPv6ND_NA) and pkt[ICMPv6ND_NA].tgt == other6:
            names.add("spoofed-na-target")
        if pkt.haslayer(ICMPv6ND_NS):
            tgt = pkt[ICMPv6ND_NS].tgt
            names.add({"2001:db8::200": "legit-ns", "2001:db8::201": "forged-ns-sll"}.get(tgt, ""))
        if pkt.haslayer(ICMPv6ND_RA):
            names.add("router-advertisement")
        if pkt.haslayer(ICMPv6ND_Redirect):
            names.add("redirect")
        if pkt.haslayer(BOOTP) and pkt[BOOTP].op == 2:
            names.add("dhcp-server-reply")
    return names - {""}


def spoof_check(lab: Lab, sender: str, device: int, receiver: str, receiver_device: int,
                ipv6: bool = True) -> set[str]:
    """`sender` VIF sends every crafted frame; what `receiver` (same network) captured.
    Both need an IPv4 address; the IPv6 frames are sent only with `ipv6` (both ends then
    need an IPv6 address: `expected_frames` says which names to expect)."""
    vif = lab.vif(sender, device)
    other = lab.vif(receiver, receiver_device)
    if not vif.ipv4 or not other.ipv4:
        raise ValueError(f"{sender}/{device} and {receiver}/{receiver_device} both need IPv4")
    if ipv6 and (not vif.ipv6 or not other.ipv6):
        raise ValueError(f"{sender}/{device} or {receiver}/{receiver_device} has no IPv6")
    ip4, other4 = vif.ipv4[0].split("/")[0], other.ipv4[0].split("/")[0]
    ip6 = vif.ipv6[0].split("/")[0] if ipv6 else "-"
    other6 = other.ipv6[0].split("/")[0] if ipv6 else "-"
    with tempfile.TemporaryDirectory() as tmp:
        pcap = str(Path(tmp) / "capture.pcap")
        # -Q in: what reached the receiver, not what it sent itself (its own NA for its
        # address, answering a peer's neighbour unreachability probe, is no spoofed NA)
        cap = lab.popen(receiver, ["tcpdump", "-i", f"eth{receiver_device}", "-Q", "in", "-U",
                                   "-n", "-w", pcap])
        try:
            time.sleep(1.0)
            lab.exec(sender, [sys.executable, "-c", SCAPY_SEND, f"eth{device}", vif.mac, ip4,
                              ip6, other4, other6], timeout=60)
            time.sleep(1.0)
        finally:
            cap.terminate()
            try:
                cap.communicate(timeout=10)
            except subprocess.TimeoutExpired:
                cap.kill()
                cap.communicate()
        return seen_on(pcap, other6)
