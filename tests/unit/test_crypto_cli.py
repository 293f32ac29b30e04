"""``dpp crypto ff1``: the nine NIST SP 800-38G FF1 sample vectors through the command line
(in-process with click's CliRunner, and once more through the installed ``dpp`` script), both
directions, and bad input refused with a message and a non-zero exit code, never a traceback.

The vectors (tests/data/ff1_nist_sp800_38g.json) are NIST's published samples, so these tests check
the CLI against an external reference, not against our own library.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from proxy.cli import main

ROOT = Path(__file__).resolve().parents[2]
VECTORS = json.loads((ROOT / "tests" / "data" / "ff1_nist_sp800_38g.json").read_text(encoding="utf-8"))["vectors"]
KEY128 = "2B7E151628AED2A6ABF7158809CF4F3C"


def runner() -> CliRunner:
    """A runner that keeps stdout and stderr apart (click >= 8.2 always does; 8.1 needs the flag)."""
    try:
        return CliRunner(mix_stderr=False)  # type: ignore[call-arg]
    except TypeError:
        return CliRunner()


def ff1_args(v: dict, value: str, decrypt: bool = False) -> list[str]:
    args = ["crypto", "ff1", "--key-hex", v["key_hex"], "--tweak-hex", v["tweak_hex"], "--alphabet", v["alphabet"]]
    return args + (["--decrypt"] if decrypt else []) + [value]


def dpp_script() -> list[str]:
    script = Path(sys.executable).with_name("dpp")
    return [str(script)] if script.exists() else [sys.executable, "-m", "proxy"]


def test_the_vector_file_holds_all_nine_nist_samples():
    assert sorted(v["sample"] for v in VECTORS) == list(range(1, 10))
    assert {len(v["key_hex"]) for v in VECTORS} == {32, 48, 64}          # AES-128, -192, -256
    assert {v["radix"] for v in VECTORS} == {10, 36}


@pytest.mark.parametrize("v", VECTORS, ids=lambda v: f"sample{v['sample']}")
def test_encrypt_nist_sample(v):
    res = runner().invoke(main, ff1_args(v, v["plaintext"]))
    assert res.exit_code == 0, res.stderr
    assert res.stdout == v["ciphertext"] + "\n"


@pytest.mark.parametrize("v", VECTORS, ids=lambda v: f"sample{v['sample']}")
def test_decrypt_nist_sample(v):
    res = runner().invoke(main, ff1_args(v, v["ciphertext"], decrypt=True))
    assert res.exit_code == 0, res.stderr
    assert res.stdout == v["plaintext"] + "\n"


def test_lower_case_key_hex_is_accepted():
    v = VECTORS[0]
    res = runner().invoke(main, ff1_args(dict(v, key_hex=v["key_hex"].lower()), v["plaintext"]))
    assert res.exit_code == 0 and res.stdout.strip() == v["ciphertext"]


def test_tweak_changes_the_result():
    """Samples 1 and 2 differ only by the tweak: the CLI must pass --tweak-hex through."""
    s1, s2 = VECTORS[0], VECTORS[1]
    assert s1["key_hex"] == s2["key_hex"] and s1["plaintext"] == s2["plaintext"]
    out1 = runner().invoke(main, ff1_args(s1, s1["plaintext"])).stdout
    out2 = runner().invoke(main, ff1_args(s2, s2["plaintext"])).stdout
    assert out1 != out2


@pytest.mark.parametrize("v", [VECTORS[0], VECTORS[5], VECTORS[8]], ids=lambda v: f"sample{v['sample']}")
def test_installed_script_matches_nist(v):
    """The real entry point (a subprocess), both directions."""
    enc = subprocess.run(dpp_script() + ff1_args(v, v["plaintext"]), capture_output=True, text=True, timeout=60)
    assert enc.returncode == 0, enc.stderr
    assert enc.stdout == v["ciphertext"] + "\n"
    dec = subprocess.run(dpp_script() + ff1_args(v, v["ciphertext"], decrypt=True), capture_output=True, text=True,
                         timeout=60)
    assert dec.returncode == 0, dec.stderr
    assert dec.stdout == v["plaintext"] + "\n"


def test_cjk_alphabet_round_trip():
    """A CJK alphabet (radix 20) through the CLI: the output is made of the alphabet's characters."""
    alphabet = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
    value = "张王李刘陈杨黄赵"
    args = ["crypto", "ff1", "--key-hex", KEY128, "--tweak-hex", "00ff", "--alphabet", alphabet]
    enc = runner().invoke(main, args + [value])
    assert enc.exit_code == 0, enc.stderr
    ct = enc.stdout.rstrip("\n")
    assert len(ct) == len(value) and set(ct) <= set(alphabet) and ct != value
    dec = runner().invoke(main, args + ["--decrypt", ct])
    assert dec.exit_code == 0 and dec.stdout.rstrip("\n") == value


BAD = {
    "key not hex": (["--key-hex", "zz" * 16], "0123456789", "not hexadecimal"),
    "key odd length": (["--key-hex", KEY128[:-1]], "0123456789", "not hexadecimal"),
    "tweak not hex": (["--key-hex", KEY128, "--tweak-hex", "xyz"], "0123456789", "not hexadecimal"),
    "key wrong size": (["--key-hex", KEY128[:20]], "0123456789", "16, 24 or 32 bytes"),
    "value outside alphabet": (["--key-hex", KEY128], "01234a6789", "not in the alphabet"),
    "domain too small": (["--key-hex", KEY128], "12345", "1000000"),
}


@pytest.mark.parametrize("opts,value,says", BAD.values(), ids=list(BAD))
def test_bad_input_exits_non_zero_without_traceback(opts, value, says):
    res = runner().invoke(main, ["crypto", "ff1", "--alphabet", "0123456789", *opts, value])
    assert res.exit_code not in (0, None)
    assert res.exception is None or isinstance(res.exception, SystemExit), repr(res.exception)
    assert "Traceback" not in res.stderr and "Traceback" not in res.stdout
    assert says in res.stderr
    assert res.stdout == ""
    if value != "0123456789":
        assert value not in res.stderr            # the input value is never echoed


def test_bad_hex_through_the_installed_script_has_no_traceback():
    p = subprocess.run(dpp_script() + ["crypto", "ff1", "--key-hex", "not-hex", "--alphabet", "0123456789",
                                       "0123456789"], capture_output=True, text=True, timeout=60)
    assert p.returncode != 0
    assert "Traceback" not in p.stderr and p.stdout == ""
    assert "not hexadecimal" in p.stderr
