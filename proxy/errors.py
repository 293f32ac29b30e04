"""One exception hierarchy and the bounded vocabularies used in metric labels and dead-letter headers.

Nothing in this module ever carries a record's value: exceptions name a stage, a reason code and (where
relevant) a rule, all of which come from the policy or from this module, never from data.
"""
from __future__ import annotations

from enum import Enum


class Stage(str, Enum):
    """Where in the record flow a failure happened (dead-letter header ``dpp.stage``)."""

    DESERIALIZE = "deserialize"
    BLOCK = "block"
    TRANSFORM = "transform"
    SERIALIZE = "serialize"
    KEY = "key"
    """The record key: decoding it or a ``key:`` rule."""
    HEADERS = "headers"
    """A ``headers:`` rule."""
    PRODUCE = "produce"
    """Producing the protected record: the sink topic refuses it (its size)."""


class Reason(str, Enum):
    """Bounded reason codes for dead-lettered records (label ``reason``, header ``dpp.reason``)."""

    INVALID_JSON = "invalid-json"
    NOT_OBJECT = "not-an-object"
    UNSUPPORTED_TYPE = "unsupported-type"
    FPE_DOMAIN = "fpe-domain-too-small"
    FPE_VARIANT_CHARS = "fpe-variant-characters"
    """The value holds another form of an alphabet character (full-width ``１``, Arabic-Indic ``١``,
    superscript ``²``, the other letter case) that FPE would have left in clear."""
    NORMALIZE_FAILED = "normalize-failed"
    TRANSFORM_FAILED = "transform-failed"
    SERIALIZE_FAILED = "serialize-failed"
    KEY_UNAVAILABLE = "key-unavailable"
    TOKEN_INVALID = "token-invalid"
    SUBJECT_FORGOTTEN = "subject-forgotten"
    SUBJECT_MISSING = "subject-missing"
    UNEXPECTED_SHAPE = "unexpected-shape"
    """A rule's path meets a string/number where it needs an object or array: the value could hold
    what the rule protects, so the record fails closed."""
    NOT_CONFLUENT_FRAMED = "not-confluent-framed"
    """A value (or key) of a schema-registry format without the Confluent wire format's magic byte 0
    and 4-byte schema id."""
    UNKNOWN_SCHEMA = "unknown-schema"
    """The schema id of a framed record is not in the schema registry (HTTP 404)."""
    DECODE_FAILED = "decode-failed"
    """The bytes do not decode with their format (Avro, Protobuf, JSON Schema, UTF-8 text)."""
    KEY_DECODE_FAILED = "key-decode-failed"
    """The record key does not decode with the route's ``key.format``."""
    HEADER_DECODE_FAILED = "header-decode-failed"
    """A header value a rule must rewrite is not UTF-8 text."""
    SINK_SCHEMA_REJECTED = "sink-schema-rejected"
    """The schema registry refused the derived sink schema (e.g. incompatible with the sink
    subject's earlier versions under its compatibility level)."""
    TOO_LARGE = "too-large"
    """The protected record is larger than the sink topic accepts (``max.message.bytes``): it goes
    to the dead-letter topic sealed; if the sealed record is too large for the dead-letter topic
    as well, a dead-letter record with the headers, the original size and a keyed digest, and the
    payload dropped (``dpp.dlq.content: dropped``)."""
    LIMIT_RECORD_BYTES = "limit-record-bytes"
    """The value is larger than the route's ``limits.max_record_bytes``: not parsed."""
    LIMIT_DEPTH = "limit-depth"
    """A JSON value nests objects and arrays deeper than ``limits.max_depth``."""
    LIMIT_DETECT_LENGTH = "limit-detect-length"
    """A string a ``detect`` rule must scan is longer than ``limits.max_detect_chars``."""
    LIMIT_TIME_BUDGET = "limit-time-budget"
    """Protecting the record took longer than ``limits.time_budget_ms``."""
    BAD_EVENT_TIME = "bad-event-time"
    """A route with ``retention:`` cannot read the record's event time: the field is missing,
    null, found more than once, or not an ISO 8601 timestamp with an offset or an epoch number."""
    RETENTION_EXPIRED = "retention-expired"
    CONSENT_MISSING = "consent-missing"
    """Block reason: the route's ``consent`` has no decision for the record's subject and purpose
    (or the subject's consent record is unreadable)."""
    CONSENT_WITHDRAWN = "consent-withdrawn"
    """Block reason: the record's subject withdrew the route's purpose in the consent topic."""
    """Block reason: the record's event time is older than the route's ``retention.max_age``."""
    SCHEMA_VALIDATION_FAILED = "schema-validation-failed"
    """A JSON Schema route's protected value does not validate against the derived sink schema."""


