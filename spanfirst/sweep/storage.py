"""Where a sweep keeps its Tune and Train results: a local folder or a filesystem URI.

``--storage`` takes a local path (made absolute) or any URI pyarrow opens (``s3://bucket/prefix``,
``gs://...``, ``file:///...``); Ray Tune and Ray Train write there themselves, and the sweep reads
and writes its own few files (``sweep.json``, the trials table and plot) through the same pyarrow
filesystem, so ``--resume`` works the same on S3 as on a local disk.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from pathlib import Path
from typing import Any


COMPLETE = ".complete"  # written last into a folder uploaded whole (see Storage.upload_dir)


class StorageError(ValueError):
    """A storage location that cannot be opened; the message names the option."""


def is_uri(value: str) -> bool:
    return "://" in value


@dataclass(frozen=True)
class Storage:
    """A root location: ``root`` is what Ray gets (an absolute path or the URI as given)."""

    root: str

    @classmethod
    def parse(cls, value: str, option: str = "--storage") -> "Storage":
        value = str(value).strip()
        if not value:
            raise StorageError(f"{option}: empty; give a folder or a URI such as s3://bucket/prefix")
        if not is_uri(value):
            return cls(str(Path(value).expanduser().resolve()))
        storage = cls(value.rstrip("/"))
        try:
            storage.filesystem()
        except Exception as err:  # pyarrow: unknown scheme, missing credentials or region, ...
            raise StorageError(f"{option} {value}: cannot open this URI with pyarrow ({err})") from None
        return storage

    @property
    def is_local(self) -> bool:
        """A folder on this machine's disk (also ``file://``): other nodes see it only if it is shared."""
        return not is_uri(self.root) or self.root.startswith("file://")

    def filesystem(self) -> tuple[Any, str]:
        """The pyarrow filesystem and the root's path on it."""
        import pyarrow.fs

        fs, path = pyarrow.fs.FileSystem.from_uri(self.root)
        return fs, path.rstrip("/") or "/"

    def child(self, *parts: str) -> str:
        """A location under the root, in the root's own form (path or URI)."""
        if is_uri(self.root):
            scheme, rest = self.root.split("://", 1)
            base, sep, query = rest.partition("?")  # s3://b/p?endpoint_override=... keeps its query
            return f"{scheme}://{posixpath.join(base, *parts)}{sep}{query}"
        return str(Path(self.root, *parts))

    def _path(self, *parts: str) -> tuple[Any, str]:
        fs, root = self.filesystem()
        return fs, posixpath.join(root, *parts)

    def fs_path(self, *parts: str) -> str:
        """A location under the root as a path on this storage's filesystem (what Ray reports)."""
        return self._path(*parts)[1]

    def subdirs(self, *parts: str) -> list[str]:
        """Names of the folders right under ``parts`` (none when it does not exist)."""
        import pyarrow.fs

        fs, path = self._path(*parts)
        infos = fs.get_file_info(pyarrow.fs.FileSelector(path, allow_not_found=True))
        return sorted(i.base_name for i in infos if i.type == pyarrow.fs.FileType.Directory)

    def exists(self, *parts: str) -> bool:
        import pyarrow.fs

        fs, path = self._path(*parts)
        return fs.get_file_info(path).type != pyarrow.fs.FileType.NotFound

    def read_text(self, *parts: str) -> str:
        fs, path = self._path(*parts)
        with fs.open_input_stream(path) as f:
            return f.read().decode("utf-8")

    def write_bytes(self, data: bytes, *parts: str) -> None:
        fs, path = self._path(*parts)
        fs.create_dir(posixpath.dirname(path), recursive=True)
        with fs.open_output_stream(path) as f:
            f.write(data)

    def remove_dir(self, *parts: str) -> None:
        """Delete a folder and everything in it, if it exists."""
        if self.exists(*parts):
            fs, path = self._path(*parts)
            fs.delete_dir(path)

    def upload_dir(self, local: str, *parts: str) -> str:
        """Copy a local folder to ``parts`` (replacing it), then write :data:`COMPLETE` in it, last:
        object stores cannot rename a folder atomically, so a reader that needs the whole folder
        (a restart looking for its latest checkpoint) takes only folders with that marker. Returns
        the folder's path on this storage's filesystem."""
        import pyarrow.fs

        fs, path = self._path(*parts)
        if fs.get_file_info(path).type != pyarrow.fs.FileType.NotFound:
            fs.delete_dir(path)
        fs.create_dir(path, recursive=True)
        pyarrow.fs.copy_files(local, path, source_filesystem=pyarrow.fs.LocalFileSystem(), destination_filesystem=fs)
        with fs.open_output_stream(posixpath.join(path, COMPLETE)) as f:
            f.write(b"")
        return path

    def is_complete(self, *parts: str) -> bool:
        """A folder :meth:`upload_dir` finished writing."""
        return self.exists(*parts, COMPLETE)

    def remove_fs_dir(self, fs_path: str) -> None:
        """Delete a folder given by its path on this storage's filesystem (as :meth:`upload_dir` returns)."""
        import pyarrow.fs

        fs, _ = self.filesystem()
        if fs.get_file_info(fs_path).type != pyarrow.fs.FileType.NotFound:
            fs.delete_dir(fs_path)

    def subdirs_with(self, prefix: str, marker: str) -> list[str]:
        """Names of the folders right under the root that start with ``prefix`` and hold ``marker``."""
        import pyarrow.fs

        fs, root = self.filesystem()
        if fs.get_file_info(root).type != pyarrow.fs.FileType.Directory:
            return []
        infos = fs.get_file_info(pyarrow.fs.FileSelector(root, allow_not_found=True))
        names = [i.base_name for i in infos if i.type == pyarrow.fs.FileType.Directory and i.base_name.startswith(prefix)]
        return sorted(n for n in names if self.exists(n, marker))


def checkpoint_dir(storage: Storage, fs_path: str):  # noqa: ANN201 - a context manager yielding a local folder
    """A Train checkpoint reported at ``fs_path`` (a path on ``storage``'s filesystem) as a local
    folder: the folder itself on a local disk, a temporary download otherwise."""
    from ray.train import Checkpoint

    fs, _ = storage.filesystem()
    return Checkpoint(fs_path, filesystem=fs).as_directory()


def checkpoint_exists(storage: Storage, fs_path: str) -> bool:
    import pyarrow.fs

    fs, _ = storage.filesystem()
    return fs.get_file_info(fs_path).type == pyarrow.fs.FileType.Directory
