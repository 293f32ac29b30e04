"""The KMS providers against real servers: HashiCorp Vault's dev server with Transit
(``vault_server``, deploy/vault.sh) and moto in server mode, a local stand-in for AWS KMS
(``moto_kms``). Round trips, KEK rotation and rewrap, refusals and outages mapped to
KmsRefused/KmsUnavailable, AppRole login, and the key store built on them (dpp keys init, rotate,
rewrap) with no key material in the store, reprs or errors."""
from __future__ import annotations

import base64
import os
import uuid

import orjson
import pytest

from proxy.crypto import kms as kms_pkg
from proxy.crypto.kms.aws import AwsKms
from proxy.crypto.kms.store import init_keys, load_kms_keyring, read_store, rewrap_keys, rotate_keys
from proxy.crypto.kms.vault import VaultAuth, VaultTransit
from proxy.errors import KeyLoadError, KmsRefused, KmsUnavailable
from proxy.policy.models import AwsKey, VaultKey


class VaultAdmin:
    def __init__(self, server):
        import hvac
        self.server = server
        self.client = hvac.Client(url=server["addr"], token=server["token"])

    def new_kek(self) -> str:
        name = f"dpp-{uuid.uuid4().hex[:8]}"
        self.client.secrets.transit.create_key(name)
        return name

    def rotate(self, kek: str) -> None:
        self.client.secrets.transit.rotate_key(kek)

    def provider(self, kek: str) -> VaultTransit:
        return VaultTransit(kek, self.server["addr"], environ={"VAULT_TOKEN": self.server["token"]})

    def spec(self, kek: str, store: str) -> VaultKey:
        return VaultKey(source="vault", key=kek, store=store, address=self.server["addr"])

    env = property(lambda self: {"VAULT_TOKEN": self.server["token"]})


class AwsAdmin:
    def __init__(self, url):
        import boto3
        self.url = url
        self.client = boto3.client("kms", region_name="us-east-1", endpoint_url=url)

    def new_kek(self) -> str:
        key_id = self.client.create_key()["KeyMetadata"]["KeyId"]
        alias = f"alias/dpp-{uuid.uuid4().hex[:8]}"
        self.client.create_alias(AliasName=alias, TargetKeyId=key_id)
        return alias

    def rotate(self, kek: str) -> None:
        key_id = self.client.describe_key(KeyId=kek)["KeyMetadata"]["KeyId"]  # rotation takes no alias
        self.client.rotate_key_on_demand(KeyId=key_id)

    def provider(self, kek: str) -> AwsKms:
        return AwsKms(kek, "us-east-1", self.url)

    def spec(self, kek: str, store: str) -> AwsKey:
        return AwsKey(source="aws", key=kek, store=store, region="us-east-1", endpoint_url=self.url)

    env = property(lambda self: dict(os.environ))


@pytest.fixture(params=["vault", "aws"])
def admin(request):
    if request.param == "vault":
        return VaultAdmin(request.getfixturevalue("vault_server"))
    return AwsAdmin(request.getfixturevalue("moto_kms"))


@pytest.fixture(autouse=True)
def _fresh_clients():
    kms_pkg.reset()
    yield
    kms_pkg.reset()


def test_round_trip_rotation_and_rewrap(admin):
    kek = admin.new_kek()
    k = admin.provider(kek)
    assert k.describe_key() == 1
    dek, w1 = k.generate_data_key(32)
    assert len(dek) == 32 and w1.kek_version == 1
    assert k.unwrap(w1.ciphertext) == dek.material
    other = os.urandom(24)
    assert k.unwrap(k.wrap(other).ciphertext) == other
    admin.rotate(kek)
    assert k.describe_key() == 2
    w2 = k.wrap(dek.material)
    assert w2.kek_version == 2 and w2.ciphertext != w1.ciphertext
    assert k.unwrap(w1.ciphertext) == dek.material          # the old KEK version still unwraps
    r = k.rewrap(w1.ciphertext)
    assert r.kek_version == 2 and k.unwrap(r.ciphertext) == dek.material


def test_refusals(admin):
    k = admin.provider(admin.new_kek())
    _, w = k.generate_data_key(32)
    stranger = admin.provider(admin.new_kek())
    with pytest.raises(KmsRefused) as e:
        stranger.unwrap(w.ciphertext)                        # another KEK's ciphertext
    missing = admin.provider(f"{'alias/' if isinstance(k, AwsKms) else ''}no-such-{uuid.uuid4().hex[:6]}")
    with pytest.raises(KmsRefused):
        missing.describe_key()
    with pytest.raises(KmsRefused):
        missing.generate_data_key(32)     # Vault's encrypt would create a missing key; datakey does not
    assert w.ciphertext.hex() not in str(e.value) and "vault:v" not in str(e.value)


