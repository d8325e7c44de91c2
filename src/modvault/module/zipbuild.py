"""Building a module zip from a file tree (mirrors golang.org/x/mod/zip Create / CreateFromDir and
the go command's cmd/go/internal/modfetch coderepo.Zip).

:func:`select_files` decides which files of a module's tree go into its zip, as x/mod
``zip.checkFiles`` does:

- files in vendored packages are omitted (``isVendoredPackage``: anything below ``vendor/<dir>/``;
  with go >= 1.24 in the root go.mod also ``vendor/modules.txt``, and the nested-"vendor" offset
  bug of golang.org/issue/37397 is fixed — older modules keep the bug so their hashes stay stable);
- files in nested modules (a subdirectory with a regular file whose name folds to "go.mod") are
  omitted, and so is ``.hg_archival.txt`` at the root, symbolic links and other irregular files;
- a path that is not clean, not relative or fails ``module.CheckFilePath``, a "go.mod" that is not
  lower case, two paths equal under case folding, a go.mod or LICENSE over 16 MiB, and a total
  over 500 MiB are errors (:class:`ZipError`): the module cannot be zipped.

With ``from_directory=True`` the extra rules of ``CreateFromDir``'s directory walk apply too
(``.bzr``, ``.git``, ``.hg`` and ``.svn`` directories and directories holding any non-directory
"go.mod" are skipped whole). Without it the entries are treated as the go command treats the files
of a ``git archive`` (coderepo.Zip → zip.Create), where no such directories are special.

``root_license`` is coderepo.Zip's rule for a module in a subdirectory of its repository: the
repository's root LICENSE is added when the module has no file named LICENSE.

:func:`write_zip` writes the kept files under ``<module>@<version>/``, deflated, in byte order of
their paths, with fixed timestamps, so equal inputs give equal bytes.
"""

from __future__ import annotations

import enum
import functools
import io
import os
import stat
import zipfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import BinaryIO, NamedTuple

from modvault.module import modfile
from modvault.module import path as modpath
from modvault.module.errors import ModuleError, ZipError
from modvault.module.zipcheck import (
    MAX_GO_MOD,
    MAX_LICENSE,
    MAX_ZIP_FILE,
    CollisionChecker,
    ZipReader,
    equal_fold,
    go_path_clean,
)

__all__ = [
    "CheckedFiles",
    "FileEntry",
    "FileKind",
    "Selection",
    "check_files",
    "create_zip",
    "entries_from_archive",
    "entries_from_dir",
    "select_files",
    "write_zip",
]

_CHUNK = 64 << 10
_VCS_DIRS = frozenset([".bzr", ".git", ".hg", ".svn"])
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)

# x/mod zip's reasons, word for word.
_OMIT_VCS = "directory is a version control repository"
_OMIT_VENDORED = "file is in vendor directory"
_OMIT_SUBMODULE_FILE = "file is in another module"
_OMIT_SUBMODULE_DIR = "directory is in another module"
_OMIT_HG_ARCHIVAL = "file is inserted by 'hg archive' and is always omitted"
_OMIT_SYMLINK = "file is a symbolic link"
_OMIT_NOT_REGULAR = "not a regular file"


class FileKind(enum.Enum):
    REGULAR = "regular"
    SYMLINK = "symlink"
    DIRECTORY = "directory"
    OTHER = "other"  # devices, pipes, sockets


def _not_a_file(path: str) -> BinaryIO:
    raise ZipError(f"{path}: not a regular file")


@dataclass(frozen=True, slots=True)
class FileEntry:
    """One file of a module tree.

    ``path`` is relative to the module root, "/"-separated; ``size`` is the size in bytes of a
    regular file (what the zip will declare); ``open`` returns a fresh stream of its content.
    """

    path: str
    kind: FileKind
    size: int
    open: Callable[[], BinaryIO]

    @classmethod
    def from_bytes(cls, path: str, data: bytes) -> FileEntry:
        """A regular file with in-memory content."""
        return cls(path, FileKind.REGULAR, len(data), lambda: io.BytesIO(data))

    @classmethod
    def special(cls, path: str, kind: FileKind) -> FileEntry:
        """A directory, symbolic link or other irregular file (it cannot be opened)."""
        return cls(path, kind, 0, functools.partial(_not_a_file, path))


