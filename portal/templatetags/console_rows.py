"""One row of the operator console's tenant table (templates/portal/console.html), built in
Python: in the template language a page of 100 rows cost ~30 ms of variable lookups alone,
and ~20 ms with format_html (its lazy-string checks per argument), against a 30 ms budget
for the whole page (bench/console.py). The markup is the template's, cell by cell; every
value goes through `_e` (html.escape, as Django's autoescape does).
"""

from html import escape

from django import template
from django.utils.formats import number_format
from django.utils.safestring import SafeString, mark_safe

register = template.Library()
_BAD = ' class="bad"'


def _e(value) -> str:
    return escape(str(value))


def _n(value) -> str:
    """A count grouped as the reader's language writes it (1,000,000), as the template
    language does with USE_THOUSAND_SEPARATOR."""
    return number_format(value, force_grouping=True)


def _pct(value, total) -> int:
    # As {% widthratio value total 100 %}.
    return round(value / total * 100)


def _tenant(t) -> str:
    out = (
        f'<td data-label="Tenant"><a href="/console/tenants/{t.pk}/"><strong>{_e(t.slug)}'
        f'</strong></a> <span class="muted">{_e(t.name)}</span>'
    )
    out += "".join(f'<br><span class="badge bad">{_e(p)}</span>' for p in t.problems)
    if t.status == "failed" and t.provisioning_error:
        out += (
            '<details><summary>Why provisioning failed</summary><span class="errorlist">'
            f"{_e(t.provisioning_error)}</span></details>"
        )
    if t.offboarding_failed:
        error = (t.offboarding_report or {}).get("error", "")
        out += (
            '<details><summary>Why offboarding failed</summary><span class="errorlist">'
            f"{_e(error)}</span></details>"
        )
    return out + "</td>"


def _deliveries(a) -> str:
    if not a:
        return "—"
    if not a["measured"]:
        if a["failing"]:
            return (
                '<span class="bad">unknown: reading the counters failed '
                f"{_e(a['failed_ago'])} ago</span>"
            )
        return '<span class="muted">not measured yet</span>'
    if a["delivered_1h"] or a["failed_1h"]:
        rate = a["success_rate_1h"]
        text = (
            f"{_n(a['delivered_1h'])} ok, {_n(a['failed_1h'])} failed<br>"
            f'<span class="{"bad" if rate < 0.95 else "muted"}">{_pct(rate, 1)} % succeeded</span>'
        )
        if a["dead_1h"]:
            text += f'<br><span class="bad">{_n(a["dead_1h"])} dead-lettered</span>'
    else:
        text = '<span class="muted">no deliveries</span>'
    if a["failing"]:
        note = f"; the last read failed {_e(a['failed_ago'])} ago"
    else:
        note = " (out of date)" if a["stale"] else ""
    css = "bad" if a["stale"] or a["failing"] else "muted"
    return (
        f'{text}<br><small class="{css}" data-testid="activity-age">as of {_e(a["age"])} ago'
        f"{note}</small>"
    )


def _events(t) -> str:
    a = t.activity
    if a and a["measured"] and a["today"]:
        if not t.daily_quota:
            return _n(a["events_today"])
        return (
            f"{_n(a['events_today'])} of {_n(t.daily_quota)}<br>"
            '<meter min="0" max="1" low="0.7" high="0.9" optimum="0" '
            f'value="{t.quota_used:.3f}" aria-label="Daily quota used by {_e(t.slug)}">'
            f"{_pct(a['events_today'], t.daily_quota)} %</meter>"
        )
    if a and a["measured"]:
        return '<span class="bad">not measured today</span>'
    return "—"


def _dlq(t) -> str:
    if t.extra.get("dlq"):
        return _e(t.extra["dlq"])
    if not t.dlq:
        return '<span class="muted">none measured</span>'
    css = _BAD if t.dlq["alerting"] else ""
    text = f"<span{css}>{_n(t.dlq['backlog'])} pending</span>"
    if t.dlq["oldest_age"]:
        text += f'<br><span class="muted">oldest {_e(t.dlq["oldest_age"])}</span>'
    return text


def _actions(t, csrf: str) -> str:
    forms = "".join(
        f'<form class="inline" method="post" action="/console/tenants/{t.pk}/{a["action"]}/">'
        f'<input type="hidden" name="csrfmiddlewaretoken" value="{_e(csrf)}">'
        f'<button class="{a["style"]}" aria-label="{a["aria"]} {_e(t.slug)}"'
        + (f' title="{_e(a["title"])}"' if a["title"] else "")
        + f">{a['label']}</button></form>"
        for a in t.actions
    )
    return f'<td data-label="Actions" class="actions">\n      {forms}\n    </td>'


@register.simple_tag(takes_context=True)
def console_row(context, t) -> SafeString:
    """The <tr> of tenant `t` as portal.console.overview.console_page prepared it."""
    tier = t.tier
    cells = [
        _tenant(t),
        f'<td data-label="Tier">{_e(tier.name if tier else "—")} <span class="muted">'
        f"({_e((tier.deployment_model if tier else '') or '?')})</span></td>",
        f'<td data-label="Status"><span class="status {_e(t.status)}">{_e(t.status)}</span></td>',
        f'<td data-label="Sync"{_BAD if t.sync_bad else ""}>{_e(t.sync_text)}</td>',
        f'<td data-label="Deliveries, last hour">{_deliveries(t.activity)}</td>',
        f'<td data-label="Events today">{_events(t)}</td>',
        f'<td data-label="DLQ backlog" data-column="dlq">{_dlq(t)}</td>',
    ]
    if context.get("can_write"):
        # The csrf context processor's lazy token: masked once for the page, as
        # {% csrf_token %} renders it.
        cells.append(_actions(t, str(context.get("csrf_token", ""))))
    trouble = ' class="trouble"' if t.problems else ""
    row = f'<tr data-tenant="{_e(t.slug)}"{trouble}>\n    ' + "\n    ".join(cells) + "\n  </tr>"
    return mark_safe(row)  # noqa: S308 (every value escaped above)
