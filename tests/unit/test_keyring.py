"""Keyrings (proxy.crypto.keys): named keys with versions from the environment, files, and a
directory mounted from a Kubernetes Secret; ``current`` is the highest version unless pinned; key
bytes never appear in ``repr``/``str``/errors, and keys refuse to be pickled."""
from __future__ import annotations

import base64
import copy
import os
import pickle
from pathlib import Path

import pytest

from proxy.crypto.keys import KeyRing, SecretKey, load_key, load_keyring
from proxy.errors import KeyLoadError, PolicyError
from proxy.policy.compiler import compile_policy
from proxy.policy.loader import load_policy_text
from proxy.policy.models import DirKey, EnvKey, FileKey

K1 = bytes(range(0x00, 0x20))            # 32 bytes
K2 = bytes(range(0x40, 0x60))
K3 = bytes(range(0xa0, 0xc0))


def leaks(text: str, *keys: bytes) -> list[str]:
    """Representations of ``keys`` found in ``text``: hex (either case), base64, Python bytes repr."""
    found = []
    for k in keys:
        for form in (k.hex(), k.hex().upper(), base64.b64encode(k).decode(), repr(k)[2:-1], k.hex()[:16]):
            if form in text:
                found.append(form)
    return found


# ----------------------------------------------------------------------------- environment
def test_env_single_key_is_version_1():
    ring = load_keyring("fpe", EnvKey(source="env", name="K"), {"K": K1.hex()})
    assert list(ring.versions) == [1] and ring.current == 1
    assert ring.key.material == K1 and ring.key.name == "fpe"


def test_env_versions_current_is_highest_by_default():
    spec = EnvKey(source="env", versions={1: "K_A", 3: "K_C", 2: "K_B"})
    ring = load_keyring("fpe", spec, {"K_A": K1.hex(), "K_B": K2.hex(), "K_C": K3.hex()})
    assert list(ring.versions) == [1, 2, 3]
    assert ring.current == 3 and ring.key.material == K3
    assert ring.version(1).material == K1 and ring.version(2).material == K2


def test_env_current_pinned():
    spec = EnvKey(source="env", versions={1: "K_A", 2: "K_B"}, current=1)
    ring = load_keyring("fpe", spec, {"K_A": K1.hex(), "K_B": K2.hex()})
    assert ring.current == 1 and ring.key.material == K1
    assert ring.version(2).material == K2       # still there for re-identification


def test_env_base64_encoding():
    ring = load_keyring("p", EnvKey(source="env", name="K", encoding="base64"), {"K": base64.b64encode(K2).decode()})
    assert ring.key.material == K2


def test_env_hex_with_whitespace():
    text = " ".join(K1.hex()[i:i + 8] for i in range(0, 64, 8)) + "\n"
    assert load_key("p", EnvKey(source="env", name="K"), {"K": text}).material == K1


def test_env_missing_variable_names_it():
    with pytest.raises(KeyLoadError, match=r"'fpe'.*K_B.*not set"):
        load_keyring("fpe", EnvKey(source="env", versions={1: "K_A", 2: "K_B"}), {"K_A": K1.hex()})


def test_missing_version_errors():
    ring = load_keyring("fpe", EnvKey(source="env", versions={1: "K_A", 2: "K_B"}), {"K_A": K1.hex(), "K_B": K2.hex()})
    with pytest.raises(KeyLoadError, match=r"'fpe' has no version 7"):
        ring.version(7)


def test_pinned_current_must_be_a_version():
    with pytest.raises(ValueError, match="current version 5"):
        EnvKey(source="env", versions={1: "K_A"}, current=5)
    with pytest.raises(ValueError, match="single key is version 1"):
        EnvKey(source="env", name="K", current=2)
    with pytest.raises(KeyLoadError, match="current version 5 not found"):
        KeyRing("fpe", {1: SecretKey("fpe", K1)}, current=5)
    with pytest.raises(KeyLoadError, match="no versions"):
        KeyRing("fpe", {})


def test_short_and_badly_encoded_keys_are_refused_without_echo():
    short = bytes(range(1, 9))
    with pytest.raises(KeyLoadError) as e:
        load_key("p", EnvKey(source="env", name="K"), {"K": short.hex()})
    assert "at least 16" in str(e.value) and short.hex() not in str(e.value)
    secretish = "g" + K1.hex()[1:]
    with pytest.raises(KeyLoadError) as e:
        load_key("p", EnvKey(source="env", name="K"), {"K": secretish})
    assert "not valid hex" in str(e.value) and secretish not in str(e.value) and not leaks(str(e.value), K1)


