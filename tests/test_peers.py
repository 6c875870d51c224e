"""The peers: each agrees with gradbench's gradient on small networks (when installed), costs
what its record says, and runs in a process of its own in the sweep; a peer not installed is
recorded with the command that installs it, one that is wrong is rejected, and the report
shows them.

Tolerances come from the dtype and the scheme, written out here independently of
gradbench.peers.agreement: rounding ``eps_L * S`` per side (``eps_L`` the bound of
tests/conftest.py's rounding_tol, ``S = max(1, |L|)``), and for finite differences with step h
the truncation ``c_p * D * h**p`` (D = 10 S bounds the loss's higher derivatives, as
gradbench.check assumes) and the rounding ``w * eps_L * S / h`` of the quotient. No test here
times anything or depends on the machine's speed.
"""

import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys

import numpy as np
import pytest

import gradbench as gb
from gradbench import methods, reference, report, results
from gradbench.bench import sweep
from gradbench.check import _near_kink
from gradbench.datasets import make_batch
from gradbench.gradients import default_step
from gradbench.peers import agreement

from .conftest import make_net, rounding_tol, wait_until
from .resultfiles import document

PEERS = [n for n, m in methods.REGISTRY.items() if m.provider != methods.OURS]

#: Small networks: sizes, activation, loss, output activation, batch, seed. The relu
#: network's seed puts no pre-activation within reach of a step of the kink (checked in
#: network()): finite differences across it disagree honestly, and that is not under test.
NETS = [([5, 4, 3], "sigmoid", "softmax_ce", "identity", 4, 0),
        ([6, 5, 4, 3], "tanh", "mse", "sigmoid", 7, 0),
        ([4, 6, 2], "relu", "softmax_ce", "identity", 5, 1),
        ([3, 2], "identity", "mse", "identity", 3, 0)]

#: Per numerical peer: scheme order p, truncation coefficient c_p, weights of the rounding
#: (sum of |w_k| of the loss values in the quotient) and its absolute step per parameter.
STEPS = {
    "numpy:central": (2, 1 / 6, 1.0, lambda net, theta: default_step("central", net.dtype)
                      * np.maximum(1.0, np.abs(theta))),
    "torch:numerical": (2, 1 / 6, 1.0, lambda net, theta: 1e-6),  # gradcheck's eps
    "scipy:approx_fprime": (1, 1 / 2, 2.0, lambda net, theta: np.sqrt(np.finfo(float).eps)),
}


def record(name):
    """The peer's record, or a skip naming the command that installs it."""
    m = methods.get(name)
    if not m.available():
        pytest.skip(m.unavailable_reason())
    return m


def flat(grads):
    return np.concatenate([np.asarray(g, dtype=np.float64).ravel() for g in grads])


def network(spec, dtype):
    sizes, act, loss, out_act, B, seed = spec
    net = make_net(sizes, act, loss, dtype, seed=seed, output_activation=out_act)
    X, T = make_batch(net, B, seed=seed + 1)
    if act == "relu":  # the largest fixed step of the peers: float32 central differences
        h = default_step("central", "float32")
        assert sum(_near_kink(net, flat(net.params), X.astype(float), h, "central")) == 0
    return net, X, T


def tolerance(name, net, X, T):
    """How far a correct result of ``name`` may lie from our backprop (see the docstring)."""
    S = max(1.0, abs(gb.loss(net, X, T)))
    eps_L = rounding_tol(net, len(X))
    analytic = 2 * eps_L * S
    if methods.get(name).kind == "analytic":
        return analytic
    theta = flat(net.params)
    ours = flat(gb.backprop(net, X, T))
    if name == "numdifftools:gradient":
        # extrapolation (Richardson, then Wynn's epsilon) is nonlinear: its truncation is
        # what numdifftools estimates; its rounding, that of the central differences it
        # combines at its smallest step (a quarter of its final one, two Richardson terms at
        # ratio 2), times the sum of the magnitudes of its Richardson weights
        fn = methods.get(name).build(net, X, T, 1)
        fn()
        h = fn.final_step / 4
        divisor = np.abs(ours) * np.finfo(net.dtype).eps * (np.abs(theta) + h) / h
        return (analytic + fn.error_estimate
                + np.abs(fn.rule).sum() * (eps_L * S / h + divisor))
    order, coef, weights, step = STEPS[name]
    h = step(net, theta)
    divisor = np.abs(ours) * np.finfo(net.dtype).eps * (np.abs(theta) + h) / h
    return analytic + coef * 10 * S * h**order + weights * eps_L * S / h + divisor


