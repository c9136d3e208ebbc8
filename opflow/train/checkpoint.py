"""Training checkpoints: one file with everything needed to continue or to predict.

A checkpoint is a ``torch.save`` file holding only tensors and plain Python
containers, so it loads with ``torch.load(path, weights_only=True)`` (no
arbitrary code runs when a file is opened). Its top-level dict has:

==================  ===========================================================
``format``          ``"opflow.checkpoint"`` and ``format_version`` (an int)
``opflow_version``  the opflow that wrote it (and ``torch_version``)
``epoch``           number of completed epochs
``model``           the model's ``state_dict`` (unwrapped from DDP)
``model_config``    the model's config dict (JSON types), e.g. ``model.config``
``optimizer``       ``optimizer.state_dict()`` or None
``scheduler``       ``scheduler.state_dict()`` or None
``scaler``          ``GradScaler.state_dict()`` or None (mixed precision)
``rng``             RNG states as tensors: torch CPU and CUDA, numpy, python
                    ``random`` and the data-shuffling ``torch.Generator``
``normalizers``     ``{"input": state, "output": state}`` or None
``metrics``         per-epoch metrics, a list of dicts of JSON types
``trainer``         the Trainer's own counters (best value, patience, ...)
``metadata``        free JSON-compatible metadata (data variables, ...)
``sha256``          SHA-256 of everything above (see :func:`payload_digest`)
==================  ===========================================================

Files are written atomically (temporary sibling, then ``os.replace``): a crash
while saving leaves the previous checkpoint intact. Reading verifies the
checksum, so a damaged file raises :class:`~opflow.errors.CorruptFileError`
instead of loading wrong weights.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import struct
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from torch import nn

from .._version import __version__
from ..data.normalizer import UnitGaussianNormalizer
from ..errors import CorruptFileError, FileFormatError, InvalidArgumentError, describe
from ..io import atomic_path
from .distributed import unwrap_model

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "load_checkpoint",
    "normalizers_from_checkpoint",
    "payload_digest",
    "read_checkpoint",
    "restore_checkpoint",
    "rng_state",
    "save_checkpoint",
    "set_rng_state",
]

FORMAT = "opflow.checkpoint"
FORMAT_VERSION = 1
_JSON_TYPES = "JSON-compatible values (dicts with str keys, lists, str, int, float, bool, None)"


# ------------------------------------------------------------------ helpers
def _plain(value: Any, argument: str) -> Any:
    """``value`` as JSON types (tuples become lists); raises if not representable."""
    try:
        return json.loads(json.dumps(value, allow_nan=True))
    except (TypeError, ValueError):
        raise InvalidArgumentError(argument, _JSON_TYPES, value) from None


def _to_cpu(tree: Any) -> Any:
    if isinstance(tree, torch.Tensor):
        return tree.detach().cpu()
    if isinstance(tree, dict):
        out: Any = type(tree)((k, _to_cpu(v)) for k, v in tree.items())  # may carry _metadata
        if hasattr(tree, "_metadata"):  # state_dict versions, used by load_state_dict
            out._metadata = tree._metadata
        return out
    if isinstance(tree, list):
        return [_to_cpu(v) for v in tree]
    if isinstance(tree, tuple):
        return tuple(_to_cpu(v) for v in tree)
    return tree


def _update(h: "hashlib._Hash", tag: bytes, data: bytes = b"") -> None:
    h.update(tag + struct.pack("<Q", len(data)) + data)


def _digest_into(h: "hashlib._Hash", obj: Any, where: str) -> None:
    if obj is None:
        _update(h, b"N")
    elif isinstance(obj, bool):
        _update(h, b"B", b"1" if obj else b"0")
    elif isinstance(obj, int):
        _update(h, b"I", str(obj).encode())
    elif isinstance(obj, float):
        _update(h, b"F", struct.pack("<d", obj))
    elif isinstance(obj, str):
        _update(h, b"S", obj.encode("utf-8", "surrogatepass"))
    elif isinstance(obj, torch.Tensor):
        if obj.layout != torch.strided:
            raise InvalidArgumentError(where, "dense tensors (no sparse layouts)", obj)
        t = obj.detach().cpu().contiguous()
        _update(h, b"X", f"{t.dtype}{tuple(t.shape)}".encode())
        # numpy's stubs declare the buffer protocol of arrays for Python >= 3.12 only
        h.update(t.reshape(-1).view(torch.uint8).numpy())  # type: ignore[arg-type]
    elif isinstance(obj, Mapping):
        _update(h, b"D", str(len(obj)).encode())
        for k, v in obj.items():
            _digest_into(h, k, f"{where} key")
            _digest_into(h, v, f"{where}[{k!r}]")
    elif isinstance(obj, (list, tuple)):
        _update(h, b"L" if isinstance(obj, list) else b"T", str(len(obj)).encode())
        for i, v in enumerate(obj):
            _digest_into(h, v, f"{where}[{i}]")
    else:
        raise InvalidArgumentError(
            where, "tensors, numbers, strings, None and dicts/lists/tuples of them "
            "(what torch.load(weights_only=True) can read)", obj)


def payload_digest(payload: Mapping[str, Any]) -> str:
    """SHA-256 (hex) of a checkpoint's contents, its ``"sha256"`` entry excluded.

    The digest covers, in order, every key and value: the type, dtype, shape
    and raw bytes of each tensor, and the exact value of each number and
    string. It is computed from the loaded objects, so it does not depend on
    how ``torch.save`` lays out the file.

    Raises
    ------
    opflow.errors.InvalidArgumentError
        A value that ``torch.load(..., weights_only=True)`` could not read
        back (any object other than tensors, numbers, strings, None and
        dicts/lists/tuples of them); the message names where it is.
    """
    h = hashlib.sha256()
    _digest_into(h, {k: v for k, v in payload.items() if k != "sha256"}, "checkpoint")
    return h.hexdigest()


# ---------------------------------------------------------------------- RNG
def rng_state(generator: torch.Generator | None = None) -> dict[str, Any]:
    """States of the random number generators, as tensors and plain types.

    Parameters
    ----------
    generator : torch.Generator, optional
        An extra generator to include (the Trainer's data-shuffling one).

    Returns
    -------
    dict
        ``torch`` (uint8 tensor), ``cuda`` (list of uint8 tensors, one per
        device, empty when CUDA is not initialised), ``numpy`` (dict with the
        MT19937 key as an int64 tensor), ``python`` (dict with the Mersenne
        Twister state as an int64 tensor) and ``generator`` (uint8 tensor or
        None).
    """
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else []
    # the global RandomState draws from MT19937, whose legacy state is this tuple
    kind, keys, pos, has_gauss, cached = cast("tuple[str, np.ndarray, int, int, float]",
                                              np.random.get_state(legacy=True))
    version, state, gauss_next = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": list(cuda),
        "numpy": {"kind": str(kind), "keys": torch.from_numpy(keys.astype(np.int64)),
                  "pos": int(pos), "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
        "python": {"version": int(version), "state": torch.tensor(state, dtype=torch.int64),
                   "gauss_next": gauss_next},
        "generator": None if generator is None else generator.get_state(),
    }


def set_rng_state(state: Mapping[str, Any], generator: torch.Generator | None = None) -> None:
    """Restore the generators saved by :func:`rng_state`.

    CUDA states are restored when CUDA is available and the number of
    devices matches; ``generator`` gets the saved generator state if both
    exist.

    Parameters
    ----------
    state : mapping
        As returned by :func:`rng_state`.
    generator : torch.Generator, optional
        Receives the saved generator state.
    """
    try:
        torch.set_rng_state(state["torch"].to(torch.uint8))
        cuda = state.get("cuda") or []
        if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all([s.to(torch.uint8) for s in cuda])
        npy = state["numpy"]
        np.random.set_state((npy["kind"], npy["keys"].numpy().astype(np.uint32),
                             int(npy["pos"]), int(npy["has_gauss"]),
                             float(npy["cached_gaussian"])))
        py = state["python"]
        random.setstate((int(py["version"]), tuple(int(v) for v in py["state"].tolist()),
                         py["gauss_next"]))
        if generator is not None and state.get("generator") is not None:
            generator.set_state(state["generator"].to(torch.uint8))
    except (KeyError, TypeError, ValueError, AttributeError, RuntimeError) as e:
        raise InvalidArgumentError("state", "RNG states as written by opflow.train.rng_state",
                                   f"{type(e).__name__}: {e}") from None


# --------------------------------------------------------------------- save
def save_checkpoint(
    path: str | os.PathLike,
    model: nn.Module,
    *,
    config: Mapping[str, Any] | None = None,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: Any = None,
    scaler: Any = None,
    epoch: int = 0,
    normalizers: Sequence[UnitGaussianNormalizer] | None = None,
    metrics: Sequence[Mapping[str, Any]] | None = None,
    generator: torch.Generator | None = None,
    trainer: Mapping[str, Any] | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> Path:
    """Write a checkpoint atomically (temporary file, then ``os.replace``).

    Parameters
    ----------
    path : str or os.PathLike
        File to write; missing parent folders are created.
    model : torch.nn.Module
        Its ``state_dict`` is stored (a DDP wrapper is unwrapped first).
    config : mapping, optional
        The model's config (default ``model.config`` if the model has one),
        stored as JSON types; :func:`load_checkpoint` checks it and
        ``opflow predict`` rebuilds the model from it.
    optimizer, scheduler, scaler : optional
        Objects with ``state_dict()``; their states are stored.
    epoch : int
        Completed epochs.
    normalizers : (UnitGaussianNormalizer, UnitGaussianNormalizer), optional
        Input and output normalizers.
    metrics : sequence of dict, optional
        Per-epoch metrics (JSON types).
    generator : torch.Generator, optional
        Data-shuffling generator whose state joins the RNG states.
    trainer, metadata : mapping, optional
        Trainer counters and free metadata (JSON types).

    Returns
    -------
    pathlib.Path
        ``path``.

    Raises
    ------
    opflow.errors.InvalidArgumentError
        ``config``, ``metrics``, ``trainer`` or ``metadata`` are not
        JSON-compatible, or a state holds objects ``weights_only`` loading
        could not read.
    """
    path = Path(path)
    if not isinstance(model, nn.Module):
        raise InvalidArgumentError("model", "a torch.nn.Module", model)
    if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
        raise InvalidArgumentError("epoch", "a non-negative integer", epoch)
    inner = unwrap_model(model)
    if config is None:
        config = getattr(inner, "config", None)
    norm_state = None
    if normalizers is not None:
        if len(normalizers) != 2:
            raise InvalidArgumentError("normalizers", "a pair (input, output) of normalizers",
                                       normalizers)
        norm_state = {"input": normalizers[0].state_dict(),
                      "output": normalizers[1].state_dict()}
    payload: dict[str, Any] = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "opflow_version": __version__,
        "torch_version": str(torch.__version__),
        "epoch": int(epoch),
        "model": inner.state_dict(),
        "model_config": None if config is None else _plain(dict(config), "config"),
        "optimizer": None if optimizer is None else optimizer.state_dict(),
        "scheduler": None if scheduler is None else scheduler.state_dict(),
        "scaler": None if scaler is None else scaler.state_dict(),
        "rng": rng_state(generator),
        "normalizers": norm_state,
        "metrics": _plain(list(metrics or []), "metrics"),
        "trainer": _plain(dict(trainer or {}), "trainer"),
        "metadata": _plain(dict(metadata or {}), "metadata"),
    }
    payload = _to_cpu(payload)
    payload["sha256"] = payload_digest(payload)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return path


# --------------------------------------------------------------------- load
def _corrupt(path: Path, reason: str) -> CorruptFileError:
    return CorruptFileError(
        f"argument `path`: expected a readable opflow checkpoint, got {str(path)!r} which {reason}")


def read_checkpoint(path: str | os.PathLike,
                    map_location: str | torch.device | None = "cpu") -> dict[str, Any]:
    """Load and verify a checkpoint without applying it to anything.

    Loading uses ``torch.load(path, weights_only=True)`` only.

    Parameters
    ----------
    path : str or os.PathLike
    map_location : str or torch.device, optional
        Where tensors go (default CPU).

    Returns
    -------
    dict
        The contents described in :mod:`opflow.train.checkpoint`.

    Raises
    ------
    FileNotFoundError
        No file at ``path``.
    opflow.errors.CorruptFileError
        The file cannot be loaded (truncated, damaged) or its SHA-256 does
        not match its contents; the message names the path.
    opflow.errors.FileFormatError
        A loadable file that is not an opflow checkpoint (a bare state_dict,
        say), or whose ``format_version`` is not an integer or is newer than
        this opflow reads.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(2, "opflow checkpoint: no such file", str(path))
    if not path.is_file():
        raise FileFormatError(f"argument `path`: expected an opflow checkpoint file, got "
                              f"{str(path)!r} which is not a regular file")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except (FileNotFoundError, PermissionError):
        raise
    except Exception as e:  # noqa: BLE001 - any failure to load means an unreadable file
        message = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise _corrupt(path, f"cannot be loaded (truncated or damaged?): {message}") from e
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        what = (f"a dict without format {FORMAT!r}" if isinstance(payload, dict)
                else f"a {type(payload).__name__}")
        raise FileFormatError(
            f"argument `path`: expected an opflow checkpoint (written by "
            f"opflow.train.save_checkpoint), got {str(path)!r} which holds {what}")
    version = payload.get("format_version", 0)
    if isinstance(version, bool) or not isinstance(version, int):
        raise FileFormatError(
            f"argument `path`: expected an opflow checkpoint with an integer format_version, "
            f"got {str(path)!r} whose format_version is {describe(version)}")
    if version > FORMAT_VERSION:
        raise FileFormatError(
            f"argument `path`: expected an opflow checkpoint of format version <= "
            f"{FORMAT_VERSION}, got {str(path)!r} of version {payload.get('format_version')} "
            f"(written by opflow {payload.get('opflow_version')}; upgrade opflow)")
    stored = payload.get("sha256")
    try:
        actual = payload_digest(payload)
    except InvalidArgumentError as e:
        raise _corrupt(path, f"holds unexpected contents: {e}") from None
    if stored != actual:
        raise _corrupt(path, f"does not match its SHA-256 checksum (stored {str(stored)[:16]}..., "
                             f"computed {actual[:16]}...): the file is damaged")
    return payload


def _config_diff(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[str]:
    keys = sorted(set(a) | set(b))
    return [k for k in keys if a.get(k, "<missing>") != b.get(k, "<missing>")]


def restore_checkpoint(
    checkpoint: Mapping[str, Any],
    model: nn.Module | None = None,
    *,
    config: Mapping[str, Any] | None = None,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: Any = None,
    scaler: Any = None,
    restore_rng: bool = False,
    generator: torch.Generator | None = None,
    strict: bool = True,
    source: str = "checkpoint",
) -> None:
    """Apply checkpoint contents from :func:`read_checkpoint` to live objects.

    ``source`` (a path, say) names the checkpoint in error messages.

    Parameters
    ----------
    checkpoint : mapping
        Contents returned by :func:`read_checkpoint`.
    model : torch.nn.Module, optional
        Receives the weights. Its config (``config``, else ``model.config``)
        must equal the stored one when both exist.
    config : mapping, optional
        The config the checkpoint must have been written with.
    optimizer, scheduler, scaler : optional
        Receive their stored states (skipped when the checkpoint has none).
    restore_rng : bool
        Also restore the torch/CUDA/numpy/python RNG states (and
        ``generator``'s), as needed to continue training bit for bit.
    generator : torch.Generator, optional
        Receives the stored generator state (with ``restore_rng``).
    strict : bool
        Passed to ``model.load_state_dict``.
    source : str
        How error messages name the checkpoint.
    """
    stored = checkpoint.get("model_config")
    inner = None if model is None else unwrap_model(model)
    if config is None and inner is not None:
        config = getattr(inner, "config", None)
    if config is not None and stored is not None:
        given = _plain(dict(config), "config")
        if given != stored:
            raise InvalidArgumentError(
                "checkpoint", f"a checkpoint of a model with config {given}",
                f"{source} written for config {stored} (differs in "
                f"{_config_diff(given, stored)})")
    try:
        if inner is not None:
            inner.load_state_dict(checkpoint["model"], strict=strict)
        if optimizer is not None and checkpoint.get("optimizer") is not None:
            optimizer.load_state_dict(checkpoint["optimizer"])
        if scheduler is not None and checkpoint.get("scheduler") is not None:
            scheduler.load_state_dict(checkpoint["scheduler"])
        if scaler is not None and checkpoint.get("scaler") is not None:
            scaler.load_state_dict(checkpoint["scaler"])
    except (RuntimeError, ValueError, KeyError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise InvalidArgumentError(
            "checkpoint", "a checkpoint matching the model/optimizer it is loaded into",
            f"{source}: {first}") from e
    if restore_rng:
        set_rng_state(checkpoint["rng"], generator)


def load_checkpoint(
    path: str | os.PathLike,
    model: nn.Module | None = None,
    *,
    config: Mapping[str, Any] | None = None,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: Any = None,
    scaler: Any = None,
    restore_rng: bool = False,
    generator: torch.Generator | None = None,
    map_location: str | torch.device | None = "cpu",
    strict: bool = True,
) -> dict[str, Any]:
    """Load a checkpoint and restore the given objects from it.

    Parameters
    ----------
    path : str or os.PathLike
    model : torch.nn.Module, optional
        Receives the weights. Its config (``config``, else ``model.config``)
        must equal the stored one when both exist.
    config : mapping, optional
        The config the checkpoint must have been written with.
    optimizer, scheduler, scaler : optional
        Receive their stored states (skipped when the checkpoint has none).
    restore_rng : bool
        Also restore the torch/CUDA/numpy/python RNG states (and
        ``generator``'s), as needed to continue training bit for bit.
    generator : torch.Generator, optional
    map_location : optional
        Passed to ``torch.load`` (default CPU; ``load_state_dict`` then
        copies into the model's own device).
    strict : bool
        Passed to ``model.load_state_dict``.

    Returns
    -------
    dict
        The verified contents (see :func:`read_checkpoint`).

    Raises
    ------
    opflow.errors.CorruptFileError
        Unreadable file or checksum mismatch (see :func:`read_checkpoint`).
    opflow.errors.InvalidArgumentError
        (argument ``checkpoint``) the checkpoint was written for a model with
        another config, or its weights/optimizer state do not fit.

    Examples
    --------
    >>> ckpt = load_checkpoint("run/best.pt", model)        # doctest: +SKIP
    >>> ckpt["epoch"], ckpt["metrics"][-1]                  # doctest: +SKIP
    """
    path = Path(path)
    payload = read_checkpoint(path, map_location=map_location)
    restore_checkpoint(payload, model, config=config, optimizer=optimizer, scheduler=scheduler,
                       scaler=scaler, restore_rng=restore_rng, generator=generator,
                       strict=strict, source=repr(str(path)))
    return payload


def normalizers_from_checkpoint(
    checkpoint: Mapping[str, Any],
) -> tuple[UnitGaussianNormalizer, UnitGaussianNormalizer] | None:
    """The ``(input, output)`` normalizers stored in loaded checkpoint contents, or None.

    Parameters
    ----------
    checkpoint : mapping
        Contents returned by :func:`read_checkpoint`.

    Returns
    -------
    tuple of UnitGaussianNormalizer or None
    """
    state = checkpoint.get("normalizers")
    if state is None:
        return None
    return (UnitGaussianNormalizer.from_state_dict(state["input"]),
            UnitGaussianNormalizer.from_state_dict(state["output"]))