class Selection(NamedTuple):
    """What :func:`select_files` keeps, and what it omits with x/mod's reason for each."""

    kept: list[FileEntry]
    excluded: list[tuple[str, str]]


@dataclass(frozen=True, slots=True)
class CheckedFiles:
    """x/mod zip.CheckedFiles: every input file is kept, excluded (omitted) or invalid."""

    kept: list[FileEntry]
    excluded: list[tuple[str, str]]  # (path, reason): left out of the zip, not an error
    invalid: list[tuple[str, str]]  # (path, reason): the module cannot be zipped
    size_error: str | None  # the total size is over the limit

    def error(self) -> ZipError | None:
        """CheckedFiles.Err as one line: the size error first, then the first invalid file."""
        if self.size_error is not None:
            return ZipError(self.size_error)
        if self.invalid:
            p, reason = self.invalid[0]
            more = f" (and {len(self.invalid) - 1} more)" if len(self.invalid) > 1 else ""
            return ZipError(f"{p}: {reason}{more}")
        return None


# --- listing trees ----------------------------------------------------------------------------


def _open_file(p: str) -> BinaryIO:
    return open(p, "rb")


def entries_from_dir(root: str | os.PathLike[str], *, skip_vcs_dirs: bool = True) -> list[FileEntry]:
    """Every entry below ``root`` (not following symbolic links), sorted by path.

    Directories are listed as :attr:`FileKind.DIRECTORY` entries. With ``skip_vcs_dirs`` the
    contents of ``.bzr``/``.git``/``.hg``/``.svn`` directories are not listed (the directories
    themselves are), as CreateFromDir's walk does not descend into them.
    """
    out: list[FileEntry] = []

    def walk(abs_dir: str, rel_dir: str) -> None:
        with os.scandir(abs_dir) as it:
            items = sorted(it, key=lambda d: d.name)
        for d in items:
            rel = f"{rel_dir}/{d.name}" if rel_dir else d.name
            st = d.stat(follow_symlinks=False)
            if stat.S_ISDIR(st.st_mode):
                out.append(FileEntry.special(rel, FileKind.DIRECTORY))
                if not (skip_vcs_dirs and _walk_skips_vcs_dir(rel)):
                    walk(d.path, rel)
            elif stat.S_ISREG(st.st_mode):
                out.append(
                    FileEntry(rel, FileKind.REGULAR, st.st_size, functools.partial(_open_file, d.path))
                )
            elif stat.S_ISLNK(st.st_mode):
                out.append(FileEntry.special(rel, FileKind.SYMLINK))
            else:
                out.append(FileEntry.special(rel, FileKind.OTHER))

    walk(os.fspath(root), "")
    return out


def _walk_skips_vcs_dir(rel: str) -> bool:
    # A VCS directory inside a vendored package is not skipped by CreateFromDir's walk (the
    # vendor rule comes first); the Go version decides which vendor rule applies, so only a
    # directory that no rule treats as vendored is certain to be skipped.
    return (
        rel.rsplit("/", 1)[-1] in _VCS_DIRS
        and not _is_vendored_package(rel, False)
        and not _is_vendored_package(rel, True)
    )


def _archive_kind(creator: int, attr: int, is_dir: bool) -> FileKind:
    # archive/zip FileHeader.Mode: Unix creators (3, macOS 19) keep st_mode in the high 16 bits;
    # FAT/NTFS/VFAT (0, 11, 14) only mark directories; a trailing "/" also means a directory.
    if is_dir:
        return FileKind.DIRECTORY
    if creator in (3, 19):
        fmt = stat.S_IFMT(attr >> 16)
        if fmt == stat.S_IFDIR:
            return FileKind.DIRECTORY
        if fmt == stat.S_IFLNK:
            return FileKind.SYMLINK
        if fmt not in (0, stat.S_IFREG):
            return FileKind.OTHER
    elif creator in (0, 11, 14) and attr & 0x10:
        return FileKind.DIRECTORY
    return FileKind.REGULAR


