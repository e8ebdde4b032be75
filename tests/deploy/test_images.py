"""deploy/docker: the images install exactly pyproject's dependencies and run the launcher.

The Dockerfiles install the project with `pip install .` from the copied pyproject.toml, so
the dependency list cannot drift; the only package named in a Dockerfile is the CPU torch
wheel, whose pin must lie inside pyproject's torch range."""

from __future__ import annotations

import os
import re
import shlex
import subprocess

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.deploy.conftest import DEPLOY

DOCKERFILES = ["Dockerfile.cpu", "Dockerfile.cuda"]
_PIP_VALUE_OPTIONS = {"--index-url", "-i", "--extra-index-url", "-c", "--constraint", "-r"}


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    joined = re.sub(
        r"\\\n",
        " ",
        "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#")),
    )
    return [
        (parts[0].upper(), parts[1] if len(parts) > 1 else "")
        for parts in (line.strip().split(None, 1) for line in joined.splitlines())
        if parts
    ]


def arg_defaults(steps: list[tuple[str, str]]) -> dict[str, str]:
    return dict(a.split("=", 1) for kind, a in steps if kind == "ARG" and "=" in a)


def expand(text: str, args: dict[str, str]) -> str:
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: args.get(m.group(1) or m.group(2), m[0]), text)


def pip_installs(steps: list[tuple[str, str]]) -> list[list[str]]:
    """Targets of every `pip install` in RUN steps, options removed, ARG defaults expanded."""
    args = arg_defaults(steps)
    found = []
    for kind, command in steps:
        if kind != "RUN":
            continue
        for part in re.split(r"&&|;", expand(command, args)):
            words = shlex.split(part)
            if words[:2] != ["pip", "install"] and words[:4] != ["python", "-m", "pip", "install"]:
                continue
            words = words[words.index("install") + 1 :]
            targets, skip = [], False
            for w in words:
                if skip:
                    skip = False
                elif w in _PIP_VALUE_OPTIONS:
                    skip = True
                elif not w.startswith("-"):
                    targets.append(w)
            found.append(targets)
    return found


def steps_of(name: str) -> list[tuple[str, str]]:
    return instructions((DEPLOY / "docker" / name).read_text())


def pyproject_requirements(pyproject: dict) -> dict[str, Requirement]:
    reqs = (Requirement(d) for d in pyproject["project"]["dependencies"])
    return {canonicalize_name(r.name): r for r in reqs}


@pytest.mark.parametrize("name", DOCKERFILES)
def test_image_installs_the_project_from_its_pyproject(name, pyproject):
    steps = steps_of(name)
    installs = pip_installs(steps)
    assert installs and installs[-1] == ["."], "the last install step must be `pip install .`"
    copied = " ".join(a for kind, a in steps if kind == "COPY")
    assert "pyproject.toml" in copied
    assert pyproject["project"]["readme"] in copied  # setuptools reads it while building
    packages = [
        p.rstrip("*") for p in pyproject["tool"]["setuptools"]["packages"]["find"]["include"]
    ]
    for package in packages:
        assert re.search(rf"\b{package}\s+\./{package}\b", copied), f"{package}/ is not copied"
    # The COPY of the sources comes before the install that needs them.
    order = [kind for kind, _ in steps]
    assert max(i for i, k in enumerate(order) if k == "COPY" and "pyproject" in steps[i][1]) < max(
        i for i, k in enumerate(order) if k == "RUN"
    )


@pytest.mark.parametrize("name", DOCKERFILES)
def test_packages_named_in_an_image_are_pyproject_dependencies_within_range(name, pyproject):
    deps = pyproject_requirements(pyproject)
    for targets in pip_installs(steps_of(name)):
        for target in targets:
            if target == ".":
                continue
            pinned = Requirement(target)
            declared = deps.get(canonicalize_name(pinned.name))
            assert declared is not None, f"{name} installs {pinned.name}, not in pyproject"
            versions = [s.version for s in pinned.specifier if s.operator == "=="]
            assert versions, f"{name} must pin {pinned.name} with == (got {target})"
            assert declared.specifier.contains(versions[0]), (pinned, declared)


