"""Layers import downwards only: lower layers never import core, config imports no frontend, backend or core module."""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys

import bridge.audio
import bridge.backends
import bridge.settings_schema
from tests.conftest import ROOT, daemon_environment

CORE, FRONTENDS, BACKENDS, AUDIO = "bridge.core", "bridge.frontends", "bridge.backends", "bridge.audio"


def _modules(package) -> list[str]:
    return [package.__name__] + [info.name for info in pkgutil.walk_packages(package.__path__, package.__name__ + ".")]


# module (or package prefix) → the packages it must not pull in, however indirectly
FORBIDDEN = {
    "bridge.config": (CORE, FRONTENDS, BACKENDS, AUDIO),
    "bridge.settings_schema": (CORE, FRONTENDS, BACKENDS, AUDIO),
    "bridge.models": (CORE, FRONTENDS, BACKENDS, AUDIO),
    AUDIO: (CORE, FRONTENDS, BACKENDS),
    BACKENDS: (CORE, FRONTENDS),
}

# Each module is imported in a child forked from a process that has loaded only third-party libraries (numpy,
# scipy, httpx...): the child starts with no bridge module, as a fresh interpreter would, without paying seconds
# of imports per module.
_PROBE = """
import json, os, sys
for heavy in ("numpy", "scipy.signal", "soundfile", "soxr", "httpx", "watchdog.observers", "mido"):
    try:
        __import__(heavy)
    except ImportError:
        pass
found = {}
for name in json.loads(sys.argv[1]):
    read, write = os.pipe()
    child = os.fork()
    if child == 0:
        try:
            os.close(read)
            __import__(name)
            os.write(write, json.dumps(sorted(m for m in sys.modules if m.startswith("bridge."))).encode())
        finally:
            os._exit(0)  # an import error leaves the pipe empty, and the child never runs the parent's loop
    os.close(write)
    with os.fdopen(read) as pipe:
        text = pipe.read()
    os.waitpid(child, 0)
    found[name] = json.loads(text) if text else None
print(json.dumps(found))
"""


def test_lower_layers_do_not_import_the_layers_above_them():
    names = ["bridge.config", "bridge.models", *_modules(bridge.settings_schema), *_modules(bridge.audio),
             *_modules(bridge.backends)]
    done = subprocess.run([sys.executable, "-c", _PROBE, json.dumps(names)], cwd=ROOT, env=daemon_environment(),
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    imported = json.loads(done.stdout)
    assert [name for name, modules in imported.items() if modules is None] == [], done.stderr
    wrong = {}
    for name, modules in imported.items():
        rule = next(rule for prefix, rule in FORBIDDEN.items() if name == prefix or name.startswith(prefix + "."))
        bad = [module for module in modules if module.startswith(tuple(p + "." for p in rule)) or module in rule]
        if bad:
            wrong[name] = bad
    assert wrong == {}
