"""Hard physical constraints as differentiable layers: PI-HC and PI-HC-MoE.

* :class:`HardConstraint`: a basis network whose output ``sum_i b_i w_i``
  satisfies a PDE at sampled points, the weights ``w`` solved per sample
  (and per expert) by nonlinear least squares and differentiated by the
  implicit function theorem; ``hard=False`` gives the soft-constraint
  baseline on the same network;
* :class:`Partition`: the fixed split of the grid into experts;
* :class:`ExpertWindows`: each expert's block plus a halo, where its
  residual is evaluated;
* :class:`GridCondition`, :func:`initial_condition`: initial and boundary
  rows on faces of the grid.

Residuals are written as for :class:`~opflow.solvers.pinn.PINNProblem` and
evaluated on the grid by finite differences
(:class:`~opflow.solvers.pinn.GridCoordinates`).
"""

from .conditions import ConditionResidual, GridCondition, initial_condition
from .hard_constraint import HardConstraint, PDEResidual
from .partition import Partition
from .windows import ExpertWindows

__all__ = ["ConditionResidual", "ExpertWindows", "GridCondition", "HardConstraint", "PDEResidual",
           "Partition", "initial_condition"]
