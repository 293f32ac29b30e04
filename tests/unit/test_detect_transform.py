"""The ``detect`` action end to end through a compiled policy: every replacement mode, overlap
resolution, multi-byte text, JSON types, policy validation and the detection counters."""
from __future__ import annotations

import ipaddress
import re

import orjson
import pytest
from prometheus_client import CollectorRegistry

from proxy.errors import PolicyError
from proxy.metrics import Metrics
from proxy.policy.compiler import DEAD_LETTER, SINK, compile_policy
from proxy.policy.loader import load_policy_text

ENV = {"K_PSEUDO": "11" * 32, "K_FPE": "22" * 32, "K_DLQ": "33" * 32}

POLICY = """\
version: 1
name: detect-test
keys:
  p: {source: env, name: K_PSEUDO}
  f: {source: env, name: K_FPE}
  d: {source: env, name: K_DLQ}
routes:
  - name: r
    source: src
    sink: dst
    dead_letter: dlq
    dead_letter_key: d
    rules:
%s
"""

DETS = "[cn_resident_id, cn_mobile, cn_uscc, bank_card, email, ipv4, ipv6, phone]"


def route(*rules: str):
    text = POLICY % "\n".join(f"      - {r}" for r in rules)
    return compile_policy(load_policy_text(text), environ=ENV).route()


def run(r, record: dict) -> dict:
    out = r.process(orjson.dumps(record))
    assert out.kind == SINK, (out.reason, out.stage)
    return orjson.loads(out.value)


def note_rule(replace: str = "placeholder", extra: str = "") -> str:
    return f"{{field: note, action: detect, detectors: {DETS}, replace: {replace}{extra}}}"


# --------------------------------------------------------------------------- the issue's example
def test_issue_mobile_replaced_and_chinese_kept():
    r = route(note_rule())
    assert run(r, {"note": "同事手机 13900001111"}) == {"note": "同事手机 <CN_MOBILE>"}


@pytest.mark.parametrize("replace,extra", [("placeholder", ""), ("mask", ", keep_last: 4"),
                                           ("pseudonymize", ", key: p"), ("fpe", ", key: f")])
def test_every_mode_removes_every_value_and_keeps_the_text(replace, extra):
    values = ["13900001111", "11010519491231002X", "zhang.san@163.com", "6222 0212 3456 7890 128",
              "192.168.1.20", "2001:db8::1", "+1 212-555-0143", "91350100M000100Y43"]
    note = ("同事手机 {0}，身份证{1}，邮箱 {2} 卡号{3} 😀 ip {4} / {5} call {6} 公司{7}。").format(*values)
    out = run(route(note_rule(replace, extra)), {"note": note, "other": "13900001111"})["note"]
    for v in values:
        assert v not in out
    for kept in ("同事手机 ", "，身份证", "，邮箱 ", " 卡号", " 😀 ip ", " call ", " 公司", "。"):
        assert kept in out
    assert out.encode("utf-8").decode("utf-8") == out  # valid UTF-8 round trip


def test_placeholder_output_exact():
    r = route(note_rule())
    note = "身份证11010519491231002X，卡6222021234567890128，错号110105194912310021"
    assert run(r, {"note": note})["note"] == "身份证<CN_RESIDENT_ID>，卡<BANK_CARD>，错号110105194912310021"


def test_mask_keeps_separators_and_configured_characters():
    r = route(note_rule("mask", ", keep_last: 4, mask_char: '#'"))
    assert run(r, {"note": "手机139-0000-1111。"})["note"] == "手机###-####-1111。"


def test_overlapping_findings_leave_no_fragment():
    r = route(note_rule())
    out = run(r, {"note": "联系13900001111@qq.com谢谢"})["note"]
    assert out == "联系<EMAIL>谢谢"
    assert not re.search(r"\d{3}", out)


def test_emoji_and_cjk_survive_every_boundary():
    r = route(note_rule())
    note = "👨‍👩‍👧手机13900001111🎉ñ邮箱a.b@c.cn中文"
    assert run(r, {"note": note})["note"] == "👨‍👩‍👧手机<CN_MOBILE>🎉ñ邮箱<EMAIL>中文"


# --------------------------------------------------------------------------- pseudonyms and FPE
def test_pseudonyms_are_deterministic_canonical_and_link_with_pseudonymize():
    r = route(note_rule("pseudonymize", ", key: p, domain: phone, length: 16"),
              "{field: mobile, action: pseudonymize, key: p, domain: phone, normalize: phone, length: 16}")
    out = run(r, {"note": "手机139-0000-1111 或 +86 13900001111", "mobile": "13900001111"})
    tokens = re.findall(r"<CN_MOBILE:([0-9a-f]{16})>", out["note"])
    assert len(tokens) == 2 and tokens[0] == tokens[1]          # E.164 canonical form
    assert tokens[0] == out["mobile"]                            # same digest as the structured rule


