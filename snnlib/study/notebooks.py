"""Execute one notebook with papermill; the output is replaced only on success, a failure keeps a copy."""
from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any

from ..files import atomic_write_bytes

#: command-line arguments of every notebook kernel the runner starts: ipykernel's own log silenced below CRITICAL.
#: What it logs at lower levels is nothing a user can act on: a notice on every start that its local TCP transport
#: is not encrypted, and, when a run is stopped mid-cell, a traceback from replying on the socket the runner just
#: closed. A cell's errors do not go through this log: they reach the runner with the executed notebook.
KERNEL_ARGUMENTS = ("--IPKernelApp.log_level=CRITICAL",)

__all__ = ["NotebookFailed", "execute_notebook", "relative_path", "hide_injected_parameters",
           "hide_injected_parameters_in", "INJECTED_TAG", "HIDE_TAG", "running_prefix", "remove_stale_copies",
           "TRANSIENT_ERRORS"]

#: the tag papermill gives the cell of parameters it injects
INJECTED_TAG = "injected-parameters"
#: the Jupyter Book tag that leaves a cell (source and outputs) out of the page
HIDE_TAG = "remove-cell"


def relative_path(path: Path, root: Path) -> str:
    """``path`` relative to ``root`` (POSIX) when inside it, else absolute."""
    path = Path(os.path.abspath(path))
    try:
        return path.relative_to(root).as_posix() or "."
    except ValueError:
        return str(path)


#: exceptions raised in a cell that may not happen again on another attempt (memory, files, the network)
TRANSIENT_ERRORS = frozenset({"MemoryError", "OSError", "IOError", "TimeoutError", "ConnectionError",
                              "ConnectionResetError", "BrokenPipeError", "InterruptedError", "OutOfMemoryError"})


class NotebookFailed(Exception):
    """A notebook raised: the message names the cell; ``failed_copy`` is the executed copy with the traceback.

    deterministic: a cell raised a Python exception that another attempt on the same inputs would raise again
    (not one of :data:`TRANSIENT_ERRORS`); False for a kernel that died or could not start, which a retry may fix.
    """

    def __init__(self, message: str, failed_copy: Path | None, deterministic: bool = False) -> None:
        super().__init__(message)
        self.failed_copy = failed_copy
        self.deterministic = deterministic


def running_prefix(notebook: str, pid: int | None = None) -> str:
    """Name start of the copy papermill writes while ``notebook`` runs in process ``pid`` (default: this one) on
    this host: ``.<notebook>.running-<host>-<pid>-``; the runner replaces the output with it on success."""
    import socket
    host = socket.gethostname().replace("-", "_")
    return f".{notebook}.running-{host}-{os.getpid() if pid is None else pid}-"


def remove_stale_copies(folder: str | os.PathLike, notebook: str) -> list[Path]:
    """Delete the running copies of ``notebook`` in ``folder`` left by processes of this host that no longer exist
    (a killed worker or runner); returns them.  Copies of live processes and of other hosts are left alone (two runs
    at once each keep their own)."""
    import socket
    host = socket.gethostname().replace("-", "_")
    removed = []
    for p in Path(folder).glob(f".{notebook}.running-{host}-*-*.ipynb"):
        pid = p.name[len(f".{notebook}.running-{host}-"):].split("-", 1)[0]
        if not pid.isdigit() or _alive(int(pid)):
            continue
        with contextlib.suppress(OSError):
            p.unlink()
            removed.append(p)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def hide_injected_parameters(nb: Any) -> int:
    """Tag every cell papermill injected (tag ``injected-parameters``) ``remove-cell`` so that the book leaves it
    out (the parameters a run used are in its results JSON); returns how many cells were newly tagged.  ``nb`` is
    an ``nbformat`` notebook node, changed in place; only cell metadata is touched."""
    n = 0
    for cell in nb.cells:
        tags = cell.get("metadata", {}).get("tags", [])
        if INJECTED_TAG in tags and HIDE_TAG not in tags:
            tags.append(HIDE_TAG)
            n += 1
    return n


