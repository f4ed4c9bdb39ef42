"""Log redaction: the belt-and-braces behind "no secret in any log line".

The first line of defence is that secret-holding objects have no secret in their repr and
errors carry fixed messages. This filter is the second: every record is rendered, then scrubbed
of (a) secrets registered at runtime, in every encoding they are likely to be logged in, and
(b) shapes that look like keys whatever their value (PEM private keys, Solana keypair JSON
arrays, QuantumVault webhook secrets, "secret=..." style assignments, bearer tokens).

Where to install it: `install(registry)` wraps the logging record factory, so every record from
every logger is scrubbed at creation, before any handler or formatter sees it (a filter on the
root logger would miss records from child loggers' own handlers). Fields passed with `extra=`
are attached after the factory runs, so also attach `RedactingFilter` to each handler (e.g. in
the dictConfig); running it twice is harmless.

Scrubbed in a record: the rendered message (msg % args), exception text, stack text, and string
values of `extra=` fields. The rendered message replaces msg and args is cleared, so nothing
downstream can re-render the raw arguments.
"""

from __future__ import annotations

import ast
import base64
import logging
import re
import threading
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import base58

from security.webhook_auth import SECRET_RE

REDACTED = "[REDACTED]"
MIN_SECRET_LEN = 8
MAX_TOKEN_RUN = 8192
_TOKEN_RUN = re.compile(r"[A-Za-z0-9+/=_\-]{8,}")
_TOKEN_FULL = re.compile(r"[A-Za-z0-9+/=_\-]+\Z")
_BYTES_LITERAL = re.compile(r"b'(?:[^'\\\n]|\\.)*'" + r'|b"(?:[^"\\\n]|\\.)*"')
_INT_LIST = re.compile(r"\[\s*\d{1,3}(?:\s*,\s*\d{1,3}){7,}\s*\]")

_KEY_LIKE = [
    re.compile(
        r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----.*?(?:-----END [A-Z0-9 ]*PRIVATE KEY-----|\Z)",
        re.DOTALL,
    ),
    re.compile(r"\[\s*(?:\d{1,3}\s*,\s*){31,}\d{1,3}\s*\]"),
    SECRET_RE,
    re.compile(r"(?i)(?<=bearer )\s*[A-Za-z0-9._~+/\-]{8,}=*"),
    re.compile(
        r"(?i)(?<![A-Za-z0-9_])((?:secret|token|password|passwd|private_?key|privkey|api_?key"
        r"|mnemonic|seed_?phrase|server_?key|umk|pepper)[\"']?\s*[=:]\s*[\"']?)"
        r"([^\s\"',;}]{4,})"
    ),
]

_STANDARD_ATTRS = frozenset(
    logging.LogRecord("x", logging.INFO, "x", 0, "x", None, None).__dict__
) | {"message", "asctime", "taskName"}


def encodings_of(secret: bytes) -> set[str]:
    """The token-like text forms a byte secret is likely to be logged in."""
    b64 = base64.b64encode(secret).decode()
    b64url = base64.urlsafe_b64encode(secret).decode()
    forms = {
        secret.hex(),
        secret.hex().upper(),
        base58.b58encode(secret).decode(),  # Solana's text form of keys and signatures
        b64,
        b64.rstrip("="),
        b64url,
        b64url.rstrip("="),
    }
    try:
        text = secret.decode("utf-8")
    except UnicodeDecodeError:
        text = ""
    if _TOKEN_FULL.match(text):
        forms.add(text)
    return {f for f in forms if len(f) >= MIN_SECRET_LEN}


def _decode_bytes_literal(literal: str) -> bytes:
    """The bytes a logged b'...' repr stands for (b'' when it does not parse)."""
    try:
        value = ast.literal_eval(literal)
    except (SyntaxError, ValueError):
        return b""
    return value if isinstance(value, bytes) else b""


