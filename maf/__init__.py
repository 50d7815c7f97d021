"""Masked Autoregressive Flow (Papamakarios et al. 2017).

``MAF(features, transforms, hidden_features, context, batch_norm)`` returns a
``common.flows.Flow``.
"""

from .maf import MAF, BatchNorm, MAFLayer, set_batch_norm_stats

__all__ = ["MAF", "BatchNorm", "MAFLayer", "set_batch_norm_stats"]