@pytest.mark.parametrize("provider", ["vault", "aws"])
def test_unreachable_kms_is_unavailable(provider, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")      # credentials present: the endpoint is what fails
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    dead = "http://127.0.0.1:9"  # discard port: nothing listens
    k = (VaultTransit("dpp-x", dead, environ={"VAULT_TOKEN": "t"}, timeout_s=1) if provider == "vault"
         else AwsKms("alias/dpp-x", "us-east-1", dead, timeout_s=1))
    with pytest.raises(KmsUnavailable) as e:
        k.describe_key()
    assert e.value.dependency == f"kms:{provider}"


def test_vault_bad_token_is_refused(vault_server):
    kek = VaultAdmin(vault_server).new_kek()
    with pytest.raises(KmsRefused, match="permission denied"):
        VaultTransit(kek, vault_server["addr"], environ={"VAULT_TOKEN": "hvs.not-a-token"}).describe_key()
    with pytest.raises(KmsRefused, match="VAULT_TOKEN is not set"):
        VaultTransit(kek, vault_server["addr"], environ={}).describe_key()


def test_vault_approle_and_token_file(vault_server, tmp_path):
    adm = VaultAdmin(vault_server)
    kek = adm.new_kek()
    c = adm.client
    if "approle/" not in c.sys.list_auth_methods()["data"]:
        c.sys.enable_auth_method("approle")
    c.sys.create_or_update_policy(f"p-{kek}", (   # what docs/kms.md asks for: no create
        f'path "transit/+/{kek}" {{ capabilities = ["update"] }}\n'
        f'path "transit/datakey/plaintext/{kek}" {{ capabilities = ["update"] }}\n'
        f'path "transit/keys/{kek}" {{ capabilities = ["read"] }}'))
    c.auth.approle.create_or_update_approle(kek, token_policies=[f"p-{kek}"])
    role_id = c.auth.approle.read_role_id(kek)["data"]["role_id"]
    secret_id = c.auth.approle.generate_secret_id(kek)["data"]["secret_id"]
    auth = VaultAuth(method="approle", role_id_env="R", secret_id_env="S")
    k = VaultTransit(kek, vault_server["addr"], auth, environ={"R": role_id, "S": secret_id})
    dek, w = k.generate_data_key(32)
    assert k.unwrap(w.ciphertext) == dek.material
    assert secret_id not in repr(k) and role_id not in repr(k)
    wrong = VaultTransit(kek, vault_server["addr"], auth, environ={"R": role_id, "S": "wrong"})
    with pytest.raises(KmsRefused):
        wrong.describe_key()
    (tmp_path / "token").write_text(vault_server["token"] + "\n")
    by_file = VaultTransit(kek, vault_server["addr"], VaultAuth(token_env=None, token_file=str(tmp_path / "token")),
                           environ={})
    assert by_file.describe_key() == 1


def test_key_store_init_rotate_rewrap(admin, tmp_path):
    store = str(tmp_path / "keys.json")
    kek = admin.new_kek()
    keys = {"fpe": admin.spec(kek, store), "pseudonym": admin.spec(kek, store)}
    created = init_keys(keys, admin.env)
    assert [(r["key"], r["version"], r["kek_version"]) for r in created] == [("fpe", 1, 1), ("pseudonym", 1, 1)]
    assert init_keys(keys, admin.env) == []                  # idempotent
    ring = load_kms_keyring("fpe", keys["fpe"], admin.env)
    v1 = ring.key.material
    assert ring.current == 1 and len(v1) == 32
    assert load_kms_keyring("pseudonym", keys["pseudonym"], admin.env).key.material != v1
    raw = open(store, "rb").read()
    assert v1.hex().encode() not in raw and base64.b64encode(v1) not in raw   # wrapped DEKs only

    admin.rotate(kek)
    (r,) = rotate_keys(keys, admin.env, ["fpe"])
    assert (r["version"], r["kek_version"]) == (2, 2)
    kms_pkg.reset()                                          # a new worker: nothing cached
    ring = load_kms_keyring("fpe", keys["fpe"], admin.env)
    assert ring.current == 2 and ring.version(1).material == v1 and ring.key.material != v1

    rewrapped = {r["key"]: r["versions"] for r in rewrap_keys(keys, admin.env)}
    assert rewrapped == {"fpe": {"1": 2, "2": 2}, "pseudonym": {"1": 2}}
    doc = read_store(store)
    assert {v["kek_version"] for v in doc["keys"]["fpe"]["versions"].values()} == {2}
    kms_pkg.reset()
    again = load_kms_keyring("fpe", keys["fpe"], admin.env)
    assert again.version(1).material == v1 and again.version(2).material == ring.key.material
    assert v1.hex() not in repr(again) and v1.hex() not in str(again.key)


@pytest.mark.parametrize("edit, message", [
    (lambda d: d["keys"].pop("fpe"), "not in the key store"),
    (lambda d: d["keys"]["fpe"].update(kek="another"), "the key store holds it for"),
    (lambda d: d["keys"]["fpe"]["versions"]["1"].update(wrapped="!!"), "not valid base64"),
    (lambda d: d.update(format="x"), "not a dpp-key-store"),
])
def test_key_store_problems_are_key_load_errors(admin, tmp_path, edit, message):
    store = tmp_path / "keys.json"
    spec = admin.spec(admin.new_kek(), str(store))
    init_keys({"fpe": spec}, admin.env)
    doc = orjson.loads(store.read_bytes())
    edit(doc)
    store.write_bytes(orjson.dumps(doc))
    with pytest.raises(KeyLoadError, match=message):
        load_kms_keyring("fpe", spec, admin.env)
