"""Handlers of the pool and node operations: parse, check conditions, call `pools`/`nodes`."""

from __future__ import annotations

from typing import Any

from .. import odata
from ..service import Batch
from .nodes_api import accepted
from .paging import (
    conditions,
    created,
    entity,
    entity_headers,
    maxresults,
    next_link,
    page,
    predicate,
    select,
    skiptoken,
    written,
)
from .protocol import Call, Reply


class PoolsApi:
    def __init__(self, batch: Batch) -> None:
        self.batch = batch
        self.pools = batch.pools
        self.nodes = batch.nodes

    # ------------------------------------------------------------------ pools

    def create_pool(self, call: Call) -> Reply:
        return created(self.pools.create(call.base, call.json_body()).body)

    def get_pool(self, call: Call) -> Reply:
        return entity(call, self.pools.get(call.params["poolId"]).body, "pools")

    def pool_exists(self, call: Call) -> Reply:
        row = self.batch.store.get("pool", "", call.params["poolId"])
        if row is None:
            return Reply(404)
        conditions(call, row.body, write=False)
        return Reply(200, None, entity_headers(row.body))

    def list_pools(self, call: Call) -> Reply:
        return page(self.batch.store, call, "pool", "", odata.POOL_PROPS, "pools")

    def _for_write(self, call: Call) -> Any:
        row = self.pools.get(call.params["poolId"])
        conditions(call, row.body, write=True)
        return row

    def update_pool(self, call: Call) -> Reply:
        row = self._for_write(call)
        self.pools.update(row, call.json_body())
        return written(200, row.body)

    def replace_pool(self, call: Call) -> Reply:
        row = self._for_write(call)
        self.pools.replace(row, call.json_body())
        return written(204, row.body)

    def resize_pool(self, call: Call) -> Reply:
        row = self._for_write(call)
        self.pools.resize(row, call.json_body())
        return written(202, row.body)

    def stop_resize(self, call: Call) -> Reply:
        row = self._for_write(call)
        self.pools.stop_resize(row)
        return written(202, self.pools.get(call.params["poolId"]).body)

    def remove_nodes(self, call: Call) -> Reply:
        row = self._for_write(call)
        self.pools.remove_nodes(row, call.json_body())
        return written(202, self.pools.get(call.params["poolId"]).body)

    def delete_pool(self, call: Call) -> Reply:
        row = self._for_write(call)
        self.pools.delete(row)
        return Reply(202)

    def enable_autoscale(self, call: Call) -> Reply:
        row = self._for_write(call)
        self.batch.autoscaling.enable(row, call.json_body())
        return written(200, row.body)

    def disable_autoscale(self, call: Call) -> Reply:
        row = self._for_write(call)
        self.batch.autoscaling.disable(row)
        return written(200, row.body)

    def evaluate_autoscale(self, call: Call) -> Reply:
        row = self.pools.get(call.params["poolId"])
        run = self.batch.autoscaling.evaluate(row, call.json_body())
        return Reply(200, run, {"DataServiceId": row.body["url"]})

    def node_counts(self, call: Call) -> Reply:
        limit = maxresults(call)
        pred = predicate(call, odata.NODECOUNT_PROPS)
        after = skiptoken(call)
        values: list[dict[str, Any]] = []
        last = after
        more = False
        for pool in self.batch.store.iter("pool", "", after=after):
            counts = self.nodes.counts(pool)
            if not pred(counts):
                continue
            if len(values) == limit:
                more = True
                break
            values.append(counts)
            last = pool.seq
        out: dict[str, Any] = {
            "odata.metadata": f"{call.base}/$metadata#nodecounts",
            "value": values,
        }
        if more:
            out["odata.nextLink"] = next_link(call, last)
        return Reply(200, out)

    # ------------------------------------------------------------------ nodes

    def _node(self, call: Call) -> Any:
        return self.nodes.get(self.pools.get(call.params["poolId"]), call.params["nodeId"])

    def list_nodes(self, call: Call) -> Reply:
        pool = self.pools.get(call.params["poolId"])
        return page(
            self.batch.store, call, "node", pool.key, odata.NODE_PROPS, "nodes", self.nodes.shape
        )

    def get_node(self, call: Call) -> Reply:
        out = odata.select(self.nodes.shape(self._node(call)), select(call))
        return Reply(200, {"odata.metadata": f"{call.base}/$metadata#nodes/@Element", **out})

    def reboot_node(self, call: Call) -> Reply:
        row = self._node(call)
        self.nodes.reboot(row, call.optional_body().get("nodeRebootOption") or "requeue")
        return accepted(self._node(call))

    def disable_scheduling(self, call: Call) -> Reply:
        row = self._node(call)
        option = str(call.optional_body().get("nodeDisableSchedulingOption") or "requeue")
        self.nodes.set_scheduling(row, False, option.lower())
        return Reply(200, None, {"DataServiceId": row.body["url"]})

    def enable_scheduling(self, call: Call) -> Reply:
        row = self._node(call)
        self.nodes.set_scheduling(row, True, "")
        return Reply(200, None, {"DataServiceId": row.body["url"]})
