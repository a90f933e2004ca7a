"""A throwaway certificate authority for the local Auth0 stand-in.

Writes ca.pem (the CA that AUTH0_CA_BUNDLE points mailer at), server.pem and server-key.pem
(the stand-in's certificate for 127.0.0.1 and localhost) into a directory:

    python tools/auth0-standin/make_certs.py var/auth0-standin

Existing files are kept (unless --force, or the certificate expires within a week), so that
bin/demo keeps working in a browser that was told to trust the CA.
Needs only `cryptography`, which social-auth-core already installs.
"""

from __future__ import annotations

import argparse
import ipaddress
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

FILES = ("ca.pem", "server.pem", "server-key.pem")


def make_certs(directory: Path, force: bool = False) -> Path:
    """Write the CA and the server certificate into `directory` (once); return the directory."""
    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.now(UTC)
    if not force and all((directory / name).exists() for name in FILES):
        server = x509.load_pem_x509_certificate((directory / "server.pem").read_bytes())
        if server.not_valid_after_utc > now + timedelta(days=7):
            return directory
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mailer test CA (auth0-standin)")])
    ca = (
        _builder(ca_name, ca_name, ca_key.public_key(), now)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(True, False, False, False, False, True, True, False, False), critical=True
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    server = (
        _builder(
            x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]),
            ca_name,
            key.public_key(),
            now,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                    x509.IPAddress(ipaddress.ip_address("::1")),
                    x509.DNSName("localhost"),
                ]
            ),
            critical=False,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.KeyUsage(True, False, False, False, False, False, False, False, False), critical=True
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    (directory / "ca.pem").write_bytes(ca.public_bytes(pem))
    (directory / "server.pem").write_bytes(server.public_bytes(pem))
    key_file = directory / "server-key.pem"
    key_file.write_bytes(
        key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    key_file.chmod(0o600)
    return directory


def _builder(subject: x509.Name, issuer: x509.Name, public_key, now: datetime) -> x509.CertificateBuilder:
    # Chromium refuses server certificates valid for more than 398 days.
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=365))
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("directory", type=Path)
    parser.add_argument("--force", action="store_true", help="make new ones even if present")
    args = parser.parse_args()
    print(make_certs(args.directory, args.force))


if __name__ == "__main__":
    main()
