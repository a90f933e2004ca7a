"""Personal texts: a mailing's text with variables, and what it becomes for each client.

`{name}` and `{<a declared custom field's key>}` (ClientField) take the client's value;
`{name|клиент}` takes "клиент" where the client has none. A client without a value for a variable
that has no fallback gets no message (the engine cancels it, NO_VALUE_WHY). A value is put in as it
is, in one pass: a `{` or `}` inside it is never read as a variable.

Pure: `Template.parse` and `render` know nothing of the database; `over_audience` reads the
values of a queryset of clients, grouped, so that a million clients with a few thousand distinct
names are a few thousand renderings.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property

from django.db.models import Count, QuerySet
from django.db.models.fields.json import KT
from django.utils.translation import gettext as _

from mailer import sms

# A variable: {key} or {key|fallback}. Anything else in braces is a mistake that parse names.
VARIABLE_RE = re.compile(r"\{([^{}|]*)(?:\|([^{}]*))?\}")
NAME = "name"
# The client's own link to leave the mailings (mailer/links.py): not a client's value.
UNSUBSCRIBE = "unsubscribe"


@dataclass(frozen=True)
class Variable:
    key: str
    fallback: str | None  # None: no fallback, the client must have a value

    def value(self, values: dict) -> str | None:
        given = values.get(self.key) or ""
        return given if given else self.fallback


class TemplateError(ValueError):
    """A text whose variables can't be sent: the message says which and why."""


@dataclass(frozen=True)
class Template:
    text: str
    # The text's pieces in order: plain strings and variables.
    pieces: tuple[str | Variable, ...] = field(default=())

    @classmethod
    def parse(cls, text: str) -> Template:
        pieces: list[str | Variable] = []
        at = 0
        for match in VARIABLE_RE.finditer(text):
            pieces.append(text[at : match.start()])
            pieces.append(Variable(match.group(1).strip(), match.group(2)))
            at = match.end()
        pieces.append(text[at:])
        return cls(text, tuple(p for p in pieces if p != ""))

    @cached_property
    def variables(self) -> tuple[Variable, ...]:
        return tuple(p for p in self.pieces if isinstance(p, Variable))

    @cached_property
    def keys(self) -> tuple[str, ...]:
        """The keys its variables name, each once, in order."""
        return tuple(dict.fromkeys(v.key for v in self.variables))

    @property
    def is_personal(self) -> bool:
        return bool(self.variables)

    def problems(self, known: Iterable[str]) -> list[str]:
        """What is wrong with its variables, given the keys there are (`known`): an unknown one,
        or a brace without its pair."""
        known = set(known)
        problems = []
        for key in self.keys:
            if key not in known:
                problems.append(
                    _("Unknown variable {%(key)s}; the variables are %(known)s.")
                    % {"key": key, "known": ", ".join(f"{{{k}}}" for k in sorted(known))}
                )
        rest = "".join(p for p in self.pieces if isinstance(p, str))
        if "{" in rest or "}" in rest:
            problems.append(_("A brace without its pair: write a variable as {name} or {name|fallback}."))
        return problems

    def render(self, values: dict) -> str | None:
        """The text for a client with these values ({"name": ..., "city": ...}); None if a
        variable without a fallback has no value."""
        out = []
        for piece in self.pieces:
            if isinstance(piece, str):
                out.append(piece)
                continue
            value = piece.value(values)
            if value is None:
                return None
            out.append(value)
        return "".join(out)

    def as_written(self, values: dict | None = None) -> str:
        """The text with each variable as its fallback (or nothing), but those given in `values`:
        its length as written."""
        values = values or {}
        return "".join(
            p if isinstance(p, str) else values.get(p.key) or p.fallback or "" for p in self.pieces
        )


def values_of(name: str, attributes: dict | None) -> dict:
    """A client's values, as templates read them."""
    return {**(attributes or {}), NAME: name}


@dataclass
class Summary:
    """A text over an audience: how many clients get a text, how many none (a value missing),
    the fewest and most parts of one client's text, the SMS in all, how many texts go over
    MAILER_MAX_PARTS, and a few clients' texts to show."""

    clients: int = 0
    missing: int = 0
    fewest: int = 0
    most: int = 0
    sms: int = 0
    over_cap: int = 0
    examples: list[tuple[str, str]] = field(default_factory=list)  # (phone, text)


def over_audience(
    template: Template,
    clients: QuerySet,
    cap: int = 0,
    examples: int = 3,
    extra: dict | None = None,
    finish=lambda text: text,
) -> Summary:
    """`template` over `clients`, grouped by the values it reads: one query, and one rendering
    per distinct set of values. `extra`: values that are no client's ({unsubscribe}); `finish`
    makes a rendered text what is sent (its links)."""
    summary = Summary()
    extra = extra or {}
    if not template.is_personal:
        summary.clients = clients.count()
        parts = sms.measure(finish(template.text)).parts
        summary.fewest = summary.most = parts
        summary.sms = parts * summary.clients
        summary.over_cap = summary.clients if cap and parts > cap else 0
        return summary
    read = [key for key in template.keys if key not in extra]
    columns = {f"v_{key}": KT(f"attributes__{key}") for key in read if key != NAME}
    keys = [NAME if key == NAME else f"v_{key}" for key in read]
    groups = clients.order_by().values(*([NAME] if NAME in read else []), **columns)
    # No client's value read ({unsubscribe} alone): all of them alike.
    rows = groups.annotate(n=Count("id")).values_list(*keys, "n") if keys else [(clients.count(),)]
    for row in rows:
        values = dict(zip(read, row[:-1], strict=True)) | extra
        n = row[-1]
        text = template.render(values)
        if text is not None:
            text = finish(text)
        if text is None:
            summary.missing += n
            continue
        parts = sms.measure(text).parts
        summary.clients += n
        summary.sms += parts * n
        summary.fewest = min(summary.fewest, parts) if summary.fewest else parts
        summary.most = max(summary.most, parts)
        if cap and parts > cap:
            summary.over_cap += n
    for phone, name, attributes in clients.order_by("id").values_list("phone", NAME, "attributes")[
        : examples * 4
    ]:
        text = template.render(values_of(name, attributes) | extra)
        if text is not None and len(summary.examples) < examples:
            summary.examples.append((phone, finish(text)))
    return summary
