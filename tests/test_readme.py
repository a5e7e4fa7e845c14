"""The README's main command, run word for word as a new user runs it after the install.

Only the environment differs: a fresh data dir and a free endpoint, so the command has
to start its own daemon, as it does on a fresh machine.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

from nst_client.client import Client
from nst_core.images import load_image
from nst_daemon import lifecycle

from daemon_helpers import environment, free_endpoint, wait_until

ROOT = Path(__file__).resolve().parents[1]


def readme_commands() -> list[str]:
    """The two commands under the README's "Two commands" heading."""
    section = (ROOT / "README.md").read_text().split("## Two commands", 1)[1]
    return re.findall(r"```bash\n(.*?)\n```", section, re.S)[:2]


def test_readme_test_command_is_what_ci_runs():
    ci = (ROOT / ".ci" / "run").read_text()
    assert readme_commands()[1] in ci


def test_readme_main_command_stylises_the_example(tmp_path, monkeypatch):
    install, _, command = readme_commands()[0].partition(" && ")
    assert install == "./install.sh", "the main command starts with the install step"
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    (tmp_path / ".venv").symlink_to(sys.prefix)  # the environment install.sh made
    endpoint = free_endpoint()
    env = environment(tmp_path / "home", endpoint)
    monkeypatch.setenv("NST_HOME", env["NST_HOME"])  # where lifecycle finds the pidfile

    try:
        result = subprocess.run(
            command, shell=True, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
        )
        assert result.returncode == 0, result.stderr
    finally:
        with Client(endpoint, autostart=False, timeout=10) as client:
            # the command started a daemon and left it running for the next picture
            assert lifecycle.running_pid(endpoint) == client.hello().pid
            client.shutdown()
    assert wait_until(lambda: lifecycle.running_pid(endpoint) is None, 20)

    source = re.search(r"stylize (\S+)", command).group(1)
    assert source.startswith("examples/"), "the example photo ships with the project"
    output = re.search(r"-o (\S+)", command).group(1)
    photo, _ = load_image(tmp_path / source)
    styled, _ = load_image(tmp_path / output)
    assert styled.shape == photo.shape
    # a painted picture, not a copy of the photo nor a flat image (20 of 255 levels)
    assert (styled - photo).abs().mean() > 20 / 255
    assert styled.std() > 20 / 255
