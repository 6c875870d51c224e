import numpy as np
import pytest

from gradbench import costmodel as CM


def test_classic_forward_flops_and_evals():
    sizes, B = [784, 50, 10], 100
    c = CM.predict("primal", sizes, B)
    assert c.flops == pytest.approx(2 * B * (784 * 50 + 50 * 10), rel=0.01)  # ~7.9 MFLOP
    assert c.loss_evals == 1
    N = 39760
    for scheme, evals in [("forward", N + 1), ("central", 2 * N), ("five_point", 4 * N),
                          ("complex_step", N)]:
        assert CM.predict("numerical", sizes, B, scheme=scheme).loss_evals == evals
    naive = CM.predict("numerical", sizes, B)
    assert naive.flops == 2 * N * c.flops


def test_backprop_is_a_small_multiple_of_the_forward_pass():
    for sizes in ([784, 50, 10], [100, 100, 100, 10], [5, 3]):
        ratio = CM.predict("backprop", sizes, 32).flops / CM.predict("primal", sizes, 32).flops
        assert 1.5 < ratio < 3.5


def test_growth_orders():
    # widths doubled at fixed depth: N grows ~4x; naive ~16x, backprop ~4x
    small, big = [64, 64, 64, 10], [128, 128, 128, 10]
    n_ratio = CM.num_params(big) / CM.num_params(small)
    for method, k in (("primal", 1), ("backprop", 1)):
        r = CM.predict(method, big, 16).flops / CM.predict(method, small, 16).flops
        assert r == pytest.approx(n_ratio ** k, rel=0.15)
    r = CM.predict("numerical", big, 16).flops / CM.predict("numerical", small, 16).flops
    assert r == pytest.approx(n_ratio ** 2, rel=0.15)


def test_incremental_is_much_cheaper_than_naive():
    naive = CM.predict("numerical", [784, 50, 10], 100, strategy="naive")
    incr = CM.predict("numerical", [784, 50, 10], 100, strategy="incremental")
    assert incr.loss_evals == naive.loss_evals
    assert naive.flops / incr.flops > 100
    assert CM.predict("numerical", [784, 50, 10], 100, dtype="float32").bytes < naive.bytes


@pytest.mark.parametrize("args", [("sideways", [3, 2], 1), ("numerical", [3, 2], 1)])
def test_unknown_names(args):
    with pytest.raises(ValueError, match="choose one of"):
        if args[0] == "numerical":
            CM.predict(*args, strategy="lazy")
        else:
            CM.predict(*args)


def test_num_params_matches_model():
    import gradbench as gb
    for sizes in ([784, 50, 10], [3, 1], [4, 5, 6, 7]):
        assert CM.num_params(sizes) == gb.MLP(sizes).num_params == \
            sum(int(np.prod(p.shape)) for p in gb.MLP(sizes).params)


def test_the_one_time_prediction():
    # a loss of the classic network measured at 1 ms: the rate every prediction uses
    sizes, B = (784, 50, 10), 100
    rate = CM.seconds_per_flop(1e-3, sizes, B)
    assert rate == pytest.approx(1e-3 / CM.predict("primal", sizes, B).flops)
    naive = CM.predict("numerical", sizes, B).flops
    assert CM.predict_seconds(naive, rate) == pytest.approx(2 * 39760 * 1e-3)
    # methods that spread their work over the threads divide by them; the others do not
    assert CM.predict_seconds(naive, rate, 2, threaded=True) == pytest.approx(39760 * 1e-3)
    assert CM.predict_seconds(naive, rate, 2) == pytest.approx(2 * 39760 * 1e-3)


def test_the_sweep_check_and_train_make_the_one_prediction(monkeypatch):
    import gradbench as gb
    from gradbench import datasets, methods, train
    from gradbench.bench import sweep
    from gradbench.cli import check
    calls = []
    real = CM.predict_seconds

    def spy(*args):
        calls.append(args)
        return real(*args)

    monkeypatch.setattr(CM, "predict_seconds", spy)
    naive = methods.get("numerical:central:naive")
    case = sweep.Case(naive.name, (6, 4, 3), 5, "float64", 2)
    assert sweep.predict_seconds(case, 1e-9) == real(case.cost().flops, 1e-9, 2, True)
    assert calls[-1] == (case.cost().flops, 1e-9, 2, True)

    data = datasets.synthetic(6, 3, 10, 5, seed=0)
    net = gb.MLP([6, 4, 3], seed=0)
    X, y = data.X_train[:5], data.y_train[:5]
    check._predicted_seconds(net, X, y, "central", "naive", 1)
    assert calls[-1][0] == naive.cost((6, 4, 3), 5, "float64").flops
    assert calls[-1][2:] == (1, True)

    p = train.plan(net, data, naive.name, train.TrainOptions(steps=1, batch=5, threads=1))
    monkeypatch.setattr(train, "MEASURE_BELOW", 0.0)  # the cost model's prediction alone
    train.predict_seconds(net, data, p)
    assert calls[-1][0] == naive.cost((6, 4, 3), 5, "float64").flops
    assert calls[-1][2:] == (1, True)
