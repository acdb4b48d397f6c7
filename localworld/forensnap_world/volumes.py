"""The bytes behind volumes and snapshots.

moto's EC2 volumes and snapshots carry no data. The seed registers a raw image for a volume;
a snapshot made from that volume (CreateSnapshot/CreateSnapshots) takes the volume's content at
that moment, and CopySnapshot hands the source's content to the copy. The EBS direct APIs read
snapshots through this registry. An image shorter than its volume reads as zero-padded.
"""

from __future__ import annotations

import hashlib
import os
import threading
from dataclasses import dataclass

from . import BLOCK_SIZE

GIB = 1 << 30


@dataclass(frozen=True)
class Content:
    """A raw image seen as a volume of ``size_bytes`` (zero-padded past the image's end)."""

    path: str
    image_bytes: int
    size_bytes: int
    blocks: tuple[int, ...]
    """Indexes of the 512 KiB blocks that hold at least one non-zero byte, ascending."""

    @property
    def size_gib(self) -> int:
        return self.size_bytes // GIB

    def read_block(self, index: int) -> bytes:
        start = index * BLOCK_SIZE
        if start >= self.size_bytes:
            raise IndexError(index)
        data = b""
        if start < self.image_bytes:
            with open(self.path, "rb") as handle:
                handle.seek(start)
                data = handle.read(min(BLOCK_SIZE, self.image_bytes - start))
        return data + bytes(BLOCK_SIZE - len(data))


def load(path: str, size_gib: int | None) -> Content:
    """Scan an image once: its data blocks, and its size as a volume (GiB, rounded up)."""
    path = os.path.abspath(path)
    image_bytes = os.path.getsize(path)
    min_gib = max(1, -(-image_bytes // GIB))
    if size_gib is None:
        size_gib = min_gib
    if size_gib < min_gib:
        raise ValueError(f"image {path} ({image_bytes} bytes) does not fit in {size_gib} GiB")
    blocks = []
    with open(path, "rb") as handle:
        index = 0
        while True:
            chunk = handle.read(BLOCK_SIZE)
            if not chunk:
                break
            if chunk.count(0) != len(chunk):
                blocks.append(index)
            index += 1
    return Content(path, image_bytes, size_gib * GIB, tuple(blocks))


def padded_sha256(content: Content) -> str:
    """SHA-256 of the image zero-padded to the volume size: what ``sha256sum`` of the disk gives."""
    digest = hashlib.sha256()
    with open(content.path, "rb") as handle:
        while chunk := handle.read(8 * BLOCK_SIZE):
            digest.update(chunk)
    remaining = content.size_bytes - content.image_bytes
    zeros = bytes(8 * BLOCK_SIZE)
    while remaining > 0:
        step = min(remaining, len(zeros))
        digest.update(zeros[:step])
        remaining -= step
    return digest.hexdigest()


class Registry:
    """volume id -> content, snapshot id -> content; filled by the seed and the EC2 patches."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.volumes: dict[str, Content] = {}
        self.snapshots: dict[str, Content] = {}

    def set_volume(self, volume_id: str, content: Content) -> None:
        with self._lock:
            self.volumes[volume_id] = content

    def snapshot_taken(self, snapshot_id: str, volume_id: str) -> None:
        with self._lock:
            content = self.volumes.get(volume_id)
            if content is not None:
                self.snapshots[snapshot_id] = content

    def snapshot_copied(self, copy_id: str, source_id: str) -> None:
        with self._lock:
            content = self.snapshots.get(source_id)
            if content is not None:
                self.snapshots[copy_id] = content

    def snapshot(self, snapshot_id: str) -> Content | None:
        with self._lock:
            return self.snapshots.get(snapshot_id)

    def clear(self) -> None:
        with self._lock:
            self.volumes.clear()
            self.snapshots.clear()


REGISTRY = Registry()
