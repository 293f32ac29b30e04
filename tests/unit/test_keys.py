"""Key loading (proxy.crypto.keys): env/file sources, hex/base64/raw encodings, errors that name the
key and its source but never the material, and a repr that never shows key bytes."""
from __future__ import annotations

import base64
import pickle

import pytest

from proxy.crypto.keys import SecretKey, load_key, require_aes
from proxy.errors import KeyLoadError, PolicyError
from proxy.policy.compiler import compile_policy
from proxy.policy.loader import load_policy_text
from proxy.policy.models import EnvKey, FileKey

MATERIAL = bytes.fromhex("8a1f0c2d3e4f5a6b7c8d9eafb0c1d2e3f405162738495a6b7c8d9eafb0c1d2e3")


def env(name="V", encoding="hex"):
    return EnvKey(source="env", name=name, encoding=encoding)


def file(path, encoding="hex"):
    return FileKey(source="file", path=str(path), encoding=encoding)


# ----------------------------------------------------------------------------- sources and encodings
@pytest.mark.parametrize(
    "encoding,text",
    [
        ("hex", MATERIAL.hex()),
        ("hex", MATERIAL.hex().upper()),
        ("hex", " " + MATERIAL.hex()[:32] + "\n" + MATERIAL.hex()[32:] + "\n"),    # whitespace ignored
        ("base64", base64.b64encode(MATERIAL).decode()),
        ("base64", base64.b64encode(MATERIAL).decode().rstrip("=")),                # padding optional
        ("base64", base64.urlsafe_b64encode(MATERIAL).decode()),                    # url-safe alphabet
    ],
)
def test_env_key(encoding, text):
    key = load_key("k", env(encoding=encoding), {"V": text})
    assert key.material == MATERIAL and key.name == "k" and len(key) == 32


@pytest.mark.parametrize(
    "encoding,content",
    [
        ("hex", (MATERIAL.hex() + "\n").encode()),
        ("base64", base64.b64encode(MATERIAL) + b"\n"),
        ("raw", MATERIAL),
    ],
)
def test_file_key(tmp_path, encoding, content):
    p = tmp_path / "k.key"
    p.write_bytes(content)
    assert load_key("k", file(p, encoding)).material == MATERIAL


def test_raw_file_keeps_every_byte(tmp_path):
    raw = b"\n\x00 " + MATERIAL[:13] + b"\n"          # newline and spaces are key bytes in raw mode
    p = tmp_path / "raw.key"
    p.write_bytes(raw)
    assert load_key("k", file(p, "raw")).material == raw


def test_env_defaults_to_process_environment(monkeypatch):
    monkeypatch.setenv("DPP_UNIT_KEY", MATERIAL.hex())
    assert load_key("k", env("DPP_UNIT_KEY")).material == MATERIAL
    # an explicit mapping replaces the environment entirely
    with pytest.raises(KeyLoadError):
        load_key("k", env("DPP_UNIT_KEY"), {})


# ----------------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    "spec_env,environ,message",
    [
        (("V", "hex"), {}, "key 'k' (environment variable V): variable is not set"),
        (("V", "hex"), {"V": ""}, "key 'k' (environment variable V): variable is not set"),
        (("V", "hex"), {"V": "  \n"}, "key 'k' (environment variable V): variable is not set"),
        (("V", "hex"), {"V": "zz" + MATERIAL.hex()}, "key 'k' (environment variable V): not valid hex"),
        (("V", "hex"), {"V": MATERIAL.hex()[:-1]}, "key 'k' (environment variable V): not valid hex"),
        (("V", "base64"), {"V": "!!" + base64.b64encode(MATERIAL).decode()},
         "key 'k' (environment variable V): not valid base64"),
        (("V", "base64"), {"V": base64.b64encode(MATERIAL).decode() + "A"},
         "key 'k' (environment variable V): not valid base64"),
        (("V", "hex"), {"V": MATERIAL[:15].hex()}, "key 'k' (environment variable V): 15 bytes; at least 16 are required"),
        (("V", "base64"), {"V": base64.b64encode(MATERIAL[:8]).decode()},
         "key 'k' (environment variable V): 8 bytes; at least 16 are required"),
    ],
)
def test_env_errors_name_key_and_variable_never_the_value(spec_env, environ, message):
    with pytest.raises(KeyLoadError) as ei:
        load_key("k", env(*spec_env), environ)
    assert str(ei.value) == message
    for v in environ.values():
        if v.strip():
            assert v.strip() not in str(ei.value)
            assert v.strip()[:8] not in str(ei.value)


