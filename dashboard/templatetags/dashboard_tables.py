"""Table rows rendered in Python (templates/dashboard/table.html).

django-tables2's row template works out every cell's attributes again for every row, through the
template engine: about half of a 25-row page's time. Here each column's <td> attributes are worked
out once per table, so they must not depend on the row (no callables in a column's `attrs`).
"""

from __future__ import annotations

from django import template
from django.template.base import render_value_in_context
from django.utils.formats import localize
from django.utils.html import format_html
from django.utils.safestring import SafeString, mark_safe

register = template.Library()


@register.simple_tag(takes_context=True)
def table_cells(context, row) -> SafeString:
    cells = []
    for column, cell in row.items():
        if (attrs := column.__dict__.get("td_html")) is None:
            attrs = column.__dict__["td_html"] = column.attrs["td"].as_html()
        if column.localize is not None:  # as the library's template: the column's choice first
            cell = localize(cell, use_l10n=column.localize)
        cells.append(format_html("<td {}>{}</td>", attrs, render_value_in_context(cell, context)))
    return mark_safe("".join(cells))
