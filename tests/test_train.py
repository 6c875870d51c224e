"""Training: the update rules against hand-computed steps (gradients from the NumPy
reference), loss going down, numerical methods training alike, the history, every bad option,
and the prediction. No timing is asserted."""

import re
import sys

import numba
import numpy as np
import pytest

import gradbench as gb
from gradbench import config, datasets, methods, reference, train
from gradbench.model import prepare_batch

from .conftest import rounding_tol


def tiny(inputs=6, classes=3, n_train=40, n_test=20, seed=0):
    return datasets.synthetic(inputs, classes, n_train, n_test, seed=seed)


def net_for(data, hidden=5, dtype="float64", activation="tanh", seed=1, **kwargs):
    return gb.MLP([data.inputs, hidden, data.classes], activation=activation, dtype=dtype,
                  init="normal", scale=0.5, seed=seed, **kwargs)


def batches(data, batch, seed, steps):
    """The batches train() takes, from its documented shuffling: one generator seeded with
    ``seed``, a permutation per epoch cut into n // batch batches."""
    rng = np.random.default_rng(seed)
    n = len(data.y_train)
    out = []
    while len(out) < steps:
        order = rng.permutation(n)
        out += [order[k * batch:(k + 1) * batch] for k in range(n // batch)]
    return out[:steps]


def ref_grad(net, params, data, idx):
    X, T = prepare_batch(net, data.X_train[idx], data.y_train[idx])
    return reference.backprop(net, params, X, T)


def tol(net, batch, grads, lr, steps=1):
    """What the kernel's gradient may differ from the reference's, after lr and steps."""
    scale = max(float(np.abs(g).max()) for g in grads)
    return steps * lr * rounding_tol(net, batch) * max(scale, 1.0)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_one_sgd_step_is_the_hand_computed_update(dtype):
    data = tiny()
    net = net_for(data, dtype=dtype)
    before = [p.copy() for p in net.params]
    lr, batch = 0.3, 8
    h = train.train(net, data, "backprop", optimizer="sgd", lr=lr, steps=1, batch=batch,
                    seed=7)
    (idx,) = batches(data, batch, 7, 1)
    g = ref_grad(net, before, data, idx)
    t = tol(net, batch, g, lr)
    for p, p0, gi in zip(net.params, before, g, strict=True):
        expected = p0 - lr * gi
        np.testing.assert_allclose(p, expected, rtol=0, atol=t + 4 * np.finfo(p.dtype).eps
                                   * np.abs(expected).max())
        assert p.dtype == np.dtype(dtype)
    assert h.steps == 1 and h.plan.momentum is None


def test_momentum_over_three_steps_is_the_heavy_ball_rule():
    data = tiny()
    net = net_for(data)
    theta = [p.copy() for p in net.params]
    lr, mu, batch = 0.2, 0.7, 8
    train.train(net, data, "backprop", optimizer="momentum", lr=lr, momentum=mu, steps=3,
                batch=batch, seed=3)
    plain = [p.copy() for p in theta]
    v = [np.zeros_like(p) for p in theta]
    worst = []
    for idx in batches(data, batch, 3, 3):
        g = ref_grad(net, theta, data, idx)
        worst.append(tol(net, batch, g, lr, steps=3))
        v = [mu * vi - lr * gi for vi, gi in zip(v, g, strict=True)]
        theta = [ti + vi for ti, vi in zip(theta, v, strict=True)]
        plain = [pi - lr * gi for pi, gi in
                 zip(plain, ref_grad(net, plain, data, idx), strict=True)]
    atol = 3 * max(worst) + 1e-15
    for p, expected in zip(net.params, theta, strict=True):
        np.testing.assert_allclose(p, expected, rtol=0, atol=atol)
    # the test can tell: plain SGD on the same batches lands measurably elsewhere
    assert np.abs(net.params[0] - plain[0]).max() > 1000 * atol


def test_update_rules_in_place_exactly():
    p = [np.array([1.0, 2.0]), np.array([[3.0]])]
    g = [np.array([0.5, -1.0]), np.array([[2.0]])]
    train.sgd_update(p, g, 0.1)
    assert p[0].tolist() == [1.0 - 0.1 * 0.5, 2.0 + 0.1 * 1.0] and p[1][0, 0] == 3.0 - 0.2
    q = [np.array([0.0])]
    v = [np.array([1.0])]
    train.momentum_update(q, [np.array([2.0])], v, 0.5, 0.9)
    assert v[0][0] == 0.9 * 1.0 - 0.5 * 2.0 and q[0][0] == v[0][0]


def test_training_reduces_the_loss_and_learns():
    data = datasets.synthetic(10, 4, 400, 200, seed=2)
    net = net_for(data, hidden=12, activation="sigmoid", seed=0)
    X0, y0 = data.X_train.copy(), data.y_train.copy()
    seen = []
    h = train.train(net, data, epochs=15, batch=20, lr=0.5, on_epoch=lambda hh: seen.append(
        len(hh.epochs)))
    first, last = h.epochs[0], h.epochs[-1]
    assert last.loss < 0.3 * first.loss
    assert last.test_accuracy > 0.85 and last.train_accuracy > 0.85
    assert [e.epoch for e in h.epochs] == list(range(16)) and seen == list(range(1, 17))
    assert np.array_equal(data.X_train, X0) and np.array_equal(data.y_train, y0)
    assert h.status == "complete" and h.note is None


def test_history_counts_steps_and_times():
    data = tiny(n_train=40)
    calls = []
    h = train.train(net_for(data), data, steps=12, batch=8,
                    on_step=lambda s, total: calls.append((s, total)))
    assert h.plan.steps_per_epoch == 5 and h.plan.epochs == 3
    assert [(e.epoch, e.steps, e.epoch_steps) for e in h.epochs] == [
        (0, 0, 0), (1, 5, 5), (2, 10, 5), (3, 12, 2)]
    assert calls == [(s, 12) for s in range(1, 13)]
    assert len(h.gradient_seconds) == len(h.step_seconds) == 12
    assert all(g <= s for g, s in zip(h.gradient_seconds, h.step_seconds, strict=True))
    t = h.timing()
    assert t["gradient"]["count"] == 12 and t["step"]["min"] <= t["step"]["median"]
    assert h.epochs[0].gradient_median is None and h.epochs[1].step_median > 0
    elapsed = [e.elapsed_seconds for e in h.epochs]
    assert elapsed == sorted(elapsed) and h.epochs[-1].train_seconds == pytest.approx(
        sum(h.step_seconds))


def test_evaluate_matches_the_kernel_loss_and_predict():
    data = tiny()
    net = net_for(data)
    loss, acc = train.evaluate(net, data.X_test, data.y_test, chunk=7)
    assert loss == pytest.approx(gb.loss(net, data.X_test, data.y_test), rel=1e-12)
    assert acc == np.mean(train.predict(net, data.X_test, chunk=3) == data.y_test)


def test_mse_networks_train_on_one_hot_targets():
    data = tiny()
    net = net_for(data, loss="mse", output_activation="sigmoid")
    h = train.train(net, data, epochs=3, batch=8)
    assert len(h.epochs) == 4 and np.isfinite(h.epochs[-1].loss)


@pytest.mark.parametrize("method", ["numerical:central:naive", "numerical:central:incremental",
                                    "numerical:complex_step:naive"])
def test_numerical_methods_train_like_backprop(method):
    """Same network, seed and batches: each step's update differs from backprop's only by the
    finite differences' error, orders of magnitude below the update itself."""
    data = tiny(inputs=4, classes=3, n_train=24, n_test=8)
    runs = {}
    for m in ("backprop", method):
        net = net_for(data, hidden=3)
        h = train.train(net, data, m, optimizer="momentum", steps=6, batch=6, threads=1)
        runs[m] = (net, h)
    (bp, hb), (nm, hn) = runs["backprop"], runs[method]
    start = net_for(data, hidden=3).params
    for p, q, p0 in zip(bp.params, nm.params, start, strict=True):
        moved = np.abs(p - p0).max()
        assert moved > 1e-3
        np.testing.assert_allclose(q, p, rtol=0, atol=1e-6 * moved)
    assert hn.plan.method.kind == "numerical"
    assert [e.steps for e in hn.epochs] == [e.steps for e in hb.epochs]


BAD = [
    ({"optimizer": "adam"}, ValueError, "unknown optimizer 'adam': choose one of sgd, momentum"),
    ({"method": "magic"}, ValueError, "unknown method 'magic'"),
    ({"method": "primal"}, ValueError, "computes the loss only, training needs a gradient"),
    ({"lr": 0}, ValueError, "learning rate must be positive and finite"),
    ({"lr": -1.0}, ValueError, "learning rate must be positive"),
    ({"lr": float("nan")}, ValueError, "learning rate must be positive and finite"),
    ({"lr": float("inf")}, ValueError, "learning rate must be positive and finite"),
    ({"lr": "0.1"}, TypeError, "lr must be a number"),
    ({"optimizer": "momentum", "momentum": 1.0}, ValueError, r"momentum must lie in \[0, 1\)"),
    ({"optimizer": "momentum", "momentum": -0.1}, ValueError, r"must lie in \[0, 1\)"),
    ({"momentum": 0.9}, ValueError, "momentum applies to the momentum optimizer only"),
    ({"epochs": 0}, ValueError, "epochs must be at least 1"),
    ({"epochs": 1.5}, TypeError, "epochs must be a whole number"),
    ({"steps": 0}, ValueError, "steps must be at least 1"),
    ({"steps": 3, "epochs": 2}, ValueError, "epochs or steps, not both"),
    ({"batch": 0}, ValueError, "batch must be at least 1"),
    ({"batch": True}, TypeError, "batch must be a whole number"),
    ({"batch": 41}, ValueError, r"batch 41 is larger than the training set \(40 samples\)"),
    ({"threads": 0}, ValueError, "threads must lie in 1.."),
    ({"seed": -1}, ValueError, "seed must be at least 0"),
]


@pytest.mark.parametrize("bundled", [False, True], ids=["keywords", "options"])
@pytest.mark.parametrize("kwargs, error, match", BAD)
def test_bad_options_are_refused_with_one_line(kwargs, error, match, bundled):
    data = tiny(n_train=40)
    net = net_for(data)
    before = [p.copy() for p in net.params]
    kwargs = dict(kwargs)
    method = kwargs.pop("method", "backprop")
    with pytest.raises(error, match=match) as info:
        if bundled:
            train.train(net, data, method, train.TrainOptions(**kwargs))
        else:
            train.train(net, data, method, **kwargs)
    assert "\n" not in str(info.value)
    assert all(np.array_equal(p, q) for p, q in zip(net.params, before, strict=True))


def test_an_unknown_keyword_is_named_with_the_valid_ones():
    data = tiny()
    with pytest.raises(TypeError) as info:
        train.train(net_for(data), data, "backprop", learning_rate=0.1)
    assert str(info.value) == (
        "unknown training option 'learning_rate': the keywords are optimizer, lr, momentum, "
        "epochs, steps, batch, threads, seed, options, on_step, on_epoch")
    with pytest.raises(TypeError, match="options must be a gradbench.train.TrainOptions, "
                                        "got dict"):
        train.train(net_for(data), data, "backprop", {"lr": 0.1})


def test_keywords_replace_the_fields_of_the_options():
    data = tiny()
    base = train.TrainOptions(optimizer="momentum", lr=0.2, steps=3, batch=8, seed=1)
    a, b = net_for(data), net_for(data)
    ha = train.train(a, data, "backprop", base, seed=2, steps=4)
    hb = train.train(b, data, "backprop", optimizer="momentum", lr=0.2, steps=4, batch=8,
                     seed=2)
    assert ha.plan == hb.plan and ha.plan.seed == 2 and ha.plan.total_steps == 4
    assert all(np.array_equal(p, q) for p, q in zip(a.params, b.params, strict=True))
    assert train.plan(a, data, "backprop", base).total_steps == 3  # base itself is unchanged
    assert train.OPTIONS == ("optimizer", "lr", "momentum", "epochs", "steps", "batch",
                             "threads", "seed")


def test_data_must_fit_the_network():
    data = tiny(inputs=6, classes=3)
    with pytest.raises(ValueError, match="6 inputs but the network's input layer has 5"):
        train.train(gb.MLP([5, 4, 3]), data)
    with pytest.raises(ValueError, match="3 classes but the network has 4 outputs"):
        train.train(gb.MLP([6, 4, 4]), data)
    with pytest.raises(TypeError, match="Dataset"):
        train.train(gb.MLP([6, 4, 3]), (data.X_train, data.y_train))


def test_complex_step_needs_float64():
    data = tiny()
    with pytest.raises(ValueError, match="supports float64 networks, not float32"):
        train.train(net_for(data, dtype="float32"), data, "numerical:complex_step:naive")


def fake(name, gradient, requires=(), install=None):
    return methods.Method(name, "peerlib", "analytic", name, build=None, warm=lambda n, t: 0.0,
                          requires=requires, install=install, gradient=gradient)


def test_a_peer_whose_library_is_missing_is_refused(monkeypatch):
    m = fake("peer:missing", lambda net, threads: None, requires=("no_such_module_gb_xyz",),
             install='pip install "gradbench-fd[peers]"')
    monkeypatch.setitem(methods.REGISTRY, m.name, m)
    data = tiny()
    with pytest.raises(ValueError, match=r"'peer:missing' is not available here: "
                       r"no_such_module_gb_xyz not installed: pip install"):
        train.train(net_for(data), data, m.name)


def test_any_registry_method_with_a_gradient_trains(monkeypatch):
    """A peer's record is all training needs: its gradient(net, threads) -> fn(X, T)."""
    def gradient(net, threads):
        def fn(X, T):
            X, T = prepare_batch(net, X, T)
            return reference.backprop(net, net.params, X, T)
        return fn

    m = fake("peer:numpy", gradient)
    monkeypatch.setitem(methods.REGISTRY, m.name, m)
    data = tiny()
    a, b = net_for(data), net_for(data)
    train.train(a, data, m.name, steps=4, batch=8)
    train.train(b, data, "backprop", steps=4, batch=8)
    for p, q in zip(a.params, b.params, strict=True):
        np.testing.assert_allclose(p, q, rtol=1e-12, atol=1e-13)


def test_a_gradient_with_nan_stops_training_as_diverged(monkeypatch):
    def gradient(net, threads):
        return lambda X, T: [np.full_like(p, np.nan) for p in net.params]

    monkeypatch.setitem(methods.REGISTRY, "peer:nan", fake("peer:nan", gradient))
    data = tiny()
    net = net_for(data)
    before = [p.copy() for p in net.params]
    h = train.train(net, data, "peer:nan", epochs=3, batch=8)
    assert h.status == "diverged" and "step 1 holds NaN or inf" in h.note
    assert len(h.epochs) == 2 and h.steps == 0  # epoch 0, and the evaluation where it stopped
    assert all(np.array_equal(p, q) for p, q in zip(net.params, before, strict=True))


def test_divergence_rule():
    assert train.divergence(2.3, 2.3) is None
    assert train.divergence(2.3 * train.EXPLODED, 2.3) is None  # at the bound: not yet
    assert "exceeds 1e+06 times the initial loss 2.3" in train.divergence(1e300, 2.3)
    assert "no longer finite" in train.divergence(float("nan"), 2.3)
    assert "no longer finite" in train.divergence(float("inf"), 2.3)
    assert train.divergence(1.0, 0.0) is not None  # any loss is infinitely many times zero


def test_a_loss_that_explodes_but_stays_finite_is_diverged(monkeypatch):
    losses = iter([1.0, 10.0, 1e7 + 1.0, 5.0])
    real = train.evaluate

    def evaluate(net, X, y, chunk=train.EVAL_CHUNK):
        loss, acc = real(net, X, y, chunk)
        return (next(losses), acc) if X is data.X_train else (loss, acc)

    data = tiny()
    monkeypatch.setattr(train, "evaluate", evaluate)
    h = train.train(net_for(data), data, epochs=5, batch=8)
    assert h.status == "diverged" and [e.epoch for e in h.epochs] == [0, 1, 2]
    assert h.note.startswith("the training loss 1e+07 exceeds 1e+06 times the initial loss 1 "
                             "after epoch 2: training diverged")


def test_a_gradient_of_the_wrong_shape_is_a_type_error(monkeypatch):
    monkeypatch.setitem(methods.REGISTRY, "peer:bad", fake(
        "peer:bad", lambda net, threads: lambda X, T: [np.zeros(3)] * len(net.params)))
    data = tiny()
    with pytest.raises(TypeError, match="returned W1 of shape"):
        train.train(net_for(data), data, "peer:bad", steps=1, batch=8)


def test_prediction_is_positive_and_says_its_basis(monkeypatch):
    data = tiny()
    net = net_for(data)
    p = train.plan(net, data, "numerical:central:naive",
                   train.TrainOptions(steps=10, batch=8, threads=1))
    pred = train.predict_seconds(net, data, p)
    assert pred.seconds > 0 and pred.per_step > 0 and pred.steps == 10
    assert "measured on this network" in pred.basis
    monkeypatch.setattr(train, "MEASURE_BELOW", 0.0)  # the cost model's prediction alone
    pred = train.predict_seconds(net, data, p)
    assert pred.basis == "the cost model and a measured loss evaluation"
    assert pred.seconds >= pred.per_step * 10


def test_trainable_methods_are_named_when_a_loss_only_one_is_asked():
    with pytest.raises(ValueError) as info:
        train.gradient_method("primal")
    assert "backprop" in str(info.value) and "numerical:central:naive" in str(info.value)


# ----------------------------------------------------------------------------- records


def record(tmp_path, name="r.json", method="backprop", status="complete", **kwargs):
    """A training record of a tiny run, written as gradbench train writes it."""
    from gradbench import machine
    from gradbench.results import training

    data = tiny()
    net = net_for(data)
    h = train.train(net, data, method, epochs=2, batch=8, **kwargs)
    provenance = training.Provenance("m1", machine.describe("m1"), {"commit": None},
                                     command="gradbench train --data synthetic")
    doc = training.document(h, net, data, provenance, status=status)
    return training.write(tmp_path / name, doc), doc


def test_a_record_reads_back_as_frames(tmp_path):
    from gradbench.results import training

    path, doc = record(tmp_path)
    ts = training.load(path)
    (run,) = ts.runs.to_dict("records")
    assert run["method"] == "backprop" and run["kind"] == "analytic"
    assert run["sizes"] == "6-5-3" and run["data"] == "synthetic" and run["batch"] == 8
    assert run["steps"] == 10 and run["epochs"] == 2 and run["status"] == "complete"
    assert run["gradient_median"] == doc["timing"]["gradient"]["median"]
    assert list(ts.epochs["epoch"]) == [0, 1, 2]
    assert doc["format"] == "gradbench-train" and doc["network"]["dtype"] == "float64"
    for key in ("data", "network", "method", "training", "machine", "epochs", "timing"):
        assert key in doc
    assert doc["training"]["momentum"] is None and doc["training"]["optimizer"] == "sgd"


def _set(path, value):
    def change(doc):
        *head, last = path
        d = doc
        for k in head:
            d = d[k]
        if value is KeyError:
            del d[last]
        else:
            d[last] = value
    return change


MALFORMED = [
    (_set(["status"], "weird"), "field .status must be one of running"),
    (_set(["label"], 7), "field .label must be a string"),
    (_set(["network", "sizes"], [6, 0, 3]), "field network.sizes must list"),
    (_set(["network", "dtype"], "float16"), "field network.dtype must be one of"),
    (_set(["training", "lr"], -1), "field training.lr must be a positive finite number"),
    (_set(["training", "batch"], "8"), "field training.batch must be a whole number"),
    (_set(["training", "optimizer"], "adam"), "field training.optimizer must be one of"),
    (_set(["method", "name"], KeyError), "field method.name is missing"),
    (_set(["epochs"], []), "field epochs is empty"),
    (_set(["epochs", 1, "test_accuracy"], 1.5), "field epochs[1].test_accuracy must lie in"),
    (_set(["epochs", 2, "steps"], 1), "field epochs must be in training order"),
    (_set(["epochs", 1, "train_seconds"], None), "field epochs[1].train_seconds is missing"),
    (_set(["timing", "gradient", "median"], 0), "field timing.gradient.median must be a "
                                                 "positive"),
    (_set(["epochs", 0], "x"), "field epochs[0] must be an object"),
]


@pytest.mark.parametrize("change, words", MALFORMED)
def test_malformed_records_name_the_file_and_the_field(tmp_path, change, words):
    import json

    from gradbench.results import training

    path, doc = record(tmp_path)
    change(doc)
    path.write_text(json.dumps(doc))
    with pytest.raises(ValueError) as info:
        training.load(path)
    msg = str(info.value)
    assert str(path) in msg and words in msg and "\n" not in msg, msg
    assert "re-run the training" in msg


def test_record_schema_and_kind_checks(tmp_path):
    import json

    from gradbench.results import training

    path, doc = record(tmp_path)
    doc["schema_version"] = 99
    path.write_text(json.dumps(doc))
    with pytest.raises(ValueError, match="schema 99"):
        training.load(path)
    other = tmp_path / "other.json"
    other.write_text("{}")
    with pytest.raises(ValueError, match="not a training record"):
        training.load(other)


def test_benchmark_result_sets_leave_training_records_out(tmp_path):
    from gradbench import results

    from .resultfiles import WIDTHS, power, write_result

    record(tmp_path)
    write_result(tmp_path / "bench.json", power("backprop", 1, 2e-9, WIDTHS))
    rs = results.load_set(tmp_path)
    assert list(rs.runs["file"]) == [str(tmp_path / "bench.json")]
    (tmp_path / "bench.json").unlink()
    with pytest.raises(ValueError, match="only training records"):
        results.load_set(tmp_path)


# ----------------------------------------------------------------------------- the command


def cli(capsys, *args):
    from gradbench.cli import main

    rc = main(["train", *args])
    out, err = capsys.readouterr()
    return rc, out, err


def saved(folder):
    import json

    files = sorted(folder.glob("train-*.json"))
    return [json.loads(f.read_text()) for f in files], files


def test_cli_end_to_end_on_synthetic_data(tmp_path, capsys):
    from gradbench import report
    from gradbench.results import training

    out = tmp_path / "results"
    rc, text, err = cli(capsys, "--data", "synthetic", "--sizes", "6,5,3", "--epochs", "3",
                        "--batch", "16", "--out", str(out), "--label", "box1",
                        "--optimizer", "momentum", "--lr", "0.05", "--momentum", "0.8")
    assert rc == 0, err
    (doc,), (path,) = saved(out)
    assert path.name.startswith("train-box1-backprop-")
    assert doc["status"] == "complete" and doc["label"] == "box1"
    assert doc["data"]["name"] == "synthetic" and doc["network"]["sizes"] == [6, 5, 3]
    assert doc["network"]["activation"] == "sigmoid" and doc["network"]["loss"] == "softmax_ce"
    assert doc["method"] == {"name": "backprop", "provider": "gradbench", "kind": "analytic",
                             "scheme": None, "strategy": None}
    t = doc["training"]
    assert (t["optimizer"], t["lr"], t["momentum"], t["batch"], t["seed"]) == (
        "momentum", 0.05, 0.8, 16, 0)
    assert t["threads"] >= 1 and doc["machine"]["label"] == "box1" and "cpu_model" in doc[
        "machine"]
    assert [e["epoch"] for e in doc["epochs"]] == [0, 1, 2, 3]
    assert doc["timing"]["step"]["count"] == 3 * (2000 // 16)
    assert "--optimizer momentum --lr 0.05 --momentum 0.8 --epochs 3" in doc["command"]
    for word in ("epoch   3", "loss", "train", "test", "/step", "elapsed", str(path)):
        assert word in text
    assert training.load(out).runs["steps"].iloc[0] == 375
    index = report.build(out, tmp_path / "report")
    page = index.read_text()
    assert 'id="training"' in page and "Time per step" in page
    assert (tmp_path / "report" / "training-1.png").is_file()
    assert 'id="fits"' not in page  # no benchmark results: no benchmark sections


def test_cli_repeats_from_its_recorded_command(tmp_path, capsys):
    import shlex

    rc, _, err = cli(capsys, "--data", "synthetic", "--sizes", "4,3,2", "--steps", "7",
                     "--out", str(tmp_path / "a"))
    assert rc == 0, err
    (doc,), _ = saved(tmp_path / "a")
    argv = shlex.split(doc["command"])[2:]
    assert cli(capsys, *argv, "--out", str(tmp_path / "b"))[0] == 0
    (again,), _ = saved(tmp_path / "b")
    assert [e["loss"] for e in again["epochs"]] == [e["loss"] for e in doc["epochs"]]


def test_cli_on_idx_files(tmp_path, capsys):
    from .test_datasets import mnist_folder

    folder = mnist_folder(tmp_path / "mnist", n_train=30, n_test=10, zipped=True)
    out = tmp_path / "results"
    rc, text, err = cli(capsys, "--mnist", str(folder), "--sizes", "12,8,10", "--batch", "10",
                        "--steps", "7", "--out", str(out))
    assert rc == 0, err
    (doc,), _ = saved(out)
    assert doc["data"]["name"] == "mnist" and doc["data"]["n_train"] == 30
    assert doc["data"]["scaling"].startswith("pixel / 255")
    assert [(e["epoch"], e["steps"]) for e in doc["epochs"]] == [(0, 0), (1, 3), (2, 6),
                                                                 (3, 7)]
    assert "(1/3 steps)" in text  # the partial last epoch
    assert f"--mnist {folder.resolve()}" in doc["command"]


def test_cli_default_sizes_come_from_the_data(tmp_path, capsys):
    from .test_datasets import mnist_folder

    folder = mnist_folder(tmp_path / "mnist", n_train=20, n_test=5)
    rc, _, err = cli(capsys, "--mnist", str(folder), "--epochs", "1", "--batch", "5",
                     "--out", str(tmp_path / "r"))
    assert rc == 0, err
    (doc,), _ = saved(tmp_path / "r")
    assert doc["network"]["sizes"] == [12, 50, 10]


def damaged_mnist(tmp_path, what):
    from .test_datasets import idx_bytes, images, labels, mnist_folder, write

    folder = mnist_folder(tmp_path / what)
    names = datasets.MNIST_FILES
    if what == "magic":
        write(folder / names["train_images"], b"\x08\x03\0\0" + b"\0" * 200)
    elif what == "truncated":
        write(folder / names["test_images"], idx_bytes(images(5))[:-1])
    elif what == "trailing":
        write(folder / names["train_labels"], idx_bytes(labels(12)) + b"\0")
    elif what == "counts":
        write(folder / names["test_labels"], idx_bytes(labels(4)))
    elif what == "labels":
        write(folder / names["test_labels"], idx_bytes(np.full(5, 200)))
    elif what == "missing":
        (folder / names["train_labels"]).unlink()
    return folder


BAD_CLI = [
    (["--optimizer", "adam"], "--optimizer 'adam' is not known: choose one of sgd"),
    (["--method", "magic"], "--method: unknown method 'magic'"),
    (["--method", "primal"], "computes the loss only"),
    (["--lr", "0"], "--lr (the learning rate) must be positive"),
    (["--lr", "-0.5"], "--lr (the learning rate) must be positive"),
    (["--lr", "nan"], "--lr (the learning rate) must be positive and finite"),
    (["--epochs", "0"], "--epochs must be at least 1"),
    (["--steps", "-3"], "--steps must be at least 1"),
    (["--epochs", "2", "--steps", "3"], "not allowed with argument"),
    (["--batch", "0"], "--batch must be at least 1"),
    (["--batch", "100000"], "larger than the training set"),
    (["--seed", "-1"], "--seed must be a whole number of at least 0, got -1"),
    (["--optimizer", "momentum", "--momentum", "1"], r"--momentum must lie in [0, 1)"),
    (["--momentum", "0.5"], "--momentum applies to --optimizer momentum only"),
    (["--data", "cifar"], "--data 'cifar' is not known"),
    (["--data", "synthetic", "--sizes", "6,5,1"], "classes must be at least 2"),
    (["--activation", "gelu"], "--activation 'gelu' is not known"),
    (["--dtype", "float16"], "--dtype 'float16' is not known"),
    (["--sizes", "6,x"], "comma-separated whole numbers"),
    (["--threads", "0"], "--threads must lie in 1.."),
    (["--label", "a/b"], "--label 'a/b' must be 1 to 64 ASCII letters (A-Z, a-z)"),
    (["--label", "caf\u00e9"], "--label 'caf\\xe9' must be 1 to 64 ASCII letters"),
    (["--epochs", "1000000000000"], "--epochs 1,000,000,000,000 is 62,000,000,000,000 steps, "
     "more than 10,000,000: pass --yes"),
    (["--steps", "10000001"], "--steps 10,000,001 is 10,000,001 steps"),
    (["--method", "numerical:complex_step:naive", "--dtype", "float32"],
     "supports float64 networks, not float32"),
]


def assert_refused(capsys, out, args, words):
    rc, text, err = cli(capsys, *args, "--out", str(out))
    lines = err.strip().splitlines()
    assert rc == 2, err
    assert len(lines) == 1 and words in lines[0], err
    assert lines[0].startswith("gradbench train")
    assert text == "" and "Traceback" not in err
    assert not out.exists()  # nothing written, no empty folder


@pytest.mark.parametrize("args, words", BAD_CLI)
def test_cli_bad_options_exit_2_with_one_line_and_nothing_written(tmp_path, capsys, args,
                                                                  words):
    if not any(a in ("--data", "--mnist") for a in args):
        args = ["--data", "synthetic", *args]
    assert_refused(capsys, tmp_path / "new" / "results", args, words)


@pytest.mark.parametrize("what, words", [
    ("magic", "not an IDX file"), ("truncated", "cut short"), ("trailing", "more bytes than"),
    ("counts", "4 labels, but t10k-images-idx3-ubyte holds 5 images"),
    ("labels", "label 200 at index 0"), ("missing", "train-labels-idx1-ubyte (or "),
])
def test_cli_damaged_idx_files_exit_2(tmp_path, capsys, what, words):
    folder = damaged_mnist(tmp_path, what)
    assert_refused(capsys, tmp_path / "results", ["--mnist", str(folder), "--sizes",
                                                  "12,5,10"], words)


def test_cli_idx_images_that_do_not_fit_the_sizes(tmp_path, capsys):
    from .test_datasets import mnist_folder

    folder = mnist_folder(tmp_path / "m")
    assert_refused(capsys, tmp_path / "results", ["--mnist", str(folder), "--sizes",
                                                  "784,50,10"], "4x3 = 12 pixels")
    assert_refused(capsys, tmp_path / "results", ["--mnist", str(folder), "--sizes",
                                                  "12,50,9"], "10 classes but the network")
    assert_refused(capsys, tmp_path / "results", ["--mnist", str(folder), "--data",
                                                  "digits"], "exclude each other")
    assert_refused(capsys, tmp_path / "results", ["--mnist", str(tmp_path / "none")],
                   "no such folder")


def test_cli_refuses_a_peer_that_is_not_installed(tmp_path, capsys, monkeypatch):
    m = fake("peer:absent", lambda net, threads: None, requires=("no_such_module_gb_xyz",),
             install='pip install "gradbench-fd[peers]"')
    monkeypatch.setitem(methods.REGISTRY, m.name, m)
    assert_refused(capsys, tmp_path / "results", ["--data", "synthetic", "--method",
                                                  "peer:absent"],
                   "'peer:absent' is not available here: no_such_module_gb_xyz not installed")


def test_cli_yes_threshold(tmp_path, capsys, monkeypatch):
    """A prediction forced above the threshold: refused without --yes, run with it."""
    forced = train.Prediction(3 * 3600.0, 12.0, 900, "the cost model (forced by the test)")
    monkeypatch.setattr(train, "predict_seconds", lambda net, data, plan: forced)
    args = ["--data", "synthetic", "--sizes", "4,3,2", "--method",
            "numerical:central:incremental", "--steps", "3"]
    assert_refused(capsys, tmp_path / "results", args, "predicted 3 h 00 min")
    assert_refused(capsys, tmp_path / "results", args, "more than 120 s: pass --yes to run it "
                   "anyway")
    rc, text, err = cli(capsys, *args, "--yes", "--out", str(tmp_path / "results"))
    assert rc == 0, err
    assert "predicted 3 h 00 min" in text
    (doc,), _ = saved(tmp_path / "results")
    assert doc["prediction"]["seconds"] == 3 * 3600.0 and doc["command"].endswith("--yes")
    assert doc["method"]["kind"] == "numerical" and doc["method"]["strategy"] == "incremental"


def test_cli_below_the_threshold_needs_no_yes(tmp_path, capsys, monkeypatch):
    from gradbench.cli import train as cli_train

    forced = train.Prediction(100.0, 1.0, 100, "forced")
    monkeypatch.setattr(train, "predict_seconds", lambda net, data, plan: forced)
    assert forced.seconds < cli_train.YES_SECONDS
    rc, text, err = cli(capsys, "--data", "synthetic", "--sizes", "4,3,2", "--method",
                        "numerical:forward:naive", "--steps", "2", "--out",
                        str(tmp_path / "r"))
    assert rc == 0, err
    assert "predicted 100 s" in text


def interrupting(after: int):
    """A method whose gradient raises KeyboardInterrupt on call number ``after`` + 1."""
    calls = {"n": 0}

    def gradient(net, threads):
        from gradbench import gradients

        def fn(X, T):
            calls["n"] += 1
            if calls["n"] > after:
                raise KeyboardInterrupt
            return gradients.backprop(net, X, T)
        return fn

    return fake("peer:ctrl-c", gradient)


def test_cli_ctrl_c_keeps_the_finished_epochs(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(methods.REGISTRY, "peer:ctrl-c", interrupting(after=25))
    out = tmp_path / "results"
    rc, text, err = cli(capsys, "--data", "synthetic", "--sizes", "4,3,2", "--batch", "200",
                        "--epochs", "5", "--method", "peer:ctrl-c", "--out", str(out))
    assert rc == 130
    (doc,), (path,) = saved(out)
    assert doc["status"] == "interrupted"
    assert [e["epoch"] for e in doc["epochs"]] == [0, 1, 2]  # 10 steps an epoch
    assert f"the 2 finished epoch(s) are in {path}" in err and "Traceback" not in err


def test_cli_ctrl_c_before_an_epoch_finished_leaves_nothing(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(methods.REGISTRY, "peer:ctrl-c", interrupting(after=3))
    out = tmp_path / "new" / "results"
    rc, _, err = cli(capsys, "--data", "synthetic", "--sizes", "4,3,2", "--batch", "200",
                     "--method", "peer:ctrl-c", "--out", str(out))
    assert rc == 130 and "nothing saved" in err
    assert not (tmp_path / "new").exists()


def test_cli_diverged_run_exits_1_with_its_record(tmp_path, capsys, monkeypatch):
    def gradient(net, threads):
        return lambda X, T: [np.full_like(p, np.inf) for p in net.params]

    monkeypatch.setitem(methods.REGISTRY, "peer:inf", fake("peer:inf", gradient))
    rc, _, err = cli(capsys, "--data", "synthetic", "--sizes", "4,3,2", "--method", "peer:inf",
                     "--out", str(tmp_path))
    assert rc == 1 and "diverged" in err
    (doc,), _ = saved(tmp_path)
    assert doc["status"] == "diverged" and "lower the learning rate" in doc["note"]


def test_cli_a_huge_learning_rate_is_diverged_exit_1(tmp_path, capsys):
    rc, text, err = cli(capsys, "--data", "synthetic", "--sizes", "4,3,2", "--lr", "1e300",
                        "--epochs", "3", "--out", str(tmp_path))
    assert rc == 1 and "training diverged" in err, err
    assert re.search(r"loss \d\.\d+e\+\d+ ", text) and not re.search(r"\d{20}", text)
    (doc,), _ = saved(tmp_path)
    assert doc["status"] == "diverged"


def test_cli_more_steps_than_the_bound_run_with_yes(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(config, "MAX_STEPS", 5)
    args = ["--data", "synthetic", "--sizes", "4,3,2", "--steps", "6"]
    assert_refused(capsys, tmp_path / "r", args, "--steps 6 is 6 steps, more than 5: pass "
                   "--yes")
    rc, _, err = cli(capsys, *args, "--yes", "--out", str(tmp_path / "r"))
    assert rc == 0, err


def test_cli_rewrites_the_record_at_most_every_few_seconds(tmp_path, capsys, monkeypatch):
    from gradbench.cli import train as cli_train
    from gradbench.results import training

    writes = []
    real = training.write
    monkeypatch.setattr(training, "write", lambda path, doc: (writes.append(
        doc["status"]), real(path, doc))[1])
    monkeypatch.setattr(cli_train, "SAVE_EVERY", 3600.0)
    rc, _, err = cli(capsys, "--data", "synthetic", "--sizes", "4,3,2", "--batch", "500",
                     "--epochs", "6", "--out", str(tmp_path))
    assert rc == 0, err
    assert writes == ["running", "complete"]  # epoch 0's, then the end's; none between
    (doc,), _ = saved(tmp_path)
    assert [e["epoch"] for e in doc["epochs"]] == list(range(7))


def test_cli_warns_on_a_busy_machine_and_records_the_load(tmp_path, capsys, monkeypatch):
    from gradbench import machine

    monkeypatch.setattr(machine, "load_average", lambda: [64.0, 1.0, 1.0])
    rc, _, err = cli(capsys, "--data", "synthetic", "--sizes", "4,3,2", "--steps", "2",
                     "--out", str(tmp_path))
    assert rc == 0 and "warning: this machine is busy (load average 64.0" in err
    (doc,), _ = saved(tmp_path)
    assert doc["machine"]["load_average"] == [64.0, 1.0, 1.0]


def test_cli_digits_by_default(tmp_path, capsys):
    pytest.importorskip("sklearn", reason="scikit-learn not installed (gradbench-fd[digits])")
    rc, text, err = cli(capsys, "--out", str(tmp_path))
    assert rc == 0, err
    (doc,), _ = saved(tmp_path)
    assert doc["data"]["name"] == "digits" and doc["network"]["sizes"] == [64, 50, 10]
    assert doc["epochs"][-1]["epoch"] == train.DEFAULT_EPOCHS
    assert doc["epochs"][-1]["test_accuracy"] >= 0.9  # the defaults' promise, seed 0


def test_cli_falls_back_to_synthetic_without_scikit_learn(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(datasets, "digits_available", lambda: False)
    rc, text, err = cli(capsys, "--epochs", "1", "--out", str(tmp_path))
    assert rc == 0
    assert "scikit-learn is not installed" in err and "gradbench-fd[digits]" in err
    (doc,), _ = saved(tmp_path)
    assert doc["data"]["name"] == "synthetic" and doc["network"]["sizes"] == [64, 50, 10]
    monkeypatch.setattr(sys.modules["gradbench.datasets.digits"], "digits_available",
                        lambda: False)
    assert_refused(capsys, tmp_path / "x", ["--data", "digits"], "needs scikit-learn")


# ----------------------------------------------------------------------------- the report


def test_report_with_training_records_beside_benchmark_results(tmp_path):
    from gradbench import report
    from gradbench.results import training

    from .resultfiles import WIDTHS, power, write_result

    folder = tmp_path / "results"
    folder.mkdir()
    many = numba.config.NUMBA_NUM_THREADS
    if many < 2:
        pytest.skip("needs two threads to train at two thread counts")
    record(folder, "bp.json", threads=many)
    record(folder, "fd.json", method="numerical:central:incremental", threads=many)
    record(folder, "fd1.json", method="numerical:central:incremental", threads=1)
    write_result(folder / "bench.json", power("backprop", 1, 2e-9, WIDTHS)
                 + power("numerical:central:naive", 2, 2e-9, WIDTHS[:5]))
    index = report.build([folder], tmp_path / "report")
    page = index.read_text()
    assert 'id="fits"' in page and 'id="training"' in page
    # one network, at two thread counts: a figure each (threads never merge)
    assert 'src="time.png"' in page and page.count('src="training-') == 2
    assert (tmp_path / "report" / "training-1.png").stat().st_size > 1000
    table = training.step_table(training.load(
        [folder / "bp.json", folder / "fd.json", folder / "fd1.json"]).runs)
    table = table.set_index(["method", "threads"])
    assert table.at[("backprop", many), "gradient_vs_backprop"] == 1.0
    assert table.at[("numerical:central:incremental", many), "gradient_vs_backprop"] > 0
    # no backprop at one thread to compare with: no ratio, rather than one across threads
    assert np.isnan(table.at[("numerical:central:incremental", 1), "gradient_vs_backprop"])
    assert "central (incremental)" in page


def test_training_figure_draws_a_series_per_record(tmp_path):
    from gradbench.report import figures
    from gradbench.results import training

    record(tmp_path, "a.json")
    record(tmp_path, "b.json", method="numerical:central:naive", threads=1)
    ts = training.load(tmp_path)
    drawn = figures.training_curves(ts.epochs, tmp_path / "t.png", "tiny $net")
    assert drawn == ["backprop", "central (naive)"]
    with pytest.raises(figures.MissingData):
        figures.training_curves(ts.epochs[ts.epochs["epoch"] == 0], tmp_path / "x.png", "t")


def test_cli_without_a_load_average_records_null(tmp_path, capsys, monkeypatch):
    # as on Windows, where os.getloadavg does not exist
    import os

    from gradbench.results import training

    monkeypatch.delattr(os, "getloadavg")
    rc, _, err = cli(capsys, "--data", "synthetic", "--sizes", "4,3,2", "--steps", "2",
                     "--out", str(tmp_path))
    assert rc == 0 and "Traceback" not in err, err
    (doc,), (path,) = saved(tmp_path)
    assert doc["machine"]["load_average"] is None
    assert len(training.load(path).runs) == 1


def test_threads_are_blas_and_numba_threads_of_training(monkeypatch):
    # threads=1: backprop's BLAS (by default on every core) runs on one thread, as a peer's
    # library does, and so does the loss that predicts a numerical method's time
    from gradbench import gradients

    from .conftest import ThreadWatch

    watch = ThreadWatch()
    for name in ("loss", "backprop"):
        monkeypatch.setattr(gradients, name, watch.wrap(getattr(gradients, name), name))
    data = tiny()
    net = net_for(data)
    p = train.plan(net, data, "numerical:central:naive",
                   train.TrainOptions(steps=2, batch=8, threads=1))
    train.predict_seconds(net, data, p)
    train.train(net, data, steps=2, batch=8, threads=1)
    assert watch.names() == {"loss", "backprop"}
    assert watch.threads() == {(1, 1)}


@pytest.mark.parametrize("good_writes", [0, 1])
def test_a_full_disk_stops_training_in_one_line(tmp_path, capsys, monkeypatch, good_writes):
    import errno

    from gradbench.results import training

    real, calls = training.write, []

    def fill_up(path, data):
        calls.append(path)
        if len(calls) > good_writes:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(path, data)

    monkeypatch.setattr(training, "write", fill_up)
    monkeypatch.setattr("gradbench.cli.train.SAVE_EVERY", 0.0)  # a write every epoch
    rc, _, err = cli(capsys, "--data", "synthetic", "--sizes", "4,3,2", "--epochs", "3",
                     "--out", str(tmp_path))
    said = [line for line in err.splitlines() if "could not save" in line]
    assert rc == 3 and "Traceback" not in err, err
    assert len(said) == 1 and "[Errno 28] No space left on device" in said[0], err
    assert len(calls) == good_writes + 1  # stopped at the first failed write, no retry
    assert len(list(tmp_path.glob("train-*.json"))) == good_writes
