"""Putting feeds on disk: atomically, only when they changed, never half-written, and never
through a symbolic link.

A reader (nginx) sees either the old file or the new one, whole: the new bytes go to a
dot-prefixed temp file in the same folder (nginx is told to deny dotfiles), are flushed
and fsynced, then renamed over the old name, and the folder is fsynced so the rename
survives a power cut.

The folders below output_dir (and below state_dir, see ``state.py``) are ours: each is
opened with O_NOFOLLOW and every create, rename and delete happens relative to that
descriptor, so a folder swapped for a symbolic link, before or during a write, cannot
send our bytes (or our deletes) anywhere else. output_dir and state_dir themselves are
the operator's and may be links.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import re
import stat
import threading
from pathlib import Path

from escapia_ical.errors import PublishError
from escapia_ical.feeds.s3 import S3Output

log = logging.getLogger(__name__)

FEED_MODE = 0o644
DIR_MODE = 0o755
# Our temp files, and only ours: ".<name>.<pid>.<random>.tmp"
_TEMP_NAME = re.compile(r"\..+\.\d+\.[0-9a-f]{8}\.tmp")
_DIRECTORY = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC

# output_dirs whose feeds are objects on S3-compatible storage (config ``output: {backend:
# s3}``, feeds/s3.py): every function below sends a path below one of them there.
_object_stores: dict[Path, S3Output] = {}


def use_s3(output_dir: Path, output: S3Output | None) -> None:
    """Keep the feeds below ``output_dir`` in ``output`` (None: on disk again)."""
    if output is None:
        _object_stores.pop(output_dir, None)
    else:
        _object_stores[output_dir] = output


def _s3(path: Path) -> S3Output | None:
    if not _object_stores:
        return None
    return next((store for root, store in _object_stores.items() if path.is_relative_to(root)), None)


def feed_present(path: Path, names: set[str] | None = None) -> bool:
    """Whether the feed ``path`` exists (a file on disk, an object on S3). ``names``: what
    :func:`feed_names` listed of its folder, if the caller did (a stat per feed of 10,000,
    and a Path for each folder, were 0.08 s of a steady tick)."""
    if names is not None:
        return path.name in names
    store = _s3(path)
    return store.exists(path) if store is not None else path.is_file()


def feed_names(folder: Path) -> set[str] | None:
    """The names of the files in ``folder`` on disk (links to files too, as ``is_file`` sees
    them; none if there is no folder), for :func:`feed_present`; None if it cannot be listed,
    or is on S3 (whose folders are listed once anyway)."""
    if _s3(folder) is not None:
        return None
    try:
        with os.scandir(folder) as entries:
            return {e.name for e in entries if e.is_file()}
    except FileNotFoundError:
        return set()
    except OSError:
        return None


def feed_files(folder: Path) -> list[Path]:
    """The feed files (``*.ics``) directly in ``folder``, sorted; [] if it cannot be listed."""
    store = _s3(folder)
    if store is None:
        return [folder / name for name in sorted(feed_names(folder) or ()) if name.endswith(".ics")]
    try:
        found = store.files(folder)
    except PublishError:
        return []
    return sorted(p for p in found if p.name.endswith(".ics"))


def subfolders(folder: Path) -> list[Path]:
    """The folders directly in ``folder`` (never a symbolic link), sorted; [] if none."""
    store = _s3(folder)
    try:
        if store is not None:
            return store.folders(folder)
        # scandir's file types (no stat per entry: the folder holds 10,000 feeds)
        with os.scandir(folder) as entries:
            return sorted(folder / e.name for e in entries if e.is_dir(follow_symlinks=False))
    except (OSError, PublishError):
        return []


def publish_feed(path: Path, content: bytes, *, force: bool = False, root: Path | None = None,
                 unsynced: set[Path] | None = None, folders: OpenFolders | None = None) -> bool:
    """Write ``content`` to ``path`` atomically unless the file already holds it.

    ``path.parent`` (the account folder, or a profile folder inside it) is created if
    missing, as are the folders between it and ``root`` (output_dir; default: the account
    folder's parent); none of them may be a symbolic link, ``root`` may. Return True when
    the file was (re)written, False when it was left untouched (same bytes, same mtime, so
    HTTP validators stay valid). ``force`` rewrites anyway. Raise PublishError if a folder
    is a symbolic link or the folder or file cannot be written; the old file is then intact.

    With ``unsynced`` (a set) the folder is not fsynced here but added to the set, for
    :func:`sync_folders` to fsync once for every feed of the run: the file itself is always
    fsynced before its rename, so a power cut before that can only bring back the whole old
    file, which the next run compares and writes again.

    With ``folders`` (:class:`OpenFolders`), the folder is opened through it: once a run.
    """
    store = _s3(path)
    if store is not None:
        return store.publish(path, content, force=force)
    root = path.parent.parent if root is None else root
    try:
        folder = folders.open(path.parent, root) if folders is not None else _open_to_write(path.parent, root)
    except OSError as exc:
        raise PublishError(f"cannot write {path}: {exc.strerror or exc}") from exc
    try:
        if not force and read_at(folder, path.name) == content:
            return False
        try:
            write_at(folder, path.name, content, FEED_MODE, sync_folder=unsynced is None)
        except FileNotFoundError:
            if folders is None:
                raise
            # The folder opened for the run was deleted since: made and opened again.
            folders.forget(path.parent, root)
            folder = folders.open(path.parent, root)
            write_at(folder, path.name, content, FEED_MODE, sync_folder=unsynced is None)
        if unsynced is not None:
            unsynced.add(path.parent)
    except OSError as exc:
        raise PublishError(f"cannot write {path}: {exc.strerror or exc}") from exc
    finally:
        if folders is None:
            os.close(folder)
    return True


class OpenFolders:
    """The feed folders one account's run publishes into, each opened once (with
    :func:`open_folder`'s checks) and kept open until :meth:`close`, not opened and closed
    again for every feed: four of the eleven system calls a new feed cost (output_dir and
    its folder opened, both closed), 40,000 in a cold sync of 10,000 units, each of which
    also handed the GIL to a fetching thread.

    A feed is then written into the folder opened first, even if that folder is moved or
    replaced (by a link, which open_folder would refuse) later in the run; :func:`sync_folders`
    fsyncs that same folder. A folder deleted mid-run is made and opened again (a file cannot
    be created in a deleted folder). Not thread-safe: one account's feeds are published by
    one thread."""

    def __init__(self) -> None:
        self._open: dict[tuple[Path, Path], int] = {}

    def open(self, folder: Path, root: Path) -> int:
        """Return a descriptor of ``folder`` below ``root`` (made where missing), borrowed:
        it stays open until :meth:`close`. Raise as :func:`open_folder` does."""
        descriptor = self._open.get((folder, root))
        if descriptor is None:
            descriptor = self._open[folder, root] = _open_to_write(folder, root)
        return descriptor

    def held(self, folder: Path) -> int | None:
        """The descriptor open for ``folder`` (below any root), or None."""
        return next((fd for (path, _), fd in self._open.items() if path == folder), None)

    def forget(self, folder: Path, root: Path) -> None:
        descriptor = self._open.pop((folder, root), None)
        if descriptor is not None:
            with contextlib.suppress(OSError):
                os.close(descriptor)

    def close(self) -> None:
        for descriptor in self._open.values():
            with contextlib.suppress(OSError):
                os.close(descriptor)
        self._open.clear()


def _open_to_write(folder: Path, root: Path) -> int:
    try:
        return open_folder(folder, root, DIR_MODE)
    except FileNotFoundError:  # root is missing (made only then: a makedirs per feed costs 3 syscalls)
        os.makedirs(root, DIR_MODE, exist_ok=True)
        return open_folder(folder, root, DIR_MODE)


def remove_feed(path: Path, root: Path | None = None) -> bool:
    """Delete the feed at ``path``, never through a symbolically linked folder (below
    ``root``, output_dir, when given). Return False if there was none. Raise PublishError
    if a folder is a link or the file cannot be deleted."""
    store = _s3(path)
    if store is not None:
        return store.remove(path)
    folder = _open_existing(path.parent, f"cannot delete {path}", root)
    if folder is None:
        return False
    try:
        os.unlink(path.name, dir_fd=folder)
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise PublishError(f"cannot delete {path}: {exc.strerror or exc}") from exc
    finally:
        os.close(folder)
    return True


def open_folder(folder: Path, root: Path, mode: int) -> int:
    """Return a descriptor of ``folder``, creating it and the folders between ``root`` and
    it (with ``mode``) where missing.

    ``root`` must exist and is followed if it is a link (the operator's choice); each folder
    below it is opened with O_NOFOLLOW relative to its parent's descriptor. Raise
    PublishError naming the folder if one is a symbolic link, OSError if one cannot be
    made or opened.
    """
    descriptor = os.open(root, _DIRECTORY)
    here = root
    try:
        for part in folder.relative_to(root).parts:
            here = here / part
            try:
                try:
                    child = os.open(part, _DIRECTORY | os.O_NOFOLLOW, dir_fd=descriptor)
                except FileNotFoundError:  # (made only when missing: a mkdir per feed costs)
                    with contextlib.suppress(FileExistsError):
                        os.mkdir(part, mode, dir_fd=descriptor)
                    child = os.open(part, _DIRECTORY | os.O_NOFOLLOW, dir_fd=descriptor)
            except OSError as exc:
                raise _refusal(here, exc) or exc from None
            os.close(descriptor)
            descriptor = child
    except BaseException:
        os.close(descriptor)
        raise
    return descriptor


def write_at(folder: int, name: str, content: bytes, mode: int, *, sync_folder: bool = True) -> None:
    """Replace the file ``name`` in the folder open as ``folder`` with ``content``, with
    ``mode``, atomically and durably (temp file, fsync, rename, fsync of the folder unless
    ``sync_folder`` is false: then the caller fsyncs it). Raise OSError on failure, having
    removed the temp file."""
    pid = os.getpid()
    temp = f".{name}.{pid}.{_random_hex8(pid)}.tmp"
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        # The descriptor itself, not a file object: that would cost an fstat, an ioctl and an
        # lseek per feed (10,000 a cold sync) for a buffer one write does not need.
        descriptor = os.open(temp, flags, mode, dir_fd=folder)
        try:
            view = memoryview(content)
            while view:
                written = os.write(descriptor, view)
                if not written:  # (a regular file takes some, or raises: never loop on nothing)
                    raise OSError(errno.EIO, "the file took no bytes")
                view = view[written:]
            os.fchmod(descriptor, mode)  # whatever the umask
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
        os.replace(temp, name, src_dir_fd=folder, dst_dir_fd=folder)
        if sync_folder:
            os.fsync(folder)  # the rename survives a power cut
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp, dir_fd=folder)
        raise


class _Randomness(threading.local):
    """This thread's os.urandom bytes for temp names, and how many are used."""

    pid, pool, used = 0, b"", 0


_randomness = _Randomness()


def _random_hex8(pid: int) -> str:
    """8 hex digits from os.urandom (as secrets.token_hex(4)), drawn 4 KB at a time: one
    getrandom call a feed was one more system call and GIL handoff of ten. Drawn again in
    a forked child (``pid``), which must not repeat its parent's."""
    r = _randomness
    if r.pid != pid or r.used + 4 > len(r.pool):
        r.pid, r.pool, r.used = pid, os.urandom(4096), 0
    r.used += 4
    return r.pool[r.used - 4:r.used].hex()


def read_at(folder: int, name: str) -> bytes | None:
    """Return the bytes of the regular file ``name`` in the folder open as ``folder``, or
    None if there is none (a link, a FIFO or a device is not a feed of ours)."""
    try:
        descriptor = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=folder)
    except OSError:
        return None
    with os.fdopen(descriptor, "rb") as handle:
        try:
            return handle.read() if stat.S_ISREG(os.fstat(descriptor).st_mode) else None
        except OSError:
            return None


def sync_folders(folders: set[Path], root: Path, held: OpenFolders | None = None) -> None:
    """fsync each folder of ``folders`` (below ``root``, never through a link) once: the
    renames :func:`publish_feed` made with ``unsynced`` survive a power cut from then on.
    A folder ``held`` open is fsynced through that descriptor (the folder the renames went
    to, even if it was moved since). Raise PublishError if one cannot be opened or synced."""
    if _s3(root) is not None:  # (an object is durable once its PUT is answered)
        folders.clear()
        return
    for folder in sorted(folders):
        kept = held.held(folder) if held is not None else None
        descriptor = kept if kept is not None else _open_existing(folder, f"cannot sync {folder}", root)
        if descriptor is None:
            continue
        try:
            os.fsync(descriptor)
        except OSError as exc:
            raise PublishError(f"cannot sync {folder}: {exc.strerror or exc}") from exc
        finally:
            if kept is None:
                os.close(descriptor)
    folders.clear()


def clean_temp_files(folder: Path, root: Path | None = None) -> int:
    """Remove temp files a crashed run left in ``folder``; return how many.

    Only call this while holding the sync lock: then no writer of ours is active. Raise
    PublishError if ``folder`` (or a folder between ``root`` and it) is a symbolic link or
    cannot be listed.
    """
    if _s3(folder) is not None:  # no temp objects: a PUT is whole or nothing
        return 0
    descriptor = _open_existing(folder, f"cannot list {folder}", root)
    if descriptor is None:
        return 0
    removed = 0
    try:
        for entry in os.scandir(descriptor):
            if entry.name.endswith(".tmp") and _TEMP_NAME.fullmatch(entry.name) \
                    and entry.is_file(follow_symlinks=False):
                with contextlib.suppress(OSError):
                    os.unlink(entry.name, dir_fd=descriptor)
                    removed += 1
    except OSError as exc:
        raise PublishError(f"cannot list {folder}: {exc.strerror or exc}") from exc
    finally:
        os.close(descriptor)
    if removed:
        log.info("removed %d stale temp file(s) from %s", removed, folder)
    return removed


def current_bytes(path: Path) -> bytes | None:
    """Return the file's bytes, or None if it cannot be read."""
    store = _s3(path)
    if store is not None:
        return store.read(path)
    try:
        return path.read_bytes()
    except OSError:
        return None


def _open_existing(folder: Path, failure: str, root: Path | None = None) -> int | None:
    """Return a descriptor of the existing ``folder`` (not followed if a link, nor is any
    folder between ``root`` and it), or None if there is no such folder. Raise
    PublishError (``failure: why``) if it cannot be opened."""
    here = folder
    try:
        if root is None:
            return os.open(folder, _DIRECTORY | os.O_NOFOLLOW)
        descriptor = os.open(root, _DIRECTORY)
        here = root
        for part in folder.relative_to(root).parts:
            here = here / part
            try:
                child = os.open(part, _DIRECTORY | os.O_NOFOLLOW, dir_fd=descriptor)
            finally:
                os.close(descriptor)
            descriptor = child
        return descriptor
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise _refusal(here, exc) or PublishError(f"{failure}: {exc.strerror or exc}") from exc


def _refusal(folder: Path, exc: OSError) -> PublishError | None:
    """Return the error for a folder that O_NOFOLLOW refused because it is a link, else None."""
    if exc.errno == errno.ELOOP or (exc.errno == errno.ENOTDIR and folder.is_symlink()):
        return PublishError(f"{folder} is a symbolic link; refusing to write through it")
    return None
