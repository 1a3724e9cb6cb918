"""The verification bundle as an outsider uses it: unpacked in an empty folder, the commands
of its VERIFY.md run there (a fresh Python with only the project on its path), then each file
tampered with in turn, every command reading it expected to catch it (and `verify-bundle`,
which reads them all)."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def unpack(zip_path: Path, folder: Path) -> list[str]:
    folder.mkdir()
    assert not any(folder.iterdir())
    with zipfile.ZipFile(zip_path) as archive:
        names = archive.namelist()
        for name in names:
            assert not name.startswith("/") and ".." not in name.split("/")
        archive.extractall(folder)
    return names


def documented_commands(folder: Path) -> list[list[str]]:
    """The shell block of VERIFY.md: one command a line, each `python -m ...`."""
    text = (folder / "VERIFY.md").read_text(encoding="utf-8")
    block = re.search(r"```sh\n(.*?)```", text, re.S)
    assert block, "VERIFY.md has no command block"
    commands = [shlex.split(line) for line in block.group(1).splitlines() if line.strip()]
    assert commands and all(c[:2] == ["python", "-m"] for c in commands)
    return commands


def run_command(command: list[str], folder: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FAIRBID", "DATABASE"))}
    env["PYTHONPATH"] = str(ROOT)  # the project "installed", nothing else of the app
    return subprocess.run(
        [sys.executable, *command[1:]],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )


def tamper(path: Path) -> None:
    """Change one meaningful byte: a digit of a JSON value or line, a base64 character of a
    PEM body, a byte in the middle of any other file."""
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    if path.suffix in (".json", ".jsonl", ".md"):
        digits = [i for i, byte in enumerate(data) if chr(byte).isdigit()]
        index = min(digits, key=lambda i: abs(i - middle)) if digits else middle
        data[index] = ord("7") if data[index] != ord("7") else ord("3")
    elif path.suffix == ".pem":
        body = [i for i, byte in enumerate(data) if chr(byte).isalnum()]
        index = min(body, key=lambda i: abs(i - middle))
        data[index] = ord("Q") if data[index] != ord("Q") else ord("R")
    else:
        data[middle] ^= 0x01
    path.write_bytes(bytes(data))


def readers(command: list[str], name: str) -> bool:
    """Whether `command` reads the file `name` (named in it, or the whole bundle)."""
    return name in command or command[3:4] == ["verify-bundle"]


def check_bundle(zip_path: Path, folder: Path) -> dict[str, list[str]]:
    """Run everything; returns file -> the commands that caught its tampering."""
    names = unpack(zip_path, folder)
    commands = documented_commands(folder)
    for command in commands:
        done = run_command(command, folder)
        assert done.returncode == 0, f"{shlex.join(command)}: {done.stdout}{done.stderr}"
    caught: dict[str, list[str]] = {}
    for name in names:
        original = (folder / name).read_bytes()
        tamper(folder / name)
        assert (folder / name).read_bytes() != original
        caught[name] = []
        for command in commands:
            if not readers(command, name):
                continue
            done = run_command(command, folder)
            assert done.returncode != 0, f"{shlex.join(command)} missed a tampered {name}"
            caught[name].append(command[3])
        (folder / name).write_bytes(original)
    return caught
