"""scripts/install-system-deps.sh plans the right installs (dry run, fake PATH: no network, no root).

The machine is faked by a PATH holding only stubs: `python3` is the test interpreter behind a
PYTHONPATH folder whose `pip` / `ensurepip` raise ImportError, as on Debian 12 without python3-pip /
python3-venv (Debian ships ensurepip only in python3.X-venv). The script is copied into a temporary
repository so a real `.tools/` of this clone cannot change the decision.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "install-system-deps.sh"
BASH = shutil.which("bash")
DRY_RUN_PREFIX = "would run: "


def _executable(path: Path, body: str) -> None:
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(0o755)


class FakeMachine:
    def __init__(self, root: Path, uid: int = 0) -> None:
        self.repo = root / "repo"
        (self.repo / "scripts").mkdir(parents=True)
        shutil.copy(SCRIPT, self.repo / "scripts" / SCRIPT.name)
        self.tools = self.repo / ".tools"
        self.bin = root / "bin"
        self.bin.mkdir()
        self.blocked = root / "blocked"
        self.blocked.mkdir()
        os.symlink(shutil.which("dirname"), self.bin / "dirname")
        _executable(self.bin / "id", f"echo {uid}")
        for tool in ("java", "mvn", "initdb", "runuser"):
            self.stub(tool)

    def stub(self, name: str) -> None:
        _executable(self.bin / name, "exit 0")

    def python3(self, *, pip: bool, ensurepip: bool) -> None:
        """`python3` on the fake PATH; a missing module is one whose import raises ImportError."""
        for module, present in (("pip", pip), ("ensurepip", ensurepip)):
            if not present:
                (self.blocked / module).mkdir()
                (self.blocked / module / "__init__.py").write_text(f"raise ImportError('no {module} (Debian)')\n")
        _executable(self.bin / "python3", f"PYTHONPATH={shlex.quote(str(self.blocked))} exec {shlex.quote(sys.executable)} \"$@\"")

    def run(self, *args: str) -> subprocess.CompletedProcess:
        env = {"PATH": str(self.bin), "HOME": str(self.repo), "LAKEHOUSE_SETUP_DRY_RUN": "1"}
        return subprocess.run([BASH, str(self.repo / "scripts" / SCRIPT.name), *args], env=env,
                              capture_output=True, text=True, timeout=30)

    def plan(self, *args: str) -> list[list[str]]:
        """The commands the script would run, each split into its words."""
        result = self.run(*args)
        assert result.returncode == 0, result.stderr
        return [shlex.split(line[len(DRY_RUN_PREFIX):]) for line in result.stdout.splitlines() if line.startswith(DRY_RUN_PREFIX)]

    def uv_steps(self) -> list[list[str]]:
        venv = str(self.tools / "uv-venv")
        return [
            ["python3", "-m", "venv", venv],
            [f"{venv}/bin/python", "-m", "pip", "install", "--quiet", "uv"],
            ["mkdir", "-p", str(self.tools / "bin")],
            ["ln", "-sfn", "../uv-venv/bin/uv", str(self.tools / "bin" / "uv")],
        ]


def _apt(packages: list[str], sudo: list[str] = []) -> list[list[str]]:
    return [
        [*sudo, "apt-get", "update", "-qq"],
        [*sudo, "env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "install", "-y", "-qq", *packages],
    ]


@pytest.mark.parametrize(("uid", "sudo"), [(0, []), (1000, ["sudo"])], ids=["root", "user"])
def test_debian_python_without_pip_or_venv(tmp_path, uid, sudo):
    machine = FakeMachine(tmp_path, uid=uid)
    machine.python3(pip=False, ensurepip=False)
    assert machine.plan() == _apt(["python3-venv"], sudo) + machine.uv_steps()


def test_python_with_venv_but_no_pip_needs_no_apt(tmp_path):
    machine = FakeMachine(tmp_path)
    machine.python3(pip=False, ensurepip=True)
    assert machine.plan() == machine.uv_steps()


def test_uv_on_path_installs_nothing(tmp_path):
    machine = FakeMachine(tmp_path)
    machine.python3(pip=False, ensurepip=False)
    machine.stub("uv")
    assert machine.plan() == []


def test_second_run_finds_the_linked_uv(tmp_path):
    """The uv of a previous run counts even when the caller's PATH lacks .tools/bin."""
    machine = FakeMachine(tmp_path)
    machine.python3(pip=False, ensurepip=False)
    (machine.tools / "bin").mkdir(parents=True)
    _executable(machine.tools / "bin" / "uv", "exit 0")
    assert machine.plan() == []


def test_other_debian_packages_share_one_apt_install(tmp_path):
    machine = FakeMachine(tmp_path)
    machine.python3(pip=False, ensurepip=False)
    (machine.bin / "java").unlink()
    assert machine.plan() == _apt(["openjdk-17-jre-headless", "python3-venv"]) + machine.uv_steps()


def test_tests_also_need_chromium_its_webdriver_and_docker_compose(tmp_path):
    machine = FakeMachine(tmp_path)
    machine.python3(pip=False, ensurepip=False)
    machine.stub("uv")
    assert machine.plan() == []
    assert machine.plan("--test") == _apt(["chromium", "chromium-driver", "docker-compose"])
    machine.stub("chromium")
    machine.stub("chromedriver")
    machine.stub("docker-compose")
    assert machine.plan("--test") == []


def test_an_unknown_argument_is_an_error(tmp_path):
    result = FakeMachine(tmp_path).run("--tests")
    assert result.returncode == 2 and "unknown argument '--tests' (known: --test)" in result.stderr


def test_makefile_puts_project_tools_first_on_path_and_git_ignores_them():
    makefile = (REPO / "Makefile").read_text()
    assert "export PATH := $(CURDIR)/.tools/bin:$(HOME)/.local/bin:$(PATH)" in makefile
    assert ".tools/" in (REPO / ".gitignore").read_text().splitlines()
