"""dlcv/report/commands.py: every command line the report names uses flags its script has."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

from dlcv.report import commands

from ..conftest import REPO, run_script


def every_command() -> list[commands.Command]:
    """Each builder of the module, called with placeholder paths."""
    builders = [
        fn
        for _, fn in inspect.getmembers(commands, inspect.isfunction)
        if fn.__module__ == commands.__name__ and not fn.__name__.startswith("_")
    ]
    return [fn(*(Path(f"P{i}") for i in range(len(inspect.signature(fn).parameters)))) for fn in builders]


def test_every_flag_of_every_command_is_in_its_scripts_help():
    built = every_command()
    assert len(built) >= 12
    flags: dict[str, set[str]] = {}
    for command in built:
        assert (REPO / command.script).is_file(), command.script
        flags.setdefault(command.script, set()).update(command.flags())
    for script, wanted in flags.items():
        if script.endswith(".sh") or not wanted:
            continue
        result = run_script(script, "--help", timeout=120)
        assert result.returncode == 0, result.stderr
        missing = {flag for flag in wanted if not re.search(rf"{re.escape(flag)}(?![\w-])", result.stdout)}
        assert not missing, f"{script} --help has no {missing}"


def test_a_command_reads_as_a_user_types_it():
    assert str(commands.hw2_1(Path("out"), Path("m.pt"))) == "PB1_CKPT=m.pt bash hw2_1.sh out"
    assert str(commands.pb1_train(Path("d"), Path("o"))) == "python PB1/train.py --data d --out o"
    assert str(commands.hw2_2(Path("o"))) == "bash hw2_2.sh hw2_data/face/noise o hw2_data/face/UNet.pt"
