"""The operator's page per tenant and its actions (public host). Support reads, operators act;
anyone else gets the 404 every console page gives them (portal.pages.views.role_required)."""

from django.contrib import messages
from django.http import Http404, JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from broker.sync.services import sync_job_start
from core.errors import ApplicationError
from portal.console.tenant import CONFIRM, actions_for, active_jobs, tenant_page
from portal.pages.views import role_required
from tenants import roles, selectors, services

ACTIONS = {
    "suspend": services.tenant_suspend,
    "resume": services.tenant_resume,
    "offboard": services.tenant_offboard,
    "retry-provisioning": services.tenant_retry_provisioning,
    "resume-offboarding": services.tenant_resume_offboarding,
    "resync": lambda tenant, actor: sync_job_start(tenant=tenant, actor=actor),
}


@role_required(roles.OPERATOR, roles.SUPPORT)
def console_tenant(request, tenant_id):
    context = tenant_page(tenant_id)
    if context is None:
        raise Http404
    context["can_write"] = roles.resolve_role(request) == roles.OPERATOR
    return render(request, "portal/console_tenant.html", context)


@role_required(roles.OPERATOR, roles.SUPPORT)
def console_tenant_jobs(request, tenant_id):
    """The tenant's running jobs as JSON ({"results": [...]}), polled by the progress bars
    (static/deadletters/jobs.js, as the replay jobs page): a job gone from the list is over."""
    tenant = selectors.tenant_get(tenant_id=tenant_id)
    if tenant is None:
        raise Http404
    return JsonResponse({"results": active_jobs(tenant)})


def _back(request, tenant) -> str:
    return f"/console/tenants/{tenant.pk}/" if request.POST.get("next") == "tenant" else "/"


@require_POST
@role_required(roles.OPERATOR)
def console_tenant_action(request, tenant_id, action):
    """A destructive or expensive action (CONFIRM) first answers with a page saying what it
    will do; the confirmed POST (confirm=yes) does it. The others act at once."""
    tenant = selectors.tenant_get(tenant_id=tenant_id)
    if tenant is None or action not in ACTIONS:
        raise Http404
    if action in CONFIRM and request.POST.get("confirm") != "yes":
        title, consequence, style = CONFIRM[action]
        return render(
            request,
            "portal/console_confirm.html",
            {
                "tenant": tenant,
                "action": action,
                "title": title.format(slug=tenant.slug),
                "consequence": consequence,
                "style": style,
                "allowed": action in actions_for(tenant),
                "next": request.POST.get("next", ""),
            },
        )
    try:
        ACTIONS[action](tenant=tenant, actor=request.user)
    except ApplicationError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"{tenant.slug}: {action.replace('-', ' ')} requested.")
    return redirect(_back(request, tenant))
