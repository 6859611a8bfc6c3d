"""Docker fixtures shared by every test directory (loaded with `-p` from pyproject).

Docker tests never skip: when the engine or the image is missing, they fail, because
CI must prove the sandbox works.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from sandbox.docker import DockerSandbox, SandboxSpec, connect, start_sandbox
from sandbox.images import ImageRecipe, build_image


@pytest.fixture(scope="session")
def docker_client() -> Any:
    return connect()


@pytest.fixture(scope="session")
def sandbox_image(docker_client: Any) -> str:
    """The default sandbox image; built offline once if this machine lacks it."""
    return build_image(ImageRecipe(), docker_client, offline=True)


@pytest.fixture
def make_sandbox(docker_client: Any, sandbox_image: str) -> Iterator[Callable[..., DockerSandbox]]:
    boxes: list[DockerSandbox] = []

    def make(**overrides: Any) -> DockerSandbox:
        spec = SandboxSpec(**({"image": sandbox_image, "run_id": "pytest"} | overrides))
        box = start_sandbox(spec, docker_client)
        boxes.append(box)
        return box

    yield make
    for box in boxes:
        box.close()


@pytest.fixture
def box(make_sandbox: Callable[..., DockerSandbox]) -> DockerSandbox:
    return make_sandbox()


@pytest.fixture
def files_images_removed(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[None]:
    """A docker test's runs of `agent fix` may keep a repository below `tmp_path` as a files image
    (`agent.files_image`): removed with the test. Nothing to do for a test without the docker marker."""
    client = request.getfixturevalue("docker_client") if request.node.get_closest_marker("docker") else None
    yield
    if client is not None:
        from agent.files_image import remove_images

        remove_images(client, tmp_path)
