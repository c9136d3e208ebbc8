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
  rows on faces of the grid;
* :class:`InitialValueBasis`: basis fields that start from the initial
  state, so the network learns only the change from it;
* :class:`HardConstraintOperator`: the layer as an operator ``u0(x) -> u(t,
  x)`` of ``opflow train --model hard-constraint``, its PDE from a
  :func:`constraint_recipe`.

Residuals are written as for :class:`~opflow.solvers.pinn.PINNProblem` and
evaluated on the grid by finite differences
(:class:`~opflow.solvers.pinn.GridCoordinates`).
"""

from .basis import InitialValueBasis
from .conditions import ConditionResidual, GridCondition, initial_condition
from .hard_constraint import HardConstraint, PDEResidual
from .operator import HardConstraintOperator
from .partition import Partition
from .recipes import ConstraintRecipe, constraint_recipe
from .windows import ExpertWindows

__all__ = ["ConditionResidual", "ConstraintRecipe", "ExpertWindows", "GridCondition",
           "HardConstraint", "HardConstraintOperator", "InitialValueBasis", "PDEResidual",
           "Partition", "constraint_recipe", "initial_condition"]
