"""Method parameters as data: each method declares its parameters once, as :class:`Param`.

The SDK validates a call's ``**params`` against the declaration (:func:`resolve`), and the
operator forms are built from the same declaration, so the App and the SDK cannot disagree.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any, Optional, Sequence

from .errors import CondensationError


@dataclass(frozen=True)
class Param:
    """One method parameter: name, type, default, allowed values or range, one line of help.

    ``optional``: ``None`` is allowed (the method then picks, e.g. from IPC). ``objects``: a
    Python object (a model the user already has) is accepted besides the declared choices.
    ``when``: the parameter matters only when other parameters have these values (forms hide it
    otherwise; the SDK still accepts it).
    """

    name: str
    type: type
    default: Any
    help: str
    label: str = ""
    choices: Optional[tuple] = None
    min: Optional[float] = None
    max: Optional[float] = None
    optional: bool = False
    objects: bool = False
    when: Optional[dict] = None

    def check(self, value: Any, method: str) -> Any:
        """``value`` converted to the declared type, or a :class:`CondensationError` saying why not."""
        if value is None and (self.optional or self.default is None):
            return None
        if self.objects and not isinstance(value, (str, int, float, bool)):
            return value
        try:
            converted = self._convert(value)
        except (TypeError, ValueError):
            raise CondensationError(f"{method}: {self.name} must be {self.type.__name__}, got {value!r}") from None
        if self.choices is not None and converted not in self.choices:
            raise CondensationError(f"{method}: {self.name} must be one of {list(self.choices)}, got {value!r}")
        if self.min is not None and converted < self.min or self.max is not None and converted > self.max:
            raise CondensationError(f"{method}: {self.name}={value!r} is out of range: it must be {self.bounds()}")
        return converted

    def bounds(self) -> str:
        """The allowed range in words: ``between 0 and 1``, ``at least 1`` or ``at most 1``."""
        low, high = self.min, self.max
        if low is not None and high is not None:
            return f"between {low} and {high}"
        return f"at least {low}" if low is not None else f"at most {high}"

    def _convert(self, value: Any) -> Any:
        if self.type is bool:
            if not isinstance(value, (bool, int)):
                raise TypeError
            return bool(value)
        if self.type is int and (isinstance(value, bool) or float(value) != int(value)):
            raise ValueError
        if self.type is str and not isinstance(value, str):
            raise TypeError
        return self.type(value)

    def applies(self, values: dict) -> bool:
        """Whether this parameter matters given the other values (see ``when``)."""
        return all(values.get(name) in (allowed if isinstance(allowed, tuple) else (allowed,))
                   for name, allowed in (self.when or {}).items())


def resolve(method: str, declared: Sequence[Param], given: dict) -> dict:
    """Every declared parameter's value: ``given`` (checked and converted) or its default.

    An unknown name raises :class:`CondensationError` naming the valid ones.
    """
    names = [p.name for p in declared]
    unknown = sorted(set(given) - set(names))
    if unknown:
        guesses = [match for name in unknown for match in difflib.get_close_matches(name, names, n=1)]
        raise CondensationError(f"{method} has no parameter {', '.join(map(repr, unknown))}; "
                                f"its parameters are: {', '.join(names) or 'none'}"
                                f"{f'. Did you mean {guesses[0]!r}?' if len(unknown) == 1 and guesses else ''}")
    return {p.name: p.check(given[p.name], method) if p.name in given else p.default for p in declared}


def describe(declared: Sequence[Param]) -> str:
    """One line per parameter, for docstrings and error messages."""
    return "\n".join(f"{p.name} ({p.type.__name__}, default {p.default!r}): {p.help}" for p in declared)
