"""Taylor-mode derivatives of MLPs: value, gradient and pure second derivatives in one pass.

A PINN residual usually needs ``u``, its first derivatives and a few pure second
derivatives (``u_xx``, a Laplacian) at every collocation point. Batched autograd
gets them with a forward pass and one reverse pass per order, each building a
graph that the loss then differentiates again. For a multilayer perceptron
``Linear -> act -> ... -> Linear`` the same quantities propagate forward layer
by layer (Taylor mode): with ``z = W h + b`` and ``h' = act(z)``,

    dz/dx_i   = W dh/dx_i,                 dh'/dx_i = act'(z) dz/dx_i,
    d2z/dx_i2 = W d2h/dx_i2,               d2h'/dx_i2 = act'(z) d2z/dx_i2 + act''(z) (dz/dx_i)^2.

Everything is matrix products and elementwise products, and the loss needs only
one ordinary backward pass over it, so ``torch.compile`` can fuse the whole
chain (it cannot compile the double backward of the autograd path).
``benchmarks/bench_pinn.py`` (``poisson2d_step``, ``laplacian_paths``) times both paths.

:class:`MLPJet` recognises ``torch.nn.Sequential`` networks of ``Linear`` layers
and the activations named in :data:`ACTIVATIONS`; :func:`attach` hangs the result on
the output tensor, where :func:`~opflow.solvers.pinn.d`,
:func:`~opflow.solvers.pinn.gradient` and :func:`~opflow.solvers.pinn.laplacian`
find it. Any other derivative (mixed, third order) falls back to autograd, so
results do not depend on the path. Compiled outputs cannot be differentiated
twice, so under ``torch.compile`` a tensor computed from the output (a slice, a
product) cannot be differentiated: the derivative helpers say so.
"""

from __future__ import annotations

import warnings
from typing import Callable, Optional

import torch

from ...errors import InvalidArgumentError

__all__ = ["ACTIVATIONS", "MLPJet", "Jet", "attach", "jet_of", "retained_backward",
           "through_compiled_graph"]


def _tanh(z: torch.Tensor):
    t = torch.tanh(z)
    s = 1 - t * t
    return t, s, -2 * t * s


def _sigmoid(z: torch.Tensor):
    f = torch.sigmoid(z)
    d1 = f * (1 - f)
    return f, d1, d1 * (1 - 2 * f)


def _silu(z: torch.Tensor):
    sg = torch.sigmoid(z)
    ds = sg * (1 - sg)
    return z * sg, sg + z * ds, ds * (2 + z * (1 - 2 * sg))


# activation module type -> name; name -> z -> (act(z), act'(z), act''(z))
ACTIVATIONS: dict[type, str] = {torch.nn.Tanh: "tanh", torch.nn.Sigmoid: "sigmoid",
                                torch.nn.SiLU: "silu"}
_DERIVATIVES: dict[str, Callable] = {"tanh": _tanh, "sigmoid": _sigmoid, "silu": _silu}


def _hooked(module: torch.nn.Module) -> bool:
    """Forward hooks (weight/spectral norm, user hooks) change what the layer computes."""
    return bool(module._forward_hooks or module._forward_pre_hooks)


def _plan(net: torch.nn.Module) -> Optional[tuple[tuple[str, ...], list[torch.nn.Linear]]]:
    """Layer kinds (``"linear"``, ``"affine"`` = linear with bias, or an activation name)
    and the Linear modules of a supported MLP, else None.

    Only the exact classes qualify (a subclass may override ``forward``), without
    forward hooks. The kinds are plain strings so that compiled code is shared by every
    network of the same architecture (``torch.compile`` guards on their values)."""
    from torch.nn.modules import module as module_globals

    if type(net) is not torch.nn.Sequential or _hooked(net) or (
            module_globals._global_forward_hooks or module_globals._global_forward_pre_hooks):
        return None
    kinds: list[str] = []
    linears: list[torch.nn.Linear] = []
    for m in net:
        if _hooked(m):
            return None
        if type(m) is torch.nn.Linear:
            kinds.append("linear" if m.bias is None else "affine")
            linears.append(m)
        elif type(m) in ACTIVATIONS and kinds and kinds[-1] in ("linear", "affine"):
            kinds.append(ACTIVATIONS[type(m)])
        elif type(m) is not torch.nn.Identity:
            return None
    return (tuple(kinds), linears) if kinds and kinds[0] in ("linear", "affine") else None