def test_file_errors(tmp_path):
    missing = tmp_path / "absent.key"
    with pytest.raises(KeyLoadError) as ei:
        load_key("k", file(missing))
    assert str(ei.value) == f"key 'k' (file {missing}): cannot read (FileNotFoundError)"
    short = tmp_path / "short.key"
    short.write_bytes(MATERIAL[:10])
    with pytest.raises(KeyLoadError) as ei:
        load_key("k", file(short, "raw"))
    assert str(ei.value) == f"key 'k' (file {short}): 10 bytes; at least 16 are required"
    bad = tmp_path / "bad.key"
    bad.write_bytes(b"\xff\xfe" + MATERIAL.hex().encode())
    with pytest.raises(KeyLoadError) as ei:
        load_key("k", file(bad, "hex"))
    assert str(ei.value) == f"key 'k' (file {bad}): not valid hex"
    assert MATERIAL.hex() not in str(ei.value)


def test_require_aes():
    for n in (16, 24, 32):
        assert require_aes(SecretKey("k", MATERIAL[:n]), "x") == MATERIAL[:n]
    for n in (17, 20, 31, 33, 64):
        with pytest.raises(KeyLoadError) as ei:
            require_aes(SecretKey("k", (MATERIAL * 3)[:n]), "the purpose")
        assert str(ei.value) == f"key 'k' for the purpose: {n} bytes; AES needs 16, 24 or 32"


# ----------------------------------------------------------------------------- repr
@pytest.mark.parametrize("material", [MATERIAL, b"printable-key-material-0123456789", bytes(16)])
def test_repr_never_contains_key_bytes(material):
    key = SecretKey("fpe", material)
    for text in (repr(key), str(key), f"{key}", repr([key]), repr({"k": key})):
        assert material.hex() not in text
        assert repr(material) not in text and repr(material)[2:-1] not in text
        assert base64.b64encode(material).decode() not in text
        assert text.count("fpe") >= 1 and f"bytes={len(material)}" in text
    assert key.fingerprint in repr(key) and len(key.fingerprint) == 8
    with pytest.raises(TypeError):
        pickle.dumps(key)


def test_fingerprint_identifies_without_revealing():
    a, b = SecretKey("a", MATERIAL), SecretKey("b", MATERIAL)
    assert a.fingerprint == b.fingerprint
    assert SecretKey("a", MATERIAL[::-1]).fingerprint != a.fingerprint
    assert a.fingerprint not in MATERIAL.hex()


# ----------------------------------------------------------------------------- through compile_policy
POLICY = """version: 1
name: unit
keys:
  mac: {source: env, name: DPP_UNIT_MAC}
  dlq: {source: env, name: DPP_UNIT_DLQ, encoding: base64}
routes:
  - name: r
    source: in.t
    sink: out.t
    dead_letter: dlq.t
    dead_letter_key: dlq
    rules:
      - {field: e, action: pseudonymize, key: mac}
"""


def test_compile_missing_variable_is_a_policy_error_naming_key_and_variable():
    secret_dlq = base64.b64encode(MATERIAL).decode()
    with pytest.raises(PolicyError) as ei:
        compile_policy(load_policy_text(POLICY, "p.yaml"), environ={"DPP_UNIT_DLQ": secret_dlq})
    assert ei.value.problems == [("p.yaml", 4, "keys.mac", "key 'mac' (environment variable DPP_UNIT_MAC): variable is not set")]
    assert str(ei.value) == "p.yaml:4: keys.mac: key 'mac' (environment variable DPP_UNIT_MAC): variable is not set"
    assert secret_dlq not in str(ei.value) and MATERIAL.hex() not in str(ei.value)


def test_compile_reports_every_bad_key_without_values():
    environ = {"DPP_UNIT_MAC": "0123abcd", "DPP_UNIT_DLQ": "@@@@" + base64.b64encode(MATERIAL).decode()}
    with pytest.raises(PolicyError) as ei:
        compile_policy(load_policy_text(POLICY, "p.yaml"), environ=environ)
    assert str(ei.value).splitlines() == [
        "p.yaml:5: keys.dlq: key 'dlq' (environment variable DPP_UNIT_DLQ): not valid base64",
        "p.yaml:4: keys.mac: key 'mac' (environment variable DPP_UNIT_MAC): 4 bytes; at least 16 are required",
    ]
    for v in environ.values():
        assert v not in str(ei.value)


def test_compiled_route_repr_and_transforms_hide_keys():
    environ = {"DPP_UNIT_MAC": MATERIAL.hex(), "DPP_UNIT_DLQ": base64.b64encode(MATERIAL[:16]).decode()}
    r = compile_policy(load_policy_text(POLICY), environ=environ).route()
    assert r.dead_letter_key == MATERIAL[:16]
    for t in r.transforms:
        assert MATERIAL.hex() not in repr(t) and MATERIAL.hex() not in str(vars(t).get("rule"))
