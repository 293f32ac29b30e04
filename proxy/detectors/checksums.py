"""Check-digit algorithms for the identifiers the proxy detects.

Pure functions, no I/O and no third-party imports, so detectors and the
generator can share them (``proxy.detectors`` must never import Kafka).

Standards implemented:

* Luhn / mod 10 -- ISO/IEC 7812-1 Annex B (payment card numbers).
* ISO 7064 MOD 11-2 as profiled by GB 11643-1999 (PRC citizen
  identification number, 18-character form) and its 15-digit predecessor.
* GB 32100-2015 Unified Social Credit Code (USCC), mod 31 check character.
* ISO 13616-1 IBAN, ISO 7064 MOD 97-10 check digits.
"""

from __future__ import annotations

from datetime import date

__all__ = [
    "luhn_valid",
    "luhn_check_digit",
    "CN_PROVINCE_CODES",
    "cn_resident_id_check_char",
    "cn_resident_id_valid",
    "cn_resident_id_15_to_18",
    "cn_resident_id_legacy_valid",
    "USCC_CHARSET",
    "USCC_WEIGHTS",
    "uscc_check_char",
    "uscc_valid",
    "iban_valid",
]

_ASCII_DIGITS = frozenset("0123456789")


def _is_ascii_digits(s: str) -> bool:
    # str.isdigit() accepts e.g. '²' and Arabic-Indic digits; we want 0-9 only.
    return bool(s) and all(c in _ASCII_DIGITS for c in s)


# ---------------------------------------------------------------------------
# Luhn (ISO/IEC 7812-1)
# ---------------------------------------------------------------------------

def _luhn_sum(digits: str, double_first_from_right: bool) -> int:
    total = 0
    double = double_first_from_right
    for ch in reversed(digits):
        d = ord(ch) - 48
        if double:
            d *= 2
            if d > 9:
                d -= 9
        total += d
        double = not double
    return total


def luhn_valid(digits: str) -> bool:
    """Return True if ``digits`` passes the Luhn check (ISO/IEC 7812-1 Annex B).

    ``digits`` must consist only of ASCII digits 0-9 (no spaces or dashes;
    callers strip separators first) and be at least 2 characters long.
    """
    if not isinstance(digits, str) or len(digits) < 2 or not _is_ascii_digits(digits):
        return False
    return _luhn_sum(digits, double_first_from_right=False) % 10 == 0


def luhn_check_digit(partial: str) -> str:
    """Return the Luhn check digit ('0'-'9') to append to ``partial`` (ISO/IEC 7812-1).

    ``partial`` is the number without its check digit, ASCII digits only.
    ``luhn_valid(partial + luhn_check_digit(partial))`` is always True.

    Raises ValueError if ``partial`` is empty or contains non-digits.
    """
    if not isinstance(partial, str) or not _is_ascii_digits(partial):
        raise ValueError("partial must be a non-empty string of ASCII digits")
    # The check digit will sit at the rightmost position, so the rightmost
    # digit of ``partial`` is the first one to double.
    s = _luhn_sum(partial, double_first_from_right=True)
    return str((10 - s % 10) % 10)


# ---------------------------------------------------------------------------
# PRC resident identity card number (GB 11643-1999, ISO 7064 MOD 11-2)
# ---------------------------------------------------------------------------

#: First two digits of the administrative-division code (GB/T 2260):
#: the province-level divisions, plus 71 Taiwan, 81 Hong Kong, 82 Macao
#: (GB/T 2260) and 83, which the 2018 "Measures for Applying for Residence
#: Permits for Hong Kong, Macao and Taiwan Residents" uses for Taiwan
#: residents' residence-permit numbers (same 18-character format).
CN_PROVINCE_CODES: frozenset[str] = frozenset(
    {
        "11", "12", "13", "14", "15",                    # Beijing .. Inner Mongolia
        "21", "22", "23",                                # Liaoning, Jilin, Heilongjiang
        "31", "32", "33", "34", "35", "36", "37",        # Shanghai .. Shandong
        "41", "42", "43", "44", "45", "46",              # Henan .. Hainan
        "50", "51", "52", "53", "54",                    # Chongqing .. Tibet
        "61", "62", "63", "64", "65",                    # Shaanxi .. Xinjiang
        "71",                                            # Taiwan
        "81", "82", "83",                                # HK, Macao, residence permits
    }
)

# W_i = 2^(17-i) mod 11 for positions i = 1..17 (GB 11643-1999, 7.2).
_CN_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
# Check character indexed by (sum mod 11).
_CN_ID_CHECK = "10X98765432"
_MIN_BIRTH = date(1800, 1, 1)


def cn_resident_id_check_char(first17: str) -> str:
    """Return the check character of an 18-character PRC citizen ID number.

    Implements ISO 7064 MOD 11-2 as specified in GB 11643-1999 section 7:
    ``sum(a_i * W_i) mod 11`` with ``W_i = 2^(17-i) mod 11``, mapped to
    ``'1','0','X','9',...,'2'``. Returns one of ``'0'-'9'`` or ``'X'``.

    Raises ValueError unless ``first17`` is exactly 17 ASCII digits.
    """
    if not isinstance(first17, str) or len(first17) != 17 or not _is_ascii_digits(first17):
        raise ValueError("first17 must be exactly 17 ASCII digits")
    s = sum((ord(c) - 48) * w for c, w in zip(first17, _CN_ID_WEIGHTS))
    return _CN_ID_CHECK[s % 11]


def _parse_birth(yyyymmdd: str) -> date | None:
    try:
        return date(int(yyyymmdd[0:4]), int(yyyymmdd[4:6]), int(yyyymmdd[6:8]))
    except ValueError:
        return None


