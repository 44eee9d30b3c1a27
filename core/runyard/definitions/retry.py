"""Retry policies for ops, and the exceptions an op raises to ask for a retry or to fail for good."""

from __future__ import annotations

import random
from dataclasses import dataclass
from enum import Enum

from ..errors import DefinitionError


class Backoff(str, Enum):
    LINEAR = "LINEAR"            # delay * attempt
    EXPONENTIAL = "EXPONENTIAL"  # delay * 2 ** (attempt - 1)


class Jitter(str, Enum):
    FULL = "FULL"                # uniform in [0, delay]
    PLUS_MINUS = "PLUS_MINUS"    # delay +/- up to delay, never below 0


@dataclass(frozen=True)
class RetryPolicy:
    """Retry a failing op up to ``max_retries`` times, waiting ``delay`` seconds (shaped by
    ``backoff`` and ``jitter``) before each new attempt."""

    max_retries: int = 1
    delay: float | None = None
    backoff: Backoff | None = None
    jitter: Jitter | None = None

    def __post_init__(self) -> None:
        if self.max_retries < 0:
            raise DefinitionError(f"RetryPolicy.max_retries must be >= 0, got {self.max_retries}")
        if self.delay is not None and self.delay < 0:
            raise DefinitionError(f"RetryPolicy.delay must be >= 0, got {self.delay}")
        if (self.backoff or self.jitter) and self.delay is None:
            raise DefinitionError("RetryPolicy: backoff and jitter need a delay")

    def delay_for(self, attempt: int) -> float:
        """Seconds to wait before retry number ``attempt`` (1 for the first retry)."""
        if not self.delay:
            return 0.0
        delay = self.delay
        if self.backoff == Backoff.LINEAR:
            delay = self.delay * attempt
        elif self.backoff == Backoff.EXPONENTIAL:
            delay = self.delay * 2 ** (attempt - 1)
        if self.jitter == Jitter.FULL:
            delay = random.uniform(0, delay)
        elif self.jitter == Jitter.PLUS_MINUS:
            delay = max(0.0, delay + random.uniform(-delay, delay))
        return delay


class RetryRequested(Exception):
    """Raise inside an op to retry it even without a retry policy."""

    def __init__(self, max_retries: int = 1, seconds_to_wait: float = 0.0, message: str | None = None):
        self.max_retries = max_retries
        self.seconds_to_wait = seconds_to_wait
        super().__init__(message or f"retry requested (max_retries={max_retries})")


class Failure(Exception):
    """Raise inside an op to fail it without retrying, with a description for the event log."""

    def __init__(self, description: str, metadata: dict | None = None):
        self.description = description
        self.metadata = metadata or {}
        super().__init__(description)
