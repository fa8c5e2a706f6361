"""Build a book from one run's executed notebooks, without touching the committed reference in book/.

``python -m snnlib.study run --profile smoke`` writes the executed notebooks to ``runs/smoke/book/``;
:func:`assemble_book` copies the book's configuration (``_config.yml``, ``_toc.yml``, symlinks resolved), its
Markdown pages and other non-notebook files, its support folders (``_ext/`` local Sphinx extensions, ``_mathjax/``) and the pages of the table of
contents that the runner does not execute (e.g. the appendix) next to them; :func:`build_book` runs
``jupyter-book build`` there (notebooks are not re-executed) and returns the path of ``_build/html/index.html``.
"""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import List, Union

from .profiles import NOTEBOOKS

__all__ = ["BookError", "toc_files", "assemble_book", "build_book"]


#: The book's support folders copied with it: local Sphinx extensions (``_config.yml``: ``local_extensions``) and
#: the MathJax served with the site (``html_extra_path``).
SUPPORT_FOLDERS = ("_ext", "_mathjax")


class BookError(ValueError):
    """The book cannot be assembled (missing folder, table of contents or executed notebook)."""


def toc_files(toc_path: Union[str, Path]) -> List[str]:
    """Every ``file`` of a Jupyter Book table of contents (root, parts, chapters, sections), in order."""
    import yaml

    toc_path = Path(toc_path)
    try:
        toc = yaml.safe_load(toc_path.read_text())
    except OSError as e:
        raise BookError(f"cannot read the table of contents {toc_path} ({e.strerror})") from None
    if not isinstance(toc, dict) or "root" not in toc:
        raise BookError(f"{toc_path}: not a Jupyter Book table of contents (no 'root')")
    out = [str(toc["root"])]

    def walk(entries):
        for e in entries or []:
            if isinstance(e, dict):
                if "file" in e:
                    out.append(str(e["file"]))
                walk(e.get("chapters"))
                walk(e.get("sections"))

    for part in toc.get("parts", []) or []:
        walk(part.get("chapters"))
    walk(toc.get("chapters"))
    return out


def _page(folder: Path, name: str) -> Path:
    """The file of toc entry ``name`` in ``folder`` (.ipynb or .md; the entry may carry its suffix)."""
    p = folder / name
    if p.suffix in (".ipynb", ".md") and p.is_file():
        return p
    for suffix in (".ipynb", ".md"):
        q = folder / f"{name}{suffix}"
        if q.is_file():
            return q
    return folder / f"{name}.ipynb"


def assemble_book(book_dir: Union[str, Path], run_book_dir: Union[str, Path], profile: str = "smoke") -> Path:
    """Make ``run_book_dir`` (a run's executed notebooks) a buildable book; returns it.

    Copies from ``book_dir`` every file that is not a notebook (configuration, Markdown, bibliography, ...), the
    support folders (:data:`SUPPORT_FOLDERS`) and every notebook of the table of contents that the runner does
    not execute.  Raises :class:`BookError` naming the executed notebooks that are missing (with the command that
    makes them).  ``book_dir`` is only read.
    """
    book_dir, run_book_dir = Path(book_dir).resolve(), Path(run_book_dir).resolve()
    if not book_dir.is_dir():
        raise BookError(f"book folder {book_dir} does not exist (--book-dir)")
    if run_book_dir == book_dir:
        raise BookError(f"{run_book_dir} is the book folder itself: build the published book with "
                        "jupyter-book build book")
    if not run_book_dir.is_dir():
        raise BookError(f"no executed notebooks in {run_book_dir}: run "
                        f"python -m snnlib.study run --profile {profile} first (or give --from DIR)")
    pages = toc_files(book_dir / "_toc.yml")
    executed = [p for p in pages if Path(p).stem in NOTEBOOKS]
    missing = [p for p in executed if not _page(run_book_dir, p).is_file()]
    if missing:
        raise BookError(f"{run_book_dir} lacks the executed notebook(s) {missing}: run python -m snnlib.study run "
                        f"--profile {profile} --only {','.join(Path(m).stem for m in missing)} (with the same "
                        "--out-dir), or give --from DIR")
    for src in sorted(book_dir.iterdir()):
        if src.name.startswith((".", "_build")) or src.suffix == ".ipynb" or not src.is_file():
            continue
        shutil.copyfile(src, run_book_dir / src.name)          # follows symlinks (_config.yml, _toc.yml)
    for folder in SUPPORT_FOLDERS:                             # what _config.yml loads or serves from book/
        if (book_dir / folder).is_dir():
            shutil.copytree(book_dir / folder, run_book_dir / folder, dirs_exist_ok=True,
                            ignore=shutil.ignore_patterns("__pycache__", ".*"))
    for page in pages:
        if Path(page).stem in NOTEBOOKS:
            continue
        src = _page(book_dir, page)
        if src.suffix == ".ipynb" and src.is_file():
            shutil.copyfile(src, run_book_dir / src.name)
    return run_book_dir


def build_book(folder: Union[str, Path], strict: bool = False) -> Path:
    """``jupyter-book build`` ``folder`` (``strict``: ``--all -W -n --keep-going``); returns index.html's path.

    Raises RuntimeError with the builder's last output lines when the build fails.
    """
    folder = Path(folder).resolve()
    jb = shutil.which("jupyter-book", path=str(Path(sys.executable).parent)) or shutil.which("jupyter-book")
    if jb is None:
        raise RuntimeError("jupyter-book is not installed: pip install -e '.[book]' (or jupyter-book<2)")
    cmd = [jb, "build", *(["--all", "-W", "-n", "--keep-going"] if strict else []), str(folder)]
    proc = subprocess.run(cmd, cwd=folder.parent, capture_output=True, text=True)
    index = folder / "_build" / "html" / "index.html"
    if proc.returncode != 0 or not index.is_file():
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-30:])
        raise RuntimeError(f"jupyter-book build {folder} failed (exit {proc.returncode}):\n{tail}")
    return index
