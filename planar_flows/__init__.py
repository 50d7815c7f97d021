"""Rezende & Mohamed (2015): planar and radial flows.

``python -m planar_flows`` reproduces Figure 3.
"""

# first: `python -m planar_flows` answers Ctrl-C during its imports with one line
import common.runtime  # noqa: F401

from .planar import Planar, PlanarFlow, Radial

__all__ = ["PlanarFlow", "Planar", "Radial"]