def cn_resident_id_valid(s: str, *, today: date | None = None) -> bool:
    """Validate an 18-character PRC citizen identification number (GB 11643-1999).

    Layout: 6-digit address code (GB/T 2260) + 8-digit birth date YYYYMMDD
    (positions 7-14) + 3-digit sequence code + check character.

    Checks, all of which must hold:

    * 17 ASCII digits followed by a digit or ``X`` (lowercase ``x`` accepted);
    * first two digits are a province-level code in :data:`CN_PROVINCE_CODES`;
    * the birth date is a real calendar date, not before 1800-01-01 and not
      after ``today`` (defaults to ``date.today()``);
    * the check character matches ISO 7064 MOD 11-2.
    """
    if not isinstance(s, str) or len(s) != 18:
        return False
    body, check = s[:17], s[17].upper()
    if not _is_ascii_digits(body) or not (check == "X" or check in _ASCII_DIGITS):
        return False
    if body[:2] not in CN_PROVINCE_CODES:
        return False
    born = _parse_birth(body[6:14])
    if born is None or born < _MIN_BIRTH:
        return False
    if born > (today if today is not None else date.today()):
        return False
    return cn_resident_id_check_char(body) == check


def cn_resident_id_15_to_18(s15: str) -> str:
    """Convert a legacy 15-digit PRC ID number to the 18-character form.

    The 15-digit form (pre-GB 11643-1999) is address(6) + YYMMDD + sequence(3)
    with births implied in the 1900s. Conversion inserts ``"19"`` before the
    two-digit year and appends the MOD 11-2 check character (GB 11643-1999).

    Example: ``"110105491231002"`` -> ``"11010519491231002X"``.
    Raises ValueError unless ``s15`` is exactly 15 ASCII digits.
    """
    if not isinstance(s15, str) or len(s15) != 15 or not _is_ascii_digits(s15):
        raise ValueError("s15 must be exactly 15 ASCII digits")
    first17 = s15[:6] + "19" + s15[6:]
    return first17 + cn_resident_id_check_char(first17)


def cn_resident_id_legacy_valid(s15: str) -> bool:
    """Validate a legacy 15-digit PRC ID number (no check digit of its own).

    Valid when it is 15 ASCII digits, has a GB/T 2260 province code and a real
    19YYMMDD birth date (i.e. its 18-character conversion is valid).
    """
    if not isinstance(s15, str) or len(s15) != 15 or not _is_ascii_digits(s15):
        return False
    return cn_resident_id_valid(cn_resident_id_15_to_18(s15))


# ---------------------------------------------------------------------------
# Unified Social Credit Code (GB 32100-2015)
# ---------------------------------------------------------------------------

#: The 31-character code set of GB 32100-2015 (no I, O, Z, S, V).
USCC_CHARSET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_USCC_VALUE = {c: i for i, c in enumerate(USCC_CHARSET)}
#: W_i = 3^(i-1) mod 31 for positions 1..17 (GB 32100-2015, Annex B).
USCC_WEIGHTS = tuple(pow(3, i, 31) for i in range(17))


def uscc_check_char(first17: str) -> str:
    """Return the check character of a Unified Social Credit Code (GB 32100-2015).

    ``C18 = 31 - (sum(value(c_i) * W_i) mod 31)`` with ``W_i = 3^(i-1) mod 31``
    = [1,3,9,27,19,26,16,17,20,29,25,13,8,24,10,30,28]; a result of 31 maps
    to 0. Values index :data:`USCC_CHARSET`.

    Raises ValueError unless ``first17`` is 17 characters of USCC_CHARSET
    (uppercase).
    """
    if not isinstance(first17, str) or len(first17) != 17:
        raise ValueError("first17 must be exactly 17 characters")
    try:
        s = sum(_USCC_VALUE[c] * w for c, w in zip(first17, USCC_WEIGHTS))
    except KeyError as exc:
        raise ValueError(f"character {exc.args[0]!r} not in the GB 32100 code set") from None
    return USCC_CHARSET[(31 - s % 31) % 31]


def uscc_valid(s: str) -> bool:
    """Validate an 18-character Unified Social Credit Code (GB 32100-2015).

    Uppercase only (the standard's code set); every character must be in
    :data:`USCC_CHARSET` and the last must equal :func:`uscc_check_char`.
    """
    if not isinstance(s, str) or len(s) != 18:
        return False
    if any(c not in _USCC_VALUE for c in s):
        return False
    return uscc_check_char(s[:17]) == s[17]


# ---------------------------------------------------------------------------
# IBAN (ISO 13616-1, ISO 7064 MOD 97-10)
# ---------------------------------------------------------------------------

def iban_valid(s: str) -> bool:
    """Validate an IBAN's structure and check digits (ISO 13616-1).

    Spaces are ignored and letters are case-insensitive. Requires 2 letters
    (country) + 2 digits (check) + 11..30 alphanumerics (total 15..34), then
    moves the first four characters to the end, maps A=10..Z=35 and checks
    that the number mod 97 equals 1 (ISO 7064 MOD 97-10). Per-country BBAN
    lengths are not checked.
    """
    if not isinstance(s, str):
        return False
    compact = s.replace(" ", "").upper()
    if not 15 <= len(compact) <= 34:
        return False
    if not (compact[0:2].isascii() and compact[0:2].isalpha()):
        return False
    if not _is_ascii_digits(compact[2:4]):
        return False
    if not (compact.isascii() and compact.isalnum()):
        return False
    rearranged = compact[4:] + compact[:4]
    remainder = 0
    for ch in rearranged:
        # int(ch, 36): '0'-'9' -> 0-9, 'A'-'Z' -> 10-35
        v = int(ch, 36)
        remainder = (remainder * (100 if v > 9 else 10) + v) % 97
    return remainder == 1
