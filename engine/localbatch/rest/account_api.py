"""Account-level operations clients call at start-up: the supported images (from the shared
images table, end-of-life dates settable through Settings.image_end_of_life) and the
application packages (the local service has none: an empty list, and Batch's
ApplicationNotFound for any one asked for)."""

from __future__ import annotations

from typing import Any

from ...common.images import supported_images
from ..resources import BatchError
from ..service import Batch
from .paging import maxresults, next_link, predicate, skiptoken
from .protocol import Call, Handler, Reply

IMAGE_PROPS = frozenset({"verificationType", "osType", "nodeAgentSKUId"})


class AccountApi:
    def __init__(self, batch: Batch) -> None:
        self.batch = batch

    def list_supported_images(self, call: Call) -> Reply:
        limit = maxresults(call)
        pred = predicate(call, IMAGE_PROPS)
        after = skiptoken(call)
        try:
            images = supported_images(self.batch.settings.image_end_of_life)
        except ValueError:  # a bad date set through /_local/settings: the table's own
            images = supported_images()
        matching = [body for body in (i.to_rest() for i in images) if pred(body)]
        out: dict[str, Any] = {
            "odata.metadata": f"{call.base}/$metadata#supportedimages",
            "value": matching[after : after + limit],
        }
        if after + limit < len(matching):
            out["odata.nextLink"] = next_link(call, after + limit)
        return Reply(200, out)

    def list_applications(self, call: Call) -> Reply:
        maxresults(call)
        return Reply(200, {"odata.metadata": f"{call.base}/$metadata#applications", "value": []})

    def get_application(self, call: Call) -> Reply:
        raise BatchError(
            404,
            "ApplicationNotFound",
            "The specified application does not exist.",
        )


def account_table(api: AccountApi) -> list[tuple[str, str, str, Handler]]:
    """The route rows of the account-level operations (appended to routes.table's)."""
    return [
        ("GET", "/supportedimages", "Pools_ListSupportedImages", api.list_supported_images),
        ("GET", "/applications", "Applications_ListApplications", api.list_applications),
        (
            "GET",
            "/applications/{applicationId}",
            "Applications_GetApplication",
            api.get_application,
        ),
    ]
