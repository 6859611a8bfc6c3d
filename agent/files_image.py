"""A repository's files kept as an image, so that a run copies only what changed since the last.

The first `agent fix` in a repository of `MIN_FILES` files or more (per sandbox image; smaller
ones are copied whole, which costs less, and leave no image behind) copies every file into its
container and commits it as `moe-agent-files:<key>` before the loop starts. Later runs start
from that image and copy only the files whose index entry (mode and blob id, which the
snapshot has already computed) differs from the manifest kept with it, deleting those gone: starting from it costs what
starting from any image costs, and removing the container throws away only what the run
changed, not tens of thousands of files. When more than a quarter of the files changed,
the run drops the image and the next one makes it afresh, so it stays one layer over the
sandbox image.

The manifest lives in the user's cache folder (`files-images/`, never in the repository, which
could plant one or make it a symlink), named by the image's key and id, so
two runs racing to make the image never pair one image with the other's manifest.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPOSITORY = "moe-agent-files"
LABEL = "moe-agent.files"  # value: the repository's root on the host
MIN_FILES = 2000  # below this, copying every file costs less than making and removing an image
STALE_FRACTION = 4  # more than 1/4 of the files changed: make the image afresh next time
STALE_MIN_FILES = 200  # below this many changes, never


@dataclass
class FilesImage:
    """Where a repository's files image is, and what it holds (`known` is None when there is none)."""

    tag: str
    root: Path
    cache_dir: Path
    known: dict[str, str] | None = None  # path -> "MODE SHA", as in `Snapshot.files`
    cached_id: str | None = None  # the image the tag pointed at when looked up

    @classmethod
    def find(cls, client: Any, image: str, root: Path, cache_dir: Path, variant: str = "") -> FilesImage:
        """The files image for `root` over `image`, if one exists with its manifest.

        `variant` names whatever else decides what the image holds: the workdir, and what
        the committed container carried into the image's config (a CA bundle's variables),
        so that no run inherits what it did not ask for.
        """
        from docker.errors import ImageNotFound

        base_id = client.images.get(image).id
        key = hashlib.sha256(f"{base_id}\0{root}\0{variant}".encode()).hexdigest()[:16]
        found = cls(tag=f"{REPOSITORY}:{key}", root=root, cache_dir=cache_dir)
        try:
            cached = client.images.get(found.tag)
        except ImageNotFound:
            return found
        found.cached_id = cached.id
        try:
            known = json.loads(found._manifest(cached.id).read_text())
            found.known = known if isinstance(known, dict) else None
        except (OSError, ValueError):
            pass
        return found

    @property
    def usable(self) -> bool:
        return self.known is not None

    def changes(self, states: dict[str, str]) -> tuple[list[str], list[str]]:
        """(files to copy, files to delete) to turn the image's files into `states`."""
        known = self.known or {}
        copy = [path for path, state in states.items() if known.get(path) != state]
        delete = [path for path in known if path not in states]
        return copy, delete

    def worth_keeping(self, total: int) -> bool:
        """Whether a tree of `total` files should be kept as an image for later runs."""
        return total >= MIN_FILES

    def stale(self, copy: list[str], delete: list[str], total: int) -> bool:
        return len(copy) + len(delete) > max(STALE_MIN_FILES, total // STALE_FRACTION)

    def save(self, container: Any, states: dict[str, str]) -> None:
        """Commit `container` (the files in, nothing run yet) as the image, and write its manifest."""
        repository, _, tag = self.tag.partition(":")
        image = container.commit(repository=repository, tag=tag, conf={"Labels": {LABEL: str(self.root)}})
        manifest = self._manifest(image.id)
        manifest.parent.mkdir(parents=True, exist_ok=True)
        temp = manifest.with_suffix(f".{os.getpid()}.tmp")
        temp.write_text(json.dumps(states, separators=(",", ":")))
        os.replace(temp, manifest)
        for old in self.cache_dir.glob(f"files-{self.key}-*.json"):
            if old != manifest:
                old.unlink(missing_ok=True)
        if self.cached_id and self.cached_id != image.id:  # the one it replaces, unless a container uses it
            self._remove(container.client, self.cached_id)

    def drop(self, client: Any) -> None:
        """Forget the image (the next run makes it afresh); an image still in use is left to Docker."""
        self._remove(client, self.tag)
        for old in self.cache_dir.glob(f"files-{self.key}-*.json"):
            old.unlink(missing_ok=True)

    @staticmethod
    def _remove(client: Any, image: str) -> None:
        from docker.errors import APIError

        try:
            client.images.remove(image)
        except APIError:
            pass

    @property
    def key(self) -> str:
        return self.tag.partition(":")[2]

    def _manifest(self, image_id: str) -> Path:
        return self.cache_dir / f"files-{self.key}-{image_id.removeprefix('sha256:')[:16]}.json"


def remove_images(client: Any, root: Path | None = None) -> list[str]:
    """Remove the files images (of repositories under `root`, or all); returns their tags."""
    from docker.errors import APIError

    removed = []
    for image in client.images.list(filters={"label": LABEL}):
        where = image.labels.get(LABEL, "")
        if root is not None and not Path(where).is_relative_to(root):
            continue
        for tag in image.tags:
            try:
                client.images.remove(tag)
                removed.append(tag)
            except APIError:
                pass
    return removed
