"""Typed, frozen models of policy format v1 (pydantic v2). Unknown keys are rejected everywhere.

The JSON Schema in ``policies/policy.schema.json`` is generated from :class:`Policy`
(``dpp schema > policies/policy.schema.json``); a test keeps the two in sync.
"""
from __future__ import annotations

import math
from typing import Annotated, Any, ClassVar, Literal, Union

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from .paths import PathSyntaxError, parse_path

def _check_path(v: str) -> str:
    try:
        parse_path(v)
    except PathSyntaxError as e:
        raise ValueError(f"invalid field path: {e}") from None
    return v


FieldPath = Annotated[str, AfterValidator(_check_path)]
"""A field path (see :mod:`proxy.policy.paths`), checked when the policy is loaded."""

Slug = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9._-]{0,62}$", description="lower-case name: a-z 0-9 . _ -")]
Topic = Annotated[str, Field(pattern=r"^[A-Za-z0-9._-]{1,249}$", description="Kafka topic name")]
JsonScalar = Union[str, int, float, bool, None]

ALPHABETS: dict[str, str] = {
    "digits": "0123456789",
    "hex": "0123456789abcdef",
    "HEX": "0123456789ABCDEF",
    "lower": "abcdefghijklmnopqrstuvwxyz",
    "upper": "ABCDEFGHIJKLMNOPQRSTUVWXYZ",
    "alpha": "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ",
    "alnum": "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ",
    "alnum_lower": "0123456789abcdefghijklmnopqrstuvwxyz",
}
"""Named FPE alphabets; characters of a value outside the alphabet stay in place."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, strict=True)


def _json_literal(v: Any) -> Any:
    """A policy literal must be a value a record can hold: a finite number, an integer within
    64 bits (records parse and serialize with orjson). YAML ``.nan``/``.inf`` or a 2**70 would
    make every redacted record unserializable or a block condition that never matches."""
    if type(v) is float and not math.isfinite(v):
        raise ValueError("a literal must be a finite number (JSON has no NaN or Infinity)")
    if type(v) is int and not -(1 << 63) <= v < (1 << 64):
        raise ValueError("an integer literal must fit in 64 bits (-2**63 .. 2**64-1)")
    return v


JsonLiteral = Annotated[JsonScalar, AfterValidator(_json_literal)]
"""A JSON scalar a record can hold (see :func:`_json_literal`): redact values, block values."""


# --------------------------------------------------------------------------- keys
class _KeyBase(_Model):
    current: int | None = Field(default=None, ge=1, description="version new records use; default: the highest")


class EnvKey(_KeyBase):
    """Key material from environment variables (hex or base64 text): ``name`` (version 1) or
    ``versions`` (version number → variable name)."""

    source: Literal["env"]
    name: str | None = Field(default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", description="environment variable name")
    versions: dict[int, Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]] | None = None
    encoding: Literal["hex", "base64"] = "hex"

    @model_validator(mode="after")
    def _one_source(self) -> "EnvKey":
        _check_versions(self.name, self.versions, self.current, "name")
        return self


class FileKey(_KeyBase):
    """Key material from files (hex or base64 text, or raw bytes): ``path`` (version 1) or
    ``versions`` (version number → file path)."""

    source: Literal["file"]
    path: str | None = Field(default=None, min_length=1)
    versions: dict[int, Annotated[str, Field(min_length=1)]] | None = None
    encoding: Literal["hex", "base64", "raw"] = "hex"

    @model_validator(mode="after")
    def _one_source(self) -> "FileKey":
        _check_versions(self.path, self.versions, self.current, "path")
        return self


class DirKey(_KeyBase):
    """Versions of a key as files ``<prefix>.v<N>`` in a directory, e.g. a mounted Kubernetes Secret
    with entries ``fpe.v1``, ``fpe.v2``. ``prefix`` defaults to the key's name in the policy."""

    source: Literal["dir"]
    path: str = Field(min_length=1)
    prefix: str | None = Field(default=None, pattern=r"^[A-Za-z0-9._-]+$")
    encoding: Literal["hex", "base64", "raw"] = "hex"


