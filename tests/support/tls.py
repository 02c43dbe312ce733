"""Throw-away TLS material for the tests, made with the openssl CLI: a CA and a server certificate it signed."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

__all__ = ["TestCa", "openssl_available"]

_DAYS = "2"


def openssl_available() -> bool:
    """Whether the openssl CLI is on the PATH (Debian's ``openssl``)."""
    return shutil.which("openssl") is not None


def _openssl(*args: str | Path) -> None:
    result = subprocess.run(["openssl", *map(str, args)], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(map(str, args[:2]))} failed: {result.stderr[-1000:]}")


@dataclass(frozen=True)
class TestCa:
    """A self-signed CA in ``folder`` (``ca.pem``, ``ca.key``), signing certificates on demand.

    Example:
        >>> ca = TestCa.create(tmp_path / "ca")
        >>> cert, key = ca.issue("hub", ip="127.0.0.1")
    """

    __test__ = False  # not a test class, whatever pytest thinks of its name

    folder: Path

    @property
    def cert(self) -> Path:
        """The CA's certificate (what the other side verifies with)."""
        return self.folder / "ca.pem"

    @classmethod
    def create(cls, folder: Path, name: str = "anjian test CA") -> TestCa:
        """Make a new CA (an EC P-256 key) in ``folder``."""
        folder.mkdir(parents=True, exist_ok=True)
        ca = cls(folder)
        _openssl(
            "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", folder / "ca.key", "-out", ca.cert, "-days", _DAYS, "-subj", f"/CN={name}",
            "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        )  # fmt: skip
        return ca

    def issue(self, name: str, *, ip: str = "127.0.0.1") -> tuple[Path, Path]:
        """A certificate for ``name`` (valid for ``ip`` and localhost, server and client use) and its key."""
        key, csr, cert = (self.folder / f"{name}{suffix}" for suffix in (".key", ".csr", ".pem"))
        extensions = self.folder / f"{name}.ext"
        extensions.write_text(
            f"subjectAltName=IP:{ip},DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n",
            encoding="utf-8",
        )
        _openssl(
            "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", key, "-out", csr, "-subj", f"/CN={name}",
        )  # fmt: skip
        _openssl(
            "x509", "-req", "-in", csr, "-CA", self.cert, "-CAkey", self.folder / "ca.key",
            "-CAcreateserial", "-out", cert, "-days", _DAYS, "-extfile", extensions,
        )  # fmt: skip
        return cert, key
