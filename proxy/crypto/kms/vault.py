"""HashiCorp Vault Transit (and OpenBao, same HTTP API) as a KMS, through ``hvac``.

Endpoints (under the Transit mount, default ``transit``): ``encrypt/<kek>``, ``decrypt/<kek>``,
``datakey/plaintext/<kek>``, ``rewrap/<kek>``, ``keys/<kek>`` (``latest_version``). A wrapped DEK is
Vault's ciphertext string ``vault:v<N>:<base64>`` (ASCII bytes); ``N`` is the KEK version.

Auth: a token (from an environment variable, default ``VAULT_TOKEN``, or a file such as a Vault
Agent sink) or AppRole (role id and secret id from environment variables or files; logged in
lazily and again once when Vault answers 403, e.g. after the token expired). ``namespace`` sets
``X-Vault-Namespace`` (Vault Enterprise / HCP); ``ca_file`` verifies a private CA.
"""
from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from ...errors import KmsRefused, KmsUnavailable
from ..keys import SecretKey
from .base import Kms, Wrapped

_CIPHERTEXT = re.compile(rb"^vault:v([1-9][0-9]*):")


@dataclass(frozen=True)
class VaultAuth:
    """Where the credentials are: ``method`` ``token`` (``token_env`` or ``token_file``) or
    ``approle`` (``role_id_env``/``role_id_file``, ``secret_id_env``/``secret_id_file``, ``mount``).
    Holds names of variables and files, never the secrets themselves."""

    method: str = "token"
    token_env: str | None = "VAULT_TOKEN"
    token_file: str | None = None
    role_id_env: str | None = None
    role_id_file: str | None = None
    secret_id_env: str | None = None
    secret_id_file: str | None = None
    mount: str = "approle"


def _secret(env_name: str | None, file_name: str | None, environ: Mapping[str, str], what: str, kek: str) -> str:
    if file_name:
        try:
            return Path(file_name).read_text().strip()
        except OSError as e:
            raise KmsRefused(f"vault (kek {kek!r}): cannot read the {what} file ({type(e).__name__})") from None
    value = environ.get(env_name or "", "").strip()
    if not value:
        raise KmsRefused(f"vault (kek {kek!r}): the {what} variable {env_name} is not set")
    return value


class VaultTransit(Kms):
    """One Transit key. ``address`` like ``https://vault:8200``; ``timeout_s`` per HTTP request."""

    provider = "vault"

    def __init__(self, kek: str, address: str, auth: VaultAuth = VaultAuth(), mount: str = "transit",
                 namespace: str | None = None, ca_file: str | None = None, timeout_s: float = 5.0,
                 environ: Mapping[str, str] | None = None):
        import os

        import hvac
        super().__init__(kek)
        self.address, self.mount, self.auth = address, mount, auth
        self._environ = os.environ if environ is None else environ
        self._client = hvac.Client(url=address, namespace=namespace, verify=ca_file or True, timeout=timeout_s)
        self._logged_in = False

    # ----------------------------------------------------------------- plumbing
    def _login(self) -> None:
        a, env = self.auth, self._environ
        if a.method == "approle":
            role_id = _secret(a.role_id_env, a.role_id_file, env, "AppRole role id", self.kek)
            secret_id = _secret(a.secret_id_env, a.secret_id_file, env, "AppRole secret id", self.kek)
            self._call("login", lambda: self._client.auth.approle.login(role_id, secret_id, mount_point=a.mount),
                       login=False)
        else:
            self._client.token = _secret(a.token_env, a.token_file, env, "token", self.kek)
        self._logged_in = True

    def _call(self, operation: str, fn, login: bool = True):
        """Run one hvac call; map its failures to KmsUnavailable/KmsRefused (class names only)."""
        import hvac.exceptions as hx
        import requests

        if login and not self._logged_in:
            self._login()
        for attempt in (1, 2):
            try:
                return fn()
            except hx.Forbidden:
                if login and attempt == 1 and self.auth.method == "approle":
                    self._login()  # the token may have expired: log in again, once
                    continue
                raise KmsRefused(f"{self.where(operation)}: permission denied") from None
            except (hx.Unauthorized, hx.InvalidPath, hx.InvalidRequest, hx.ParamValidationError) as e:
                raise KmsRefused(f"{self.where(operation)}: refused ({type(e).__name__})") from None
            except (hx.VaultError, requests.RequestException) as e:  # 429, 5xx, sealed, network, timeout
                raise KmsUnavailable(self.provider, f"{self.where(operation)}: {type(e).__name__}") from None
            except (KeyError, TypeError, ValueError) as e:
                raise KmsUnavailable(self.provider, f"{self.where(operation)}: unexpected answer "
                                     f"({type(e).__name__})") from None
        raise AssertionError("unreachable")

    def _version(self, ciphertext: bytes, operation: str) -> int:
        m = _CIPHERTEXT.match(ciphertext)
        if not m:
            raise KmsRefused(f"{self.where(operation)}: not a Vault Transit ciphertext")
        return int(m.group(1))

    # ----------------------------------------------------------------- operations
    def wrap(self, dek: bytes) -> Wrapped:
        t = self._client.secrets.transit
        ct = self._call("wrap", lambda: t.encrypt_data(self.kek, base64.b64encode(dek).decode(),
                                                       mount_point=self.mount)["data"]["ciphertext"]).encode()
        return Wrapped(ct, self._version(ct, "wrap"))

    def unwrap(self, wrapped: bytes) -> bytes:
        self._version(wrapped, "unwrap")
        t = self._client.secrets.transit
        pt = self._call("unwrap", lambda: t.decrypt_data(self.kek, wrapped.decode("ascii"),
                                                         mount_point=self.mount)["data"]["plaintext"])
        return base64.b64decode(pt)

    def describe_key(self) -> int:
        t = self._client.secrets.transit
        return int(self._call("describe", lambda: t.read_key(self.kek, mount_point=self.mount)["data"]["latest_version"]))

    def generate_data_key(self, size: int = 32) -> tuple[SecretKey, Wrapped]:
        if size not in (16, 32, 64):  # Transit's datakey takes 128, 256 or 512 bits
            return super().generate_data_key(size)
        t = self._client.secrets.transit
        data = self._call("generate", lambda: t.generate_data_key(self.kek, key_type="plaintext", bits=size * 8,
                                                                  mount_point=self.mount)["data"])
        ct = data["ciphertext"].encode()
        return SecretKey(self.kek, base64.b64decode(data["plaintext"])), Wrapped(ct, self._version(ct, "generate"))

    def rewrap(self, wrapped: bytes) -> Wrapped:
        self._version(wrapped, "rewrap")
        t = self._client.secrets.transit
        ct = self._call("rewrap", lambda: t.rewrap_data(self.kek, wrapped.decode("ascii"),
                                                        mount_point=self.mount)["data"]["ciphertext"]).encode()
        return Wrapped(ct, self._version(ct, "rewrap"))

    def __repr__(self) -> str:
        return f"VaultTransit(kek={self.kek!r}, address={self.address!r}, mount={self.mount!r}, auth={self.auth.method})"