def _check_versions(single, versions, current, what: str) -> None:
    if (single is None) == (versions is None):
        raise ValueError(f"give exactly one of '{what}' or 'versions'")
    if versions is not None:
        if not versions or min(versions) < 1:
            raise ValueError("versions are numbered from 1")
        if current is not None and current not in versions:
            raise ValueError(f"current version {current} is not among the versions")
    elif current not in (None, 1):
        raise ValueError("a single key is version 1")


_EnvName = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]


class VaultAuth(_Model):
    """How dpp logs in to Vault. ``token``: the token from ``token_env`` (default ``VAULT_TOKEN``)
    or ``token_file`` (e.g. a Vault Agent sink). ``approle``: role id and secret id from
    ``role_id_env``/``role_id_file`` and ``secret_id_env``/``secret_id_file``, at ``mount``.
    The policy names variables and files only, never a secret."""

    method: Literal["token", "approle"] = "token"
    token_env: _EnvName | None = None
    token_file: str | None = Field(default=None, min_length=1)
    role_id_env: _EnvName | None = None
    role_id_file: str | None = Field(default=None, min_length=1)
    secret_id_env: _EnvName | None = None
    secret_id_file: str | None = Field(default=None, min_length=1)
    mount: str = Field(default="approle", pattern=r"^[A-Za-z0-9._/-]+$")

    @model_validator(mode="after")
    def _complete(self) -> "VaultAuth":
        if self.method == "approle":
            if (self.role_id_env is None) == (self.role_id_file is None):
                raise ValueError("approle: give exactly one of 'role_id_env' or 'role_id_file'")
            if (self.secret_id_env is None) == (self.secret_id_file is None):
                raise ValueError("approle: give exactly one of 'secret_id_env' or 'secret_id_file'")
            if self.token_env or self.token_file:
                raise ValueError("approle: 'token_env'/'token_file' belong to method token")
        elif self.token_env and self.token_file:
            raise ValueError("token: give at most one of 'token_env' or 'token_file'")
        elif any((self.role_id_env, self.role_id_file, self.secret_id_env, self.secret_id_file)):
            raise ValueError("token: role and secret ids belong to method approle")
        return self


class _KmsKey(_KeyBase):
    """Envelope encryption: the key's versions are data keys (DEKs) kept wrapped in the key store
    ``store`` (a JSON file written by ``dpp keys init``; it holds wrapped DEKs only) and unwrapped at
    start-up by the key-encryption key ``key`` in a KMS."""

    key: str = Field(min_length=1, description="the key-encryption key's name (id, ARN, alias) in the KMS")
    store: str = Field(min_length=1, description="key-store file of wrapped DEKs (dpp keys init)")
    size: Literal[16, 24, 32] = Field(default=32, description="DEK length in bytes")
    timeout_s: float = Field(default=5.0, gt=0, le=120, description="per KMS request, seconds")


class VaultKey(_KmsKey):
    """A KEK in HashiCorp Vault Transit (or OpenBao): ``address`` (``https://vault:8200``),
    ``mount`` (``transit``), ``namespace``, ``ca_file``, ``auth`` (:class:`VaultAuth`)."""

    source: Literal["vault"]
    address: str = Field(pattern=r"^https?://[^\s/]+(/.*)?$", description="Vault address, http(s)://host:port")
    mount: str = Field(default="transit", pattern=r"^[A-Za-z0-9._/-]+$")
    namespace: str | None = Field(default=None, min_length=1)
    ca_file: str | None = Field(default=None, min_length=1)
    auth: VaultAuth = VaultAuth()


class AwsKey(_KmsKey):
    """A KEK in AWS KMS (``key``: id, ARN or ``alias/...``), credentials from boto3's standard chain
    (environment, config files, IRSA web identity, container and instance roles); ``region`` and
    ``endpoint_url`` (VPC endpoints) override the chain's."""

    source: Literal["aws"]
    region: str | None = Field(default=None, pattern=r"^[a-z0-9-]+$")
    endpoint_url: str | None = Field(default=None, pattern=r"^https?://[^\s/]+(/.*)?$")


KMS_SOURCES = ("vault", "aws")
KeySpec = Annotated[Union[EnvKey, FileKey, DirKey, VaultKey, AwsKey], Field(discriminator="source")]