def entries_from_archive(reader: ZipReader, subdir: str = "") -> list[FileEntry]:
    """The files of a ``git archive --format=zip --prefix=<p>/`` zip, as coderepo.Zip reads them.

    Every name must share one top-level directory; names outside ``subdir`` (the module's
    directory in the repository, "" for the root) and directory entries are dropped, and paths
    become relative to ``subdir``. Contents are read (and verified) from ``reader`` on open.
    """
    subdir = subdir.strip("/")
    if subdir:
        subdir += "/"
    top = ""
    out: list[FileEntry] = []
    for entry in reader.entries:
        if top == "":
            i = entry.name.find("/")
            if i < 0:
                raise ZipError("missing top-level directory prefix")
            top = entry.name[: i + 1]
        if not entry.name.startswith(top):
            raise ZipError("zip file contains more than one top-level directory")
        name = entry.name[len(top) :]
        if not name.startswith(subdir):
            continue
        name = name[len(subdir) :]
        if name == "" or name.endswith("/"):
            continue
        kind = _archive_kind(entry.creator_system, entry.external_attr, entry.is_dir)
        if kind is FileKind.REGULAR:
            out.append(
                FileEntry(name, kind, entry.uncompressed_size, functools.partial(reader.open, entry))
            )
        else:
            out.append(FileEntry.special(name, kind))
    return out


# --- selecting --------------------------------------------------------------------------------


def _gover_lang_at_least_1_24(go_version: str | None) -> bool:
    """``go/version.Compare(version.Lang("go"+v), "go1.24") >= 0`` (internal/gover rules)."""
    if go_version is None:
        return False

    def cut_int(x: str) -> tuple[str, str] | None:
        i = 0
        while i < len(x) and "0" <= x[i] <= "9":
            i += 1
        if i == 0 or (x[0] == "0" and i != 1):
            return None
        return x[:i], x[i:]

    major = cut_int(go_version)
    if major is None:
        return False
    maj, rest = major
    minor = "0"
    if rest != "":
        if rest[0] != ".":
            return False
        cut = cut_int(rest[1:])
        if cut is None:
            return False
        minor, rest = cut
        if rest.startswith("."):
            patch = cut_int(rest[1:])
            if patch is None or patch[1] != "":
                return False
        elif rest != "":
            i = 0
            while i < len(rest) and not "0" <= rest[i] <= "9":
                if not "a" <= rest[i] <= "z":
                    return False
                i += 1
            if i == 0:
                return False
            if rest[i:] != "":
                pre = cut_int(rest[i:])
                if pre is None or pre[1] != "":
                    return False
    return (int(maj), int(minor)) >= (1, 24)


def _is_vendored_package(name: str, new_rules: bool) -> bool:
    # x/mod zip.isVendoredPackage: inside a package below a "vendor" directory.
    if new_rules and name == "vendor/modules.txt":
        return True
    if name.startswith("vendor/"):
        i = len("vendor/")
    else:
        j = name.find("/vendor/")
        if j < 0:
            return False
        # Before go 1.24 the offset was computed wrongly (golang.org/issue/37397); modules
        # declaring an older go version keep the old answer so their checksums do not change.
        i = j + len("/vendor/") if new_rules else len("/vendor/")
    return "/" in name[i:]


def _root_go_version(files: Sequence[FileEntry]) -> str | None:
    # x/mod zip.checkFiles reads the Go version from a regular "go.mod" at the root.
    version: str | None = None
    for f in files:
        if f.path == "go.mod" and f.kind is FileKind.REGULAR:
            with f.open() as fp:
                data = fp.read(MAX_GO_MOD + 1)
            version = modfile.parse_go_version(data) if len(data) <= MAX_GO_MOD else None
    return version