def specs_for(name):
    return [(spec, dtype) for spec in NETS for dtype in methods.get(name).dtypes]


@pytest.mark.parametrize("name", PEERS)
def test_peer_agrees_with_our_gradient_on_small_networks(name):
    m = record(name)
    for spec, dtype in specs_for(name):
        net, X, T = network(spec, dtype)
        before = [p.copy() for p in net.params], X.copy(), T.copy()
        assert m.warm(net, 1, len(X)) >= 0
        fn = m.build(net, X, T, 1)
        out = fn()
        assert [g.shape for g in out] == [p.shape for p in net.params]
        assert {g.dtype for g in out} == {net.dtype}, (name, dtype)
        ours = flat(gb.backprop(net, X, T))
        err = np.abs(flat(out) - ours)
        tol = tolerance(name, net, X, T)
        assert np.all(err <= tol), (name, spec, dtype, float(np.max(err / tol)))
        # its record's own bound accepts it ...
        L = gb.loss(net, X, T)
        assert agreement.compare(net, out, ours, m.tolerance(net, X, T, L, ours, fn)).passed
        # ... and rejects a gradient off by 1 % in one tensor (a bug, not rounding; in float32,
        # whose central differences are good to about 1e-3 of the loss, by half)
        wrong = [g.copy() for g in out]
        wrong[0] *= 1.01 if dtype == "float64" else 1.5
        check = agreement.compare(net, wrong, ours, m.tolerance(net, X, T, L, ours, fn))
        assert not check.passed and "rejected: x's gradient lies up to" in check.reason("x")
        # nothing passed in was modified
        for a, b in zip(before[0], net.params, strict=True):
            np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(before[1], X)
        np.testing.assert_array_equal(before[2], T)


@pytest.mark.parametrize("name", PEERS)
def test_gradient_reads_the_parameters_at_call_time(name):
    # what training calls every step: net.params change in place between calls
    m = record(name)
    spec, dtype = specs_for(name)[0]
    net, X, T = network(spec, dtype)
    fn = m.gradient(net, 1)
    first = fn(X, T)
    for p in net.params:
        p *= 1.5
    second = fn(X, T)
    ours = flat(gb.backprop(net, X, T))
    assert np.all(np.abs(flat(second) - ours) <= tolerance(name, net, X, T))
    assert not np.allclose(flat(first), flat(second))
    assert [g.shape for g in second] == [p.shape for p in net.params]


@pytest.mark.parametrize("name", [n for n in PEERS if methods.get(n).dtypes == ("float64",)])
def test_float64_only_peers_refuse_float32_clearly(name):
    m = record(name)
    net, X, T = network(NETS[0], "float32")
    with pytest.raises(ValueError, match="needs a float64 network"):
        m.build(net, X, T, 1)


@pytest.mark.parametrize("name, counted", [("numpy:central", "reference"),
                                           ("scipy:approx_fprime", "reference"),
                                           ("numdifftools:gradient", "reference"),
                                           ("torch:numerical", "torch_peer")])
def test_loss_evaluations_are_what_the_cost_model_counts(name, counted, monkeypatch):
    m = record(name)
    net, X, T = network(NETS[0], "float64")
    if counted == "reference":
        target = reference
    else:
        from gradbench.peers import torch_peer as target
    calls = []
    real = target.loss

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(target, "loss", counting)
    m.build(net, X, T, 1)()
    assert len(calls) == m.cost(net.sizes, len(X), "float64").loss_evals


def test_records_name_their_library_and_install_command():
    for name in PEERS:
        m = methods.get(name)
        assert methods.base_name(name).split(":")[0] == m.provider and m.tolerance is not None
        assert m.install and m.requires
        assert methods.counterpart(name) in methods.REGISTRY
    assert methods.counterpart("torch:backprop") == "backprop"
    assert methods.counterpart("cuda:torch:backprop") == "cuda:backprop"
    assert methods.counterpart("scipy:approx_fprime") == "numerical:forward:naive"
    assert methods.counterpart("backprop") is None
    missing = dataclasses.replace(methods.get("torch:backprop"), requires=("no_such_xyz",))
    assert missing.unavailable_reason() == 'no_such_xyz not installed: pip install ' \
                                           '"gradbench-fd[torch]"'