# --------------------------------------------------------------------------- rules
class _Rule(_Model):
    field: FieldPath | None = Field(default=None, description=(
        "field path: a.b, a[*].b, \"key.with.dots\", *.b (any key at one level), **.b (zero or more "
        "object levels), {a,b}.c (one of the keys) (required in value rules and rules of a json/avro/"
        "protobuf key; omitted for a string or bytes key, where the whole key is the field; wildcards "
        "and {a,b} need format: json)"))
    header: str | None = Field(default=None, min_length=1, max_length=249, pattern=r"^[\x21-\x7e]+$", description=(
        "headers: rules only: the header name, exact or a glob (x-user-*, *email*), case-sensitive"))
    select: "TagSelect | None" = Field(default=None, description=(
        "value rules of avro and jsonschema routes, instead of field: every field of the writer schema "
        "carrying this tag (confluent:tags), e.g. {tag: PII}"))
    name: Slug | None = Field(default=None, description="rule name used in metrics; defaults to the field path")

    @property
    def label(self) -> str:
        """Bounded metric label: the rule's name, else its field path, its header name, ``tag:<tag>``
        (a ``select`` rule), or ``key`` (a whole string/bytes key). The compiled route prefixes key
        and header rules' labels with ``key:`` and ``header:``."""
        return self.name or self.field or self.header or (f"tag:{self.select.tag}" if self.select else "key")


class TagSelect(_Model):
    """Select fields by schema tag: every field of an Avro or JSON Schema writer schema whose
    ``confluent:tags`` holds ``tag`` (Confluent data contracts), at any depth, in every schema
    version, without naming paths."""

    tag: str = Field(pattern=r"^[A-Za-z0-9_.:-]{1,64}$", description="tag name, e.g. PII")


_Rule.model_rebuild()


class KeepRule(_Rule):
    """Pass the field through unchanged (lists it for ``unlisted_fields: drop``)."""

    action: Literal["keep"]


class MaskRule(_Rule):
    """Replace characters with ``mask_char``, keeping the first/last N maskable characters.

    Every character but a separator (punctuation, spaces, control characters, math/currency/
    modifier symbols: ``-``, space, ``@``, ``.``, ``+``) is masked: letters and digits of any script,
    letter-like symbols, emoji. Separators stay in place unless ``mask_separators`` is true.
    Output length equals input length.
    """

    action: Literal["mask"]
    keep_first: int = Field(default=0, ge=0, le=64)
    keep_last: int = Field(default=0, ge=0, le=64)
    mask_char: str = Field(default="*", min_length=1, max_length=1)
    mask_separators: bool = False


class RedactRule(_Rule):
    """Replace the value with a literal (default ``null``)."""

    action: Literal["redact"]
    value: JsonLiteral = None


class DropRule(_Rule):
    """Remove the field (array elements selected by ``[*]``/``[N]`` are removed from the array)."""

    action: Literal["drop"]


class PseudonymizeRule(_Rule):
    """Keyed HMAC-SHA256 pseudonym (RFC 2104) over a canonical form of the value; one-way.

    Bound to ``domain`` when given, else to the policy name and field path, so equal values in
    unrelated fields do not link.
    """

    action: Literal["pseudonymize"]
    key: str
    normalize: Literal["none", "string", "email", "phone"] = "string"
    default_region: str = Field(default="CN", pattern=r"^[A-Z]{2}$", description="phone: region for numbers without +CC")
    encoding: Literal["hex", "base32", "base64url"] = "hex"
    length: int | None = Field(default=None, ge=8, le=128, description="characters kept of the encoded digest")
    prefix: str = Field(default="", max_length=32)
    domain: Slug | None = None


