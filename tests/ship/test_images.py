"""The two Dockerfiles, checked without a Docker engine: lint, build context, users, entrypoints."""

from __future__ import annotations

import fnmatch
import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from dockerfile_parse import DockerfileParser
from dockerfile_parse.util import WordSplitter
from hydrophone_operator.settings import OperatorSettings

from tests.ship.conftest import REPO, Render, one

BIN = Path(sys.executable).parent
DOCKERFILES = {"worker": REPO / "Dockerfile.worker", "operator": REPO / "Dockerfile.operator"}
# An exact patch version (python:3.11.13-slim-bookworm) or a digest: never a moving tag like python:3.11-slim.
PINNED_BASE = re.compile(r"^[\w./-]+:\d+\.\d+\.\d+[\w.-]*$|@sha256:[0-9a-f]{64}$")


def parse(image: str) -> DockerfileParser:
    return DockerfileParser(fileobj=DOCKERFILES[image].open("rb"))


def instructions(image: str, name: str) -> list[list[str]]:
    """Each `name` instruction's words with ARG defaults substituted, as the builder sees them."""
    parser = parse(image)
    return [
        list(WordSplitter(item["value"], args=context.get_values(context_type="ARG")).split())
        for item, context in zip(parser.structure, parser.context_structure, strict=True)
        if item["instruction"] == name
    ]


def dockerignore_patterns() -> list[str]:
    lines = (REPO / ".dockerignore").read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def ignored(path: str, patterns: list[str]) -> bool:
    parts = Path(path).parts
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    return any(
        fnmatch.fnmatch(prefix, pattern.removeprefix("**/")) for prefix in prefixes for pattern in patterns
    )


@pytest.mark.parametrize("image", DOCKERFILES)
def test_hadolint_is_clean(image: str) -> None:
    result = subprocess.run(
        [BIN / "hadolint", DOCKERFILES[image]], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("image", DOCKERFILES)
def test_every_copied_file_is_in_the_build_context(image: str) -> None:
    patterns = dockerignore_patterns()
    sources = [
        src
        for words in instructions(image, "COPY")
        if not words[0].startswith("--from=")
        for src in words[:-1]
    ]
    assert sources
    for source in sources:
        assert (REPO / source).exists(), f"{DOCKERFILES[image].name} copies {source}, which does not exist"
        assert not ignored(source, patterns), f"{source} is excluded by .dockerignore"


@pytest.mark.parametrize("image", DOCKERFILES)
def test_bases_are_pinned_and_stages_are_multiple(image: str) -> None:
    parser = parse(image)
    assert parser.is_multistage
    for base in set(parser.parent_images):
        assert PINNED_BASE.search(base), f"{base} is not pinned to an exact version or digest"


def user_id(image: str) -> int:
    (user,) = instructions(image, "USER")
    uid = user[0].split(":")[0]
    assert uid.isdigit(), "a numeric USER lets Kubernetes verify runAsNonRoot"
    return int(uid)


def test_images_run_as_the_users_kubernetes_expects(render: Render) -> None:
    assert user_id("worker") == OperatorSettings().worker_uid != 0
    operator_pod = one(render(), "Deployment")["spec"]["template"]["spec"]
    assert user_id("operator") == operator_pod["securityContext"]["runAsUser"] != 0


def test_operator_image_cannot_pull_in_torch() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    (install,) = [words for words in instructions("operator", "RUN") if "pip" in words and "install" in words]
    extra = re.fullmatch(r"\.\[(\w+)\]", install[install.index("install") + 1]).group(1)
    requirements = project["dependencies"] + project["optional-dependencies"][extra]
    assert not [req for req in requirements if re.match(r"torch\b", req)]


def test_worker_image_installs_cpu_torch_before_the_project() -> None:
    installs = [" ".join(words) for words in instructions("worker", "RUN") if "pip" in words]
    torch_step = next(i for i, step in enumerate(installs) if "torch==" in step)
    project_step = next(i for i, step in enumerate(installs) if ".[worker]" in step)
    assert torch_step < project_step
    assert "--index-url https://download.pytorch.org/whl/cpu" in installs[torch_step]


def exec_form(image: str, name: str) -> list[str]:
    """ENTRYPOINT/CMD must be exec form (a JSON array): shell form would keep SIGTERM from the program."""
    (value,) = [item["value"] for item in parse(image).structure if item["instruction"] == name]
    assert value.startswith("["), f"{name} {value} is not in exec form"
    return json.loads(value)


@pytest.fixture(scope="module")
def command_help() -> dict[str, tuple[list[str], subprocess.CompletedProcess[str]]]:
    """`ENTRYPOINT CMD[0] --help` of both images, run side by side: each imports a whole program (kopf,
    torch), seconds apiece on a busy CPU."""
    running = {}
    for image in DOCKERFILES:
        (program,) = exec_form(image, "ENTRYPOINT")
        command = [program, *exec_form(image, "CMD")]
        running[image] = (
            command,
            subprocess.Popen(
                [BIN / program, command[1], "--help"],
                text=True,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            ),
        )
    results = {}
    for image, (command, process) in running.items():
        stdout, stderr = process.communicate(timeout=60)
        results[image] = (
            command,
            subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr),
        )
    return results


@pytest.mark.parametrize("image", DOCKERFILES)
def test_entrypoint_and_command_exist_and_answer_help(
    image: str, command_help: dict[str, tuple[list[str], subprocess.CompletedProcess[str]]]
) -> None:
    (program, subcommand, *options), result = command_help[image]
    assert result.returncode == 0, result.stdout + result.stderr
    for option in options:
        if option.startswith("--"):
            assert option.split("=")[0] in result.stdout, f"`{program} {subcommand}` has no {option}"
