"""Training an MLP by mini-batch SGD or momentum, with any gradient method of the registry.

The loop asks the method's record for ``gradient(net, threads) -> fn(X, T)`` once and calls
``fn`` on every batch; it updates ``net.params`` in place between calls. So backprop, every
numerical scheme and strategy, and any peer with a gradient train the same network the same
way, and the record says what each step cost.

Rules (theta the parameters, g the gradient of the batch's mean loss, lr the learning rate):

    sgd:       theta <- theta - lr * g
    momentum:  v <- mu * v - lr * g;  theta <- theta + v     (classical heavy-ball, v = 0 at
               the start; for a constant lr it is the same iteration as PyTorch's
               buf <- mu * buf + g, theta <- theta - lr * buf, with v = -lr * buf)

Epochs: each epoch is a fresh permutation of the training samples (a generator seeded with
``seed``) cut into ``n_train // batch`` batches of exactly ``batch`` samples; the remainder
(fewer than ``batch`` samples, different ones each epoch) is left out of that epoch. With
``steps`` instead of ``epochs`` training stops after that many steps, the last epoch partial.

After every epoch (and once before the first step: epoch 0) the network is evaluated by a
forward pass over the whole training set and the whole test set: the recorded ``loss`` is
the mean loss over the full training set with the parameters as they are at the end of the
epoch (not the mean of the batch losses during it), ``test_loss`` the same on the test set,
and the accuracies are the share of samples whose largest output is the label's. Evaluation
is timed apart from the steps.

Timing: every step's gradient call is timed alone (``gradient_seconds``), and so is the whole
step (``step_seconds``: gathering the batch, converting it to the network's dtype, the
gradient, checking it and the update). Compiling or loading the kernels happens before the
first step, timed apart (``compile_seconds``).

Nothing is printed: ``on_step(step, total)`` is called after every step and
``on_epoch(history)`` after every evaluation, so that a caller can show progress and save the
history as it grows. Ctrl-C (KeyboardInterrupt) propagates from the step it interrupts; the
history passed to ``on_epoch`` keeps every evaluated epoch.
"""

from __future__ import annotations

import math
import numbers
import time
from collections.abc import Callable
from dataclasses import dataclass, field, fields, replace

import numpy as np

from . import costmodel, methods
from .blas import check_threads, single_threaded_blas, thread_limits
from .config import (  # the command line's defaults and limits: its help needs no NumPy
    DEFAULT_BATCH,
    DEFAULT_EPOCHS,
    DEFAULT_LR,
    DEFAULT_MOMENTUM,
    OPTIMIZERS,
)
from .datasets import Dataset
from .model import MLP, _all_finite
from .reference import act, forward, log_softmax

#: Samples per forward pass when evaluating (bounds the memory of the activations).
EVAL_CHUNK = 10_000
#: A numerical gradient predicted (from the cost model) to take less than this is measured
#: once on the network instead, for the prediction.
MEASURE_BELOW = 1.0
#: Statuses of a history (and of a training record: "running" and "interrupted" too).
STATUSES = ("complete", "diverged")
#: Training has diverged when an evaluated loss is not finite, or exceeds the initial loss
#: (epoch 0's) this many times: a loss a million times its start is not going to come back,
#: and a learning rate such as 1e300 gives losses like 1e300 that stay finite.
EXPLODED = 1e6


# ----------------------------------------------------------------------------- checks


