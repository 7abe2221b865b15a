"""bspec: a declarative runner for Azure Batch.

One spec describes the containers, files, pool, jobs and templated tasks; a reconcile
engine diffs it against what Batch and Blob Storage hold and applies only the difference.
"""

__version__ = "0.1.0"
