r"""The empirical NTK of any PyTorch model, by layer-structured Jacobian contraction.

For a model :math:`f(\cdot;\theta)` with :math:`K` outputs, the empirical NTK block is

.. math::

    \hat\Theta_{ab}(x, z) = \sum_p \frac{\partial f_a(x)}{\partial\theta_p}
                                   \frac{\partial f_b(z)}{\partial\theta_p},

and ``output="trace"`` returns :math:`\sum_a \hat\Theta_{aa}(x, z)`. The PyTorch tutorial
computes it by materializing per-example Jacobians (:func:`torch.func.vmap` of
:func:`torch.func.jacrev`) and contracting them parameter by parameter. Here, following the
"structured derivatives" of Novak et al. (2022), a layer :math:`h_t = s\, W u_t + \beta b`
applied at positions :math:`t` (one for a dense layer, the patches of a convolution) has the
per-example gradient :math:`\partial f_a/\partial W = s \sum_t \delta_{a,t} u_t^\top`, with
:math:`\delta_{a,t} = \partial f_a / \partial h_t` obtained for all examples at once by one
backward pass of the batch (examples are independent in eval mode). Its contribution is then
either

* structured: :math:`s^2 \sum_{t,t'} (\delta_{a,t}\cdot\delta'_{b,t'})(u_t\cdot u'_{t'})`,
  which never forms a gradient of the size of :math:`W` (a dense layer: :math:`n m (d_{in} +
  K d_{out})` operations instead of :math:`n m K d_{in} d_{out}`), or
* materialized: the per-example gradients :math:`\sum_t \delta_{a,t} u_t^\top` formed by one
  batched product and contracted by one matrix product,

whichever costs fewer operations for the shapes at hand (:mod:`ntklab.ntk_contract`). A
weight that any other operation uses too (counted during one probe pass) loses this
treatment. Every other parameter (normalization layers, embeddings, custom modules) gets
per-example Jacobians by :func:`torch.func.vmap` of :func:`torch.func.jacrev`, restricted to
those parameters, or, when they would not fit in the memory budget, NTK-vector products
(:mod:`ntklab.ntk_vector`). Inputs are processed in chunks so that the working memory stays
under ``max_memory``; the features of every chunk are kept when they fit in half of it.

References
----------
Novak, R., Sohl-Dickstein, J. and Schoenholz, S. S. (2022). Fast finite width neural tangent
kernel. ICML.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, jacrev, vmap
from torch.overrides import TorchFunctionMode

from .layers import DenseModule
from .model_checks import probe_model
from .ntk_contract import contract, structured_block, use_structured, weight_grads
from .ntk_vector import ntvp_block

__all__ = ["generic_ntk", "DEFAULT_MAX_MEMORY"]

OUTPUTS = ("trace", "mean", "full")
IMPLEMENTATIONS = ("auto", "structured", "materialized", "jacobian", "ntvp")
DEFAULT_MAX_MEMORY = 2**30


# ---- layers with a structured derivative -----------------------------------------------------
@dataclass
class _Group:
    """Modules sharing one weight (and bias) of the form h_t = scale * W u_t + beta * b."""

    weight: str
    bias: str | None
    scale: float
    beta: float
    kind: str  # "linear" or "conv2d"
    modules: list = field(default_factory=list)
    calls: list = field(default_factory=list)  # (u (b, T, a), h) per call
    structured: bool = True  # contraction by structured derivative (else materialized)
    dims: tuple = ()  # (T, a, c): positions, input and output features


def _handler(mod: nn.Module):
    """(kind, scale, beta) for a module with a structured derivative, else None."""
    if type(mod) is nn.Linear:
        return "linear", 1.0, 1.0
    if type(mod) is DenseModule:
        return "linear", mod.scale, mod.beta
    plain = getattr(mod, "groups", 0) == 1 and getattr(mod, "padding_mode", "") == "zeros"
    if type(mod) is nn.Conv2d and plain and not isinstance(mod.padding, str):
        return "conv2d", 1.0, 1.0
    return None


def _unfold(mod: nn.Module, kind: str, inp: torch.Tensor) -> torch.Tensor:
    """The layer's inputs at each position, (b, T, a)."""
    if kind == "conv2d":
        u = F.unfold(inp, mod.kernel_size, mod.dilation, mod.padding, mod.stride)
        return u.transpose(1, 2)
    return inp.reshape(inp.shape[0], -1, inp.shape[-1])