def _decode_int_list(literal: str) -> bytes:
    """The bytes a logged [1, 2, ...] list stands for (b'' when not all are bytes)."""
    numbers = [int(n) for n in re.findall(r"\d+", literal)]
    return bytes(numbers) if all(n < 256 for n in numbers) else b""


@dataclass(repr=False)
class _Snapshot:
    """Matching state. Sets only grow in place (safe for concurrent `in` checks); a new
    length publishes a new dict and a new text form a new compiled pattern."""

    tokens: dict[int, set[str]]
    raw: dict[int, set[bytes]]
    texts: re.Pattern[str] | None
    text_sources: set[str]
    count: int


def _grow(snap: _Snapshot, name: str, lengths: set[int]) -> None:
    """Publish a new dict (never mutate the one a reader may iterate) for new lengths."""
    current = getattr(snap, name)
    missing = lengths - current.keys()
    if missing:
        setattr(snap, name, {**current, **{length: set() for length in missing}})


def _windows(value: str | bytes, sets: dict[int, set[Any]]) -> list[tuple[int, int]]:
    """Spans of `value` equal to a registered form; cost is len(value) x distinct lengths."""
    spans = []
    for length, forms in sets.items():
        for i in range(len(value) - length + 1):
            if value[i : i + length] in forms:
                spans.append((i, i + length))
    return spans


class SecretRegistry:
    """Secrets known at runtime, matched in time independent of how many are registered.

    Token-like forms (hex, base58, base64, token text) are found by sliding windows of each
    registered length over every run of token characters and looking them up in a set, so
    thousands of registered agent keys cost no more per log line than one. Logged bytes reprs
    and integer lists are decoded and searched as bytes. Only free text with spaces (seed
    phrases) goes through a regex.
    """

    def __init__(self) -> None:
        """Start empty."""
        self._lock = threading.Lock()
        self._snap = _Snapshot({}, {}, None, set(), 0)

    def __repr__(self) -> str:
        """A count only, never the secrets."""
        return f"SecretRegistry(secrets={self._snap.count})"

    def register(self, secret: bytes | bytearray | str) -> None:
        """Scrub this secret (and its hex/base58/base64/repr/list forms) from now on."""
        texts: set[str] = set()
        if isinstance(secret, str):
            if len(secret) < MIN_SECRET_LEN:
                raise ValueError("secret too short to redact safely")
            if not _TOKEN_FULL.match(secret):
                words = secret.split()
                texts.add(r"\s+".join(re.escape(w) for w in words) if words else re.escape(secret))
            secret = secret.encode("utf-8")
        raw = bytes(secret)
        if len(raw) < MIN_SECRET_LEN:
            raise ValueError("secret too short to redact safely")
        self._add(encodings_of(raw), raw, texts)

    def register_ed25519_keypair(self, keypair: bytes) -> None:
        """A 64-byte keypair: its seed half is secret on its own, so register both."""
        if len(keypair) != 64:
            raise ValueError("an ed25519 keypair is 64 bytes")
        self.register(bytes(keypair))
        self.register(bytes(keypair[:32]))

    def register_many(self, secrets: Iterable[bytes | str]) -> None:
        """Register several secrets."""
        for secret in secrets:
            self.register(secret)

    def _add(self, tokens: set[str], raw: bytes, texts: set[str]) -> None:
        """Add forms: O(forms) per secret, however many are registered already."""
        with self._lock:
            snap = self._snap
            _grow(snap, "tokens", {len(f) for f in tokens})
            _grow(snap, "raw", {len(raw)})
            for form in tokens:
                snap.tokens[len(form)].add(form)
            snap.raw[len(raw)].add(raw)
            if not texts <= snap.text_sources:
                snap.text_sources |= texts
                ordered = sorted(snap.text_sources, key=len, reverse=True)
                snap.texts = re.compile("|".join(ordered))
            snap.count += 1

    def _scrub_run(self, snap: _Snapshot, run: str) -> str:
        """Replace registered forms inside one run of token characters."""
        if len(run) > MAX_TOKEN_RUN:
            return REDACTED
        spans = sorted(_windows(run, snap.tokens))
        if not spans:
            return run
        out, pos = [], 0
        for start, end in spans:
            if start >= pos:
                out.append(run[pos:start])
                out.append(REDACTED)
            pos = max(pos, end)
        out.append(run[pos:])
        return "".join(out)

    def _scrub_decoded(self, snap: _Snapshot, literal: str, decode: Callable[[str], bytes]) -> str:
        """Replace a bytes repr / int list if its bytes contain a registered secret."""
        if len(literal) > 4 * MAX_TOKEN_RUN:
            return REDACTED
        return REDACTED if _windows(decode(literal), snap.raw) else literal

    def scrub(self, text: str) -> str:
        """Replace registered secrets, then key-like shapes, with [REDACTED]."""
        snap = self._snap
        if snap.texts is not None:
            text = snap.texts.sub(REDACTED, text)
        if snap.count:
            text = _BYTES_LITERAL.sub(
                lambda m: self._scrub_decoded(snap, m.group(), _decode_bytes_literal), text
            )
            text = _INT_LIST.sub(
                lambda m: self._scrub_decoded(snap, m.group(), _decode_int_list), text
            )
            text = _TOKEN_RUN.sub(lambda m: self._scrub_run(snap, m.group()), text)
        for pattern in _KEY_LIKE:
            if pattern.groups >= 2:
                text = pattern.sub(lambda m: m.group(1) + REDACTED, text)
            else:
                text = pattern.sub(REDACTED, text)
        return text