def test_cpu_image_takes_torch_from_the_cpu_index():
    text = expand(
        (DEPLOY / "docker" / "Dockerfile.cpu").read_text(), arg_defaults(steps_of("Dockerfile.cpu"))
    )
    assert "--index-url https://download.pytorch.org/whl/cpu" in text
    assert any(t and t[0].startswith("torch==") for t in pip_installs(steps_of("Dockerfile.cpu")))


@pytest.mark.parametrize("name, flavour", [("Dockerfile.cpu", "-cpu"), ("Dockerfile.cuda", "-gpu")])
def test_base_image_is_rays_with_the_pinned_ray_version(name, flavour, pyproject):
    steps = steps_of(name)
    image = expand(next(a for k, a in steps if k == "FROM"), arg_defaults(steps))
    repo, tag = image.split(":")
    assert repo == "rayproject/ray" and tag.endswith(flavour)
    assert pyproject_requirements(pyproject)["ray"].specifier.contains(tag.split("-")[0])


@pytest.mark.parametrize("name", DOCKERFILES)
def test_image_entrypoint_is_the_launcher_script(name):
    steps = steps_of(name)
    entry = next(a for k, a in steps if k == "ENTRYPOINT")
    assert entry == '["/home/ray/sweep/entrypoint.sh"]'
    assert any("deploy/docker/entrypoint.sh ./entrypoint.sh" in a for k, a in steps if k == "COPY")


def run_entrypoint(tmp_path, *argv: str) -> str:
    # A stand-in `python` on PATH that prints its argv shows what the script would exec.
    fake = tmp_path / "python"
    fake.write_text('#!/bin/sh\necho "python $*"\n')
    fake.chmod(0o755)
    env = {**os.environ, "PATH": f"{tmp_path}:{os.environ['PATH']}"}
    script = DEPLOY / "docker" / "entrypoint.sh"
    return subprocess.run(
        ["sh", str(script), *argv], env=env, capture_output=True, text=True, check=True
    ).stdout.strip()


def test_entrypoint_runs_the_launcher_for_flags_and_other_commands_as_given(tmp_path):
    assert run_entrypoint(tmp_path, "--space", "smoke") == "python -m sweep.launch --space smoke"
    assert run_entrypoint(tmp_path) == "python -m sweep.launch"
    assert run_entrypoint(tmp_path, "echo", "ray", "start") == "ray start"


@pytest.mark.parametrize("name", DOCKERFILES)
def test_image_carries_fashion_mnist_where_the_loader_looks(name):
    """The image installs Debian's dataset-fashion-mnist as root, checks each file the loader
    reads is there, and switches back to Ray's user before the entrypoint."""
    from trainables.data._idx import SPLIT_FILES
    from trainables.data.fashion_mnist import DEFAULT_DIR

    steps = steps_of(name)
    runs = [a for k, a in steps if k == "RUN"]
    install = next(r for r in runs if "dataset-fashion-mnist" in r)
    assert re.search(r"apt-get install -y [^&]*dataset-fashion-mnist", install)
    for stem in SPLIT_FILES.values():
        assert f"test -s {DEFAULT_DIR}/{stem}.gz" in install, stem
    users = [(i, a) for i, (k, a) in enumerate(steps) if k == "USER"]
    at = next(i for i, (k, a) in enumerate(steps) if k == "RUN" and a == install)
    assert [a for i, a in users if i < at][-1] == "root"
    assert users[-1][1] == "ray"


def test_debian_package_ships_the_files_the_loader_reads():
    """Checked against the package itself where dpkg knows it (this machine installs it)."""
    from trainables.data._idx import SPLIT_FILES
    from trainables.data.fashion_mnist import DEFAULT_DIR

    listed = subprocess.run(["dpkg", "-L", "dataset-fashion-mnist"], capture_output=True,
                            text=True, check=False)
    if listed.returncode != 0:
        pytest.skip("dataset-fashion-mnist is not installed here (dpkg -L failed)")
    files = set(listed.stdout.split())
    assert {f"{DEFAULT_DIR}/{stem}.gz" for stem in SPLIT_FILES.values()} <= files
