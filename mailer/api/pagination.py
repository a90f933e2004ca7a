"""Page-number pagination: `?page=N&page_size=M` (50 by default, at most 500)."""

from __future__ import annotations

from django.utils.translation import gettext as _
from rest_framework.exceptions import ValidationError
from rest_framework.pagination import PageNumberPagination

from mailer.http import count_param


class Pagination(PageNumberPagination):
    """DRF's, except that a malformed page or page_size is a 400 instead of being ignored."""

    page_size_query_param = "page_size"
    max_page_size = 500

    def paginate_queryset(self, queryset, request, view=None):
        raw = request.query_params.get(self.page_query_param)
        if raw is not None and count_param(raw) is None:
            raise ValidationError({self.page_query_param: [_("A page number, 1 or more.")]})
        return super().paginate_queryset(queryset, request, view)

    def get_page_size(self, request):
        raw = request.query_params.get(self.page_size_query_param)
        if raw is not None and count_param(raw) is None:
            raise ValidationError(
                {
                    self.page_size_query_param: [
                        _("A whole number, 1 or more (at most %(max)s are given).")
                        % {"max": self.max_page_size}
                    ]
                }
            )
        return super().get_page_size(request)

    def get_schema_operation_parameters(self, view):
        # What paginate_queryset enforces, so that a client (or schemathesis) knows it.
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            parameter["schema"]["minimum"] = 1
        return parameters