DEFAULT_REGISTRY = SecretRegistry()


class RedactingFilter(logging.Filter):
    """Renders and scrubs a record in place; never drops a record."""

    def __init__(self, registry: SecretRegistry | None = None) -> None:
        """Use the given registry, or the process-wide default one."""
        super().__init__()
        self.registry = registry if registry is not None else DEFAULT_REGISTRY

    def filter(self, record: logging.LogRecord) -> bool:
        """Scrub message, args, exception and stack text, and string extras."""
        scrub = self.registry.scrub
        try:
            message = record.getMessage()
        except Exception:  # a bad format string must not bypass redaction
            message = f"{record.msg!s} {record.args!r}"
        record.msg = scrub(message)
        record.args = None
        if record.exc_info and record.exc_info[0] is not None:
            text = "".join(traceback.format_exception(*record.exc_info)).rstrip("\n")
            record.exc_text = scrub(text)
            record.exc_info = None
        elif record.exc_text:
            record.exc_text = scrub(record.exc_text)
        if record.stack_info:
            record.stack_info = scrub(record.stack_info)
        for name, value in list(record.__dict__.items()):
            if name in _STANDARD_ATTRS:
                continue
            if isinstance(value, str):
                setattr(record, name, scrub(value))
            elif not isinstance(value, (int, float, bool, type(None))):
                setattr(record, name, scrub(repr(value)))
        return True


_install_lock = threading.Lock()
_installed: RedactingFilter | None = None
_previous_factory: Callable[..., logging.LogRecord] | None = None


def install(registry: SecretRegistry | None = None) -> RedactingFilter:
    """Scrub every record at creation by wrapping the record factory (idempotent)."""
    global _installed, _previous_factory
    with _install_lock:
        if _installed is not None:
            return _installed
        scrubber = RedactingFilter(registry)
        previous = logging.getLogRecordFactory()

        def factory(*args: object, **kwargs: object) -> logging.LogRecord:
            """Create the record as before, then scrub it."""
            record = previous(*args, **kwargs)
            scrubber.filter(record)
            return record

        logging.setLogRecordFactory(factory)
        _installed, _previous_factory = scrubber, previous
        return scrubber


def uninstall() -> None:
    """Restore the record factory that `install` wrapped (tests, orderly shutdown)."""
    global _installed, _previous_factory
    with _install_lock:
        if _previous_factory is not None:
            logging.setLogRecordFactory(_previous_factory)
        _installed, _previous_factory = None, None
