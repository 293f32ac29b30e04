"""AWS KMS as a KMS, through ``boto3`` and its standard credential chain (environment, shared
config and credentials files, web identity / IRSA, container and instance roles).

Operations: ``Encrypt``, ``Decrypt`` (with ``KeyId`` pinned, so a ciphertext of another key is
refused), ``GenerateDataKey``, ``ReEncrypt``. A wrapped DEK is the ``CiphertextBlob``. AWS rotates
a key's backing material under the same key id and does not number it; dpp numbers it as
1 + the rotations ``ListKeyRotations`` reports, so a rotation gives a new KEK version here too.

Tests run it against ``moto`` in server mode, a local stand-in for AWS KMS, not AWS itself.
"""
from __future__ import annotations

from ...errors import KmsRefused, KmsUnavailable
from ..keys import SecretKey
from .base import Kms, Wrapped

_TRANSIENT = frozenset({"ThrottlingException", "KMSInternalException", "DependencyTimeoutException",
                        "KeyUnavailableException", "ServiceUnavailable", "InternalFailure", "RequestTimeout"})


class AwsKms(Kms):
    """One AWS KMS key (id, ARN or ``alias/...``). ``region`` and ``endpoint_url`` override the
    chain's (``endpoint_url`` for VPC endpoints and stand-ins); ``timeout_s`` per request."""

    provider = "aws"

    def __init__(self, kek: str, region: str | None = None, endpoint_url: str | None = None,
                 timeout_s: float = 5.0, session=None):
        import boto3
        from botocore.config import Config
        super().__init__(kek)
        self.region, self.endpoint_url = region, endpoint_url
        cfg = Config(connect_timeout=timeout_s, read_timeout=timeout_s, retries={"max_attempts": 1})
        self._client = (session or boto3.session.Session()).client("kms", region_name=region,
                                                                   endpoint_url=endpoint_url, config=cfg)

    def _call(self, operation: str, fn):
        from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError, PartialCredentialsError
        try:
            return fn()
        except ClientError as e:
            code = e.response.get("Error", {}).get("Code", "")
            status = e.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
            if code in _TRANSIENT or status >= 500:
                raise KmsUnavailable(self.provider, f"{self.where(operation)}: {code or status}") from None
            raise KmsRefused(f"{self.where(operation)}: refused ({code or status})") from None
        except (NoCredentialsError, PartialCredentialsError) as e:
            raise KmsRefused(f"{self.where(operation)}: no credentials ({type(e).__name__})") from None
        except BotoCoreError as e:  # endpoint unreachable, timeouts
            raise KmsUnavailable(self.provider, f"{self.where(operation)}: {type(e).__name__}") from None

    def describe_key(self) -> int:
        def rotations() -> int:
            n, token = 0, None
            while True:
                page = self._client.list_key_rotations(KeyId=self._key_id(), **({"Marker": token} if token else {}))
                n += len(page.get("Rotations", []))
                token = page.get("NextMarker")
                if not page.get("Truncated") or not token:
                    return n
        return 1 + self._call("describe", rotations)

    def _key_id(self) -> str:  # ListKeyRotations takes no alias: resolve it once
        if not hasattr(self, "_resolved"):
            self._resolved = self._call("describe", lambda: self._client.describe_key(KeyId=self.kek))["KeyMetadata"]["KeyId"]
        return self._resolved

    def wrap(self, dek: bytes) -> Wrapped:
        blob = self._call("wrap", lambda: self._client.encrypt(KeyId=self.kek, Plaintext=dek))["CiphertextBlob"]
        return Wrapped(blob, self.describe_key())

    def unwrap(self, wrapped: bytes) -> bytes:
        return self._call("unwrap", lambda: self._client.decrypt(KeyId=self.kek, CiphertextBlob=wrapped))["Plaintext"]

    def generate_data_key(self, size: int = 32) -> tuple[SecretKey, Wrapped]:
        r = self._call("generate", lambda: self._client.generate_data_key(KeyId=self.kek, NumberOfBytes=size))
        return SecretKey(self.kek, r["Plaintext"]), Wrapped(r["CiphertextBlob"], self.describe_key())

    def rewrap(self, wrapped: bytes) -> Wrapped:
        r = self._call("rewrap", lambda: self._client.re_encrypt(
            CiphertextBlob=wrapped, SourceKeyId=self.kek, DestinationKeyId=self.kek))
        return Wrapped(r["CiphertextBlob"], self.describe_key())

    def __repr__(self) -> str:
        return f"AwsKms(kek={self.kek!r}, region={self.region!r}, endpoint_url={self.endpoint_url!r})"