class FpeRule(_Rule):
    """Format-preserving encryption: FF1 (NIST SP 800-38G Rev.1) by default, legacy ``ffx`` (pyffx).

    Characters of the value inside the alphabet are encrypted as one numeral string; others stay
    in place. The tweak binds the output to ``domain`` (or policy name + field path).
    """

    action: Literal["fpe"]
    key: str
    algorithm: Literal["ff1", "ffx"] = "ff1"
    alphabet: str | None = Field(default="digits", description=f"one of {sorted(ALPHABETS)}")
    alphabet_chars: str | None = Field(default=None, description="custom alphabet (unique characters); overrides alphabet")
    domain: Slug | None = None

    @model_validator(mode="after")
    def _alphabet_ok(self) -> "FpeRule":
        if self.alphabet_chars is not None:
            chars = self.alphabet_chars
            if len(chars) < 2 or len(set(chars)) != len(chars) or len(chars) > 65536:
                raise ValueError("alphabet_chars must hold 2..65536 unique characters")
        elif self.alphabet not in ALPHABETS:
            raise ValueError(f"unknown alphabet {self.alphabet!r}; use one of {sorted(ALPHABETS)} or alphabet_chars")
        return self

    @property
    def chars(self) -> str:
        """The alphabet's characters, in numeral order."""
        return self.alphabet_chars if self.alphabet_chars is not None else ALPHABETS[self.alphabet or "digits"]


class TokenizeRule(_Rule):
    """Deterministic reversible token (AES-SIV, RFC 5297): ``prefix`` + base32; format not kept."""

    action: Literal["tokenize"]
    key: str
    prefix: str = Field(default="tok_", max_length=32, pattern=r"^[A-Za-z0-9_.:-]*$")
    domain: Slug | None = None


class DetectRule(_Rule):
    """Find personal data in free text with validating detectors and replace every finding.

    ``replace``: ``placeholder`` (``<CN_MOBILE>``), ``mask`` (``mask_char``, ``keep_first``,
    ``keep_last`` per finding), ``pseudonymize`` (``<CN_MOBILE:hex>``, HMAC-SHA256 with ``key``,
    ``length`` hex digits) or ``fpe`` (FF1 with the AES ``key``, each kind keeps its format).
    ``regions`` (ISO 3166-1 alpha-2) are the national numbering plans the ``phone`` detector reads.
    """

    action: Literal["detect"]
    detectors: list[str] = Field(min_length=1, description="detector names (proxy.detectors registry)")
    replace: Literal["placeholder", "mask", "pseudonymize", "fpe"] = "placeholder"
    mask_char: str = Field(default="*", min_length=1, max_length=1)
    keep_first: int = Field(default=0, ge=0, le=64)
    keep_last: int = Field(default=0, ge=0, le=64)
    key: str | None = Field(default=None, description="key for replace: pseudonymize | fpe")
    length: int = Field(default=16, ge=8, le=64, description="pseudonym: hex digits kept")
    domain: Slug | None = None
    regions: list[str] = Field(default_factory=list, description="phone detector: regions for national-format numbers")

    @field_validator("detectors")
    @classmethod
    def _detectors_known(cls, v: list[str]) -> list[str]:
        from ..detectors.registry import DETECTOR_CLASSES
        for name in v:
            if name not in DETECTOR_CLASSES:
                raise ValueError(f"unknown detector {name!r}; known: {sorted(DETECTOR_CLASSES)}")
        if len(set(v)) != len(v):
            raise ValueError("a detector is listed twice")
        return v

    @field_validator("regions")
    @classmethod
    def _regions_known(cls, v: list[str]) -> list[str]:
        from ..detectors.phone import check_regions
        check_regions(v)
        return v

    @model_validator(mode="after")
    def _options_fit(self) -> "DetectRule":
        if self.replace in ("pseudonymize", "fpe") and not self.key:
            raise ValueError(f"replace: {self.replace} needs a key")
        if self.replace not in ("pseudonymize", "fpe") and self.key is not None:
            raise ValueError("key is only used by replace: pseudonymize or fpe")
        if self.regions and "phone" not in self.detectors:
            raise ValueError("regions apply to the phone detector, which is not listed")
        return self


Rule = Annotated[
    Union[KeepRule, MaskRule, RedactRule, DropRule, PseudonymizeRule, FpeRule, TokenizeRule, DetectRule],
    Field(discriminator="action"),
]


KeyRule = Annotated[
    Union[KeepRule, RedactRule, PseudonymizeRule, FpeRule, TokenizeRule],
    Field(discriminator="action"),
]
"""Rules allowed on record keys: deterministic ones only (same source key → same protected key
bytes, so partitioning, per-key ordering and log compaction keep working downstream)."""

KEY_ACTIONS = ("keep", "redact", "pseudonymize", "fpe", "tokenize")

