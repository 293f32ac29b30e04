"""The README's console examples are executed: each block after ``<!-- readme-test -->`` runs in one
bash session from the repository root, and its output must equal the lines shown."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"


def console_blocks(text: str) -> list[tuple[str, str]]:
    """``[(script, expected_output)]`` for every marked ```console block of ``text``."""
    blocks = re.findall(r"<!-- readme-test -->\s*```console\n(.*?)```", text, flags=re.S)
    out = []
    for body in blocks:
        script, expected = [], []
        lines = body.splitlines()
        i = 0
        while i < len(lines):
            line = lines[i]
            if line.startswith("$ "):
                cmd = line[2:]
                script.append(cmd)
                m = re.search(r"<<'?(\w+)'?", cmd)
                if m:  # heredoc body belongs to the command
                    i += 1
                    while i < len(lines) and lines[i] != m.group(1):
                        script.append(lines[i])
                        i += 1
                    script.append(m.group(1))
            else:
                expected.append(line)
            i += 1
        out.append(("\n".join(script) + "\n", "\n".join(expected) + "\n"))
    return out


BLOCKS = console_blocks(README.read_text(encoding="utf-8"))


def test_readme_has_executed_examples():
    assert BLOCKS, "README lost its <!-- readme-test --> console examples"


@pytest.mark.parametrize("script,expected", BLOCKS, ids=[f"block{i}" for i in range(len(BLOCKS))])
def test_readme_console_block(script: str, expected: str):
    env_path = str(Path(sys.executable).parent)
    res = subprocess.run(["bash", "-c", f'export PATH="{env_path}:$PATH"\n' + script], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert res.stdout == expected, f"README example output changed:\n{res.stdout}\nstderr:\n{res.stderr}"


def test_readme_first_lines_are_the_two_commands():
    head = README.read_text(encoding="utf-8").splitlines()[:5]
    assert any("dpp demo" in l for l in head)
    assert any("bash .ci/run" in l for l in head)
