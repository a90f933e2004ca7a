"""Page-number pagination: `?page=N&page_size=M` (50 by default, at most 500)."""

from __future__ import annotations

from rest_framework.exceptions import ValidationError
from rest_framework.pagination import PageNumberPagination


def _is_count(raw: str) -> bool:
    # len() first: int() of a very long digit string is slow or refused.
    return raw.isascii() and raw.isdigit() and len(raw) <= 9 and int(raw) >= 1


class Pagination(PageNumberPagination):
    """DRF's, except that a malformed page or page_size is a 400 instead of being ignored."""

    page_size_query_param = "page_size"
    max_page_size = 500

    def paginate_queryset(self, queryset, request, view=None):
        raw = request.query_params.get(self.page_query_param)
        if raw is not None and not _is_count(raw):
            raise ValidationError({self.page_query_param: ["A page number, 1 or more."]})
        return super().paginate_queryset(queryset, request, view)

    def get_page_size(self, request):
        raw = request.query_params.get(self.page_size_query_param)
        if raw is not None and not _is_count(raw):
            raise ValidationError(
                {
                    self.page_size_query_param: [
                        f"A whole number, 1 or more (at most {self.max_page_size} are given)."
                    ]
                }
            )
        return super().get_page_size(request)