def _split(p: str) -> tuple[str, str]:
    # Go's path.Split: the directory keeps its trailing slash.
    i = p.rfind("/")
    return p[: i + 1], p[i + 1 :]


def _walk_rules(
    entries: Sequence[FileEntry], new_rules: bool
) -> tuple[list[FileEntry], list[tuple[str, str]]]:
    """The filtering of x/mod zip.listFilesInDir (CreateFromDir's walk)."""
    non_dirs = {e.path for e in entries if e.kind is not FileKind.DIRECTORY}
    kept: list[FileEntry] = []
    excluded: list[tuple[str, str]] = []
    verdict: dict[str, bool] = {}  # directory -> whether the walk skips it

    def skipped(d: str) -> bool:
        if d not in verdict:
            base = d.rsplit("/", 1)[-1]
            reason: str | None = None
            if _is_vendored_package(d, new_rules):
                excluded.append((d, _OMIT_VENDORED))  # reported, but walked into
            elif base in _VCS_DIRS:
                reason = _OMIT_VCS
            elif d + "/go.mod" in non_dirs:
                reason = _OMIT_SUBMODULE_DIR
            if reason is not None:
                excluded.append((d, reason))
            verdict[d] = reason is not None
        return verdict[d]

    for e in entries:
        parts = e.path.split("/")
        dirs = ["/".join(parts[:k]) for k in range(1, len(parts))]
        if e.kind is FileKind.DIRECTORY:
            dirs.append(e.path)
        for d in dirs:
            if skipped(d):
                break
        else:
            if e.kind is FileKind.DIRECTORY:
                continue
            if _is_vendored_package(e.path, new_rules):
                excluded.append((e.path, _OMIT_VENDORED))
            elif e.kind is not FileKind.REGULAR:
                excluded.append((e.path, _OMIT_NOT_REGULAR))
            else:
                kept.append(e)
    return kept, excluded


def select_files(
    entries: Iterable[FileEntry],
    *,
    root_license: FileEntry | None = None,
    from_directory: bool = False,
) -> Selection:
    """Which files belong in the module zip (x/mod zip.checkFiles); see the module docstring.

    ``entries`` are the module's files with paths relative to the module root (directory
    entries are only used with ``from_directory``). ``root_license`` is the repository root's
    LICENSE for a module in a subdirectory: it is added as "LICENSE" (a regular file, whatever
    its kind) unless an entry named LICENSE exists. Raises :class:`ZipError` if the files cannot
    form a module zip.
    """
    checked = check_files(entries, root_license=root_license, from_directory=from_directory)
    error = checked.error()
    if error is not None:
        raise error
    return Selection(checked.kept, checked.excluded)


