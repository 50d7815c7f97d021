"""Masked Autoregressive Flow (Papamakarios et al. 2017).

``MAF(features, transforms, hidden_features, context, batch_norm)`` returns a
``common.flows.Flow``.
"""

from .maf import MAF, MAFLayer

__all__ = ["MAF", "MAFLayer"]
