"""Checkpoints: safetensors for tensors, JSON for everything else; atomic; never unpickled.

Layout of ``RUN/checkpoints/``::

    latest                  text: the name of the newest complete checkpoint folder (replaced atomically)
    best                    text: the name of the checkpoint with the best evaluation score
    step_0000200/
        model.safetensors       weights and buffers (incl. the state mean/std)
        optimizer.safetensors   AdamW moments, "state.<param index>.<name>"   (absent when saved without)
        rng.safetensors         torch RNG states; training saves them per rank: "torch_cpu.<r>", and
                                "torch_cuda.<r>" on CUDA                      (absent when saved without)
        state.json              step, config, normalisation stats, dims, env id, optimizer param groups,
                                scheduler state, numpy sampler RNG state, evaluation history, sha256 of each file

A checkpoint folder is written under a temporary name, every file fsync'ed, then renamed into place; only then
is the pointer file replaced (temp file + ``os.replace``). ``kill -9`` at any moment leaves ``latest`` naming a
complete folder. Loading checks every file's sha256 against ``state.json``, so a truncated or tampered file is
reported rather than read; nothing is ever loaded with pickle.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from envs.provenance import file_sha256

__all__ = ["Checkpoint", "find_checkpoint", "json_safe", "load_checkpoint", "save_checkpoint", "atomic_write_text"]

FORMAT_VERSION = 1
TENSOR_FILES = ("model.safetensors", "optimizer.safetensors", "rng.safetensors")


@dataclass
class Checkpoint:
    """A loaded checkpoint: plain tensors and JSON values, ready to put into objects."""

    path: Path  # the checkpoint folder
    model: dict[str, torch.Tensor]  # model state_dict
    optimizer: dict[str, Any] | None  # optimizer state_dict (tensors + param_groups), None when saved without one
    torch_rng: torch.Tensor | None  # the "torch_cpu" state, when one was saved under that name
    meta: dict[str, Any]  # state.json
    rng: dict[str, torch.Tensor] = dataclasses.field(default_factory=dict)  # every tensor of rng.safetensors


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - some filesystems refuse directory fds
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` via a temp file in the same folder, fsync, then ``os.replace``."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(tmp, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as err:  # e.g. a full disk: say which file, and leave no half-written temp file
        tmp.unlink(missing_ok=True)
        raise _naming(err, path) from None
    _fsync_dir(path.parent)


def _naming(err: OSError, path: Path) -> OSError:
    """``err`` with the file it was writing in its message (a full disk's ENOSPC names none)."""
    return type(err)(err.errno, f"{err.strerror or err} while writing {path}")


def _save_tensors(tensors: dict[str, torch.Tensor], path: Path) -> None:
    try:
        save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, str(path))
        with open(path, "rb+") as f:
            os.fsync(f.fileno())
    except OSError as err:
        raise _naming(err, path) from None