def hide_injected_parameters_in(paths: Any) -> dict[str, int]:
    """:func:`hide_injected_parameters` on notebook files (a path or several), rewriting only those that change;
    returns {path: cells newly tagged}.  Cell sources and outputs are left as they are."""
    import nbformat

    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    out = {}
    for path in paths:
        path = Path(path)
        nb = nbformat.read(str(path), as_version=4)
        n = hide_injected_parameters(nb)
        if n:
            atomic_write_bytes(path, (nbformat.writes(nb) + "\n").encode("utf-8"))
        out[str(path)] = n
    return out


def _tidy_papermill_metadata(tmp: Path, in_path: Path, out_path: Path, root: Path) -> None:
    """Replace papermill's absolute temp paths in the notebook metadata by repo paths, and hide the injected
    parameters cell from the book (:func:`hide_injected_parameters`)."""
    import nbformat

    nb = nbformat.read(str(tmp), as_version=4)
    pm = nb.metadata.get("papermill")
    if isinstance(pm, dict):
        pm["input_path"] = relative_path(in_path, root)
        pm["output_path"] = relative_path(out_path, root)
    hide_injected_parameters(nb)
    atomic_write_bytes(tmp, (nbformat.writes(nb) + "\n").encode("utf-8"))


def execute_notebook(in_path: str | os.PathLike, out_path: str | os.PathLike,
                     parameters: dict[str, Any], *, kernel: str = "python3",
                     cwd: str | os.PathLike, failed_copy: str | os.PathLike,
                     log_output: bool = False) -> None:
    """Run one notebook with papermill; replace ``out_path`` only on success.

    The executed copy goes to a temp file next to ``out_path`` (unique per process and host) that
    is ``os.replace``-d onto it, so two runs of the same notebook never leave a half notebook.  On
    failure the executed copy (with the traceback) is kept as ``failed_copy`` and
    :class:`NotebookFailed` is raised.
    """
    import uuid

    import papermill as pm
    from papermill.exceptions import PapermillExecutionError

    in_path, out_path, failed_copy = Path(in_path), Path(out_path), Path(failed_copy)
    root = Path(cwd)
    nb = out_path.stem
    out_path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_copies(out_path.parent, nb)
    tmp = out_path.parent / f"{running_prefix(nb)}{uuid.uuid4().hex[:8]}.ipynb"
    try:
        pm.execute_notebook(
            str(in_path), str(tmp), parameters=parameters, kernel_name=kernel,
            cwd=str(root), progress_bar=False, log_output=log_output,
            extra_arguments=list(KERNEL_ARGUMENTS),
        )
    except PapermillExecutionError as e:
        index = _input_cell_index(tmp, e.cell_index)
        kept = _keep_failed(tmp, failed_copy)
        src = (e.source or "").strip().splitlines()
        snippet = "\n".join(f"      | {line}" for line in src[:5])
        if len(src) > 5:
            snippet += "\n      | ..."
        raise NotebookFailed(
            f"cell {index} (0-based, In [{e.exec_count}]) raised {e.ename}: {e.evalue}\n"
            f"{snippet}", kept, deterministic=e.ename not in TRANSIENT_ERRORS) from None
    except BaseException as e:
        if isinstance(e, Exception):
            kept = _keep_failed(tmp, failed_copy)
            raise NotebookFailed(f"{type(e).__name__}: {e}", kept) from None
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    try:
        _tidy_papermill_metadata(tmp, in_path, out_path, root)
        os.replace(tmp, out_path)
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()
    with contextlib.suppress(OSError):
        failed_copy.unlink()


def _input_cell_index(executed: Path, index: int) -> int:
    """Index of an executed-copy cell in the input notebook (skipping injected cells)."""
    try:
        import nbformat

        cells = [c for c in nbformat.read(str(executed), as_version=4).cells   # papermill adds
                 if "papermill-error-cell-tag" not in c.get("metadata", {}).get("tags", [])]
        injected = sum(1 for c in cells[:index]
                       if "injected-parameters" in c.get("metadata", {}).get("tags", []))
        return index - injected
    except Exception:
        return index


def _keep_failed(tmp: Path, failed_copy: Path) -> Path | None:
    if not tmp.is_file():
        return None
    try:
        failed_copy.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp, failed_copy)
        return failed_copy
    except OSError:
        with contextlib.suppress(OSError):
            tmp.unlink()
        return None
