"""`netctl pki` (netctl.service.pki): a CA, the controller's certificate, hosts' certificates
that the CA verifies; keys private; nothing overwritten."""

from __future__ import annotations

import ssl
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509

from netctl.service import pki


def verified(ca: Path, cert_pem: bytes) -> bool:
    """OpenSSL's own verdict (what both OVS ends use)."""
    done = subprocess.run(["openssl", "verify", "-CAfile", str(ca)], input=cert_pem,
                          capture_output=True)
    return done.returncode == 0


def test_init_and_host_certificates_verify_against_the_ca(tmp_path: Path) -> None:
    files = pki.init(tmp_path, ("198.18.53.1",)).files
    assert {f.name for f in files} == {pki.CA_CERT, pki.CA_KEY, pki.CTL_CERT, pki.CTL_KEY}
    for key in (pki.CA_KEY, pki.CTL_KEY):
        assert stat.S_IMODE((tmp_path / key).stat().st_mode) == 0o600
    ca = tmp_path / pki.CA_CERT
    assert verified(ca, (tmp_path / pki.CTL_CERT).read_bytes())
    cert = x509.load_pem_x509_certificate((tmp_path / pki.CTL_CERT).read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(a) for a in san.get_values_for_type(x509.IPAddress)] == ["198.18.53.1"]
    host = pki.host(tmp_path, "host1").files[0]
    assert stat.S_IMODE(host.stat().st_mode) == 0o600
    assert verified(ca, host.read_bytes())
    # one PEM holds the key and the certificate, as xapi-ssl.pem does: Python's ssl loads it
    ssl.create_default_context().load_cert_chain(str(host))


def test_nothing_is_overwritten_and_a_second_init_keeps_the_ca(tmp_path: Path) -> None:
    pki.init(tmp_path)
    ca_before = (tmp_path / pki.CA_CERT).read_bytes()
    assert pki.init(tmp_path).files == ()
    assert (tmp_path / pki.CA_CERT).read_bytes() == ca_before
    pki.host(tmp_path, "host1")
    with pytest.raises(pki.PkiError, match="exists"):
        pki.host(tmp_path, "host1")


def test_the_operators_ca_is_taken(tmp_path: Path) -> None:
    theirs = tmp_path / "theirs"
    pki.init(theirs)
    ours = tmp_path / "ours"
    pki.init(ours, ca_cert=theirs / pki.CA_CERT, ca_key=theirs / pki.CA_KEY)
    assert verified(theirs / pki.CA_CERT, (ours / pki.CTL_CERT).read_bytes())


def test_a_host_without_a_ca_is_a_clear_error_on_the_command_line(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "netctl.cli", "pki", "host", "host1", "--dir",
                           str(tmp_path)], capture_output=True, text=True)
    assert done.returncode == 1
    assert f"no CA in {tmp_path}: run `netctl pki init --dir {tmp_path}` first" in done.stderr
