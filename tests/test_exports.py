"""Every name a module exports imports as what it says, whatever was imported before.

A package that exports a function under the name of one of its submodules (as
``convnets.engine`` once did with ``evaluate``) gives a module or a function depending on
what was imported first; this check runs in a fresh interpreter so that the order is the
one a user meets.
"""
import json
import subprocess
import sys

_PROBE = r"""
import importlib, inspect, json, pkgutil
import convnets

names = sorted(m.name for m in pkgutil.walk_packages(convnets.__path__, "convnets.")
               if m.name != "convnets.__main__")
first, problems = {}, []
# Before any submodule is imported: resolve every exported name.
for mod_name in ["convnets"] + names:
    mod = importlib.import_module(mod_name)
    for name in getattr(mod, "__all__", []):
        if not hasattr(mod, name):
            problems.append(f"{mod_name}.{name} is in __all__ but missing")
            continue
        obj = getattr(mod, name)
        first[f"{mod_name}.{name}"] = id(obj)
        if inspect.ismodule(obj):
            problems.append(f"{mod_name}.{name} is a module")
# After every submodule is imported: the same objects.
for mod_name in ["convnets"] + names:
    mod = importlib.import_module(mod_name)
    for name in getattr(mod, "__all__", []):
        key = f"{mod_name}.{name}"
        if key in first and id(getattr(mod, name)) != first[key]:
            problems.append(f"{key} changed meaning after its package was imported")
        # `from package import name` gives the same object as the attribute.
        namespace = {}
        exec(f"from {mod_name} import {name} as value", namespace)
        if key in first and id(namespace["value"]) != first[key]:
            problems.append(f"from {mod_name} import {name} gives another object")
print(json.dumps({"modules": len(names) + 1, "names": len(first), "problems": problems}))
"""


def test_every_exported_name_imports_as_what_it_says():
    out = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["problems"] == []
    assert result["modules"] > 20 and result["names"] > 100  # the walk really covered the package


def test_engine_evaluate_is_the_function():
    code = ("from convnets.engine import evaluate; import inspect; "
            "import convnets.engine.evaluation as m; "
            "print(inspect.isfunction(evaluate) and evaluate is m.evaluate)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "True"