KeyFormat = Literal["string", "json", "avro", "protobuf", "bytes"]
ValueFormat = Literal["json", "avro", "protobuf", "jsonschema"]
SubjectNameStrategy = Literal["topic", "record", "topic_record"]


class KeySection(_Model):
    """How a route reads and protects record keys.

    ``format``: ``string`` (UTF-8 text; the whole key is the field, rules have no ``field``),
    ``bytes`` (opaque; rules see the key as lower-case hex text and have no ``field``), ``json``,
    ``avro``, ``protobuf`` (the last two in the Confluent wire format, subject ``<topic>-key``;
    rules name field paths). A null key stays null.
    """

    format: KeyFormat = "string"
    rules: list[KeyRule] = Field(default_factory=list)


# --------------------------------------------------------------------------- blocks
class BlockWhen(_Model):
    """Condition on one field: ``equals`` a value, ``in`` a set of values (JSON-typed, so
    ``false`` does not equal ``0``), or ``not_equals`` a value: the record is blocked unless the
    field is there and equals it (a missing field blocks: ``{field: consent.marketing,
    not_equals: true}`` passes only records that state consent). Exactly one of the three."""

    field: FieldPath
    equals: JsonLiteral = None
    in_: list[JsonLiteral] | None = Field(default=None, alias="in")
    not_equals: JsonLiteral = Field(default=None, description=(
        "block unless the field is present and equals this value (a missing field blocks)"))

    @model_validator(mode="after")
    def _one_of(self) -> "BlockWhen":
        given = ("equals" in self.model_fields_set) + (self.in_ is not None) + ("not_equals" in self.model_fields_set)
        if given != 1:
            raise ValueError("give exactly one of 'equals', 'in' or 'not_equals'")
        return self


class BlockRule(_Model):
    """Withhold the whole record when ``when`` matches; counted under ``reason``."""

    when: BlockWhen
    reason: Slug


# --------------------------------------------------------------------------- routes
class SubjectKeys(_Model):
    """Per-subject keys for crypto-shredding (erasure: PIPL Art. 47, GDPR Art. 17).

    Every reversible field (``fpe``, ``tokenize``) of a record is protected with a key derived from
    the rule's key and a random key of the record's data subject (id taken from ``field``). Subject
    keys are wrapped with ``key`` (AES-GCM) and kept in the compacted topic ``topic``; ``dpp forget``
    erases one, after which that subject's data can never be revealed and new records of the
    subject are blocked (reason ``subject-forgotten``).
    """

    field: FieldPath = Field(description="field path holding the data subject's id (read before any rule)")
    topic: Topic = Field(description="compacted topic holding wrapped subject keys")
    key: str = Field(description="key (AES) wrapping subject keys")


class Consent(_Model):
    """Pass only records whose data subject has granted the route's purpose (PIPL Art. 13-15: a
    stated purpose and consent; withdrawal honoured, Art. 15; GDPR Art. 6(1)(a), 7(3)).

    Checked after the block conditions and ``retention``, before any rule. The subject's state
    comes from the compacted consent ``topic`` (format: :mod:`proxy.policy.consent`), which every worker
    reads to its end before it processes a record and follows while it runs; before each batch a
    worker reads the topic up to its end at that moment, so a withdrawal acknowledged before a
    record was written to the source is applied to that record. A record whose subject withdrew
    the purpose is blocked (reason ``consent-withdrawn``); one without a decision for the purpose
    (unknown subject, purpose not named, or an unreadable consent record) is blocked
    ``consent-missing`` (``unknown: allow`` lets unknown subjects and undecided purposes pass; an
    unreadable consent record still blocks). A record without a single string or integer at
    ``subject_field`` is dead-lettered (``subject-missing``).
    """

    subject_field: FieldPath = Field(description="field path of the data subject's id (read before any rule)")
    topic: Topic = Field(description="compacted consent topic: key = subject id, value = consent document")
    purpose: Slug | None = Field(default=None, description="purpose whose consent is needed (default: the route's purpose)")
    unknown: Literal["block", "allow"] = Field(default="block", description=(
        "a subject without a decision for the purpose: block (consent-missing) or allow"))


