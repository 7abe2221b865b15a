"""Handlers of node operations beyond the pools module's: reimage, and remote login
settings answered honestly (a local node is a folder on this machine: nothing to log in to)."""

from __future__ import annotations

from ..resources import BatchError, http_date, new_etag
from ..service import Batch
from ..store import Row
from .protocol import Call, Reply

NO_REMOTE_LOGIN = (
    "The local Batch service's nodes are folders on this machine with no SSH endpoint: "
    "read a node's files through the files API, or open a shell in its folder "
    "(AZ_BATCH_NODE_ROOT_DIR) yourself."
)
OPTIONS = ("requeue", "terminate", "taskcompletion", "retaineddata")


def accepted(node: Row) -> Reply:
    """The 202 of a node operation that goes on after the answer (reboot, reimage)."""
    return Reply(
        202,
        None,
        {
            "DataServiceId": node.body["url"],
            "ETag": new_etag(),
            "Last-Modified": http_date(node.body["stateTransitionTime"]),
        },
    )


class NodeOpsApi:
    def __init__(self, batch: Batch) -> None:
        self.batch = batch

    def reimage(self, call: Call) -> Reply:
        pool = self.batch.pools.get(call.params["poolId"])
        row = self.batch.nodes.get(pool, call.params["nodeId"])
        option = str(call.optional_body().get("nodeReimageOption") or "requeue")
        if option.lower() not in OPTIONS:
            raise BatchError(
                400,
                "InvalidPropertyValue",
                "The value provided for one of the properties in the request body is invalid.",
                {"PropertyName": "nodeReimageOption", "PropertyValue": option},
            )
        self.batch.nodes.reimage(row, option.lower())
        return accepted(self.batch.nodes.get(pool, call.params["nodeId"]))

    def remote_login_settings(self, call: Call) -> Reply:
        pool = self.batch.pools.get(call.params["poolId"])
        self.batch.nodes.get(pool, call.params["nodeId"])  # an unknown node answers 404 first
        raise BatchError(
            501,
            "OperationNotSupported",
            "The operation Nodes_GetNodeRemoteLoginSettings is not supported by the local "
            "Batch service.",
            {"OperationId": "Nodes_GetNodeRemoteLoginSettings", "Reason": NO_REMOTE_LOGIN},
        )
