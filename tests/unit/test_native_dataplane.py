"""proxy.stream.native without a broker: built where CI requires it, arguments checked before
any client is made, errors carry no record content."""
from __future__ import annotations

import pytest

from proxy.stream import native

built = pytest.mark.skipif(native.available() is not None, reason=str(native.available()))


def test_native_dataplane_is_built_where_ci_requires_it():
    """``.ci/run`` sets DPP_REQUIRE_NATIVE=1 (and installs librdkafka-dev): no silent fallback."""
    if native.required_by_environment():
        assert native.available() is None


def test_require_says_why_when_missing(monkeypatch):
    monkeypatch.setattr(native, "_MISSING", "proxy._dataplane is not built (ImportError; ...)")
    with pytest.raises(RuntimeError, match="not built"):
        native.run("127.0.0.1:1", "s", "d", "g")


@built
@pytest.mark.parametrize("kwargs", [{"batch_size": 0}, {"batch_size": -5}, {"batch_size": 10 ** 9},
                                    {"timeout_s": -1.0}, {"timeout_s": float("nan")}, {"linger_s": -0.1},
                                    {"linger_s": 1e9}])
def test_bad_loop_arguments_are_refused_before_any_client(kwargs):
    with pytest.raises(ValueError, match="batch_size <= 1000000"):
        native.run("127.0.0.1:1", "s", "d", "g", **kwargs)


@built
def test_an_empty_group_is_a_value_error_not_a_crash():
    """librdkafka makes a consumer without a group but has no group queue to read: checked."""
    with pytest.raises(ValueError, match="non-empty group id"):
        native.run("127.0.0.1:1", "s", "d", "")


@built
def test_librdkafka_version_is_reported():
    major = int(native.librdkafka_version().split(".")[0])
    assert major >= 2
