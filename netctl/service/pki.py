"""The certificates of an SSL-attached pool: a CA, the controller's certificate, the hosts'.

A pool that names netctl its SDN controller speaks SSL on both OVSDB ends (xapi's
`openvswitch-config-update` sets the host's manager to `pssl:6640` or `ssl:ADDRESS:PORT` and
its SSL table): each host's ovsdb-server proves itself with its certificate and checks
netctl's against the CA it was given (`/etc/stunnel/certs/sdn-controller-ca.pem`); netctl
checks the host's against `ovsdb.ssl.ca_cert`. One CA signing both sides keeps that to one
file everywhere. `netctl pki init` makes the CA (or takes the operator's) and the
controller's certificate; `netctl pki host NAME` a host's (key and certificate in one PEM, the
form of `/etc/xensource/xapi-ssl.pem`). Keys are written 0600 and never overwritten.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_CERT, CA_KEY = "ca-cert.pem", "ca-key.pem"
CTL_CERT, CTL_KEY = "controller-cert.pem", "controller-key.pem"
VALID_DAYS = 3650


class PkiError(RuntimeError):
    """A file is missing, would be overwritten, or does not hold what it should."""


@dataclass(frozen=True)
class Issued:
    """What one command wrote."""

    files: tuple[Path, ...]


def init(directory: Path, names: tuple[str, ...] = (), ca_cert: Path | None = None,
         ca_key: Path | None = None) -> Issued:
    """A CA in `directory` (or the operator's, copied in) and the controller's certificate,
    valid for `names` (addresses or DNS names the hosts reach netctl by)."""
    directory.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    if (ca_cert is None) != (ca_key is None):
        raise PkiError("--ca-cert and --ca-key go together (the operator's CA and its key)")
    if ca_cert is not None and ca_key is not None:
        cert, key = _load_cert(ca_cert), _load_key(ca_key)
        written += [_write(directory / CA_CERT, _pem_cert(cert), 0o644),
                    _write(directory / CA_KEY, _pem_key(key), 0o600)]
    elif not (directory / CA_CERT).exists():
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "netctl pool CA")])
        cert = (_builder(name, name, key.public_key(), VALID_DAYS)
                .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
                .add_extension(x509.KeyUsage(False, False, False, False, False, True, True,
                                             False, False), critical=True)
                .sign(key, hashes.SHA256()))
        written += [_write(directory / CA_CERT, _pem_cert(cert), 0o644),
                    _write(directory / CA_KEY, _pem_key(key), 0o600)]
    written += _issue(directory, directory / CTL_CERT, directory / CTL_KEY, "netctl", names,
                      ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH)
    return Issued(tuple(written))


def host(directory: Path, name: str, names: tuple[str, ...] = ()) -> Issued:
    """A host's key and certificate signed by the CA in `directory`: `hosts/NAME.pem` (key
    then certificate, as `xapi-ssl.pem`)."""
    target = directory / "hosts" / f"{name}.pem"
    if target.exists():
        raise PkiError(f"{target} exists: a host keeps its certificate (delete it to reissue)")
    cert, key = _sign(directory, name, names or (name,), ExtendedKeyUsageOID.SERVER_AUTH,
                      ExtendedKeyUsageOID.CLIENT_AUTH)
    target.parent.mkdir(parents=True, exist_ok=True)
    return Issued((_write(target, _pem_key(key) + _pem_cert(cert), 0o600),))


def _issue(directory: Path, cert_path: Path, key_path: Path, cn: str, names: tuple[str, ...],
           *usages: x509.ObjectIdentifier) -> list[Path]:
    if cert_path.exists():
        return []
    cert, key = _sign(directory, cn, names, *usages)
    return [_write(key_path, _pem_key(key), 0o600), _write(cert_path, _pem_cert(cert), 0o644)]


def _sign(directory: Path, cn: str, names: tuple[str, ...], *usages: x509.ObjectIdentifier
          ) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    ca_cert_path, ca_key_path = directory / CA_CERT, directory / CA_KEY
    if not ca_cert_path.exists() or not ca_key_path.exists():
        raise PkiError(f"no CA in {directory}: run `netctl pki init --dir {directory}` first")
    ca_cert, ca_key = _load_cert(ca_cert_path), _load_key(ca_key_path)
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    builder = (_builder(subject, ca_cert.subject, key.public_key(), VALID_DAYS)
               .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
               .add_extension(x509.ExtendedKeyUsage(list(usages)), critical=False))
    alt = [_general_name(n) for n in names]
    if alt:
        builder = builder.add_extension(x509.SubjectAlternativeName(alt), critical=False)
    return builder.sign(ca_key, hashes.SHA256()), key


def _builder(subject: x509.Name, issuer: x509.Name, public_key, days: int  # noqa: ANN001
             ) -> x509.CertificateBuilder:
    now = dt.datetime.now(dt.UTC)
    return (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer)
            .public_key(public_key).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=days)))


def _general_name(name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def _load_cert(path: Path) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise PkiError(f"{path}: not a PEM certificate ({exc})") from None


def _load_key(path: Path) -> ec.EllipticCurvePrivateKey:
    try:
        return serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise PkiError(f"{path}: not an unencrypted PEM private key ({exc})") from None


def _pem_cert(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _pem_key(key) -> bytes:  # noqa: ANN001 - any private key
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _write(path: Path, data: bytes, mode: int) -> Path:
    if path.exists():
        raise PkiError(f"{path} exists: not overwritten")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    return path