def _propagate(kinds: tuple[str, ...], params: list[torch.Tensor], x: torch.Tensor):
    """Value ``(N, out)``, gradient and pure second derivatives ``(dim, N, out)``."""
    n, dim = x.shape
    it = iter(params)
    h = x
    grad = torch.eye(dim, dtype=x.dtype, device=x.device).unsqueeze(1)  # (dim, 1, dim)
    second = None  # zero until the first nonlinearity
    for kind in kinds:
        if kind in ("linear", "affine"):
            w = next(it)
            h = torch.addmm(next(it), h, w.t()) if kind == "affine" else h @ w.t()
            grad = grad @ w.t()
            second = None if second is None else second @ w.t()
        else:
            h, d1, d2 = _DERIVATIVES[kind](h)
            curvature = d2 * grad * grad
            second = curvature if second is None else d1 * second + curvature
            grad = d1 * grad
    if second is None:  # an affine network
        second = torch.zeros_like(grad)
    return h, grad.expand(dim, n, h.shape[1]), second.expand(dim, n, h.shape[1])


_compiled_propagate: Optional[Callable] = None
_compile_failed = False  # set when torch.compile failed once: later jets run eagerly


def retained_backward():
    """Context without donated buffers, for compiling jets and for a backward pass with
    ``retain_graph=True`` through them (the adaptive loss weights need one).

    A graph compiled with donated buffers refuses ``retain_graph=True``, and torch checks
    the setting again at backward time: the jets are compiled inside this context, and a
    retained backward pass runs inside it to match."""
    import torch._functorch.config as functorch_config

    return functorch_config.patch(donated_buffer=False)


def _compiled() -> Callable:
    """``_propagate`` under ``torch.compile``, created once (compiled per architecture),
    compiled without donated buffers (see :func:`retained_backward`)."""
    global _compiled_propagate
    if _compiled_propagate is None:
        compiled = torch.compile(_propagate, dynamic=None)

        def run(kinds, params, x):
            with retained_backward():
                return compiled(kinds, params, x)

        _compiled_propagate = run
    return _compiled_propagate


def through_compiled_graph(u: torch.Tensor) -> bool:
    """Whether ``u``'s autograd graph passes through a compiled jet (which autograd cannot
    differentiate twice). Walks the graph only once a jet was compiled in this process."""
    if _compiled_propagate is None or u.grad_fn is None:
        return False
    seen: set[torch.autograd.graph.Node] = set()
    stack: list[Optional[torch.autograd.graph.Node]] = [u.grad_fn]
    while stack:
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        if type(node).__name__.startswith("CompiledFunction"):
            return True
        stack.extend(nxt for nxt, _ in node.next_functions)
    return False


class Jet:
    """Derivatives of a network output at the points it was evaluated on.

    Attributes
    ----------
    points : torch.Tensor, shape (N, dim)
        The points (the tensor identity is checked before the jet is used).
    grad : torch.Tensor, shape (dim, N, channels), or None
    second : torch.Tensor, shape (dim, N, channels), or None
        Pure second derivatives ``d2u/dx_i2``. None for a derivative served from a
        compiled jet, which carries only its autograd twin.
    compiled : bool
        The tensors come from a compiled graph, which autograd cannot differentiate
        twice: derivatives of them must be taken on :meth:`autograd_value`.
    """

    __slots__ = ("points", "grad", "second", "compiled", "version", "_fallback", "_value")

    def __init__(self, points, grad, second,
                 fallback: Optional[Callable[[], torch.Tensor]] = None, compiled: bool = False):
        self.points, self.grad, self.second, self.compiled = points, grad, second, compiled
        self._fallback = fallback
        self._value: Optional[torch.Tensor] = None
        self.version = -1  # the output's version when attached

    def autograd_value(self) -> torch.Tensor:
        """The output recomputed by an ordinary forward pass (compiled jets only: an
        uncompiled output is differentiated directly)."""
        if self._value is None:
            assert self._fallback is not None  # compiled jets carry one
            self._value = self._fallback()
        return self._value


