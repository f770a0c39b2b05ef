"""The error hierarchy of pas_models.

Every message says what failed, where (field, file, operator) and how to fix it.
"""

from __future__ import annotations


class PasError(Exception):
    """Base class of every error pas raises on purpose."""


class SpecError(PasError, ValueError):
    """An ArchSpec (or its JSON form) is malformed: names the field and the fix."""


class UnknownNameError(PasError, KeyError):
    """A backbone, preset or operator name is not registered; lists the valid ones."""

    def __init__(self, kind: str, name: str, valid: list[str] | tuple[str, ...]) -> None:
        self.kind, self.name, self.valid = kind, name, tuple(valid)
        super().__init__(f"unknown {kind} {name!r}; valid {kind}s: {', '.join(self.valid)}")

    def __str__(self) -> str:  # KeyError would quote the whole message
        return str(self.args[0])


class NotApplicable(PasError):
    """A reduction operator cannot be applied to a spec; ``reason`` says why."""

    def __init__(self, op: str, reason: str) -> None:
        self.op, self.reason = op, reason
        super().__init__(f"operator {op!r} is not applicable: {reason}")


class WeightsIncompatible(PasError):
    """A child network cannot be initialised from its parent's state dict."""
