"""Method plugins: found through entry points and --plugin, checked against the protocol,
listed by ``gradbench methods``; a broken plugin registers nothing and stops nothing."""

import os
import subprocess
import sys
import textwrap

import pytest

from gradbench import methods

from .conftest import cli_main

#: A plugin module: one analytic method (gradbench's backprop under another name).
PLUGIN = textwrap.dedent('''
    import gradbench as gb

    GRADBENCH_PROTOCOL = {protocol}


    def _build(net, X, T, threads):
        return lambda: gb.backprop(net, X, T)


    def _warm(net, threads, batch=None):
        return 0.0


    def _gradient(net, threads):
        return lambda X, T: gb.backprop(net, X, T)


    def _tolerance(net, X, T, loss, ours, fn):
        return 1e-12


    def methods():
        return [gb.Method({name!r}, {provider!r}, "analytic", "backprop (mine)", _build,
                          _warm, gradient=_gradient, tolerance=_tolerance)]
''')


def source(name="mine:backprop", protocol=1, provider="mine") -> str:
    """The plugin module's text, its one method ``name`` of ``provider``."""
    return PLUGIN.format(name=name, protocol=protocol, provider=provider)


def plugin(folder, stem="myplugin", name="mine:backprop", protocol=1, body=None):
    path = folder / f"{stem}.py"
    path.write_text(body if body is not None else source(name, protocol))
    return path


@pytest.fixture
def registry(monkeypatch):
    """This test's registry and plugin list (--plugin changes them), and no plugin in the
    environment of what it starts beyond its own."""
    monkeypatch.setattr(methods, "REGISTRY", dict(methods.REGISTRY))
    monkeypatch.setattr(methods, "PLUGINS", list(methods.PLUGINS))
    # set first, so that monkeypatch restores it however --plugin changes it (a variable
    # deleted while absent is not restored: it would leak into later tests' runs)
    monkeypatch.setenv(methods.PLUGINS_ENV, "")
    monkeypatch.delenv(methods.PLUGINS_ENV)
    return methods


def test_a_plugin_file_is_listed_with_its_methods(tmp_path, capsys, registry):
    path = plugin(tmp_path)
    rc, out, err = cli_main(capsys, "methods", "--plugin", str(path))
    assert rc == 0, err
    line = next(ln for ln in out.splitlines() if ln.startswith("mine:backprop "))
    assert line.split()[1:4] == ["mine", "analytic", "cpu"] and line.endswith("yes")
    m = registry.get("mine:backprop")
    ours = {r.colour for r in registry.REGISTRY.values() if r.provider == "gradbench"}
    assert m.plugin == str(path) and m.colour not in ours
    # the processes a verb starts load it too
    assert os.environ[registry.PLUGINS_ENV] == str(path)


def test_a_plugin_module_importable_from_the_current_folder(tmp_path, capsys, registry,
                                                            monkeypatch):
    plugin(tmp_path, stem="localplugin")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", os.getcwd())])
    rc, out, err = cli_main(capsys, "methods", "--plugin", "localplugin")
    assert rc == 0, err
    assert "mine:backprop" in registry.REGISTRY


@pytest.mark.parametrize("case, words", [
    ("protocol", "speaks method protocol 2, this gradbench speaks 1: update the plugin"),
    ("builtin", "method 'backprop' clashes with gradbench's built-in 'backprop'"),
    ("raises", "failed to load: RuntimeError: broken at import"),
    ("nothing", "has no methods() returning gradbench.Method records"),
    ("missing", "no such file"),
    ("not a record", "returned a dict, not a gradbench.Method"),
])
def test_a_bad_plugin_is_one_line_and_exit_2(tmp_path, capsys, registry, case, words):
    bodies = {"raises": "raise RuntimeError('broken at import')\n",
              "nothing": "GRADBENCH_PROTOCOL = 1\n",
              "not a record": "GRADBENCH_PROTOCOL = 1\ndef methods():\n    return [{}]\n"}
    if case == "missing":
        path = tmp_path / "nosuch.py"
    else:
        path = plugin(tmp_path, stem=case.replace(" ", "_"),
                      name="backprop" if case == "builtin" else "mine:x",
                      protocol=2 if case == "protocol" else 1, body=bodies.get(case))
    before = dict(registry.REGISTRY)
    rc, out, err = cli_main(capsys, "check", "--plugin", str(path), "--sizes", "3,2")
    assert rc == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and words in err, err
    assert registry.REGISTRY == before  # it registered nothing