# ----------------------------------------------------------------------------- files
def test_file_single_and_versions(tmp_path):
    (tmp_path / "a.key").write_text(K1.hex() + "\n")
    (tmp_path / "b.key").write_text(K2.hex())
    assert load_key("fpe", FileKey(source="file", path=str(tmp_path / "a.key"))).material == K1
    ring = load_keyring("fpe", FileKey(source="file", versions={1: str(tmp_path / "a.key"), 2: str(tmp_path / "b.key")}))
    assert ring.current == 2 and ring.key.material == K2 and ring.version(1).material == K1


def test_file_raw_encoding(tmp_path):
    (tmp_path / "raw").write_bytes(K3)
    assert load_key("fpe", FileKey(source="file", path=str(tmp_path / "raw"), encoding="raw")).material == K3


def test_file_missing_names_the_path(tmp_path):
    missing = tmp_path / "nope.key"
    with pytest.raises(KeyLoadError, match=r"nope\.key.*cannot read"):
        load_key("fpe", FileKey(source="file", path=str(missing)))


# ----------------------------------------------------------------------------- directory (Kubernetes Secret)
def test_dir_versions_current_is_highest(tmp_path):
    (tmp_path / "fpe.v1").write_text(K1.hex())
    (tmp_path / "fpe.v2").write_text(K2.hex())
    (tmp_path / "pseudonym.v9").write_text(K3.hex())      # another key's entry: ignored
    (tmp_path / "fpe.v2.bak").write_text(K3.hex())        # not <prefix>.v<N>: ignored
    (tmp_path / "fpe").write_text(K3.hex())
    ring = load_keyring("fpe", DirKey(source="dir", path=str(tmp_path)))
    assert list(ring.versions) == [1, 2]
    assert ring.current == 2 and ring.key.material == K2 and ring.version(1).material == K1


def test_dir_current_pinned_and_prefix(tmp_path):
    (tmp_path / "card.v1").write_text(K1.hex())
    (tmp_path / "card.v2").write_text(K2.hex())
    ring = load_keyring("fpe", DirKey(source="dir", path=str(tmp_path), prefix="card", current=1))
    assert ring.current == 1 and ring.key.material == K1 and ring.name == "fpe"


def test_dir_pinned_current_missing(tmp_path):
    (tmp_path / "fpe.v1").write_text(K1.hex())
    with pytest.raises(KeyLoadError, match="current version 2 not found"):
        load_keyring("fpe", DirKey(source="dir", path=str(tmp_path), current=2))


def test_dir_without_versions_or_not_a_dir(tmp_path):
    (tmp_path / "other.v1").write_text(K1.hex())
    with pytest.raises(KeyLoadError, match=r"no fpe\.v<N> files"):
        load_keyring("fpe", DirKey(source="dir", path=str(tmp_path)))
    with pytest.raises(KeyLoadError, match="not a directory"):
        load_keyring("fpe", DirKey(source="dir", path=str(tmp_path / "other.v1")))


def _k8s_secret(mount: Path, stamp: str, entries: dict[str, bytes]) -> None:
    """Lay out ``entries`` the way the kubelet mounts a Secret volume (atomic writer):
    ``..<timestamp>/<name>`` real files, ``..data -> ..<timestamp>``, ``<name> -> ..data/<name>``.
    Calling it again with a new stamp swaps ``..data`` atomically, like a Secret update."""
    real = mount / f"..{stamp}"
    real.mkdir()
    for name, data in entries.items():
        (real / name).write_text(data.hex())
    tmp_link = mount / "..data_tmp"
    tmp_link.symlink_to(real.name)
    os.replace(tmp_link, mount / "..data")
    for name in entries:
        link = mount / name
        if not link.is_symlink():
            link.symlink_to(f"..data/{name}")


def test_dir_kubernetes_secret_layout_and_rotation(tmp_path):
    mount = tmp_path / "secret"
    mount.mkdir()
    _k8s_secret(mount, "2024_05_01_10_00_00.000000001", {"fpe.v1": K1, "pseudonym.v1": K3})
    spec = DirKey(source="dir", path=str(mount))
    ring = load_keyring("fpe", spec)
    assert list(ring.versions) == [1] and ring.key.material == K1
    # The Secret is updated with a second version: the kubelet swaps ..data; a reload sees both.
    _k8s_secret(mount, "2024_06_01_10_00_00.000000002", {"fpe.v1": K1, "fpe.v2": K2, "pseudonym.v1": K3})
    assert sorted(p.name for p in mount.iterdir() if p.name.startswith("..")) == [
        "..2024_05_01_10_00_00.000000001", "..2024_06_01_10_00_00.000000002", "..data"]
    ring = load_keyring("fpe", spec)
    assert list(ring.versions) == [1, 2] and ring.current == 2
    assert ring.key.material == K2 and ring.version(1).material == K1