def _deltas(kind: str, g: torch.Tensor) -> torch.Tensor:
    """d f / d h at each position, (b, T, c)."""
    if kind == "conv2d":
        return g.reshape(g.shape[0], g.shape[1], -1).transpose(1, 2)
    return g.reshape(g.shape[0], -1, g.shape[-1])


def _groups(model: nn.Module, names: dict[int, str]) -> list[_Group]:
    """Structured groups: modules whose weight/bias no other kind of module uses."""
    owners: dict[int, set] = {}
    for mod in model.modules():
        for _, p in mod.named_parameters(recurse=False, remove_duplicate=False):
            owners.setdefault(id(p), set()).add(id(mod))
    groups: dict[tuple, _Group] = {}
    for mod in model.modules():
        spec = _handler(mod)
        if spec is None:
            continue
        kind, scale, beta = spec
        w, b = mod.weight, mod.bias
        if id(w) not in names or (b is not None and id(b) not in names):
            continue
        key = (id(w), None if b is None else id(b), kind, scale, beta)
        grp = groups.setdefault(key, _Group(names[id(w)], None if b is None else names[id(b)],
                                            scale, beta, kind))  # fmt: skip
        grp.modules.append(mod)
    ok = []
    for grp in groups.values():
        members = {id(m) for m in grp.modules}
        params = [grp.modules[0].weight] + ([grp.modules[0].bias] if grp.bias else [])
        if all(owners[id(p)] <= members for p in params):
            ok.append(grp)
    return ok


# ---- features of one chunk -------------------------------------------------------------------
class _Engine:
    """A model's parameters split into structured groups and the rest, and how to compute
    the features of a chunk of rows."""

    def __init__(self, model, K, implementation):
        self.model = model
        self.K = K
        self.params = {k: p.detach() for k, p in model.named_parameters()}
        self.buffers = {k: v.detach() for k, v in model.named_buffers()}
        names = {id(p): k for k, p in model.named_parameters()}
        use = implementation not in ("jacobian", "ntvp")
        self.ntvp, self.columns = implementation == "ntvp", 1  # the rest by NTK-vector products
        self.groups = _groups(model, names) if use else []
        self.implementation = implementation
        taken = {g.weight for g in self.groups} | {g.bias for g in self.groups if g.bias}
        self.rest = [k for k in self.params if k not in taken]

    def drop_groups(self, bad: list[_Group]) -> None:
        for g in bad:
            self.groups.remove(g)
            self.rest += [g.weight] + ([g.bias] if g.bias else [])

    def _hook(self, grp):
        def hook(mod, inputs, out):
            grp.calls.append((_unfold(mod, grp.kind, inputs[0].detach()), out))
            return out.clone()  # later in-place operations must not change ``out``

        return hook

    def features(self, x: torch.Tensor):
        """{group index: (u, delta) if structured, else per-example gradients (b, K, p)}, and
        the other parameters' Jacobians (b, K, p) or None."""
        out = {}
        if self.groups:
            direct = all(p.requires_grad for p in self.model.parameters())  # no functional_call
            leaves = dict(self.model.named_parameters()) if direct else {
                k: p.requires_grad_(True) if k not in self.rest else p
                for k, p in ((k, v.detach()) for k, v in self.params.items())}  # fmt: skip
            handles = []
            for g in self.groups:
                g.calls = []
                handles += [m.register_forward_hook(self._hook(g)) for m in g.modules]
            try:
                with torch.enable_grad():
                    if direct:
                        f = self.model(x).reshape(x.shape[0], self.K)
                    else:
                        f = functional_call(self.model, (leaves, self.buffers), (x,))
                        f = f.reshape(x.shape[0], self.K)
                    hs = [h for g in self.groups for _, h in g.calls]
                    per_k = []
                    for k in range(self.K):
                        gr = torch.autograd.grad(f[:, k].sum(), hs, retain_graph=k + 1 < self.K,
                                                 allow_unused=True)  # fmt: skip
                        per_k.append(gr)
            finally:
                for h in handles:
                    h.remove()
            pos = 0
            for gi, g in enumerate(self.groups):
                n_calls = len(g.calls)
                u = torch.cat([c[0] for c in g.calls], 1) if n_calls else None
                ds = []
                for k in range(self.K):
                    gk = [
                        torch.zeros_like(c[1]) if d is None else d
                        for c, d in zip(g.calls, per_k[k][pos : pos + n_calls], strict=True)
                    ]
                    ds.append(torch.cat([_deltas(g.kind, d) for d in gk], 1) if n_calls else None)
                pos += n_calls
                g.calls = []
                if u is None:
                    out[gi] = None
                    continue
                d = torch.stack(ds, 1)  # (b, K, T, c)
                out[gi] = (u, d) if g.structured else weight_grads(g, u, d)
        rest = None
        if self.rest and not self.ntvp:
            J = vmap(jacrev(self.f_rest), in_dims=(None, 0))(self.rest_params(), x[:, None])
            rest = torch.cat([J[k].reshape(x.shape[0], self.K, -1) for k in self.rest], 2)
        return out, rest

    def rest_params(self) -> dict:
        return {k: self.params[k] for k in self.rest}

    def f_rest(self, p: dict, rows: torch.Tensor) -> torch.Tensor:
        """Outputs (rows, K) as a function of the parameters without structured derivative."""
        y = functional_call(self.model, ({**self.params, **p}, self.buffers), (rows,))
        return y.reshape(rows.shape[0], self.K)


