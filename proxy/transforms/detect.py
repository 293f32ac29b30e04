"""``detect``: find personal data inside a string field and replace every finding in place.

The rule names the detectors to run (:mod:`proxy.detectors`) and one replacement for all
findings; the text around the findings (CJK, emoji, any other characters) is copied unchanged.
Overlapping findings are merged first (:mod:`proxy.detectors.overlap`), so no fragment of a
finding is ever left in clear.

Replacements (``replace:``):

* ``placeholder`` (default): ``<CN_RESIDENT_ID>``, ``<CN_MOBILE>``, ``<EMAIL>`` … (the kind only);
* ``mask``: the finding's characters but separators become ``mask_char``, keeping ``keep_first`` /
  ``keep_last`` of them (the ``mask`` action's rules, applied per finding);
* ``pseudonymize``: ``<KIND:hex>``, where ``hex`` is the first ``length`` hex digits of the same
  HMAC-SHA256 the ``pseudonymize`` action computes (message ``"dpp-pseudonym-v1" 0 binding 0
  canonical``), over the detector's canonical form (E.164 for phones, lower case for e-mail,
  separators removed otherwise). With a shared ``domain`` the digest equals the one of a
  ``pseudonymize`` rule with ``encoding: hex`` and the matching ``normalize`` on a structured field.
* ``fpe``: FF1 (NIST SP 800-38G Rev.1) keeping each kind's format: digits stay digits, separators
  stay, a mobile keeps its country code and network prefix, IP addresses stay valid addresses
  (:meth:`proxy.detectors.base.Detector.format_preserving`). Tweak: the rule's binding, ``0``,
  the detector name. A finding too short for FF1's domain fails the record closed
  (``fpe-domain-too-small``). Not reversed by ``reveal`` (findings cannot be located again).

JSON types: strings are searched; numbers are searched through their JSON text and come back
unchanged when nothing is found (as a string otherwise); ``null`` and booleans pass unchanged
(they cannot hold an identifier); objects and arrays fail closed (``unsupported-type``: point the
rule at their string leaves with ``[*]``).

Counts: every replaced finding is counted per detector in a plain dict, collected with
:meth:`Detect.drain_detections` when the route's stats are drained (``dpp_pii_detections_total``).
"""
from __future__ import annotations

import hashlib
import hmac
from types import SimpleNamespace
from typing import Any

from ..crypto.ff1 import FF1, FF1DomainError
from ..crypto.keys import require_aes
from ..detectors import Scanner, build_detectors
from ..detectors.base import Detector, fold_variants
from ..errors import Reason, TransformError
from .base import BuildContext, Transform, as_text
from .mask import Mask


class Detect(Transform):
    """Free-text protection: run detectors, replace every (merged) finding."""

    action = "detect"

    def __init__(self, rule, ctx: BuildContext):
        super().__init__(rule, ctx)
        self.detectors: tuple[Detector, ...] = build_detectors(rule.detectors, regions=rule.regions)
        self._by_name = {d.name: d for d in self.detectors}
        self._scan = Scanner(self.detectors)
        self._counts: dict[str, int] = {}
        self.max_chars = ctx.max_detect_chars
        mode = rule.replace
        self.mode = mode
        if mode == "placeholder":
            self._labels = {d.name: f"<{d.placeholder}>" for d in self.detectors}
            self._replace = self._placeholder
        elif mode == "mask":
            shim = SimpleNamespace(field=rule.field, keep_first=rule.keep_first, keep_last=rule.keep_last,
                                   mask_char=rule.mask_char, mask_separators=False)
            self._mask = Mask(shim, ctx).apply_text
            self._replace = self._masked
        elif mode == "pseudonymize":
            key = ctx.keys[rule.key].material
            prefix = b"dpp-pseudonym-v1\x00" + ctx.binding(rule).encode() + b"\x00"
            self._mac = hmac.new(key, prefix, hashlib.sha256)
            self._len = rule.length
            self._replace = self._pseudonym
        elif mode == "fpe":
            self._aes = require_aes(ctx.keys[rule.key], f"detect rule {rule.label}")
            self._binding = ctx.binding(rule).encode() + b"\x00"
            self._ciphers: dict[str, FF1] = {}
            self._replace = self._fpe
        else:  # pragma: no cover - the model's Literal forbids it
            raise ValueError(f"unknown replace mode {mode!r}")

    # -- replacements (value = the finding's text) -------------------------------------------
    def _placeholder(self, det: str, value: str) -> str:
        return self._labels[det]

    def _masked(self, det: str, value: str) -> str:
        return self._mask(value)

    def _pseudonym(self, det: str, value: str) -> str:
        d = self._by_name[det]
        m = self._mac.copy()
        m.update(d.canonical(value).encode("utf-8", "surrogatepass"))
        return f"<{d.placeholder}:{m.hexdigest()[: self._len]}>"

    def _fpe(self, det: str, value: str) -> str:
        d = self._by_name[det]
        tweak = self._binding + det.encode()

        def encrypt(alphabet: str, numerals: str) -> str:
            c = self._ciphers.get(alphabet)
            if c is None:
                # the tweak holds the field path (no length limit): allow it, FF1 takes any length
                longest = len(self._binding) + max(len(n.encode()) for n in self._by_name)
                c = self._ciphers[alphabet] = FF1(self._aes, alphabet, max_tweak_len=max(256, longest))
            return c.encrypt(numerals, tweak)

        try:
            try:
                return d.format_preserving(value, encrypt)
            except FF1DomainError:
                raise
            except ValueError:
                # a merged span no longer parses as the winner's kind (e.g. an IP address
                # fused with a neighbour): encrypt its alphabet characters generically
                return Detector.format_preserving(d, value, encrypt)
        except FF1DomainError as e:
            raise TransformError(Reason.FPE_DOMAIN, f"{det}: {e}") from None

    # -- record path -----------------------------------------------------------------------
    def apply_text(self, text: str) -> str:
        """``text`` with every finding replaced (the same object when nothing was found).

        Raises :class:`TransformError` (``limit-detect-length``) for a text longer than the route's
        ``limits.max_detect_chars``: it is not scanned, so the record is dead-lettered."""
        if len(text) > self.max_chars:
            raise TransformError(Reason.LIMIT_DETECT_LENGTH, f"text longer than {self.max_chars} characters")
        findings = self._scan(text)
        if not findings:
            return text
        counts = self._counts
        rep = self._replace
        parts = []
        pos = 0
        for f in findings:
            parts.append(text[pos:f.start])
            # non-ASCII digits / full-width letters are found as ASCII (detectors.engine): hand the
            # replacement the ASCII form, so FPE encrypts every digit and pseudonyms match
            parts.append(rep(f.detector, fold_variants(text[f.start:f.end])))
            pos = f.end
            counts[f.detector] = counts.get(f.detector, 0) + 1
        parts.append(text[pos:])
        return "".join(parts)

    def apply(self, value: Any) -> Any:
        t = type(value)
        if t is str:
            return self.apply_text(value)
        if value is None or t is bool:
            return value
        text = as_text(value)  # numbers; raises unsupported-type for objects and arrays
        out = self.apply_text(text)
        return value if out is text else out

    def drain_detections(self) -> dict[str, int]:
        """Findings replaced per detector since the last call; resets the counts."""
        out, self._counts = self._counts, {}
        return out

    def __repr__(self) -> str:
        return f"Detect(field={self.rule.field!r}, detectors={[d.name for d in self.detectors]}, replace={self.mode!r})"
