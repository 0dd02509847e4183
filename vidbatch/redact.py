"""The one redactor: text that came from a provider or from storage is passed through it before it
reaches a ledger row, a log line, a report, a Prefect state or artifact. Pure: re and logging only.

It removes
  - the values of the keys the run's routes use (every `*_env` setting's variable, e.g. each
    route's `api_key_env`, the sandbox's keys) and of AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN and
    PGPASSWORD, wherever they appear;
  - credentials in headers echoed back (`Authorization`, `Proxy-Authorization`, `X-Api-Key`,
    `Api-Key`, `X-Goog-Api-Key`), `Bearer …` and `Basic …` tokens, OpenAI-style `sk-…` keys;
  - user info in URLs (`scheme://user:pass@host`) and token parameters of query strings
    (`key`, `api_key`, `token`, `access_token`, `sig`, `signature`, `X-Amz-Signature`,
    `X-Amz-Credential`, `X-Amz-Security-Token`, `password`, `secret`).

`error(err)` gives a copy of an exception whose message is redacted and whose chain is cut (the
SDK exception underneath may hold the echoed request), so tracebacks carry no secret either.
`logs_redacted(redactor)` filters every log handler of the process for the length of a run.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import os
import re
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from vidbatch.errors import VidbatchError

__all__ = ["Redactor", "RedactedError", "MASK", "secret_values", "logs_redacted", "endpoint_text"]

MASK = "[redacted]"
ALWAYS_SECRET = ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "PGPASSWORD")
_MIN_SECRET = 6  # shorter values would blank ordinary words
_PATTERNS = [
    (
        re.compile(
            r"(?i)\b((?:proxy-)?authorization|x-api-key|api-key|x-goog-api-key)(\W{0,4}?)\s*[:=]\s*"
            r"([\"']?)(?:(?:bearer|basic|token)\s+)?(?!\[)[^\s\"',;}\]]+"
        ),
        rf"\1\2: \3{MASK}",
    ),
    (re.compile(r"(?i)\b(bearer|basic)\s+(?!\[)[A-Za-z0-9._~+/=-]{6,}"), rf"\1 {MASK}"),
    (re.compile(r"\bsk-[A-Za-z0-9_-]{12,}"), f"sk-{MASK}"),
    (re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^\s/@:\"']+(?::[^\s/@\"']*)?@"), rf"\1{MASK}@"),
    (
        re.compile(
            r"(?i)([?&;](?:api[_-]?key|key|token|access_token|sig|signature|x-amz-signature|x-amz-credential|"
            r"x-amz-security-token|password|secret)=)[^&\s\"'#]+"
        ),
        rf"\1{MASK}",
    ),
]


class RedactedError(VidbatchError):
    """An exception whose own type could not carry a redacted message, as text."""


class Redactor:
    """Removes known secret values and credential-shaped text from strings and exceptions."""

    def __init__(self, secrets: Iterable[str] = ()):
        self.secrets = tuple(sorted({s for s in secrets if s and len(s) >= _MIN_SECRET}, key=len, reverse=True))

    def __call__(self, text: object) -> str:
        if text is None:
            return ""
        clean = str(text)
        for pattern, replacement in _PATTERNS:  # shapes first (a header keeps its name), then known values
            clean = pattern.sub(replacement, clean)
        for secret in self.secrets:
            clean = clean.replace(secret, MASK)
        return clean

    def optional(self, text: str | None) -> str | None:
        return None if text is None else self(text)

    def error(self, err: BaseException) -> BaseException:
        """A copy of `err` with its message redacted and no chain (`raise redactor.error(e) from None`);
        its attributes (cost, job id) are kept. Interrupts pass through untouched."""
        if not isinstance(err, Exception):
            return err
        clean = self(str(err))
        try:
            copied = copy.copy(err)
            copied.args = (clean,)
            if str(copied) != clean:
                raise TypeError("the exception's text does not come from its args")
        except Exception:  # noqa: BLE001 (any type that cannot be copied is carried as text)
            copied = RedactedError(f"{type(err).__name__}: {clean}")
        copied.__cause__, copied.__context__, copied.__suppress_context__ = None, None, True
        return copied.with_traceback(err.__traceback__)


def secret_values(settings: Iterable[Any], environ: Mapping[str, str] | None = None) -> list[str]:
    """The values of every environment variable a route's settings name (`*_env` fields), and of
    the always-secret ones, as set now."""
    environ = os.environ if environ is None else environ
    names = set(ALWAYS_SECRET)
    for section in settings:
        fields = section.model_dump() if hasattr(section, "model_dump") else dict(section)
        names |= {value for key, value in fields.items() if key.endswith("_env") and isinstance(value, str)}
    return [environ[name] for name in sorted(names) if environ.get(name)]


class _Filter(logging.Filter):
    def __init__(self, redactor: Redactor):
        super().__init__("vidbatch-redact")
        self.redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = self.redactor(record.getMessage()), None
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = self.redactor(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        elif record.exc_text:
            record.exc_text = self.redactor(record.exc_text)
        return True


def _handlers() -> list[logging.Handler]:
    known = list(logging.root.manager.loggerDict.values())  # a copy: other threads may add loggers meanwhile
    loggers = [logging.getLogger(), *(logger for logger in known if isinstance(logger, logging.Logger))]
    return list({id(h): h for logger in loggers for h in list(logger.handlers)}.values())


@contextlib.contextmanager
def logs_redacted(redactor: Redactor) -> Iterator[None]:
    """Every log handler of the process passes records through `redactor` until the block ends
    (Prefect's API handler included, so Prefect's database gets the redacted text)."""
    guard = _Filter(redactor)
    handlers = _handlers()
    for handler in handlers:
        handler.addFilter(guard)
    try:
        yield
    finally:
        for handler in handlers:
            handler.removeFilter(guard)


def endpoint_text(url: str) -> str:
    """A base URL fit for messages, logs and ledgers: no user info, no query string, no trailing slash."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{parts.hostname or ''}{port}{parts.path}".rstrip("/")