def optimizer_to_tensors(state_dict: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Split an optimizer state_dict into tensors ("state.<i>.<name>") and JSON (param_groups, scalars)."""
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, Any] = {}
    for idx, per_param in state_dict["state"].items():
        for name, value in per_param.items():
            if isinstance(value, torch.Tensor):
                tensors[f"state.{idx}.{name}"] = value
            else:
                scalars[f"{idx}.{name}"] = value
    return tensors, {"param_groups": json_safe(state_dict["param_groups"]), "scalars": scalars}


def json_safe(value: Any) -> Any:
    """``value`` with every 0-dim tensor replaced by its Python number, in nested dicts, lists and tuples. A
    capturable optimizer (``cuda_graphs``) keeps its lr as a device tensor and its scheduler records those; the
    checkpoint stores plain floats, whatever the mode (``agents.trainer.fit_optimizer_to_graphs`` converts back)."""
    if isinstance(value, torch.Tensor) and value.dim() == 0:
        return value.item()
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(json_safe(v) for v in value)
    return value


def optimizer_from_tensors(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> dict[str, Any]:
    """Inverse of ``optimizer_to_tensors``."""
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        _, idx, name = key.split(".", 2)
        state.setdefault(int(idx), {})[name] = value
    for key, value in meta.get("scalars", {}).items():
        idx, name = key.split(".", 1)
        state.setdefault(int(idx), {})[name] = value
    return {"state": state, "param_groups": meta["param_groups"]}


def save_checkpoint(
    run_dir: str | Path,
    name: str,
    model_state: dict[str, torch.Tensor],
    meta: dict[str, Any],
    optimizer_state: dict[str, Any] | None = None,
    torch_rng: torch.Tensor | dict[str, torch.Tensor] | None = None,
    pointers: tuple[str, ...] = ("latest",),
    keep: int = 1,
) -> Path:
    """Write checkpoint folder ``RUN/checkpoints/<name>`` atomically and point ``pointers`` at it.

    Args:
        run_dir: the run directory.
        name: folder name, e.g. "step_0000200".
        model_state: model.state_dict().
        meta: JSON-ready values (step, config, stats, ...); file hashes and the format version are added.
        optimizer_state: optimizer.state_dict() or None.
        torch_rng: torch.get_rng_state(), or a dict of named RNG-state tensors (holding "torch_cpu"), or None.
        pointers: pointer files to replace ("latest", "best").
        keep: step folders kept besides those a pointer names (older ones are deleted).
    """
    root = Path(run_dir) / "checkpoints"
    root.mkdir(parents=True, exist_ok=True)
    tmp = root / f".tmp-{name}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    meta = dict(meta, format_version=FORMAT_VERSION)
    _save_tensors(model_state, tmp / "model.safetensors")
    if optimizer_state is not None:
        tensors, opt_meta = optimizer_to_tensors(optimizer_state)
        _save_tensors(tensors, tmp / "optimizer.safetensors")
        meta["optimizer"] = opt_meta
    if torch_rng is not None:
        rng = torch_rng if isinstance(torch_rng, dict) else {"torch_cpu": torch_rng}
        _save_tensors(rng, tmp / "rng.safetensors")
    meta["sha256"] = {f: file_sha256(tmp / f) for f in TENSOR_FILES if (tmp / f).exists()}
    atomic_write_text(tmp / "state.json", json.dumps(meta, indent=1))
    _fsync_dir(tmp)
    final = root / name
    if final.exists():  # re-saving the same step (e.g. best == latest): replace the old copy
        shutil.rmtree(final)
    os.replace(tmp, final)
    _fsync_dir(root)
    for pointer in pointers:
        atomic_write_text(root / pointer, name + "\n")
    _prune(root, keep)
    return final


def _prune(root: Path, keep: int) -> None:
    """Delete the step folders no pointer names, but the newest ``keep``, and temp folders of killed saves."""
    named = {p.read_text().strip() for p in (root / "latest", root / "best") if p.is_file()}
    folders = sorted(p.name for p in root.iterdir() if p.is_dir() and p.name.startswith("step_"))
    for folder in folders[: max(len(folders) - keep, 0)]:
        if folder not in named:
            shutil.rmtree(root / folder, ignore_errors=True)
    for stale in root.glob(".tmp-*"):
        shutil.rmtree(stale, ignore_errors=True)


def find_checkpoint(path: str | Path, which: str = "latest") -> Path:
    """Resolve a run directory, a ``checkpoints/`` folder or a checkpoint folder to a checkpoint folder."""
    path = Path(path)
    if (path / "state.json").is_file():
        return path
    for root in (path / "checkpoints", path):
        pointer = root / which
        if pointer.is_file():
            folder = root / pointer.read_text().strip()
            if not (folder / "state.json").is_file():
                raise FileNotFoundError(
                    f"checkpoint pointer {pointer} names {folder.name!r}, which is missing or incomplete; "
                    "the run directory was modified by hand"
                )
            return folder
    if not path.exists():
        raise FileNotFoundError(f"checkpoint {str(path)!r} does not exist; pass a run directory written by train")
    raise FileNotFoundError(
        f"no {which!r} checkpoint under {str(path)!r}: expected {path}/checkpoints/{which} or a folder with "
        "state.json (a run directory written by `run_rl.py train`)"
    )


def _load_tensors(path: Path, expected_sha: str | None) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint file {path} is missing; the checkpoint is incomplete")
    if expected_sha is not None and file_sha256(path) != expected_sha:
        raise ValueError(
            f"checkpoint file {path} does not match the sha256 recorded in state.json: it is truncated or was "
            "modified; use another checkpoint"
        )
    try:
        return load_file(str(path))
    except (SafetensorError, OSError) as err:
        raise ValueError(f"checkpoint file {path} is not a valid safetensors file ({err})") from None


def load_checkpoint(path: str | Path, which: str = "latest") -> Checkpoint:
    """Load a checkpoint folder (or the ``which`` checkpoint of a run directory), verifying hashes.

    Only ``state.json`` and the ``*.safetensors`` files are read; any other file (e.g. a pickle) is ignored.
    """
    folder = find_checkpoint(path, which)
    try:
        meta = json.loads((folder / "state.json").read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"checkpoint {folder}/state.json is corrupt ({err}); use another checkpoint") from None
    if not isinstance(meta, dict) or meta.get("format_version") != FORMAT_VERSION:
        raise ValueError(
            f"checkpoint {folder} has format_version {meta.get('format_version') if isinstance(meta, dict) else '?'}"
            f", this code reads {FORMAT_VERSION}"
        )
    hashes = meta.get("sha256", {})
    if "model.safetensors" not in hashes:
        raise ValueError(f"checkpoint {folder}: state.json records no model.safetensors; it is incomplete")
    tensors = {f: _load_tensors(folder / f, hashes[f]) for f in TENSOR_FILES if f in hashes}
    optimizer = None
    if "optimizer.safetensors" in tensors:
        optimizer = optimizer_from_tensors(tensors["optimizer.safetensors"], meta["optimizer"])
    rng = tensors.get("rng.safetensors", {})
    return Checkpoint(folder, tensors["model.safetensors"], optimizer, rng.get("torch_cpu"), meta, rng)
