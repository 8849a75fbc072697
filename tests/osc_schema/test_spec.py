"""The spec agrees with itself and with the daemon's job states, and the package stands alone."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

from bridge.models import State
from osc_schema import ARGUMENTS, COMMANDS, STATES
from osc_schema.spec import FINISHED_STATES

ROOT = Path(__file__).resolve().parents[2]


def test_the_states_clients_see_are_the_states_jobs_move_through():
    assert list(STATES) == [state.value for state in State]
    assert set(FINISHED_STATES) == {state.value for state in State if state.finished}


def test_an_argument_means_the_same_in_every_command_that_takes_it():
    # The Lua LIMITS table is keyed by argument name, so a name must carry one set of limits everywhere.
    for spec in COMMANDS.values():
        for arg in spec.arguments:
            assert dataclasses.replace(arg, default=ARGUMENTS[arg.name].default) == ARGUMENTS[arg.name], \
                (spec.name, arg.name)
        names = [arg.name for arg in spec.arguments]
        assert len(names) == len(set(names)), spec.name


def test_a_cross_field_rule_only_names_an_argument_of_the_same_command():
    for spec in COMMANDS.values():
        for arg in spec.arguments:
            if arg.greater_than:
                assert spec.argument(arg.greater_than) is not None, (spec.name, arg.name)


def test_osc_schema_imports_nothing_but_the_standard_library():
    code = ("import sys, json; before = set(sys.modules); import osc_schema, osc_schema.generate; "
            "print(json.dumps(sorted({m.split('.')[0] for m in set(sys.modules) - before})))")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=30,
                          check=True)
    outside = set(json.loads(done.stdout)) - set(sys.stdlib_module_names) - {"osc_schema"}
    assert outside == set()