class Limits(_Model):
    """Limits against poison pills: a record over one goes to the dead-letter topic with the
    limit's own reason code (``limit-*``) and the worker goes on. Defaults are safe for ordinary
    records and stop a hostile one before it costs more than about a second."""

    max_record_bytes: int = Field(default=8 * 1024 * 1024, ge=1, le=1 << 31, description=(
        "largest record value, in bytes, that is parsed at all (reason limit-record-bytes)"))
    max_depth: int = Field(default=128, ge=1, le=250, description=(
        "deepest nesting of objects and arrays in a JSON value (reason limit-depth)"))
    max_detect_chars: int = Field(default=1024 * 1024, ge=1, description=(
        "longest string, in characters, a detect rule scans (reason limit-detect-length)"))
    time_budget_ms: float = Field(default=1000.0, gt=0, description=(
        "most policy-engine time one record may take, in milliseconds; a record over it that would "
        "reach the sink is dead-lettered instead (reason limit-time-budget)"))


_DURATION_UNITS = {"d": 86400, "h": 3600, "m": 60, "s": 1}


def duration_seconds(text: str) -> int:
    """Seconds of a duration ``<N><unit>``: ``30d``, ``12h``, ``90m``, ``45s`` (N a positive whole
    number of at most 10 digits; one unit: d = 86400 s, h, m, s). Raises ``ValueError``."""
    if (type(text) is not str or len(text) < 2 or text[-1] not in _DURATION_UNITS or not text[:-1].isascii()
            or not text[:-1].isdigit() or len(text) > 11 or text[0] == "0"):
        raise ValueError("a duration is a positive whole number and one unit: 30d, 12h, 90m or 45s")
    return int(text[:-1]) * _DURATION_UNITS[text[-1]]


class Retention(_Model):
    """Withhold records whose event time is older than ``max_age`` (PIPL Art. 47, GDPR Art.
    5(1)(e) "storage limitation"), checked with the block conditions, before any rule.

    ``source: record_timestamp`` reads the Kafka record's timestamp instead (milliseconds; a
    record without one, e.g. through ``dpp apply``, is dead-lettered ``bad-event-time``).
    Otherwise ``field`` holds the event time: a string in ISO 8601 with a UTC offset (``2024-05-01T08:00:00Z``,
    ``...+08:00``), or a JSON number of seconds since the Unix epoch (``epoch: seconds``) or
    milliseconds (``epoch: milliseconds``); ``epoch: auto`` (default) reads a number whose
    magnitude is at least 100,000,000,000 as milliseconds, any other as seconds. A record older
    than ``max_age`` is blocked (reason ``retention-expired``); one whose field is missing, null,
    ambiguous (a path matching several values), a timestamp without an offset, or of another type
    is dead-lettered (``bad-event-time``): it never passes.
    """

    source: Literal["field", "record_timestamp"] = Field(default="field", description=(
        "where the event time is: field = the value's field at 'field'; record_timestamp = the Kafka "
        "record's timestamp (CreateTime or LogAppendTime, milliseconds; records without one dead-letter)"))
    field: FieldPath | None = Field(default=None, description=(
        "field path of the record's event time (read before any rule); source: field only"))
    max_age: str = Field(description="oldest event time that passes, before now: 30d, 12h, 90m or 45s")
    epoch: Literal["auto", "seconds", "milliseconds"] = Field(default="auto", description=(
        "unit of a numeric event time: auto = milliseconds from 100,000,000,000 on, else seconds"))

    @field_validator("max_age")
    @classmethod
    def _duration(cls, v: str) -> str:
        duration_seconds(v)
        return v

    @model_validator(mode="after")
    def _field_fits_source(self) -> "Retention":
        if (self.field is None) == (self.source == "field"):
            raise ValueError("source: field needs a field; source: record_timestamp takes none")
        return self


