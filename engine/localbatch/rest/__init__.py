"""The HTTP layer of the local Batch service: aiohttp, auth, api-versions, faults, paging,
OData, routing and error bodies. Handlers here are thin: they parse, check conditions and
call the resource modules one level down, which own every state change."""