@pytest.mark.slow
def test_jax_process_configuration_pins_threads_before_import():
    record("jax:backprop")
    # in a fresh process (pinning is process-wide): one thread means one CPU
    code = ("import os, sys; from gradbench import peers\n"
            "info = peers.configure_process('jax', 1)\n"
            "print(len(os.sched_getaffinity(0)), 'jax' in sys.modules, info['thread_control'])")
    if not hasattr(os, "sched_getaffinity") or len(os.sched_getaffinity(0)) < 2:
        pytest.skip("needs two CPUs and sched_getaffinity")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=300, check=True).stdout
    assert out.startswith("1 True process pinned to CPUs")


# ----------------------------------------------------------------------------- the sweep


def run_cli(code, *args, cwd):
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          cwd=cwd, timeout=900)


PATCH = ("import dataclasses, sys\n"
         "from gradbench import methods\n"
         "methods.REGISTRY['numpy:backprop'] = dataclasses.replace("
         "methods.REGISTRY['numpy:backprop'], requires=('no_such_module_xyz',), "
         "install='pip install \"gradbench-fd[xyz]\"')\n"
         "from gradbench.cli import main\n"
         "sys.exit(main(sys.argv[1:]))\n")


@pytest.fixture(scope="module")
def skipped_run(tmp_path_factory):
    """A quick run in which the budget (1e-9 s) skips every case, numpy:backprop made
    unavailable in the driving process."""
    tmp = tmp_path_factory.mktemp("peers-run")
    res = run_cli(PATCH, "run", "--profile", "quick", "--budget", "1e-9", "--label", "pp",
                  "--out", str(tmp / "out"), "--no-report", cwd=tmp)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    (f,) = (tmp / "out").glob("pp-quick-*.json")
    return f, res


def test_unavailable_peer_is_recorded_with_its_install_command(skipped_run):
    f, res = skipped_run
    rs = results.load_set(f)
    c = rs.cases
    gone = c[c["method"] == "numpy:backprop"]
    assert len(gone) == len(sweep.cases(sweep.PROFILES["quick"], 1, "numpy")) // 2
    assert (gone["status"] == "unavailable").all()
    assert gone["reason"].str.contains('pip install "gradbench-fd\\[xyz\\]"').all()
    assert (c[c["method"] == "numpy:central"]["status"] == "skipped").all()  # the budget
    assert rs.runs["status"].tolist() == ["complete"]
    assert 'peers not installed here (not run):\n  numpy:backprop                     ' \
           'no_such_module_xyz not installed: pip install "gradbench-fd[xyz]"' in res.stdout


def test_each_peer_provider_runs_in_a_process_of_its_own(skipped_run):
    f, _ = skipped_run
    c = results.load_set(f).cases
    ran = c[c["pid"].notna()]
    pids = ran.groupby("provider")["pid"].unique()
    assert all(len(p) == 1 for p in pids)  # one process per provider ...
    assert len({int(p[0]) for p in pids}) == len(pids)  # ... each its own
    assert "numpy" in pids and pids["gradbench"][0] != pids["numpy"][0]
    assert set(pids.index) == {p for p in sweep.PROFILES["quick"].providers
                               if any(methods.get(m).available() for m in PEERS
                                      if methods.get(m).provider == p)} | {"gradbench"}
    peers = ran[ran["provider"] != methods.OURS]
    assert peers["library"].notna().all() and peers["thread_control"].notna().all()


def test_a_wrong_peer_is_rejected_not_timed(skipped_run, tmp_path):
    # the numpy part of a run, in a process of its own as the driver starts it, with a
    # numpy:backprop that returns a gradient 1 % off in W1
    f, _ = skipped_run
    out = tmp_path / "run.json"
    shutil.copy(f, out)
    base = json.loads(out.read_text())
    code = ("import sys, dataclasses, pytest\n"
            "from pathlib import Path\n"
            "from gradbench import methods\n"
            "from gradbench.bench import parts, sweep\n"
            "import gradbench.bench as bench\n"
            "m = methods.REGISTRY['numpy:backprop']\n"
            "def build(net, X, T, threads):\n"
            "    fn = m.build(net, X, T, threads)\n"
            "    def wrong():\n"
            "        g = fn(); g[0] = g[0] * 1.01; return g\n"
            "    return wrong\n"
            "methods.REGISTRY['numpy:backprop'] = dataclasses.replace(m, build=build)\n"
            "prof = sweep.profile('quick', 60.0)\n"
            "argv = parts.pytest_args(Path(bench.__file__).parent, prof, 'pp', 1, "
            "Path(sys.argv[1]), sys.argv[2])\n"
            "sys.exit(pytest.main([*argv, '--gb-provider', 'numpy', '--gb-methods', "
            "'numpy:backprop', '--gb-append']))\n")
    res = run_cli(code, str(out), str(tmp_path / "storage"), cwd=tmp_path)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    rs = results.load_set(out)
    mine = rs.cases[(rs.cases["method"] == "numpy:backprop")
                    & (rs.cases["status"] != "unavailable")]
    assert len(mine) and (mine["status"] == "rejected").all()  # none timed
    assert mine["reason"].str.contains("rejected: numpy:backprop's gradient lies up to").all()
    # the earlier parts' cases are kept, the budget spent carries on
    assert len(json.loads(out.read_text())["gradbench"]["skipped"]) == \
        len(base["gradbench"]["skipped"]) + len(mine)
    assert rs.runs["spent_seconds"].iloc[0] >= base["gradbench"]["spent_seconds"]