class Route(_Model):
    """One source topic → one sink topic, with a dead-letter topic and the rules applied between."""

    name: Slug
    purpose: Slug | None = Field(default=None, description=(
        "the purpose this route's sink serves (analytics, support, marketing...): exported as "
        "dpp_route_info{route,purpose} and logged when the route starts; one source routed to "
        "several sinks, one route per purpose, each with its own rules"))
    source: Topic
    sink: Topic
    dead_letter: Topic
    dead_letter_key: str = Field(description="key (AES-128/192/256) sealing dead-letter payloads with AES-GCM")
    consumer_group: str | None = Field(default=None, description="default: dpp.<policy>.<route>")
    format: ValueFormat = Field(default="json", description=(
        "value format: json (plain JSON objects), or avro, protobuf, jsonschema in the Confluent wire "
        "format through a schema registry (dpp run --schema-registry URL)"))
    subject_name_strategy: SubjectNameStrategy = Field(default="topic", description=(
        "sink subject of derived schemas: topic = <sink>-value (TopicNameStrategy), record = the "
        "record's full name (RecordNameStrategy), topic_record = <sink>-<full name>"))
    unlisted_fields: Literal["keep", "drop"] = "keep"
    block: list[BlockRule] = Field(default_factory=list)
    use: list[Slug] = Field(default_factory=list, description=(
        "names of rule_sets whose rules this route applies, before its own rules"))
    rules: list[Rule] = Field(default_factory=list)
    key: KeySection | None = Field(default=None, description="record key format and rules (default: the key passes unchanged)")
    headers: list[Rule] = Field(default_factory=list, description="rules on record headers, by name or glob")
    unlisted_headers: Literal["keep", "drop"] = Field(default="keep", description=(
        "headers no headers: rule names: keep (pass unchanged) or drop"))
    subject_keys: SubjectKeys | None = None
    processing_guarantee: Literal["at_least_once", "exactly_once"] = Field(default="at_least_once", description=(
        "at_least_once: a record may reach the sink again after a crash (byte-identical); exactly_once: "
        "Kafka transactions (sink, dead-letter records and consumed offsets commit together), so "
        "read_committed consumers see each source record once"))
    limits: Limits = Field(default_factory=Limits, description="limits against poison-pill records")
    retention: Retention | None = Field(default=None, description=(
        "block records whose event time is older than max_age (retention-expired); an unreadable "
        "event time dead-letters the record (bad-event-time)"))
    consent: Consent | None = Field(default=None, description=(
        "block records whose subject has not granted (consent-missing) or has withdrawn "
        "(consent-withdrawn) the purpose, read from a compacted consent topic"))

    @model_validator(mode="after")
    def _topics_distinct(self) -> "Route":
        if len({self.source, self.sink, self.dead_letter}) != 3:
            raise ValueError("source, sink and dead_letter must be three different topics")
        if self.consent is not None:
            if self.consent.purpose is None and self.purpose is None:
                raise ValueError("consent needs a purpose: give the route a purpose: (or consent.purpose)")
            if self.consent.topic in (self.source, self.sink, self.dead_letter):
                raise ValueError("consent.topic must differ from the route's source, sink and dead_letter")
        return self


# --------------------------------------------------------------------------- tests (dpp test)
class CaseInput(_Model):
    """The record a test case feeds to its route: ``value`` (a JSON object or array as YAML, a raw
    string sent as its UTF-8 bytes, e.g. ``"not json"``, or null for a tombstone), ``key`` (UTF-8
    text; default null) and ``headers`` (name → UTF-8 text)."""

    value: Any = Field(description="record value: an object (sent as JSON), a raw string, or null")
    key: str | None = Field(default=None, description="record key, UTF-8 text (default: null)")
    headers: dict[str, str] = Field(default_factory=dict, description="record headers, name → UTF-8 text")