def test_fpe_keeps_formats_and_is_deterministic():
    r = route(note_rule("fpe", ", key: f"))
    note = "手机13900001111 卡6222 0212 3456 7890 128 ip 192.168.1.20 邮箱zhang.san@163.com"
    a = run(r, {"note": note})["note"]
    b = run(r, {"note": note})["note"]
    assert a == b
    m = re.fullmatch(r"手机(139\d{8}) 卡(\d{4} \d{4} \d{4} \d{4} \d{3}) ip (\S+) 邮箱(\S+)", a)
    assert m, a
    assert m.group(1) != "13900001111" and m.group(2) != "6222 0212 3456 7890 128"
    ipaddress.IPv4Address(m.group(3))
    assert m.group(3) != "192.168.1.20"
    assert re.fullmatch(r"[A-Za-z0-9]{5}\.[A-Za-z0-9]{3}@[A-Za-z0-9]{3}\.com", m.group(4))
    assert m.group(4) != "zhang.san@163.com"


def test_fpe_depends_on_the_key():
    r1 = route(note_rule("fpe", ", key: f"))
    r2 = route(note_rule("fpe", ", key: p"))  # any 32-byte key is an AES key
    assert run(r1, {"note": "13900001111"}) != run(r2, {"note": "13900001111"})


# --------------------------------------------------------------------------- JSON types
def test_json_types():
    r = route(note_rule())
    assert run(r, {"note": 13900001111}) == {"note": "<CN_MOBILE>"}
    assert run(r, {"note": 42}) == {"note": 42}
    assert run(r, {"note": 3.5}) == {"note": 3.5}
    assert run(r, {"note": None}) == {"note": None}
    assert run(r, {"note": True}) == {"note": True}
    assert run(r, {"other": 1}) == {"other": 1}
    out = r.process(orjson.dumps({"note": {"a": "13900001111"}}))
    assert out.kind == DEAD_LETTER and out.reason == "unsupported-type"


def test_array_leaves():
    r = route(f"{{field: 'notes[*]', action: detect, detectors: {DETS}}}")
    assert run(r, {"notes": ["a 13900001111", "b"]}) == {"notes": ["a <CN_MOBILE>", "b"]}


# --------------------------------------------------------------------------- policy validation
@pytest.mark.parametrize("rule,message", [
    ("{field: n, action: detect, detectors: [ssn]}", "unknown detector 'ssn'"),
    ("{field: n, action: detect, detectors: [phone], regions: [XX]}", "unknown phone region 'XX'"),
    ("{field: n, action: detect, detectors: [email], regions: [US]}", "regions apply to the phone detector"),
    ("{field: n, action: detect, detectors: [email], replace: fpe}", "needs a key"),
    ("{field: n, action: detect, detectors: [email], replace: mask, key: p}", "key is only used"),
    ("{field: n, action: detect, detectors: []}", "at least 1"),
    ("{field: n, action: detect, detectors: [email, email]}", "listed twice"),
    ("{field: n, action: detect, detectors: [email], replace: shred}", "replace"),
    ("{field: n, action: detect, detectors: [email], replace: pseudonymize, key: nokey}", "unknown key 'nokey'"),
])
def test_policy_errors(rule, message):
    with pytest.raises(PolicyError) as e:
        load_policy_text(POLICY % f"      - {rule}", "p.yaml")
    assert message in str(e.value)
    assert str(e.value).startswith("p.yaml:")


def test_detect_tag_is_stripped_from_error_paths():
    with pytest.raises(PolicyError) as e:
        load_policy_text(POLICY % "      - {field: n, action: detect, detectors: [ssn]}", "p.yaml")
    assert "rules[0].detectors" in str(e.value)
    assert ".detect." not in str(e.value)


def test_regions_reach_the_phone_detector():
    r = route("{field: note, action: detect, detectors: [phone], regions: [US]}")
    assert run(r, {"note": "office (212) 555-0143"}) == {"note": "office <PHONE>"}
    r = route("{field: note, action: detect, detectors: [phone]}")
    assert run(r, {"note": "office (212) 555-0143"}) == {"note": "office (212) 555-0143"}


# --------------------------------------------------------------------------- counters
def test_detection_counts_are_drained_and_published():
    r = route(note_rule(), "{field: memo, action: detect, detectors: [email], name: memo-rule}")
    run(r, {"note": "手机13900001111 和 13900002222，邮箱a@b.cn", "memo": "x@y.cn"})
    run(r, {"note": "卡6222021234567890128"})
    stats = r.stats.drain()
    assert stats.detections == {"cn_mobile": 2, "email": 2, "bank_card": 1}
    assert r.stats.drain().detections == {}
    m = Metrics(CollectorRegistry())
    m.publish(r, stats)
    assert m.registry.get_sample_value("dpp_pii_detections_total", {"route": "r", "detector": "cn_mobile"}) == 2
    assert m.registry.get_sample_value("dpp_pii_detections_total", {"route": "r", "detector": "email"}) == 2
    assert m.registry.get_sample_value("dpp_pii_detections_total", {"route": "r", "detector": "ipv6"}) is None


def test_register_policy_creates_detection_series_at_zero():
    text = POLICY % f"      - {note_rule()}"
    cp = compile_policy(load_policy_text(text), environ=ENV)
    m = Metrics(CollectorRegistry())
    m.register_policy(cp)
    assert m.registry.get_sample_value("dpp_pii_detections_total", {"route": "r", "detector": "ipv6"}) == 0


def test_repr_shows_no_value_or_key():
    r = route(note_rule("pseudonymize", ", key: p"))
    t = r.transforms[0]
    assert "11" * 8 not in repr(t) and "detectors" in repr(t)
