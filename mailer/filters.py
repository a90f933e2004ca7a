"""What the dashboard's filters and the API's share (django-filter), so both lists read alike."""

from __future__ import annotations

from django.db.models import QuerySet

from mailer.models import StopEntry


class StopStateFilterMixin:
    """The stop list's `state` filter: StopEntry.objects.in_state says what each state shows, and
    without a state chosen (or with one refused) the list shows what stands now. Both filtersets
    declare `state` with method="by_state"."""

    def by_state(self, queryset: QuerySet[StopEntry], name: str, value: str) -> QuerySet[StopEntry]:
        return queryset.in_state(value)

    @property
    def qs(self) -> QuerySet[StopEntry]:
        queryset = super().qs  # type: ignore[misc]
        if not (self.is_valid() and self.form.cleaned_data.get("state")):  # type: ignore[attr-defined]
            queryset = queryset.standing()
        return queryset