def check_files(
    entries: Iterable[FileEntry],
    *,
    root_license: FileEntry | None = None,
    from_directory: bool = False,
) -> CheckedFiles:
    """Like :func:`select_files`, but reports invalid files instead of raising (x/mod CheckFiles,
    or CheckDir with ``from_directory``)."""
    entries = list(entries)
    files = [e for e in entries if e.kind is not FileKind.DIRECTORY]
    new_rules = _gover_lang_at_least_1_24(_root_go_version(files))
    excluded: list[tuple[str, str]] = []
    if from_directory:
        files, excluded = _walk_rules(entries, new_rules)
    if root_license is not None and not any(
        e.path == "LICENSE" for e in entries if e.kind is not FileKind.DIRECTORY
    ):
        files.append(FileEntry("LICENSE", FileKind.REGULAR, root_license.size, root_license.open))

    # Directories holding a regular go.mod (other than the root) are other modules.
    have_gomod = set()
    for f in files:
        d, base = _split(f.path)
        if equal_fold(base, "go.mod") and f.kind is FileKind.REGULAR:
            have_gomod.add(d)

    def in_submodule(p: str) -> bool:
        while True:
            d, _ = _split(p)
            if d == "":
                return False
            if d in have_gomod:
                return True
            p = d[:-1]

    invalid: list[tuple[str, str]] = []
    error_paths: set[str] = set()

    def add_error(p: str, omitted: bool, reason: str) -> None:
        if p in error_paths:
            return
        error_paths.add(p)
        (excluded if omitted else invalid).append((p, reason))

    kept: list[FileEntry] = []
    collisions = CollisionChecker()
    budget = MAX_ZIP_FILE
    size_error: str | None = None
    for f in files:
        p = f.path
        if go_path_clean(p) != p:
            add_error(p, False, "file path is not clean")
            continue
        if p.startswith("/"):
            add_error(p, False, "file path is not relative")
            continue
        if _is_vendored_package(p, new_rules):
            add_error(p, True, _OMIT_VENDORED)
            continue
        if in_submodule(p):
            add_error(p, True, _OMIT_SUBMODULE_FILE)
            continue
        if p == ".hg_archival.txt":
            add_error(p, True, _OMIT_HG_ARCHIVAL)
            continue
        try:
            modpath.check_file_path(p)
        except ModuleError as e:
            add_error(p, False, str(e))
            continue
        if p.lower() == "go.mod" and p != "go.mod":
            add_error(p, False, "go.mod files must have lowercase names")
            continue
        collision = collisions.check(p, False)
        if collision is not None:
            add_error(p, False, collision)
            continue
        if f.kind is FileKind.SYMLINK:
            add_error(p, True, _OMIT_SYMLINK)
            continue
        if f.kind is not FileKind.REGULAR:
            add_error(p, True, _OMIT_NOT_REGULAR)
            continue
        if 0 <= f.size <= budget:
            budget -= f.size
        elif size_error is None:
            size_error = f"module source tree too large (max size is {MAX_ZIP_FILE} bytes)"
        if p == "go.mod" and f.size > MAX_GO_MOD:
            add_error(p, False, f"go.mod file too large (max size is {MAX_GO_MOD} bytes)")
            continue
        if p == "LICENSE" and f.size > MAX_LICENSE:
            add_error(p, False, f"LICENSE file too large (max size is {MAX_LICENSE} bytes)")
            continue
        kept.append(f)

    return CheckedFiles(kept, excluded, invalid, size_error)


# --- writing ----------------------------------------------------------------------------------


def write_zip(
    out: BinaryIO, module_path: str, version: str, kept_entries: Iterable[FileEntry]
) -> None:
    """Write the module zip of ``kept_entries`` (from :func:`select_files`) to ``out``.

    Like x/mod zip.Create: the module path and version must be valid (and the version
    canonical), and a file that turns out larger than its declared size is an error. ``out``
    need not be seekable.
    """
    try:
        modpath.check(module_path, version)
    except ModuleError as e:
        raise ZipError(str(e)) from None
    prefix = f"{module_path}@{version}/"
    files = sorted(kept_entries, key=lambda e: e.path.encode("utf-8", "surrogateescape"))
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for f in files:
            if f.kind is not FileKind.REGULAR:
                raise ZipError(f"{f.path}: not a regular file")
            info = zipfile.ZipInfo(prefix + f.path, date_time=_ZIP_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.create_system = 3
            info.external_attr = (stat.S_IFREG | 0o644) << 16
            info.file_size = f.size
            copied = 0
            with f.open() as src, zf.open(info, "w") as dst:
                while True:
                    chunk = src.read(min(_CHUNK, f.size + 1 - copied))
                    if not chunk:
                        break
                    copied += len(chunk)
                    if copied > f.size:
                        raise ZipError(f"file {modpath.go_quote(f.path)} is larger than declared size")
                    dst.write(chunk)


def create_zip(
    out: BinaryIO,
    module_path: str,
    version: str,
    entries: Iterable[FileEntry],
    *,
    root_license: FileEntry | None = None,
    from_directory: bool = False,
) -> Selection:
    """:func:`select_files` then :func:`write_zip`; returns the selection."""
    selection = select_files(entries, root_license=root_license, from_directory=from_directory)
    write_zip(out, module_path, version, selection.kept)
    return selection