@pytest.mark.slow
def test_ctrl_c_reaches_the_peer_process_and_keeps_its_cases(tmp_path):
    # gradbench's part shrunk to a few primal cases; numpy's loop then runs in its own
    # process, long enough on any machine (its whole quick ladder) to be interrupted
    code = ("import dataclasses, sys\n"
            "from gradbench.bench import sweep\n"
            "q = sweep.PROFILES['quick']\n"
            "sweep.PROFILES['quick'] = dataclasses.replace(q, methods=('primal', "
            "'numpy:central'), widths=q.widths[:3], classic=False)\n"
            "from gradbench.cli import main\n"
            "sys.exit(main(sys.argv[1:]))\n")
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-c", code, "run", "--profile", "quick",
                             "--budget", "600", "--label", "intr", "--out", str(out),
                             "--no-report"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, cwd=tmp_path, start_new_session=True)
    def numpy_timed():
        files = list(out.glob("intr-quick-*.json")) if out.exists() else []
        try:
            doc = json.loads(files[0].read_text()) if files else {"benchmarks": []}
        except ValueError:  # being replaced
            return False
        return any(b["extra_info"]["method"] == "numpy:central" for b in doc["benchmarks"])

    assert wait_until(numpy_timed, "a numpy:central case completed", proc), \
        proc.communicate()[1][-2000:]
    os.killpg(proc.pid, signal.SIGINT)  # as a terminal would: the driver's group
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 130, stdout[-2000:] + stderr[-2000:]
    (f,) = out.glob("intr-quick-*.json")
    rs = results.load_set(f)
    assert rs.runs["status"].tolist() == ["interrupted"]
    numpy = rs.cases[(rs.cases["method"] == "numpy:central") & (rs.cases["status"] == "ok")]
    assert len(numpy) >= 1 and numpy["pid"].nunique() == 1
    assert "Traceback" not in stderr
    assert not [p for p in out.iterdir() if p.name.startswith(".")]


# ----------------------------------------------------------------------------- the report


def peer_results(path):
    """Results with our backprop and two peers on a small ladder and the classic network,
    a peer not installed and a rejected case."""
    timings = [(m, w, c * w) for m, c in (("backprop", 1e-5), ("torch:backprop", 2e-5),
                                          ("numpy:central", 1e-2),
                                          ("numerical:central:naive", 5e-3))
               for w in (8, 16, 32, 64)]
    doc = document(timings)
    for m, t in (("backprop", 2e-4), ("torch:backprop", 3e-4), ("primal", 1e-4)):
        info = {**sweep.Case(m, (784, 50, 10), 100, "float64", 2).info(),
                "gradbench_schema": results.SCHEMA_VERSION, "pid": 7}
        doc["benchmarks"].append({"name": m, "extra_info": info, "stats": {
            "median": t, "mean": t, "min": t, "max": t, "rounds": 1, "data": [t]}})
    for b in doc["benchmarks"]:
        if b["extra_info"]["method"] == "torch:backprop":
            b["extra_info"].update(pid=8, library="torch 2.13.0", check_ratio=1e-3,
                                   thread_control="torch.set_num_threads(2)")
    jax = sweep.Case("jax:backprop", (784, 8, 10), 32, "float64", 2).info()
    doc["gradbench"]["skipped"] += [
        {**jax, "predicted_seconds": 0.0, "why": "unavailable",
         "reason": 'jax not installed: pip install "gradbench-fd[jax]"'},
        {**sweep.Case("numpy:central", (784, 128, 10), 32, "float64", 2).info(),
         "predicted_seconds": 1.0, "why": "rejected", "reason": "rejected: <b>off</b>"}]
    path.write_text(json.dumps(doc))
    return path


