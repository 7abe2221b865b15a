"""`--keep-storage`: a destroy Plan without its containers (the question `destroy` asks
is in bspec.reporting.destroy). Pure, so it is unit-tested without services.
"""

from __future__ import annotations

from bspec.model import Kind, Plan


def keep_containers(plan: Plan) -> Plan:
    """The destroy plan without its containers (`--keep-storage`): the blobs, the task logs
    and the outputs stay; pools and jobs go."""
    kept = tuple(c for c in plan.changes if c.address.kind is not Kind.CONTAINER)
    return Plan(plan.stack, plan.target, kept, plan.warnings)
