"""``mask`` (proxy.transforms.mask): keep first/last N of the letters and digits, separators stay,
never everything kept (then at most half), numbers become strings, null stays null, other types fail closed."""
from __future__ import annotations

import pytest

from proxy.errors import Reason, TransformError
from proxy.policy.models import MaskRule
from proxy.transforms import BuildContext, build_transform
from proxy.transforms.mask import Mask

CTX = BuildContext(policy_name="unit", route_name="r", keys={})


def mask(value, **opts):
    return build_transform(MaskRule(field="f", action="mask", **opts), CTX).apply(value)


@pytest.mark.parametrize(
    "value,opts,expected",
    [
        # separators (dash, space, @, dot, plus) stay in place
        ("4111-1111-1111-1111", dict(keep_last=4), "****-****-****-1111"),
        ("4111 1111 1111 1111", dict(keep_first=4, keep_last=4), "4111 **** **** 1111"),
        ("jose@example.com", dict(keep_first=2), "jo**@*******.***"),
        ("+1 212-555-0143", dict(keep_last=4), "+* ***-***-0143"),
        ("1990-05-17", dict(keep_first=4, mask_char="0"), "1990-00-00"),
        ("Ada Lovelace", dict(keep_first=1), "A** ********"),
        # plain alphanumerics
        ("abcdefgh", dict(keep_first=2, keep_last=2), "ab****gh"),
        ("abcd", dict(mask_char="#"), "####"),
        ("13900001111", dict(keep_first=3, keep_last=4), "139****1111"),   # 7 of 11 kept as asked
        ("12345678", dict(keep_first=3, keep_last=3), "123**678"),
        # CJK and other scripts are letters too
        ("李四", dict(keep_first=1, keep_last=1), "李*"),
        ("张三丰", dict(keep_first=1), "张**"),
        ("王小明", dict(keep_first=1, keep_last=1), "王*明"),
        ("欧阳娜娜", dict(keep_first=1, keep_last=1), "欧**娜"),
        ("北京市 朝阳区", dict(keep_first=2), "北京* ***"),
        ("Ünïcödé", dict(keep_first=1), "Ü******"),
        ("١٢٣٤٥٦", dict(keep_last=2), "****٥٦"),                           # Arabic-Indic digits
        # everything but a separator is masked (fail closed): letter-like symbols, emoji, combining marks
        ("😀abc", dict(), "****"),
        ("ⓑⓞⓑ ⓢⓜⓘⓣⓗ", dict(keep_first=1), "ⓑ** *****"),
        ("🅑🅞🅑@🅧.🅒🅞🅜", dict(), "***@*.***"),
        ("🇧🇴🇧", dict(), "***"),
        ("⠃⠕⠃", dict(), "***"),
        ("Jose\u0301", dict(keep_first=1), "J****"),
        ("北京市，朝阳区", dict(keep_first=1), "北**，***"),
        ("$1,234.56 (USD)", dict(), "$*,***.** (***)"),
        # when keep_first + keep_last would keep everything, at most half is kept
        ("a", dict(keep_first=1), "*"),
        ("ab", dict(keep_first=5, keep_last=5), "a*"),
        ("abc", dict(keep_last=3), "**c"),
        ("a-b", dict(keep_first=1, keep_last=1), "a-*"),
        # nothing to mask
        ("", dict(keep_first=2), ""),
        ("---", dict(), "---"),
        ("@ .", dict(keep_first=1), "@ ."),
        # mask_separators: every character is maskable, length still kept
        ("4111-1111", dict(keep_last=2, mask_separators=True), "*******11"),
        ("a b", dict(mask_separators=True), "***"),
        ("jose@example.com", dict(keep_first=2, keep_last=4, mask_separators=True), "jo**********.com"),
    ],
)
def test_mask_strings(value, opts, expected):
    out = mask(value, **opts)
    assert out == expected
    assert len(out) == len(value)


@pytest.mark.parametrize(
    "value,opts,expected",
    [
        (42, dict(), "**"),
        (12345, dict(keep_last=2), "***45"),
        (-3.25, dict(), "-*.**"),
        (0, dict(keep_first=1), "*"),
        (13900001111, dict(keep_first=3, keep_last=4), "139****1111"),
        (1.5e-7, dict(), "*.**-*"),                                  # JSON text "1.5e-7": the e is a letter
    ],
)
def test_numbers_become_masked_strings(value, opts, expected):
    assert mask(value, **opts) == expected


def test_null_stays_null():
    assert mask(None, keep_first=3) is None


@pytest.mark.parametrize("value,kind", [(True, "boolean"), (False, "boolean"), ({"a": "secret-x"}, "object"),
                                        (["secret-x"], "array")])
def test_other_types_are_unsupported(value, kind):
    with pytest.raises(TransformError) as ei:
        mask(value)
    assert ei.value.reason is Reason.UNSUPPORTED_TYPE
    assert str(ei.value) == f"unsupported-type: cannot rewrite a {kind} value"
    assert "secret" not in str(ei.value)


@pytest.mark.parametrize("n", range(0, 12))
@pytest.mark.parametrize("keep", [(0, 0), (1, 0), (0, 1), (3, 4), (64, 64)])
def test_never_everything_kept(n, keep):
    text = "".join(chr(ord("a") + i) for i in range(n))
    out = mask(text, keep_first=keep[0], keep_last=keep[1])
    kept = sum(1 for a, b in zip(text, out) if a == b)
    if keep[0] + keep[1] < n:  # honoured exactly: at least one character masked
        assert kept == keep[0] + keep[1]
        assert out[: keep[0]] == text[: keep[0]]
        assert out[n - keep[1]:] == text[n - keep[1]:]
    else:  # would keep everything: at most half, keep_first honoured first
        assert kept == n // 2
        assert out[: min(keep[0], n // 2)] == text[: min(keep[0], n // 2)]
    assert n == 0 or kept < n


def test_rule_limits_are_validated():
    with pytest.raises(ValueError):
        MaskRule(field="f", action="mask", keep_first=-1)
    with pytest.raises(ValueError):
        MaskRule(field="f", action="mask", keep_last=65)
    with pytest.raises(ValueError):
        MaskRule(field="f", action="mask", mask_char="")
    with pytest.raises(ValueError):
        MaskRule(field="f", action="mask", mask_char="**")


def test_registry_builds_mask_and_repr_has_no_value():
    t = build_transform(MaskRule(field="name", action="mask"), CTX)
    assert isinstance(t, Mask) and not t.reversible
    assert repr(t) == "Mask(field='name')"
    with pytest.raises(TransformError) as ei:
        t.reverse("***")
    assert ei.value.reason is Reason.UNSUPPORTED_TYPE