class CaseAssert(_Model):
    """One assertion on the protected record. ``path`` is a field path of the value (``[*]`` selects
    every element, and every selected node must pass), ``@key`` (the protected key) or
    ``@headers.NAME``. Exactly one check: ``equals`` (JSON-typed), ``matches`` (regular expression,
    searched anchored at both ends), ``length`` (characters of a string, items of an array or
    object), ``absent: true``, ``not_equals_input: true`` (differs from the input at the same path),
    ``decrypts_to`` (an fpe or tokenize field: the route's reveal gives this value)."""

    path: str = Field(min_length=1, description="value field path, @key, or @headers.NAME")
    equals: Any = None
    matches: str | None = Field(default=None, description="regular expression the whole value must match")
    length: int | None = Field(default=None, ge=0)
    absent: Literal[True] | None = None
    not_equals_input: Literal[True] | None = None
    decrypts_to: Any = None

    CHECKS: ClassVar[tuple[str, ...]] = ("equals", "matches", "length", "absent", "not_equals_input", "decrypts_to")

    @property
    def check(self) -> str:
        """The name of the check this assertion makes (one of :attr:`CHECKS`)."""
        return next(c for c in self.CHECKS if c in self.model_fields_set)

    @model_validator(mode="after")
    def _one_check(self) -> "CaseAssert":
        given = [c for c in self.CHECKS if c in self.model_fields_set]
        if len(given) != 1:
            raise ValueError(f"give exactly one of {', '.join(self.CHECKS)}")
        if self.matches is not None:
            import re
            try:
                re.compile(self.matches)
            except re.error as e:
                raise ValueError(f"matches: invalid regular expression: {e}") from None
        if not self.path.startswith("@"):
            _check_path(self.path)
        elif self.path != "@key" and not (self.path.startswith("@headers.") and len(self.path) > 9):
            raise ValueError("a path starting with @ is @key or @headers.NAME")
        return self


class CaseOutcome(_Model):
    """The record does not reach the sink: ``blocked`` (a block rule's reason) or ``dead_letter``
    (a reason code, e.g. ``unsupported-type``). Exactly one."""

    blocked: Slug | None = None
    dead_letter: str | None = Field(default=None, pattern=r"^[a-z0-9-]{1,64}$")

    @model_validator(mode="after")
    def _one_of(self) -> "CaseOutcome":
        if (self.blocked is None) == (self.dead_letter is None):
            raise ValueError("give exactly one of 'blocked' or 'dead_letter'")
        return self


class PolicyTestCase(_Model):
    """One ``dpp test`` case: ``input`` through ``route`` (default: the policy's only route), then
    the expectation: ``output`` (the exact protected value), ``assert`` (a list of
    :class:`CaseAssert`), both, or ``outcome`` (blocked or dead-lettered) alone."""

    name: str = Field(min_length=1, max_length=200)
    route: Slug | None = Field(default=None, description="route name (default: the only route)")
    input: CaseInput
    output: Any = Field(default=None, description="the exact protected value (JSON object)")
    assert_: list[CaseAssert] | None = Field(default=None, alias="assert", min_length=1)
    outcome: CaseOutcome | None = None
    consent: dict[Slug, Literal["granted", "withdrawn"]] | None = Field(default=None, description=(
        "routes with consent: the input's subject's consent state for this case (purpose -> granted | "
        "withdrawn); without it the subject has no decision (as an unknown subject)"))

    @model_validator(mode="after")
    def _expectation(self) -> "PolicyTestCase":
        has_out = "output" in self.model_fields_set
        if self.outcome is not None and (has_out or self.assert_ is not None):
            raise ValueError("an outcome case has no output or assert (the record reaches no sink)")
        if self.outcome is None and not has_out and self.assert_ is None:
            raise ValueError("give an expectation: output, assert or outcome")
        return self


class Policy(_Model):
    """A data-protection policy (format version 1)."""

    version: Literal[1] = Field(description="policy format version")
    name: Slug
    revision: str | None = Field(default=None, max_length=64, description="policy revision; default: sha256 of the file, 12 hex")
    description: str | None = None
    keys: dict[str, KeySpec] = Field(default_factory=dict)
    rule_sets: dict[Slug, Annotated[list[Rule], Field(min_length=1)]] = Field(default_factory=dict, description=(
        "named lists of value rules that routes apply with use: [NAME]; a set cannot use another set"),
        json_schema_extra={"additionalProperties": False})  # set names are slugs
    routes: list[Route] = Field(min_length=1)
    tests: list[PolicyTestCase] = Field(default_factory=list, description=(
        "test cases run by `dpp test` with test keys (never the keys above)"))


def policy_json_schema() -> dict[str, Any]:
    """JSON Schema (draft 2020-12) of policy format v1, generated from :class:`Policy`."""
    schema = Policy.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "https://github.com/data-protection-proxy/dpp/policies/policy.schema.json"
    schema["title"] = "dpp policy (format version 1)"
    return schema
