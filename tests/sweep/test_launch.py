"""How the sweep starts nestbench commands: by package name, without importing the CLI module."""

import ast
import subprocess
from pathlib import Path

from nestbench.sweep.launch import nestbench_argv

SWEEP = Path(__file__).resolve().parents[2] / "nestbench" / "sweep"


def test_sweep_package_does_not_import_the_cli():
    """The CLI imports the sweep's parser; the sweep must not import the CLI back (an import cycle)."""
    for path in sorted(SWEEP.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                names = [f"{'.' * node.level}{node.module or ''}", *(f"{node.module}.{a.name}" for a in node.names)]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            assert not any(n.rsplit(".", 1)[-1] == "cli" or ".cli." in n for n in names), f"{path.name}: {names}"


def test_nestbench_argv_runs_the_command_line():
    proc = subprocess.run(nestbench_argv("sweep", "--help"), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.startswith("usage: nestbench sweep")