def test_classic_ratios_and_the_peers_section(tmp_path):
    f = peer_results(tmp_path / "r.json")
    df = results.load(f)
    assert set(df["status"]) == {"ok", "unavailable", "rejected"}
    classic = report.classic_ratios(df).set_index("method")
    assert classic.loc["torch:backprop", "over_backprop"] == pytest.approx(1.5)
    assert classic.loc["torch:backprop", "ours_over"] == pytest.approx(2 / 3)
    assert np.isnan(classic.loc["backprop", "ours_over"])
    assert classic.loc["backprop", "counterpart"] == ""
    page = report.build(f, tmp_path / "rep").read_text()
    section = page[page.index('<section id="peers">'):]
    section = section[:section.index("</section>")]
    for words in ("On the classic network", "backprop (torch autograd)", "torch 2.13.0",
                  "8 (gradbench&#39;s: 7)", 'pip install &#34;gradbench-fd[jax]&#34;',
                  "rejected: &lt;b&gt;off&lt;/b&gt;", 'src="peers.png"'):
        assert words in section, words
    assert (tmp_path / "rep" / "peers.png").is_file()
    # the figures above show gradbench's methods only; the fits leave the classic case out
    drawn = report.figures.time_vs_n(results.ladder(df[df["provider"] == "gradbench"]),
                                     tmp_path / "t.png")
    assert not [d for d in drawn if "torch" in d or "NumPy" in d]
    fit = next(f for f in results.fits(df) if f.method == "backprop")
    assert fit.n_points == 4  # the ladder's four sizes, not the classic network


def test_peers_figure_draws_each_peer_beside_its_counterpart(tmp_path):
    df = results.load(peer_results(tmp_path / "r.json"))
    drawn = report.figures.peers_time(df, tmp_path / "p.png")
    names = [d.split(":")[0] for d in drawn]
    assert names == ["backprop", "central (naive)", "central (NumPy textbook loop)",
                     "backprop (torch autograd)"]
    with pytest.raises(report.figures.MissingData, match="no peer was timed"):
        report.figures.peers_time(df[df["provider"] == "gradbench"], tmp_path / "x.png")


def test_a_bad_reason_for_not_timing_is_refused(tmp_path):
    doc = document([("backprop", 8, 1e-5)])
    doc["gradbench"]["skipped"] = [{**sweep.Case("backprop", (784, 8, 10), 32, "float64",
                                                 2).info(), "predicted_seconds": 1.0,
                                    "why": "bored"}]
    (tmp_path / "r.json").write_text(json.dumps(doc))
    with pytest.raises(ValueError, match=r"gradbench.skipped\[0\].why must be one of budget"):
        results.load(tmp_path / "r.json")


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_torchs_gpu_methods_computed_on_the_cpu(monkeypatch, dtype):
    """The torch GPU peer's code on torch's CPU device (no GPU here): backprop to rounding,
    and its batched central differences, in chunks that split the parameters unevenly, to
    the rounding of two finite-difference results (gradbench's steps: eps |L| / h)."""
    pytest.importorskip("torch")
    from gradbench.peers import torch_cuda_peer as P

    monkeypatch.setattr(P, "DEVICE", "cpu")
    monkeypatch.setattr(P, "CHUNK", 7)
    net = make_net([3, 4, 2], activation="sigmoid", dtype=dtype)
    X, T = make_batch(net, 3, seed=1)
    flat = lambda gs: np.concatenate([np.asarray(g.cpu(), dtype=np.float64).ravel()  # noqa: E731
                                      for g in gs])
    ours = np.concatenate([g.ravel() for g in gb.backprop(net, X, T)]).astype(np.float64)
    f = max(1.0, abs(gb.loss(net, X, T)))
    assert np.max(np.abs(flat(P.build_backprop(net, X, T, 1)()) - ours)) <= \
        2 * rounding_tol(net, 3) * f
    central = P.build_central(net, X, T, 1)()
    assert [tuple(g.shape) for g in central] == [p.shape for p in net.params]
    naive = np.concatenate([g.ravel() for g in gb.numerical_gradient(
        net, X, T, "central", threads=1)]).astype(np.float64)
    h = default_step("central", dtype)
    assert np.max(np.abs(flat(central) - naive)) <= 8 * rounding_tol(net, 3) * f / h
