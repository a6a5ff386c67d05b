"""The data manifest: every shipped file in ``data/`` with its sha256, size, producing command and key metrics.

``data/MANIFEST.json`` maps a path relative to ``data/`` to an entry::

    {"sha256": "...", "size": 12345, "command": "rli data rebuild coinflip/dqn --save",
     "metrics": {"expected_heads": 13.95}, "created": "2026-11-21T14:00:00Z"}

Which artifact owns each file, and how it is built and loaded, is declared in :mod:`rlinterp.artifacts`.
Loading goes through :func:`data_path` (or :func:`load_checkpoint`), which verifies the hash, so a corrupt or
missing file is a clear error naming the file and the command that rebuilds it, never a silently wrong result.
Writing goes through :func:`save_checkpoint` / :func:`register`, which write atomically (temp file + rename).
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import io
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from rlinterp import DATA

MANIFEST_NAME = "MANIFEST.json"


class DataError(RuntimeError):
    """A shipped data file is missing, corrupt or unregistered; the message says how to rebuild it."""


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def _manifest_path(data_dir: Path | None) -> Path:
    return Path(data_dir or DATA) / MANIFEST_NAME


def read_manifest(data_dir: Path | None = None) -> dict[str, dict[str, Any]]:
    path = _manifest_path(data_dir)
    if not path.exists():
        return {}
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise DataError(f"{path} is not valid JSON ({e}); restore it with `git checkout -- {path.name}`") from e


def atomic_write_bytes(path: Path, payload: bytes) -> None:
    """Write ``payload`` to ``path`` via a temp file in the same folder and an atomic rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; give the file the permissions open() would
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _write_manifest(manifest: dict, data_dir: Path | None) -> None:
    text = json.dumps(dict(sorted(manifest.items())), indent=2, sort_keys=True) + "\n"
    atomic_write_bytes(_manifest_path(data_dir), text.encode())


def register(name: str, command: str, metrics: dict[str, Any] | None = None,
             data_dir: Path | None = None) -> dict[str, Any]:
    """Record ``data/<name>`` (which must exist) in the manifest with its hash, size, command and metrics."""
    data_dir = Path(data_dir or DATA)
    path = data_dir / name
    if not path.exists():
        raise DataError(f"cannot register {path}: the file does not exist")
    entry = {
        "sha256": sha256_file(path),
        "size": path.stat().st_size,
        "command": command,
        "metrics": metrics or {},
        "created": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    manifest = read_manifest(data_dir)
    manifest[name] = entry
    _write_manifest(manifest, data_dir)
    return entry


def data_path(name: str, data_dir: Path | None = None, command: str | None = None) -> Path:
    """Path of ``data/<name>`` after checking it exists and matches its manifest hash.

    Errors name the command that rebuilds the file: ``command`` when given (the artifact registry passes its
    ``rli data rebuild NAME --save``), else the manifest entry's."""
    data_dir = Path(data_dir or DATA)
    manifest = read_manifest(data_dir)
    path = data_dir / name
    if name not in manifest:
        how = f"`{command}`" if command else "the command of the artifact that owns it (see `rli data list`)"
        raise DataError(f"data/{name} is not in data/{MANIFEST_NAME}; build and register it with {how}")
    entry = manifest[name]
    rebuild = f"rebuild it with `{command or entry['command']}`"
    if not path.exists():
        raise DataError(f"data/{name} is missing; {rebuild} (or restore it with `git checkout -- data/{name}`)")
    digest = sha256_file(path)
    if digest != entry["sha256"]:
        raise DataError(f"data/{name} is corrupt or was changed: sha256 {digest[:12]}… does not match the manifest's "
                        f"{entry['sha256'][:12]}…; {rebuild} (or restore it with `git checkout -- data/{name}`)")
    return path


def checkpoint_bytes(obj: dict[str, Any], name: str) -> bytes:
    """``torch.save`` bytes of ``obj``, refused (``DataError``) unless ``torch.load(weights_only=True)`` reads them back,
    so that no shipped file fails later, when a chapter loads it."""
    import torch

    buf = io.BytesIO()
    torch.save(obj, buf)
    try:
        torch.load(io.BytesIO(buf.getvalue()), map_location="cpu", weights_only=True)
    except Exception as e:
        why = next((ln.strip() for ln in str(e).splitlines() if "Unsupported global" in ln), str(e).splitlines()[0])
        raise DataError(f"refusing to save data/{name}: it would not load with torch.load(weights_only=True) ({why}); "
                        f"store plain Python numbers, lists, dicts and tensors (e.g. float(x) for numpy scalars)") from e
    return buf.getvalue()


def save_checkpoint(obj: dict[str, Any], name: str, command: str, metrics: dict[str, Any] | None = None,
                    data_dir: Path | None = None) -> Path:
    """``torch.save`` a checkpoint dict (state_dict, config, ...) to ``data/<name>`` atomically and register it."""
    payload = checkpoint_bytes(obj, name)
    path = Path(data_dir or DATA) / name
    atomic_write_bytes(path, payload)
    register(name, command, metrics, data_dir)
    return path


def load_checkpoint(name: str, data_dir: Path | None = None, map_location: str = "cpu") -> dict[str, Any]:
    """Verify ``data/<name>`` against the manifest and load it with ``torch.load(weights_only=True)``."""
    import torch

    path = data_path(name, data_dir)
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # hash matched but the payload cannot be read: still a clear error
        entry = read_manifest(data_dir)[name]
        raise DataError(f"data/{name} could not be loaded ({e}); rebuild it with `{entry['command']}`") from e


def set_command(name: str, command: str, data_dir: Path | None = None) -> dict[str, Any]:
    """Change the recorded rebuild ``command`` of ``data/<name>``, leaving its file, hash, size, metrics and date alone.

    The file must still match its recorded sha256 (a changed file needs :func:`register`, which rehashes)."""
    data_path(name, data_dir)
    manifest = read_manifest(data_dir)
    manifest[name] = dict(manifest[name], command=command)
    _write_manifest(manifest, data_dir)
    return manifest[name]


def unknown_files(data_dir: Path | None = None) -> list[str]:
    """Files under ``data/`` (relative paths, sorted) that the manifest does not know (temp files included)."""
    data_dir = Path(data_dir or DATA)
    known = set(read_manifest(data_dir)) | {MANIFEST_NAME}
    return sorted(p.relative_to(data_dir).as_posix() for p in data_dir.rglob("*")
                  if p.is_file() and p.relative_to(data_dir).as_posix() not in known)


def verify_all(data_dir: Path | None = None) -> list[str]:
    """Check every manifest entry; return a list of problems (empty when all files are intact)."""
    problems = []
    for name in read_manifest(data_dir):
        try:
            data_path(name, data_dir)
        except DataError as e:
            problems.append(str(e))
    return problems