def test_dir_key_in_a_policy(tmp_path):
    (tmp_path / "fpe.v1").write_text(K1.hex())
    (tmp_path / "fpe.v2").write_text(K2.hex())
    (tmp_path / "dead-letter.v1").write_text(K3.hex())
    text = f"""
version: 1
name: kr
keys:
  fpe: {{source: dir, path: "{tmp_path}"}}
  dead-letter: {{source: dir, path: "{tmp_path}"}}
routes:
  - {{name: r, source: s, sink: k, dead_letter: d, dead_letter_key: dead-letter,
      rules: [{{field: n, action: fpe, key: fpe}}]}}
"""
    route = compile_policy(load_policy_text(text)).route()
    assert route.key_versions == {"fpe": 2} and route.key_versions_header == b"fpe=2"


def test_policy_missing_key_version_file_reports_key_path(tmp_path):
    (tmp_path / "dead-letter.v1").write_text(K3.hex())
    text = f"""
version: 1
name: kr
keys:
  fpe: {{source: file, versions: {{1: "{tmp_path}/fpe.v1"}}}}
  dead-letter: {{source: dir, path: "{tmp_path}"}}
routes:
  - {{name: r, source: s, sink: k, dead_letter: d, dead_letter_key: dead-letter,
      rules: [{{field: n, action: fpe, key: fpe}}]}}
"""
    with pytest.raises(PolicyError) as e:
        compile_policy(load_policy_text(text, "kr.yaml"))
    assert "kr.yaml" in str(e.value) and "keys.fpe" in str(e.value) and "cannot read" in str(e.value)


# ----------------------------------------------------------------------------- secrecy
def test_repr_shows_fingerprints_never_key_bytes():
    ring = KeyRing("fpe", {1: SecretKey("fpe", K1), 2: SecretKey("fpe", K2)})
    for text in (repr(ring), str(ring), repr(ring.key), str(ring.key), repr(ring.versions), f"{ring.version(1)}"):
        assert not leaks(text, K1, K2), text
    r = repr(ring)
    fp1, fp2 = ring.version(1).fingerprint, ring.version(2).fingerprint
    assert r == f"KeyRing(name='fpe', current=2, versions=[v1:{fp1}, v2:{fp2}])"
    assert len(fp1) == 8 and fp1 != fp2 and int(fp1, 16) >= 0
    assert repr(ring.key) == f"SecretKey(name='fpe', bytes=32, fingerprint={fp2})"


def test_fingerprint_is_not_a_prefix_of_the_key_hash():
    """The fingerprint is domain-separated: it is not the start of the plain SHA-256 of the key, so it
    cannot be matched against a hash of the key published elsewhere."""
    import hashlib
    k = SecretKey("k", K1)
    assert k.fingerprint != hashlib.sha256(K1).hexdigest()[:8]
    assert k.fingerprint == SecretKey("other-name", K1).fingerprint      # depends on the bytes only


def test_raw_key_material_not_in_repr():
    """A key of printable bytes (raw file encoding) must not show up either."""
    raw = b"correct horse battery staple!!"
    k = SecretKey("pw", raw)
    assert "horse" not in repr(k) and "horse" not in str(k)
    assert "horse" not in repr(KeyRing("pw", {1: k}))


@pytest.mark.parametrize("make", [lambda: SecretKey("fpe", K1),
                                  lambda: KeyRing("fpe", {1: SecretKey("fpe", K1)})], ids=["SecretKey", "KeyRing"])
def test_pickling_refused(make):
    obj = make()
    for proto in range(pickle.HIGHEST_PROTOCOL + 1):
        with pytest.raises(TypeError, match="cannot be pickled"):
            pickle.dumps(obj, protocol=proto)
    with pytest.raises(TypeError):
        copy.deepcopy(obj)


def test_keys_have_no_instance_dict():
    """``__slots__``: nothing like ``vars(key)`` can dump the material by accident."""
    k = SecretKey("fpe", K1)
    with pytest.raises(TypeError):
        vars(k)
    with pytest.raises(AttributeError):
        k.extra = 1  # type: ignore[attr-defined]