def attach(u: torch.Tensor, jet: Jet) -> torch.Tensor:
    """Hang ``jet`` on ``u`` (returned) for the derivative helpers."""
    jet.version = u._version
    u._opflow_jet = jet  # type: ignore[attr-defined]  # tensors take Python attributes
    return u


def jet_of(u: torch.Tensor, points: torch.Tensor) -> Optional[Jet]:
    """The jet of ``u`` at ``points`` if one was attached and ``u`` was not modified in
    place since, else None."""
    jet = getattr(u, "_opflow_jet", None)
    if jet is None or jet.points is not points or jet.version != u._version:
        return None
    return jet


class MLPJet:
    """Taylor-mode evaluator of a supported MLP (see the module docstring).

    Use :meth:`supports` first; :meth:`__call__` returns the output with its jet attached.

    Parameters
    ----------
    net : torch.nn.Sequential
        ``Linear`` layers with activations from :data:`ACTIVATIONS` between them.
    compile : bool
        Compile the propagation with ``torch.compile`` (first call takes seconds; needs
        a C++ compiler on CPU). If compilation fails, a warning, and the propagation
        runs uncompiled from then on (same results).
    """

    def __init__(self, net: torch.nn.Module, compile: bool = False):
        plan = _plan(net)
        if plan is None:
            raise InvalidArgumentError(
                "net", "a torch.nn.Sequential of Linear layers with "
                f"{sorted(t.__name__ for t in ACTIVATIONS)} activations between them", net)
        self.net, self.compiled = net, compile
        self._kinds, self._linears = plan

    @staticmethod
    def supports(net: torch.nn.Module) -> bool:
        """Whether ``net`` is an MLP this evaluator handles.

        Parameters
        ----------
        net : torch.nn.Module
            Any network.

        Returns
        -------
        bool
        """
        return _plan(net) is not None

    def _run(self, params: list[torch.Tensor], points: torch.Tensor):
        global _compile_failed
        if self.compiled and _compile_failed:
            self.compiled = False
        if self.compiled:
            # imported here, not at module level: with torch._dynamo loaded when opflow
            # is imported, the Triton-interpreter tests failed in the full test run
            from torch._dynamo.exc import BackendCompilerFailed

            try:
                return _compiled()(self._kinds, params, points)
            except (BackendCompilerFailed, RuntimeError) as err:  # e.g. no C++ compiler
                # a genuine error of the inputs is raised again by the uncompiled pass
                _compile_failed = True
                self.compiled = False
                first = str(err).strip().splitlines()[0] if str(err).strip() else type(err)
                warnings.warn(f"torch.compile could not compile the Taylor-mode pass "
                              f"({first}); it runs uncompiled (same results, slower)",
                              UserWarning, stacklevel=2)
        return _propagate(self._kinds, params, points)

    def __call__(self, points: torch.Tensor) -> torch.Tensor:
        """Output ``(N, channels)`` with a :class:`Jet` at ``points`` attached.

        The output stays differentiable in ``points``, so a derivative the jet lacks is
        taken by autograd: on the output itself, or, when compiled (a compiled graph
        cannot be differentiated twice), on an ordinary forward pass ``net(points)``.
        """
        params = [p for m in self._linears
                  for p in ((m.weight,) if m.bias is None else (m.weight, m.bias))]
        u, grad, second = self._run(params, points)
        if not self.compiled:  # differentiated directly (no closure over u: no cycle)
            return attach(u, Jet(points, grad, second))
        net = self.net
        return attach(u, Jet(points, grad, second, lambda: net(points), compiled=True))