def _real(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {value!r}")
    return float(value)


def _whole(name: str, value, lo: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be a whole number, got {value!r}")
    if value < lo:
        raise ValueError(f"{name} must be at least {lo}, got {value}")
    return int(value)


def gradient_method(name: str, net: MLP | None = None) -> methods.Method:
    """The registry record of a method that can train ``net``.

    Raises
    ------
    ValueError
        For a name the registry does not know, a method that computes the loss only, one
        whose library is not installed here (the message says how to install it), or one
        that does not support the network's dtype.
    """
    m = methods.get(name)
    trainable = [k for k, r in methods.REGISTRY.items() if r.gradient is not None]
    if m.gradient is None:
        raise ValueError(f"method {name!r} computes the {m.kind} only, training needs a "
                         f"gradient: choose one of {', '.join(trainable)}")
    if not m.available():
        raise ValueError(f"method {name!r} is not available here: {m.unavailable_reason()}")
    if net is not None and net.dtype.name not in m.dtypes:
        raise ValueError(f"method {name!r} supports {', '.join(m.dtypes)} networks, not "
                         f"{net.dtype.name}")
    return m


@dataclass(frozen=True)
class TrainOptions:
    """How to train: the options of :func:`plan` and :func:`train`, as given.

    Nothing is checked here: :func:`plan` checks them against the network and the data (one
    line each, TypeError or ValueError) and turns them into a :class:`Plan`.

    Parameters
    ----------
    optimizer : {"sgd", "momentum"}
        The rules are in the module's docstring.
    lr : float, optional
        Learning rate, positive and finite; default :data:`DEFAULT_LR` of the optimizer.
    momentum : float, optional
        mu in [0, 1), momentum only (default 0.9); must be left out for sgd.
    epochs, steps : int, optional
        How long: whole epochs, or a number of steps (the last epoch partial). At most one;
        neither means :data:`DEFAULT_EPOCHS` epochs.
    batch : int
        Samples per step, at most the training set's size.
    threads : int, optional
        Threads the method may use (default Numba's setting): BLAS and Numba run on them
        while it trains.
    seed : int
        Seed of the shuffling (each epoch draws a permutation from one generator).
    """

    optimizer: str = "sgd"
    lr: float | None = None
    momentum: float | None = None
    epochs: int | None = None
    steps: int | None = None
    batch: int = DEFAULT_BATCH
    threads: int | None = None
    seed: int = 0


#: The names of the training options, in order: the keywords :func:`train` accepts besides
#: ``options``, ``on_step`` and ``on_epoch``.
OPTIONS = tuple(f.name for f in fields(TrainOptions))


def _options(options: TrainOptions | None, given: dict | None = None) -> TrainOptions:
    """``options`` (the defaults when None) with the fields named in ``given`` replaced; a
    TypeError naming the bad keyword and the valid ones for a name that is not an option."""
    if options is None:
        options = TrainOptions()
    elif not isinstance(options, TrainOptions):
        raise TypeError(f"options must be a gradbench.train.TrainOptions, got "
                        f"{type(options).__name__}")
    for name in given or ():
        if name not in OPTIONS:
            raise TypeError(f"unknown training option {name!r}: the keywords are "
                            f"{', '.join(OPTIONS)}, options, on_step, on_epoch")
    return replace(options, **given) if given else options


@dataclass(frozen=True)
class Plan:
    """Validated training options: what :func:`train` will do."""

    method: methods.Method
    optimizer: str
    lr: float
    momentum: float | None  # None for sgd
    batch: int
    steps_per_epoch: int
    total_steps: int
    epochs: int  # epochs started (the last one partial when steps is not a multiple)
    seed: int
    threads: int


def plan(net: MLP, data: Dataset, method: str = methods.ANALYTIC,
         options: TrainOptions | None = None) -> Plan:
    """Check every training option against the network and the data; nothing runs.

    Parameters
    ----------
    net : MLP
    data : gradbench.datasets.Dataset
    method : str
        A registry method with a gradient (see :func:`train`).
    options : TrainOptions, optional
        How to train; None: every option's default.

    Returns
    -------
    Plan

    Raises
    ------
    TypeError, ValueError
        One line, for any option :func:`train` refuses.
    """
    if not isinstance(net, MLP):
        raise TypeError(f"net must be a gradbench.MLP, got {type(net).__name__}")
    if not isinstance(data, Dataset):
        raise TypeError(f"data must be a gradbench.datasets.Dataset, got {type(data).__name__}")
    o = _options(options)
    m = gradient_method(method, net)
    optimizer, lr, momentum = o.optimizer, o.lr, o.momentum
    if not isinstance(optimizer, str) or optimizer not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {optimizer!r}: choose one of "
                         f"{', '.join(OPTIMIZERS)}")
    lr = DEFAULT_LR[optimizer] if lr is None else _real("lr", lr)
    if not (math.isfinite(lr) and lr > 0):
        raise ValueError(f"the learning rate must be positive and finite, got {lr!r}")
    if optimizer == "momentum":
        momentum = DEFAULT_MOMENTUM if momentum is None else _real("momentum", momentum)
        if not 0 <= momentum < 1:
            raise ValueError(f"momentum must lie in [0, 1), got {momentum!r}")
    elif momentum is not None:
        raise ValueError("momentum applies to the momentum optimizer only: leave it out for "
                         "sgd, or choose the momentum optimizer")
    batch = _whole("batch", o.batch)
    seed = _whole("seed", o.seed, lo=0)
    threads = check_threads(o.threads)
    n_train = int(data.X_train.shape[0])
    if data.inputs != net.sizes[0]:
        raise ValueError(f"the data have {data.inputs} inputs but the network's input layer "
                         f"has {net.sizes[0]}: make the first size {data.inputs}")
    if data.classes != net.sizes[-1]:
        raise ValueError(f"the data have {data.classes} classes but the network has "
                         f"{net.sizes[-1]} outputs: make the last size {data.classes}")
    if batch > n_train:
        raise ValueError(f"batch {batch} is larger than the training set ({n_train:,} "
                         "samples): choose a smaller batch")
    per_epoch = n_train // batch
    epochs, steps = o.epochs, o.steps
    if epochs is not None and steps is not None:
        raise ValueError("give epochs or steps, not both")
    if steps is not None:
        total = _whole("steps", steps)
        n_epochs = -(-total // per_epoch)
    else:
        n_epochs = DEFAULT_EPOCHS if epochs is None else _whole("epochs", epochs)
        total = n_epochs * per_epoch
    return Plan(m, optimizer, lr, momentum, batch, per_epoch, total, n_epochs, seed, threads)


def _check_data(net: MLP, data: Dataset) -> None:
    for name in ("X_train", "X_test"):
        X = getattr(data, name)
        if not (isinstance(X, np.ndarray) and X.ndim == 2 and X.dtype.kind == "f"):
            raise ValueError(f"data.{name} must be a 2-D float array")
        if not np.isfinite(X).all():
            raise ValueError(f"data.{name} contains NaN or inf; clean the inputs first")
    for name, X in (("y_train", data.X_train), ("y_test", data.X_test)):
        y = getattr(data, name)
        if not (isinstance(y, np.ndarray) and y.ndim == 1 and y.dtype.kind in "iu"):
            raise ValueError(f"data.{name} must be a 1-D array of integer labels")
        if len(y) != len(X):
            raise ValueError(f"data.{name} has {len(y)} labels for {len(X)} samples")
        if len(y) and (y.min() < 0 or y.max() >= data.classes):
            raise ValueError(f"data.{name} must lie in 0..{data.classes - 1}")


# ----------------------------------------------------------------------------- evaluation


def targets(net: MLP, y: np.ndarray) -> np.ndarray:
    """What the loss takes for labels ``y``: the labels themselves for softmax_ce, one-hot
    rows in the network's dtype for mse."""
    if net.loss == "softmax_ce":
        return y
    T = np.zeros((len(y), net.sizes[-1]), dtype=net.dtype)
    T[np.arange(len(y)), y] = 1
    return T


def _outputs(net: MLP, X: np.ndarray) -> np.ndarray:
    zs, _ = forward(net.params, np.asarray(X, dtype=net.dtype), net.activation)
    return zs[-1]


def predict(net: MLP, X, chunk: int = EVAL_CHUNK) -> np.ndarray:
    """The class each row of ``X`` is given (the largest output), by a forward pass."""
    X = np.asarray(X)
    out = [np.argmax(_outputs(net, X[i:i + chunk]), axis=1) for i in range(0, len(X), chunk)]
    return np.concatenate(out) if out else np.zeros(0, dtype=np.int64)


def evaluate(net: MLP, X, y, chunk: int = EVAL_CHUNK) -> tuple[float, float]:
    """Mean loss and accuracy of ``net`` on samples ``X`` with labels ``y``.

    A forward pass (:func:`gradbench.reference.forward`, NumPy with single-threaded BLAS) in
    chunks of ``chunk`` samples. The loss is the network's (softmax cross-entropy, or half
    the squared error against one-hot targets for mse), averaged over all samples; it may be
    inf or NaN when training diverged.
    """
    total, correct = 0.0, 0
    with single_threaded_blas(), np.errstate(over="ignore", invalid="ignore"):
        for i in range(0, len(X), chunk):
            z = _outputs(net, X[i:i + chunk])
            yc = y[i:i + chunk]
            if net.loss == "softmax_ce":
                total -= float(log_softmax(z)[np.arange(len(yc)), yc].sum())
            else:
                out = act(z, net.output_activation)
                total += 0.5 * float(((out - targets(net, yc)) ** 2).sum())
            correct += int((np.argmax(z, axis=1) == yc).sum())
    n = max(len(X), 1)
    return total / n, correct / n


# ----------------------------------------------------------------------------- updates


def sgd_update(params: list[np.ndarray], grads: list[np.ndarray], lr: float) -> None:
    """theta <- theta - lr * g, in place, tensor by tensor."""
    for p, g in zip(params, grads, strict=True):
        p -= p.dtype.type(lr) * g


def momentum_update(params: list[np.ndarray], grads: list[np.ndarray],
                    velocity: list[np.ndarray], lr: float, mu: float) -> None:
    """v <- mu * v - lr * g; theta <- theta + v, in place (heavy-ball momentum)."""
    for p, g, v in zip(params, grads, velocity, strict=True):
        v *= v.dtype.type(mu)
        v -= v.dtype.type(lr) * g
        p += v


# ----------------------------------------------------------------------------- history


@dataclass
class Epoch:
    """One evaluation: after ``epoch`` epochs (0: before the first step)."""

    epoch: int
    steps: int  # steps done since the start
    epoch_steps: int  # steps in this epoch (fewer than the plan's in a partial last one)
    loss: float  # mean loss over the whole training set, parameters as at the end
    train_accuracy: float
    test_loss: float
    test_accuracy: float
    elapsed_seconds: float  # wall clock since the first step was due (evaluations included)
    train_seconds: float  # the steps alone, summed since the start
    gradient_mean: float | None = None  # seconds per gradient call in this epoch
    gradient_median: float | None = None
    step_mean: float | None = None  # seconds per whole step in this epoch
    step_median: float | None = None


def time_stats(seconds) -> dict | None:
    """count, mean, median, min, max of a list of durations (None when empty)."""
    t = np.asarray(seconds, dtype=float)
    if t.size == 0:
        return None
    return {"count": int(t.size), "mean": float(t.mean()), "median": float(np.median(t)),
            "min": float(t.min()), "max": float(t.max())}


@dataclass
class History:
    """What a training run did: the plan, an :class:`Epoch` per evaluation and every step's
    times. ``status`` is "complete", or "diverged" (``note`` says where) when a gradient held
    NaN or inf or the loss diverged (:func:`divergence`)."""

    plan: Plan
    epochs: list[Epoch] = field(default_factory=list)
    gradient_seconds: list[float] = field(default_factory=list)
    step_seconds: list[float] = field(default_factory=list)
    compile_seconds: float = 0.0
    status: str = "complete"
    note: str | None = None

    @property
    def steps(self) -> int:
        return len(self.step_seconds)

    def timing(self) -> dict:
        """Time per gradient call and per whole step over every step so far."""
        return {"gradient": time_stats(self.gradient_seconds),
                "step": time_stats(self.step_seconds)}


# ----------------------------------------------------------------------------- the loop


def divergence(loss: float, initial: float) -> str | None:
    """Why training has diverged at this evaluated loss, or None when it has not: a loss that
    is not finite, or one above :data:`EXPLODED` times the initial loss."""
    if not math.isfinite(loss):
        return "the training loss is no longer finite"
    if math.isfinite(initial) and loss > EXPLODED * max(initial, np.finfo(float).tiny):
        return (f"the training loss {loss:.3g} exceeds {EXPLODED:g} times the initial loss "
                f"{initial:.3g}")
    return None


def _checked(grads, net: MLP, name: str) -> list[np.ndarray] | None:
    """The gradient as a list shaped like net.params, or None when it holds NaN or inf."""
    if not isinstance(grads, list | tuple) or len(grads) != len(net.params):
        raise TypeError(f"method {name!r} returned {type(grads).__name__} instead of a list "
                        f"of {len(net.params)} arrays shaped like net.params")
    out = []
    for tname, g, p in zip(net.tensor_names, grads, net.params, strict=True):
        g = np.asarray(g)
        if g.shape != p.shape:
            raise TypeError(f"method {name!r} returned {tname} of shape {g.shape}, expected "
                            f"{p.shape}")
        if g.dtype != p.dtype:
            g = g.astype(p.dtype)
        if not _all_finite(g):
            return None
        out.append(g)
    return out


def train(net: MLP, data: Dataset, method: str = methods.ANALYTIC,
          options: TrainOptions | None = None, *,
          on_step: Callable[[int, int], object] | None = None,
          on_epoch: Callable[[History], object] | None = None, **given) -> History:
    """Train ``net`` on ``data`` by mini-batch SGD or momentum; ``net.params`` change in place.

    Parameters
    ----------
    net : MLP
        Its first size must be the data's inputs, its last the data's classes.
    data : gradbench.datasets.Dataset
    method : str
        A registry method with a gradient: "backprop", "numerical:<scheme>:<strategy>", or a
        peer (see :mod:`gradbench.methods`).
    options : TrainOptions, optional
        How to train (optimizer, lr, momentum, epochs or steps, batch, threads, seed); None:
        every option's default.
    on_step : callable, optional
        ``on_step(step, total)`` after every step (steps done, steps planned).
    on_epoch : callable, optional
        ``on_epoch(history)`` after every evaluation, epoch 0 included.
    **given
        The same options one by one, as keywords: ``optimizer``, ``lr``, ``momentum``,
        ``epochs``, ``steps``, ``batch``, ``threads``, ``seed`` (:data:`OPTIONS`; each is
        described in :class:`TrainOptions`), so that
        ``train(net, data, "backprop", optimizer="sgd", lr=1.0, epochs=20)`` reads as it
        always has. Each replaces that field of ``options``; any other name is a TypeError
        that names it and the valid ones.

    Returns
    -------
    History

    Raises
    ------
    TypeError, ValueError
        For any bad option (one line): an unknown keyword, optimizer or method, a loss-only
        method, one not installed, lr not positive and finite, momentum outside [0, 1),
        epochs, steps or batch below 1, a batch larger than the training set, data that do
        not fit the network.
    """
    p = plan(net, data, method, _options(options, given))
    _check_data(net, data)
    with thread_limits(p.threads):  # backprop's BLAS too, as a peer's library is limited
        return _train(net, data, p, on_step, on_epoch)


def _train(net: MLP, data: Dataset, p: Plan, on_step, on_epoch) -> History:
    """The training loop of :func:`train`, its plan checked."""
    hist = History(p)
    hist.compile_seconds = float(p.method.warm(net, p.threads))
    grad_fn = p.method.gradient(net, p.threads)
    rng = np.random.default_rng(p.seed)
    velocity = [np.zeros_like(w) for w in net.params] if p.optimizer == "momentum" else None
    X, y = data.X_train, data.y_train
    start = time.perf_counter()
    train_seconds = 0.0

    def record(epoch: int, epoch_steps: int, first: int) -> str | None:
        """Evaluate, append an Epoch, tell the caller; why training diverged, or None."""
        loss, acc = evaluate(net, data.X_train, data.y_train)
        test_loss, test_acc = evaluate(net, data.X_test, data.y_test)
        g = time_stats(hist.gradient_seconds[first:])
        s = time_stats(hist.step_seconds[first:])
        hist.epochs.append(Epoch(
            epoch, hist.steps, epoch_steps, loss, acc, test_loss, test_acc,
            time.perf_counter() - start, train_seconds,
            g and g["mean"], g and g["median"], s and s["mean"], s and s["median"]))
        if on_epoch is not None:
            on_epoch(hist)
        return divergence(loss, hist.epochs[0].loss)

    record(0, 0, 0)
    step = 0
    for epoch in range(1, p.epochs + 1):
        order = rng.permutation(len(y))
        first = step
        n = min(p.steps_per_epoch, p.total_steps - step)
        for k in range(n):
            t0 = time.perf_counter()
            idx = order[k * p.batch:(k + 1) * p.batch]
            Xb = np.ascontiguousarray(X[idx], dtype=net.dtype)
            Tb = targets(net, y[idx])
            t1 = time.perf_counter()
            grads = grad_fn(Xb, Tb)
            t2 = time.perf_counter()
            grads = _checked(grads, net, p.method.name)
            if grads is None:
                hist.status = "diverged"
                hist.note = (f"the gradient at step {step + 1} holds NaN or inf: training "
                             "diverged; lower the learning rate")
                break
            if velocity is None:
                sgd_update(net.params, grads, p.lr)
            else:
                momentum_update(net.params, grads, velocity, p.lr, p.momentum)
            t3 = time.perf_counter()
            hist.gradient_seconds.append(t2 - t1)
            hist.step_seconds.append(t3 - t0)
            train_seconds += t3 - t0
            step += 1
            if on_step is not None:
                on_step(step, p.total_steps)
        why = record(epoch, step - first, first)
        if hist.status == "diverged":
            break
        if why is not None:
            hist.status = "diverged"
            hist.note = (f"{why} after epoch {epoch}: training diverged; lower the learning "
                         "rate")
            break
    return hist


# ----------------------------------------------------------------------------- prediction


@dataclass(frozen=True)
class Prediction:
    """How long a training run will take, predicted before it starts."""

    seconds: float  # the whole run: steps and evaluations
    per_step: float  # seconds per gradient
    steps: int
    basis: str  # how per_step was obtained, for the user


def predict_seconds(net: MLP, data: Dataset, p: Plan) -> Prediction:
    """Predict the run's time on this machine, before it starts.

    The method's kernels are compiled (or loaded) and one loss evaluation on a batch is timed
    (the best of three); the cost model's ratio of the method's flops to a loss evaluation's
    scales it, divided by the threads for methods that spread their work
    (:func:`gradbench.costmodel.predict_seconds`). When that predicts
    less than :data:`MEASURE_BELOW` seconds per gradient, gradients are measured on the
    network instead (the median of three, or fewer when they add up to that much): the
    machine's load moves a single measurement by a factor of two. Evaluations after each
    epoch cost a forward pass over both parts of the data, predicted from the same loss time.
    BLAS and Numba run on the plan's threads, as training will.
    """
    with thread_limits(p.threads):
        return _predict(net, data, p)


def _predict(net: MLP, data: Dataset, p: Plan) -> Prediction:
    from . import gradients

    m = p.method
    m.warm(net, p.threads)
    Xb = np.ascontiguousarray(data.X_train[:p.batch], dtype=net.dtype)
    Tb = targets(net, data.y_train[:p.batch])
    gradients.loss(net, Xb, Tb)
    t_loss = math.inf
    for _ in range(3):
        t0 = time.perf_counter()
        gradients.loss(net, Xb, Tb)
        t_loss = min(t_loss, time.perf_counter() - t0)
    rate = costmodel.seconds_per_flop(t_loss, net.sizes, p.batch, net.dtype.name)
    per_step = costmodel.predict_seconds(m.cost(net.sizes, p.batch, net.dtype.name).flops,
                                         rate, p.threads, m.threaded)
    basis = "the cost model and a measured loss evaluation"
    if per_step < MEASURE_BELOW:
        fn = m.gradient(net, p.threads)
        times = []
        while len(times) < 3 and sum(times) < MEASURE_BELOW:
            t0 = time.perf_counter()
            fn(Xb, Tb)
            times.append(time.perf_counter() - t0)
        per_step = float(np.median(times))
        basis = (f"the median of {len(times)} gradients measured on this network"
                 if len(times) > 1 else "one gradient measured on this network")
    n_eval = len(data.X_train) + len(data.X_test)
    evals = (p.epochs + 1) * n_eval / p.batch * t_loss
    return Prediction(per_step * p.total_steps + evals, per_step, p.total_steps, basis)
