"""The detector registry: name → class, and builders used by policies, ``dpp scan`` and tests.

Names are the policy's ``detectors:`` vocabulary and the ``detector`` label of
``dpp_pii_detections_total``; the set is fixed in code, so labels stay bounded.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Iterable

from .bank_card import BankCard
from .base import Detector
from .cn_licence_plate import CnLicencePlate
from .cn_mobile import CnMobile
from .cn_passport import CnPassport
from .cn_resident_id import CnResidentId
from .cn_uscc import CnUscc
from .email import Email
from .hk_id import HkId
from .hk_macau_permit import HkMacauPermit
from .iban import Iban
from .ipv4 import IPv4
from .ipv6 import IPv6
from .macau_id import MacauId
from .phone import Phone, check_regions

DETECTOR_CLASSES: dict[str, type[Detector]] = {
    c.name: c
    for c in (CnResidentId, CnMobile, CnUscc, BankCard, Email, IPv4, IPv6, Iban, CnPassport, HkId,
              MacauId, HkMacauPermit, CnLicencePlate, Phone)
}
"""Every detector, by registry name (policy order of documentation)."""

OPTIONED = frozenset({"phone"})
"""Detectors that take options (``phone``: ``regions``)."""


def detector_names() -> list[str]:
    """Registry names, sorted."""
    return sorted(DETECTOR_CLASSES)


@lru_cache(maxsize=None)
def _plain(name: str) -> Detector:
    return DETECTOR_CLASSES[name]()


def build_detector(name: str, *, regions: Iterable[str] = ()) -> Detector:
    """One detector instance. ``regions`` applies to ``phone`` (ISO 3166-1 alpha-2 codes).

    Raises ``KeyError`` for an unknown name and ``ValueError`` for an unknown region.
    Option-less detectors are shared singletons (they hold no state).
    """
    if name not in DETECTOR_CLASSES:
        raise KeyError(f"unknown detector {name!r}; known: {', '.join(detector_names())}")
    if name == "phone":
        return Phone(tuple(regions))
    return _plain(name)


def build_detectors(names: Iterable[str] | None = None, *, regions: Iterable[str] = ()) -> tuple[Detector, ...]:
    """Instances for ``names`` (default: every registered detector), in the given order,
    duplicates removed. Raises like :func:`build_detector`."""
    regions = check_regions(tuple(regions))
    out: list[Detector] = []
    seen: set[str] = set()
    for n in (names if names is not None else DETECTOR_CLASSES):
        if n in seen:
            continue
        seen.add(n)
        out.append(build_detector(n, regions=regions))
    return tuple(out)
