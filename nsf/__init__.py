"""Neural Spline Flows (Durkan et al. 2019): ``NSF(features, transforms, hidden_features, bins,
bound, coupling, context)``; the spline itself is ``rq_spline`` (its knots: ``knots``)."""

# first: `python -m nsf` answers Ctrl-C during its imports with one line
import common.runtime  # noqa: F401

from .nsf import NSF, SplineAutoregressive, SplineCoupling, knots, rq_spline

__all__ = ["NSF", "SplineAutoregressive", "SplineCoupling", "knots", "rq_spline"]
