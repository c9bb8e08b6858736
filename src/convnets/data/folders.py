"""Walking a folder for image files: the one rule for training's image folders and for
``predict`` given a folder.

Special files (named pipes, sockets, devices) are never listed: reading one can block
forever. A link to a file is followed wherever it leads: a folder of links to the files
of a larger data set is a common way to make a subset. A link to a folder is followed
only where it leads inside the data root (or the folder being walked) and not to that
folder or above it, and each real folder is walked once: a link to ``.`` or ``..`` adds
nothing, and a link out of the data set adds no foreign files. Hidden files and folders
(a leading ``.``) are skipped. A folder that cannot be listed is a DataError.
"""
from __future__ import annotations

import os

from ..errors import DataError
from .images import display_path

__all__ = ["IMG_EXTENSIONS", "is_image_name", "entries", "class_dirs", "image_files",
           "scan_classes", "require_folder"]

IMG_EXTENSIONS = (".jpg", ".jpeg", ".jpe", ".png", ".ppm", ".pgm", ".pbm", ".bmp", ".gif",
                  ".tif", ".tiff", ".webp")


def is_image_name(name: str) -> bool:
    return not name.startswith(".") and name.lower().endswith(IMG_EXTENSIONS)


def entries(directory: str) -> list[os.DirEntry]:
    """The entries of ``directory``, sorted by name."""
    try:
        with os.scandir(directory) as it:
            return sorted(it, key=lambda e: e.name)
    except OSError as err:
        raise DataError(f"cannot list {display_path(directory)}: "
                        f"{err.strerror or err}") from None


def class_dirs(root: str) -> list[str]:
    """The names of the folders in ``root`` that are not hidden (links included), sorted."""
    return [e.name for e in entries(root) if e.is_dir() and not e.name.startswith(".")]


def _within(path: str, roots: tuple[str, ...]) -> bool:
    return any(path == r or path.startswith(r.rstrip(os.sep) + os.sep) for r in roots)


def image_files(top: str, data_root: str | None = None) -> list[str]:
    """The regular image files under ``top``: its own files (sorted), then its subfolders'
    in turn, by the rule of the module docstring; ``data_root`` (default: ``top``) is the
    folder that links may lead into."""
    roots = (os.path.realpath(data_root or top), os.path.realpath(top))
    return _walk(top, roots, set())


def _walk(top: str, roots: tuple[str, str], seen: set[str]) -> list[str]:
    seen.add(os.path.realpath(top))
    listed = entries(top)
    files = [e.path for e in listed if is_image_name(e.name) and e.is_file()]
    for e in listed:
        if e.name.startswith(".") or not e.is_dir():
            continue
        real = os.path.realpath(e.path)
        if real in seen:
            continue
        if e.is_symlink() and (not _within(real, roots) or _within(roots[1], (real,))):
            continue
        files += _walk(e.path, roots, seen)
    return files


def scan_classes(root: str, classes: list[str], what: str, data_root: str) -> list[tuple[str, int]]:
    """(path, label) for every image file under ``root/<class>/`` (recursively, sorted);
    ``classes`` are the training classes, ``what`` names the data set in errors."""
    index = {c: k for k, c in enumerate(classes)}
    present = class_dirs(root)
    unknown = [c for c in present if c not in index]
    if unknown:
        raise DataError(f"{what}: class folder {display_path(os.path.join(root, unknown[0]))} "
                        f"is not among the {len(classes)} training classes")
    samples = []
    for c in present:
        samples += [(path, index[c]) for path in image_files(os.path.join(root, c), data_root)]
    return samples


def require_folder(root: str, where: str, expected: str) -> None:
    """A DataError unless ``root`` is a folder, saying whether it is missing or a file;
    ``where`` names the data set, ``expected`` says what it should hold."""
    if os.path.isdir(root):
        return
    what = "is a file, not a folder" if os.path.exists(root) else "no such directory"
    raise DataError(f"{where}: {what}; {expected}")