class DppError(Exception):
    """Base class of every error dpp raises on purpose."""


class PolicyError(DppError):
    """A policy failed to load, validate or compile.

    ``problems`` is a list of ``(file, line, path, message)`` tuples; ``str()`` renders one
    ``FILE:LINE: PATH: message`` line per problem (the ``dpp check`` output format).
    """

    def __init__(self, problems: list[tuple[str, int | None, str, str]]):
        self.problems = problems
        super().__init__("\n".join(format_problem(*p) for p in problems))


def format_problem(file: str, line: int | None, path: str, message: str) -> str:
    """Render one policy problem as ``FILE:LINE: PATH: message`` (LINE is 1-based; ``?`` when unknown)."""
    return f"{file}:{line if line is not None else '?'}: {path or '<root>'}: {message}"


class KeyLoadError(DppError):
    """A key named by the policy could not be loaded (missing variable or file, bad encoding, bad length).

    The message names the key and its source, never key material.
    """


class RecordError(DppError):
    """A record could not be fully protected; it goes to the dead-letter topic.

    Attributes: ``stage`` (:class:`Stage`), ``reason`` (:class:`Reason`), ``rule`` (rule name or ``""``).
    The message must not contain any part of the record.
    """

    def __init__(self, stage: Stage, reason: Reason, rule: str = "", detail: str = ""):
        self.stage = stage
        self.reason = reason
        self.rule = rule
        super().__init__(f"{stage.value}/{reason.value}" + (f" rule={rule}" if rule else "") + (f": {detail}" if detail else ""))


class DependencyUnavailable(DppError):
    """A service the record path needs (the schema registry, a KMS) cannot be reached or answered
    with a server error. Not a property of the record: the engine produces nothing and commits
    nothing for the batch, waits with backoff and tries the same records again (fail closed).

    ``dependency`` is a bounded name (``schema-registry``); the message never holds record data.
    """

    def __init__(self, dependency: str, detail: str = ""):
        self.dependency = dependency
        super().__init__(dependency + (f": {detail}" if detail else ""))


class KmsUnavailable(DependencyUnavailable):
    """A KMS could not be reached, timed out, throttled or answered with a server error (transient:
    retried with backoff, counted by the circuit breaker). ``dependency`` is ``kms:<provider>``; the
    message names the provider, the operation and the key-encryption key, never key material."""

    def __init__(self, provider: str, detail: str = ""):
        self.provider = provider
        super().__init__(f"kms:{provider}", detail)


class KmsRefused(KeyLoadError):
    """A KMS answered but refused the operation (denied, unknown key, ciphertext it cannot
    decrypt, bad request): not retried. The message names provider, operation and key-encryption
    key, never key material."""


class FormatError(DppError):
    """Bytes that do not decode (or a tree that does not encode) with a codec; carries a
    :class:`Reason` (``not-confluent-framed``, ``unknown-schema``, ``decode-failed``,
    ``serialize-failed``), never the bytes."""

    def __init__(self, reason: Reason, detail: str = ""):
        self.reason = reason
        super().__init__(reason.value + (f": {detail}" if detail else ""))


class TransformError(DppError):
    """Raised by a transform for a value it cannot protect; carries a :class:`Reason`, never the value."""

    def __init__(self, reason: Reason, detail: str = ""):
        self.reason = reason
        super().__init__(reason.value + (f": {detail}" if detail else ""))
