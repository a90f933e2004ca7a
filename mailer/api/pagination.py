"""Page-number pagination: `?page=N&page_size=M` (50 by default, at most 500)."""

from __future__ import annotations

from rest_framework.exceptions import ValidationError
from rest_framework.pagination import PageNumberPagination


class Pagination(PageNumberPagination):
    page_size_query_param = "page_size"
    max_page_size = 500

    def get_page_size(self, request):
        # DRF silently falls back to the default for a bad page_size; say what is wrong instead.
        raw = request.query_params.get(self.page_size_query_param)
        if raw is not None and not (raw.isascii() and raw.isdigit() and 1 <= int(raw) <= 10**6):
            raise ValidationError(
                {self.page_size_query_param: [f"A whole number, 1 to {self.max_page_size}."]}
            )
        return super().get_page_size(request)
