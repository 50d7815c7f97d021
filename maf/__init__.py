"""Masked Autoregressive Flow (Papamakarios et al. 2017).

``MAF(features, transforms, hidden_features, context, batch_norm)`` returns a
``common.flows.Flow``.
"""

# first: `python -m maf` answers Ctrl-C during its imports with one line
import common.runtime  # noqa: F401

from .maf import MAF, MAFLayer

__all__ = ["MAF", "MAFLayer"]
