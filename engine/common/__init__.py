"""Pure data and helpers shared by the engine and the local Batch service.

The one package both sides may import (the import contract enforces it): ISO 8601 durations
as Batch writes them, the /proc scan that finds a node's leftover processes, the local
account's key file, and the tables of Batch's VM sizes (`vmsizes`) and supported images
(`images`). Nothing here does network I/O or imports the rest of bspec.
"""