def test_two_plugins_with_one_name_the_second_is_refused_naming_the_first(tmp_path, capsys,
                                                                         registry):
    a, b = plugin(tmp_path, stem="first"), plugin(tmp_path, stem="second")
    rc, out, err = cli_main(capsys, "methods", "--plugin", str(a), "--plugin", str(b))
    assert rc == 2
    assert f"clashes with plugin {a}'s 'mine:backprop'" in err and "second" in err
    assert registry.get("mine:backprop").plugin == str(a)


def test_a_method_computing_a_gradient_must_give_its_tolerance(tmp_path, capsys, registry):
    body = source("mine:x").replace(", tolerance=_tolerance", "")
    rc, _, err = cli_main(capsys, "methods", "--plugin", str(plugin(tmp_path, body=body)))
    assert rc == 2 and "gives no gradient or no tolerance" in err


def _distribution(site, name, version, entry_points: str):
    """An installed distribution as importlib.metadata finds it: a .dist-info folder."""
    info = site / f"{name}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    (info / "entry_points.txt").write_text(entry_points)


@pytest.mark.slow
def test_installed_plugins_are_found_through_entry_points(tmp_path):
    # one distribution that works, one whose entry point names no module: the listing shows
    # the first's method with its distribution and version, and why the second loaded nothing
    site = tmp_path / "site"
    site.mkdir()
    plugin(site, stem="myplug_mod")
    _distribution(site, "myplug", "1.2", "[gradbench.methods]\nmine = myplug_mod\n")
    _distribution(site, "brokenplug", "0.1", "[gradbench.methods]\nbroken = no_such_module\n")
    env = {**os.environ, "PYTHONPATH": str(site)}
    env.pop(methods.PLUGINS_ENV, None)
    res = subprocess.run([sys.executable, "-m", "gradbench", "methods"], env=env,
                         capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    line = next(ln for ln in res.stdout.splitlines() if ln.startswith("mine:backprop "))
    assert "myplug 1.2" in line
    broken = res.stdout.split("plugins not loaded")[1]
    assert "plugin broken (entry point broken of brokenplug 0.1) failed to load" in broken
    assert "ModuleNotFoundError" in broken


#: The plugins of one quick run, by provider: their build's last line (None: a correct one).
RUN_PLUGINS = {
    "mine": None,
    "wrong": "    return lambda: [g * 1.01 for g in gb.backprop(net, X, T)]",
    "raising": "    raise RuntimeError('build broke')",
    "dying": "    import os; os._exit(9)",
    "hanging": "    import time; time.sleep(3600)",
}
#: One plugin, one process, five methods, each wrong in its own way: its gradient's last line.
BAD = {
    "nan": "[g * np.nan for g in gb.backprop(net, X, T)]",
    "shapes": "[g.ravel() for g in gb.backprop(net, X, T)]",
    "dtype": "[g.astype(np.float32) for g in gb.backprop(net, X, T)]",
    "params": "(net.params[0].__iadd__(1.0), gb.backprop(net, X, T))[1]",
    "batch": "(X.__imul__(2.0), gb.backprop(net, X, T))[1]",
}
BAD_PLUGIN = textwrap.dedent('''
    import numpy as np
    import gradbench as gb

    GRADBENCH_PROTOCOL = 1

    def _method(name, compute):
        def build(net, X, T, threads):
            return lambda: compute(net, X, T)
        return gb.Method(f"bad:{name}", "bad", "analytic", f"bad ({name})", build,
                         lambda net, threads, batch=None: 0.0,
                         gradient=lambda net, threads: lambda X, T: compute(net, X, T),
                         tolerance=lambda net, X, T, loss, ours, fn: 1e-12)

    def methods():
        return [{methods}]
''')
#: Seconds a plugin's case may overrun before it is stopped, in the plugin run.
CASE_TIMEOUT = 10


@pytest.fixture(scope="module")
def plugin_run(tmp_path_factory):
    """One quick run with a correct plugin, one whose gradient is off by 1 %, one whose build
    raises, one whose build kills its process, one whose build never returns, and one with
    five methods, each wrong otherwise (:data:`BAD`): (the process, the result file's text
    and data, each plugin's path)."""
    import json

    folder = tmp_path_factory.mktemp("plugin-run")
    paths = {}
    for provider, line in RUN_PLUGINS.items():
        body = source(f"{provider}:backprop", provider=provider)
        if line is not None:
            body = body.replace("    return lambda: gb.backprop(net, X, T)", line, 1)
        paths[provider] = plugin(folder, stem=f"{provider}_plugin", body=body)
    paths["bad"] = plugin(folder, stem="bad_plugin", body=BAD_PLUGIN.replace("{methods}", ", ".join(
        f"_method({name!r}, lambda net, X, T: {line})" for name, line in BAD.items())))
    env = {k: v for k, v in os.environ.items() if k != methods.PLUGINS_ENV}
    argv = [sys.executable, "-m", "gradbench", "run", "--profile", "quick", "--budget", "3",
            "--no-report", "--out", str(folder / "out"), "--case-timeout", str(CASE_TIMEOUT)]
    for path in paths.values():
        argv += ["--plugin", str(path)]
    res = subprocess.run(argv, env=env, cwd=folder, capture_output=True, text=True,
                         timeout=900)
    (doc,) = (folder / "out").glob("*.json")
    text = doc.read_text()
    return res, text, json.loads(text), paths


def _cases(data, method: str) -> list[dict]:
    return [b["extra_info"] for b in data["benchmarks"] if b["extra_info"]["method"] == method]


def _rejected(data, method: str) -> list[str]:
    """The reasons of a method's cases recorded as rejected."""
    return [e["reason"] for e in data["gradbench"]["skipped"]
            if e["method"] == method and e["why"] == "rejected"]


@pytest.mark.slow
def test_a_run_times_a_plugin_method_in_its_own_process_after_checking_it(plugin_run):
    res, _, data, paths = plugin_run
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert "\nmine peers (mine:backprop)  [" in res.stdout  # its part's progress line
    cases = _cases(data, "mine:backprop")
    assert cases, "no case of the plugin's method was timed"
    ours = {info["pid"] for info in _cases(data, "backprop")}
    for info in cases:
        assert info["provider"] == "mine" and info["pid"] not in ours  # a process of its own
        assert info["library"] == f"{paths['mine']} (a gradbench.methods plugin)"
        assert info["plugin"] == str(paths["mine"]) and info["plugin_version"] is None
        assert info["check_ratio"] <= 1.0  # checked against gradbench's backprop first


@pytest.mark.slow
def test_a_plugin_gradient_outside_its_tolerance_is_rejected_not_timed(plugin_run):
    res, text, data, paths = plugin_run
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]  # its own cases passed
    assert not _cases(data, "wrong:backprop")
    reasons = _rejected(data, "wrong:backprop")
    assert reasons and all(r.startswith(f"rejected: plugin {paths['wrong']}'s wrong:backprop-")
                           and "'s gradient lies up to" in r for r in reasons)


