"""opflow: differentiable physics and operator learning for PyTorch.

The public surface, re-exported here:

* data: :class:`Grid`, :class:`Field`, :mod:`opflow.calculus`, :mod:`opflow.norms`
* files: :func:`open_dataset`, :func:`save`
* solving: problems (:class:`ODEProblem`), algorithms (:class:`Euler`,
  :class:`RK4`, :class:`Tsit5`, :class:`Dopri5`), :func:`solve`, :class:`Solution`
* nonlinear solves: :class:`NonlinearProblem`, :class:`NonlinearLeastSquaresProblem`,
  :class:`NewtonRaphson`, :class:`NewtonKrylov`, :class:`GaussNewton`,
  :class:`LevenbergMarquardt`, gradients by :class:`ImplicitAdjoint`
  (:mod:`opflow.solvers.nonlinear`; linear solves in :mod:`opflow.solvers.linear`)
* SDE solvers: :class:`SDEProblem`, :class:`EulerMaruyama`, :class:`Milstein`,
  :class:`RKMil`, :class:`SRA1`, :class:`ReversibleHeun` (exact gradients by
  :class:`ReversibleAdjoint`), :class:`BrownianInterval`
* PDE solvers: :class:`Multigrid` (Poisson, Darcy), :class:`PseudoSpectral`
  (Burgers, Navier-Stokes, heat)
* neural operators: :class:`FNO`, :class:`DeepONet`, :class:`POD_DeepONet`,
  :class:`MgNO`, :class:`DRIFTNet`, :class:`DyMixOp`, :class:`FunctionSpaceUNet`,
  :class:`AttentionOperator`, :class:`UNet` (:mod:`opflow.operators`, kernels
  in :mod:`opflow.kernels`)
* physics-informed: :class:`PINNProblem`, :class:`PINN`, :class:`LPINN`
  (:mod:`opflow.solvers.pinn`)
* hard constraints: :class:`HardConstraint` (PI-HC, PI-HC-MoE with a
  :class:`~opflow.constraints.Partition`; :mod:`opflow.constraints`)
* layers: :class:`NeuralODE`, stable neural SDEs (:class:`LangevinSDE`,
  :class:`LinearNoiseSDE`, :class:`GeometricSDE`), :class:`ErrorRegularizer`
* training: :class:`Trainer` (:mod:`opflow.train`; every training loop steps
  through :mod:`opflow.train.loop`)

This list and ``__all__`` below are the public surface; each subpackage's
``__all__`` lists its own. ``tests/test_public_api.py`` checks that every
listed name exists and is documented, and that packages import each other's
public names only.
"""

from . import (
    calculus,
    constraints,
    data,
    errors,
    kernels,
    layers,
    meta,
    norms,
    operators,
    plot,
    testing,
    train,
)
from ._version import __version__
from .constraints import HardConstraint
from .field import Field
from .grid import Axis, Grid
from .io import convert as _convert  # registers the xarray `.opflow` accessor  # noqa: F401
from .io import open_dataset, save
from .layers import (
    ErrorRegularizer,
    GeometricSDE,
    LangevinSDE,
    LinearNoiseSDE,
    NaturalCubicSpline,
    NeuralODE,
    NeuralSDE,
    StiffnessRegularizer,
)
from .operators import (
    FNO,
    AttentionOperator,
    DeepONet,
    DRIFTNet,
    DyMixOp,
    FunctionSpaceUNet,
    LoRA,
    MgNO,
    MultiTaskDeepONet,
    POD_DeepONet,
    UNet,
    build_operator,
)
from .problems import ODEProblem, SplitODEProblem, remake
from .solution import ReturnCode, Solution, SolverStats
from .solve import solve
from .solvers.nonlinear import (
    GaussNewton,
    ImplicitAdjoint,
    LevenbergMarquardt,
    NewtonKrylov,
    NewtonRaphson,
    NonlinearLeastSquaresProblem,
    NonlinearProblem,
)
from .solvers.ode import (
    RK4,
    BacksolveAdjoint,
    DirectBackprop,
    Dopri5,
    Euler,
    InterpolatingAdjoint,
    Tsit5,
)
from .solvers.pde import (
    BurgersProblem,
    DarcyProblem,
    HeatProblem,
    Multigrid,
    NavierStokes2DProblem,
    PoissonProblem,
    PseudoSpectral,
)
from .solvers.pinn import (
    LPINN,
    PINN,
    RAR,
    ConvectionProblem,
    MaskDomain,
    PINNProblem,
    ViscousBurgersProblem,
)
from .solvers.sde import (
    SRA1,
    BrownianInterval,
    EulerMaruyama,
    Milstein,
    ReversibleAdjoint,
    ReversibleHeun,
    RKMil,
    SDEProblem,
)
from .train import Trainer

__all__ = [
    "Axis", "Field", "Grid", "calculus", "data", "errors", "testing", "norms",
    "open_dataset", "save",
    "ODEProblem", "SplitODEProblem", "remake", "solve", "Solution", "ReturnCode", "SolverStats",
    "Euler", "RK4", "Tsit5", "Dopri5", "DirectBackprop", "BacksolveAdjoint",
    "InterpolatingAdjoint",
    "NonlinearProblem", "NonlinearLeastSquaresProblem", "NewtonRaphson", "NewtonKrylov",
    "GaussNewton", "LevenbergMarquardt", "ImplicitAdjoint",
    "PoissonProblem", "DarcyProblem", "Multigrid",
    "BurgersProblem", "NavierStokes2DProblem", "HeatProblem", "PseudoSpectral",
    "SDEProblem", "EulerMaruyama", "Milstein", "RKMil", "SRA1", "ReversibleHeun",
    "ReversibleAdjoint", "BrownianInterval",
    "PINNProblem", "PINN", "ConvectionProblem", "LPINN", "ViscousBurgersProblem",
    "MaskDomain", "RAR",
    "constraints", "HardConstraint",
    "layers", "NeuralODE", "LangevinSDE", "LinearNoiseSDE", "GeometricSDE", "NeuralSDE",
    "NaturalCubicSpline", "ErrorRegularizer", "StiffnessRegularizer",
    "train", "Trainer",
    "kernels", "meta", "plot", "operators", "LoRA", "FNO", "DeepONet", "POD_DeepONet", "MgNO",
    "MultiTaskDeepONet", "DRIFTNet", "DyMixOp", "FunctionSpaceUNet", "AttentionOperator", "UNet",
    "build_operator",
    "__version__",
]