# ---- the driver ------------------------------------------------------------------------------
def _leaves(obj) -> list:
    """The non-container items of nested lists, tuples and dicts."""
    out, stack = [], [obj]
    while stack:
        o = stack.pop()
        if isinstance(o, list | tuple):
            stack.extend(o)
        elif isinstance(o, dict):
            stack.extend(o.values())
        else:
            out.append(o)
    return out


class _Uses(TorchFunctionMode):
    """Counts the torch operations that take each of some tensors as an argument."""

    def __init__(self, tensors: dict):
        super().__init__()
        self.names = {id(t): k for k, t in tensors.items()}
        self.count = dict.fromkeys(tensors, 0)

    def __torch_function__(self, func, types, args=(), kwargs=None):
        for a in _leaves((args, kwargs or {})):
            if id(a) in self.names:
                self.count[self.names[id(a)]] += 1
        return func(*args, **(kwargs or {}))


def _probe_pass(eng: _Engine, x: torch.Tensor) -> tuple[int, dict, dict]:
    """One forward pass on rows ``x``: bytes per row that autograd saves (the saved tensors
    whose first axis is the batch's), the number of operations that use each parameter, and
    per structured group its calls (and its dims (T, a, c))."""
    total, calls = 0, {id(g): 0 for g in eng.groups}

    def pack(t):
        nonlocal total
        total += t.numel() * t.element_size() if t.dim() and t.shape[0] == x.shape[0] else 0
        return t

    def hook(g):
        def count(mod, inputs, out):
            calls[id(g)] += 1
            T, a = _unfold(mod, g.kind, inputs[0]).shape[1:]
            g.dims = (T + (g.dims[0] if calls[id(g)] > 1 else 0), a, _deltas(g.kind, out).shape[2])

        return count

    direct = all(p.requires_grad for p in eng.model.parameters())  # no functional_call
    leaves = dict(eng.model.named_parameters()) if direct else {
        k: v.detach().requires_grad_(True) for k, v in eng.params.items()}  # fmt: skip
    handles = [m.register_forward_hook(hook(g)) for g in eng.groups for m in g.modules]
    try:
        with torch.enable_grad(), torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            with _Uses(leaves) as uses:
                _ = (
                    eng.model(x)
                    if direct
                    else functional_call(eng.model, (leaves, eng.buffers), (x,))
                )
    finally:
        for h in handles:
            h.remove()
    return max(1, total // x.shape[0]), uses.count, calls


def _plan(eng: _Engine, x: torch.Tensor, n_rows: int, output: str, budget: int, batch_size):
    """Check the structured groups on two rows, pick each one's contraction, size the chunks.
    Returns (chunk size, whether to keep every chunk's features)."""
    ref = next(iter(eng.params.values()))
    K, item = eng.K, ref.element_size()
    rows = x[:2]
    per_act, uses, calls = _probe_pass(eng, rows)
    # a weight (or bias) used by any other operation than its modules' one per call
    eng.drop_groups([g for g in eng.groups if not calls[id(g)] or any(
        uses[k] != calls[id(g)] for k in (g.weight, g.bias) if k)])  # fmt: skip
    base = 2 * sum(p.numel() for p in eng.params.values()) * item
    p_rest = sum(eng.params[k].numel() for k in eng.rest)
    jac = K * p_rest * item  # one example's Jacobian of the parameters without structure
    if eng.implementation == "auto" and p_rest and 64 * jac > budget - base:
        eng.ntvp = True  # fewer than 16 such Jacobians fit in a quarter of the budget
    reserve = (budget - base) // 4 if eng.ntvp else 0  # NTK-vector products' columns
    column = 3 * p_rest * item + 2 * per_act
    if eng.ntvp:
        feat, work = x[0].numel() * x.element_size(), 2 * per_act
    else:
        feat, work = jac, per_act * (1 + (K + 1) * bool(eng.rest)) + jac
    pair = 8 * (K * K if output == "full" else 1) * 3
    b_guess = batch_size or 256
    for g in eng.groups:
        T, a, c = g.dims
        g.structured = use_structured(T, a, c, K, b_guess, eng.implementation)
        if g.structured:
            feat += T * (a + K * c) * item
            work += T * c * item * (2 * K + 1)  # the output, K deltas, and them stacked
            pair += T * T * item * (3 + (2 * K * K if output == "full" else 0))
        else:
            feat += K * (c * a + c) * item
            work += T * c * item * (2 * K + 1)
    cache_bytes = n_rows * feat
    cache = cache_bytes <= (budget - base) // 2
    room = budget - base - (cache_bytes if cache else 0) - reserve
    lin = work + (0 if cache else 2 * feat)
    need = lin + pair + base + (4 * column if eng.ntvp else 0)
    if room < lin + pair or reserve < (column if eng.ntvp else 0):
        raise ValueError(
            f"max_memory={round(budget / 0.85)} bytes is too small for one example: it needs at "
            f"least {round(need / 0.85)} bytes ({need / 0.85 / 2**20:.3g} MiB) for this model; "
            "raise max_memory"
        )
    if batch_size is None:
        batch_size = int((-lin + math.sqrt(lin * lin + 4 * pair * room)) / (2 * pair))
        batch_size = max(1, min(batch_size, n_rows))
    eng.columns = max(1, reserve // (3 * p_rest * item + 2 * batch_size * per_act))
    return batch_size, cache


def generic_ntk(
    model: nn.Module,
    X: torch.Tensor,
    Z: torch.Tensor | None = None,
    *,
    output: str = "trace",
    max_memory: int = DEFAULT_MAX_MEMORY,
    batch_size: int | None = None,
    implementation: str = "auto",
) -> np.ndarray:
    """The empirical NTK of a checked ``model`` (:func:`ntklab.model_checks.check_model`).

    Parameters
    ----------
    model : torch.nn.Module
    X, Z : torch.Tensor
        (n, ...) and (m, ...) on the model's device (:func:`ntklab.model_checks.as_batch`);
        ``Z=None``: ``X``, and the result is exactly symmetric.
    output : {"trace", "mean", "full"}
        See :func:`ntklab.empirical_ntk`.
    max_memory : int
        Bytes of working memory (the result not included).
    batch_size : int, optional
        Rows per chunk; default: the most that ``max_memory`` allows.
    implementation : {"auto", "structured", "materialized", "jacobian", "ntvp"}
        ``"auto"``: per layer the cheaper of structured / materialized (module docstring),
        ``vmap(jacrev)`` Jacobians of the other parameters, or NTK-vector products
        (:mod:`ntklab.ntk_vector`) when 16 of their per-example Jacobians do not fit in a
        quarter of ``max_memory``. The others force one way (``"jacobian"``, ``"ntvp"``: for
        all parameters); they exist for tests and benchmarks.

    Returns
    -------
    ndarray (n, m) or (n, m, K, K), float64
    """
    if output not in OUTPUTS:
        raise ValueError(f"output must be one of {list(OUTPUTS)}; got {output!r}")
    if implementation not in IMPLEMENTATIONS:
        raise ValueError(
            f"implementation must be one of {list(IMPLEMENTATIONS)}; got {implementation!r}"
        )
    K = probe_model(model, X)
    symmetric = Z is None
    Z = X if symmetric else Z
    eng = _Engine(model, K, implementation)
    mode = "full" if output == "full" else "trace"
    n, m = X.shape[0], Z.shape[0]
    rows = n if symmetric else n + m
    # 85 %: the estimates leave out the allocator's slack and some small temporaries
    B, cache = _plan(eng, X, rows, mode, int(0.85 * max_memory), batch_size)
    xs = [(i, X[i : i + B]) for i in range(0, n, B)]
    zs = xs if symmetric else [(j, Z[j : j + B]) for j in range(0, m, B)]
    store: dict = {}

    def feats(side, j, rows_):
        f = store.get((side, j)) or _pack(eng, rows_)
        store.update({(side, j): f} if cache else {})
        return f

    shape = (n, m, K, K) if mode == "full" else (n, m)
    out = np.empty(shape)
    with torch.no_grad():
        for i, xb in xs:
            fx = feats("x", i, xb)
            for j, zb in zs:
                if symmetric and j < i:
                    continue
                fz = fx if (symmetric and j == i) else feats("x" if symmetric else "z", j, zb)
                block = _block(eng, fx, fz, mode).cpu().numpy()
                tb = block.transpose(1, 0, 3, 2) if mode == "full" else block.T
                if symmetric and j == i:  # exactly symmetric, block by block (no n x n copy)
                    block = 0.5 * (block + tb)
                out[i : i + len(xb), j : j + len(zb)] = block
                if symmetric and j != i:
                    out[j : j + len(zb), i : i + len(xb)] = tb
            if not cache:
                store.clear()
    if output == "mean":
        out /= K
    return out


def _pack(eng: _Engine, x: torch.Tensor):
    """Features of rows ``x``: the structured groups' (u, delta) and one matrix (b, K, P) of
    the materialized per-example gradients and the other parameters' Jacobians."""
    per_group, rest = eng.features(x)
    structured = [(g, per_group[gi]) for gi, g in enumerate(eng.groups) if g.structured]
    mats = [per_group[gi] for gi, g in enumerate(eng.groups) if not g.structured]
    mats += [rest] if rest is not None else []
    return structured, (torch.cat(mats, 2) if mats else None), x


def _block(eng, fx, fz, mode) -> torch.Tensor:
    (sx, mx, x), (sz, mz, z) = fx, fz
    total = None
    for (g, a), (_, b) in zip(sx, sz, strict=True):
        term = structured_block(g, a, b, mode).double()
        total = term if total is None else total + term
    if mx is not None:
        term = contract(mx, mz, mode).double()
        total = term if total is None else total + term
    if eng.ntvp and eng.rest:
        term = ntvp_block(eng.f_rest, eng.rest_params(), x, z, eng.K, mode, eng.columns)
        total = term.double() if total is None else total + term.double()
    return total