@pytest.mark.slow
@pytest.mark.parametrize("name, words", [
    ("nan", "returned NaN or inf"), ("shapes", "returned shapes"),
    ("dtype", "returned dtypes ['float32'], expected float64"),
    ("params", "changed the network's W1 it was given"),
    ("batch", "changed the batch's inputs X it was given")])
def test_a_plugin_gradient_that_is_no_gradient_or_changes_its_inputs_is_rejected(
        plugin_run, name, words):
    res, _, data, paths = plugin_run
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert not _cases(data, f"bad:{name}")
    reasons = _rejected(data, f"bad:{name}")
    assert reasons and all(f"plugin {paths['bad']}'s bad:{name}-" in r and words in r
                           for r in reasons), reasons


@pytest.mark.slow
def test_a_plugin_that_raises_dies_or_hangs_takes_only_its_own_cases(plugin_run):
    res, text, data, paths = plugin_run
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]  # its own cases passed
    assert data["gradbench"]["status"] == "complete"
    assert _cases(data, "backprop") and _cases(data, "mine:backprop")
    raised = _rejected(data, "raising:backprop")
    assert raised and all(r.startswith(f"rejected: plugin {paths['raising']}'s raising:") and
                          r.endswith("raised RuntimeError: build broke") for r in raised)
    for provider, why in (("dying", "ended its process (exit status 9)"),
                          ("hanging", f"did not end within its time (--case-timeout "
                                      f"{CASE_TIMEOUT} s")):
        first, *rest = _rejected(data, f"{provider}:backprop")
        assert first.startswith(f"rejected: plugin {paths[provider]}'s {provider}:backprop-")
        assert why in first
        assert all(r.startswith("rejected: not run: ") and why in r for r in rest)
        lines = [ln for ln in res.stderr.splitlines() if f"plugin {paths[provider]}'s" in ln]
        assert len(lines) == 1 and why in lines[0]
    # every case of every plugin is in the file, timed or not: as many as the correct one's
    def held(method):
        return len(_cases(data, method)) + sum(1 for e in data["gradbench"]["skipped"]
                                               if e["method"] == method)

    for provider in ("dying", "hanging", "raising", "wrong"):
        assert held(f"{provider}:backprop") == held("mine:backprop"), provider
