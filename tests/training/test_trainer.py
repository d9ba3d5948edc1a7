import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from dlcv.cli import UserError
from dlcv.io.checkpoint import load_checkpoint
from dlcv.training import TrainConfig, train
from dlcv.training.trainer import lr_factor

from ..conftest import REPO

X = torch.randn(64, 4, generator=torch.Generator().manual_seed(0))
W_TRUE = torch.randn(4, 1, generator=torch.Generator().manual_seed(1))
Y = X @ W_TRUE


def make_model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 1))


def next_batch(g):
    idx = torch.randint(len(X), (16,), generator=g)
    return X[idx], Y[idx]


def loss_fn(net, batch, g):
    x, y = batch
    return ((net(x) + 0.01 * torch.randn(y.shape, generator=g) - y) ** 2).mean()


def config(tmp_path, **kw):
    base = dict(out_dir=tmp_path, steps=30, batch_size=16, lr=1e-2, ema_decay=0.9, log_every=5, ckpt_every=10)
    return TrainConfig(**{**base, **kw})


def full_loss(model):
    with torch.no_grad():
        return ((model(X) - Y) ** 2).mean().item()


def test_lr_warmup_then_cosine():
    assert lr_factor(0, 10, 100) == pytest.approx(0.1)
    assert lr_factor(9, 10, 100) == pytest.approx(1.0)
    assert lr_factor(55, 10, 100) == pytest.approx(0.5)
    assert lr_factor(100, 10, 100, min_ratio=0.1) == pytest.approx(0.1)


def test_loss_falls_and_files_are_written(tmp_path):
    model = make_model()
    before = full_loss(model)
    exported = []
    samples = []
    ema_model = train(
        model,
        loss_fn,
        next_batch,
        config(tmp_path),
        export=lambda m, out, step: exported.append(out),
        on_sample=lambda m, step: samples.append(step),
    )
    assert full_loss(model) < 0.5 * before
    assert ema_model is not model and full_loss(ema_model) < before
    state = load_checkpoint(tmp_path / "checkpoint.pt")  # weights_only=True
    assert state["step"] == 30 and state["ema"] is not None
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [5, 10, 15, 20, 25, 30]
    assert records[-1]["loss"] < records[0]["loss"] and records[0]["images_per_s"] > 0
    elapsed = [r["elapsed_s"] for r in records]  # the report plots loss against training time
    assert elapsed[0] > 0 and elapsed == sorted(elapsed)
    assert len(exported) == 3 and samples == [30]


def test_resume_continues_exactly_where_it_stopped(tmp_path):
    straight = make_model()
    train(straight, loss_fn, next_batch, config(tmp_path / "a", steps=20))
    calls = []

    def crash_after_the_first_checkpoint():
        calls.append(1)
        if len(calls) == 11:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(
            make_model(),
            loss_fn,
            next_batch,
            config(tmp_path / "b", steps=20),
            after_step=crash_after_the_first_checkpoint,
        )
    assert load_checkpoint(tmp_path / "b" / "checkpoint.pt")["step"] == 10
    resumed = make_model()  # fresh weights: everything must come from the checkpoint
    train(resumed, loss_fn, next_batch, config(tmp_path / "b", steps=20, resume=True))
    assert load_checkpoint(tmp_path / "b" / "checkpoint.pt")["step"] == 20
    for a, b in zip(straight.parameters(), resumed.parameters()):
        assert torch.equal(a, b)


def test_existing_checkpoint_is_never_overwritten_without_resume(tmp_path):
    train(make_model(), loss_fn, next_batch, config(tmp_path, steps=2))
    before = (tmp_path / "checkpoint.pt").read_bytes()
    with pytest.raises(UserError, match="`resume`"):
        train(make_model(), loss_fn, next_batch, config(tmp_path, steps=2))
    assert (tmp_path / "checkpoint.pt").read_bytes() == before
    with pytest.raises(UserError, match="no checkpoint"):
        train(make_model(), loss_fn, next_batch, config(tmp_path / "empty", resume=True))
    with pytest.raises(UserError, match="not below"):
        train(make_model(), loss_fn, next_batch, config(tmp_path, steps=2, resume=True))


class FakeClock:
    """The trainer's clock (``time.perf_counter`` in :mod:`dlcv.training.trainer`), advanced only by
    the work done: a time budget is then a number of steps, whatever the machine's speed."""

    def __init__(self) -> None:
        self.now = 0.0

    def perf_counter(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch):
    from dlcv.training import trainer

    fake = FakeClock()
    monkeypatch.setattr(trainer, "time", fake)  # the module's clock only; pytest's stays real
    return fake


def timed_loss(clock, seconds):
    """``loss_fn`` whose ``k``-th call (from 1) takes ``seconds(k)`` seconds on ``clock``; its calls."""
    calls = []

    def loss(net, batch, g):
        calls.append(1)
        clock.now += seconds(len(calls))
        return loss_fn(net, batch, g)

    return loss, calls


# Step times are powers of two, so the clock's sums are exact and the step counts below too.
STEP_S = 2.0**-6


def test_time_budget_shortens_the_run(tmp_path, clock):
    loss, calls = timed_loss(clock, lambda k: STEP_S)
    train(make_model(), loss, next_batch, config(tmp_path, steps=10_000, time_budget=0.5))
    step = load_checkpoint(tmp_path / "checkpoint.pt")["step"]
    assert step == len(calls) == 32 and clock.now == 0.5  # 0.5 s at 1/64 s a step, not one more
    capped = tmp_path / "capped"
    train(make_model(), loss, next_batch, config(capped, steps=20, time_budget=0.5))
    assert load_checkpoint(capped / "checkpoint.pt")["step"] == 20  # the steps cap the budget


def test_a_time_budget_without_steps_decides_the_length_alone(tmp_path, clock):
    loss, calls = timed_loss(clock, lambda k: STEP_S)
    train(make_model(), loss, next_batch, config(tmp_path, steps=None, time_budget=0.5))
    assert load_checkpoint(tmp_path / "checkpoint.pt")["step"] == len(calls) == 32
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert records[-1]["step"] == 32 and records[-1]["elapsed_s"] == 0.5  # the clock the budget is on
    with pytest.raises(UserError, match="time budget"):
        train(make_model(), loss_fn, next_batch, config(tmp_path / "none", steps=None))


def test_time_budget_replans_after_a_slow_start_and_the_cosine_follows(tmp_path, clock):
    """The first 12 steps are 8x slower than the rest: the run must still use its whole budget
    (a plan fixed from the first steps' speed would stop at step 24) and end its cosine."""
    loss, calls = timed_loss(clock, lambda k: 2.0**-4 if k <= 12 else 2.0**-7)
    train(make_model(), loss, next_batch, config(tmp_path, steps=10_000, time_budget=1.5, lr=0.1))
    step = load_checkpoint(tmp_path / "checkpoint.pt")["step"]
    assert step == len(calls) == 12 + 96 and clock.now == 1.5  # 0.75 s slow, then 96 steps of 1/128 s
    last = json.loads((tmp_path / "metrics.jsonl").read_text().splitlines()[-1])
    assert last["step"] == step and last["lr"] < 0.1 * 0.05


def test_plan_to_budget_uses_the_recent_speed():
    from dlcv.training.trainer import Pace, plan_to_budget

    pace = Pace(0, window=10.0)
    pace.began -= 20.0  # pretend: 20 s ago, at step 0
    pace.marks = [(pace.began, 0), (pace.began + 10.0, 10), (pace.began + 20.0, 110)]
    pace.record(110)  # now; the window keeps the last 10 s: 100 steps in 10 s
    assert pace.steps_per_second() == pytest.approx(10.0, rel=0.01)
    assert plan_to_budget(pace, 30.0, 110, 10_000) == pytest.approx(210, abs=2)
    assert plan_to_budget(pace, 30.0, 110, 150) == 150  # never past the configured steps
    assert plan_to_budget(pace, 30.0, 110, None) == pytest.approx(210, abs=2)  # no steps: no cap
    assert plan_to_budget(pace, 15.0, 110, 10_000) == 110  # past the budget: stop now
    assert plan_to_budget(Pace(0), 30.0, 5, 10_000) is None  # too early to tell


def test_only_the_given_params_change_and_after_step_runs(tmp_path):
    model = make_model()
    frozen = model[2].weight.detach().clone()
    trained = [p.detach().clone() for p in model[0].parameters()]
    calls = []
    train(
        model,
        loss_fn,
        next_batch,
        config(tmp_path, steps=5, ema_decay=None),
        params=model[0].parameters(),
        after_step=lambda: calls.append(1),
    )
    assert torch.equal(model[2].weight, frozen) and len(calls) == 5
    assert all(not torch.equal(p, before) for p, before in zip(model[0].parameters(), trained))  # learnt


DDP_SCRIPT = """
import sys, torch
from torch import nn
from dlcv.training import TrainConfig, train
out = sys.argv[1]
torch.manual_seed(int(__import__('os').environ['RANK']))  # different inits: DDP must sync them
model = nn.Linear(4, 1)
X = torch.randn(64, 4, generator=torch.Generator().manual_seed(0)); Y = X.sum(1, keepdim=True)
def batch(g):
    i = torch.randint(64, (8,), generator=g); return X[i], Y[i]
def loss(net, b, g):
    return ((net(b[0]) - b[1]) ** 2).mean()
train(model, loss, batch, TrainConfig(out_dir=out, steps=6, batch_size=8, lr=0.05, ema_decay=None,
      log_every=3, device='cpu'))
torch.save(model.state_dict(), f"{out}/rank{__import__('os').environ['RANK']}.pt")
"""


def torchrun(*args: str | Path, timeout: float = 240) -> subprocess.CompletedProcess:
    """``torchrun`` with the README's one-machine flags (:data:`SINGLE_NODE`: the rendezvous on
    127.0.0.1, a free port) and two CPU ranks, in a process group of its own: on a timeout the
    whole group (torchrun, its agent and every rank) is killed, and the test fails saying so."""
    from dlcv.training.distributed import SINGLE_NODE

    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        *SINGLE_NODE.split(),
        "--nproc_per_node",
        "2",
        *map(str, args),
    ]
    proc = subprocess.Popen(
        cmd,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(f"torchrun ran past {timeout}s; its process group was killed: {err[-2000:]}")
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def explain(result: subprocess.CompletedProcess) -> str:
    """What a failed launch said: each rank's error lines (an abort's ``what():`` among them,
    which torchrun's summary at the end of stderr does not repeat), then the end of stderr."""
    keys = ("terminate called", "what()", "Error", "Exception", "Signal", "exitcode", "error:")
    lines = [line for line in result.stderr.splitlines() if any(k in line for k in keys)]
    return "\n".join(lines[:40]) + "\n--- end of stderr ---\n" + result.stderr[-1500:]


def test_data_parallel_with_torchrun_on_two_cpu_processes(tmp_path):
    script = tmp_path / "ddp_train.py"
    script.write_text(DDP_SCRIPT)
    result = torchrun(script, tmp_path)
    assert result.returncode == 0, explain(result)
    r0 = torch.load(tmp_path / "rank0.pt", weights_only=True)
    r1 = torch.load(tmp_path / "rank1.pt", weights_only=True)
    assert all(torch.equal(r0[k], r1[k]) for k in r0)  # replicas stay identical
    state = load_checkpoint(tmp_path / "checkpoint.pt")
    assert state["step"] == 6 and state["world_size"] == 2
    record = json.loads((tmp_path / "metrics.jsonl").read_text().splitlines()[-1])
    assert record["step"] == 6


DDP_STOP_SCRIPT = """
import os, signal, sys, torch
from torch import nn
from dlcv.training import TrainConfig, train
out, mode, stop_at = sys.argv[1], sys.argv[2], int(sys.argv[3])
rank = int(os.environ['RANK'])
torch.manual_seed(rank)  # each rank its own dropout masks, from torch's global generator
model = nn.Sequential(nn.Dropout(0.2), nn.Linear(4, 1))
X = torch.randn(64, 4, generator=torch.Generator().manual_seed(0)); Y = X.sum(1, keepdim=True)
def batch(g):
    i = torch.randint(64, (8,), generator=g); return X[i], Y[i]
def loss(net, b, g):
    return ((net(b[0]) - b[1]) ** 2).mean()
steps = []
def after_step():
    steps.append(1)
    if rank == 1 and len(steps) == stop_at:
        os.kill(os.getpid(), signal.SIGUSR1)  # one rank only: both must stop at this step
train(model, loss, batch, TrainConfig(out_dir=out, steps=8, batch_size=8, lr=0.05, ema_decay=None,
      log_every=1, ckpt_every=0, device='cpu', resume=mode == 'resume'), after_step=after_step)
torch.save(model.state_dict(), f"{out}/rank{rank}.pt")
"""


def test_data_parallel_ranks_stop_together_on_a_signal_and_resume_exactly(tmp_path):
    """Rank 1 alone gets SIGUSR1 in step 3: both ranks stop after it, rank 0 saves every
    rank's random states, and the resumed launch ends as an uninterrupted one."""
    script = tmp_path / "ddp_stop.py"
    script.write_text(DDP_STOP_SCRIPT)

    def launch(out, mode, stop_at):
        return torchrun(script, out, mode, stop_at)

    straight = launch(tmp_path / "a", "fresh", 0)
    assert straight.returncode == 0, explain(straight)
    stopped = launch(tmp_path / "b", "fresh", 3)
    assert stopped.returncode != 0 and "SIGUSR1 at step 3 of 8" in stopped.stderr, explain(stopped)
    state = load_checkpoint(tmp_path / "b" / "checkpoint.pt")
    assert state["step"] == 3 and len(state["rng"]) == 2
    assert not torch.equal(state["rng"][0]["torch"], state["rng"][1]["torch"])  # each rank's own
    assert not (tmp_path / "b" / "rank0.pt").exists()
    resumed = launch(tmp_path / "b", "resume", 0)
    assert resumed.returncode == 0, explain(resumed)
    a = torch.load(tmp_path / "a" / "rank0.pt", weights_only=True)
    b = torch.load(tmp_path / "b" / "rank0.pt", weights_only=True)
    assert all(torch.equal(a[k], b[k]) for k in a)
    steps = [json.loads(line)["step"] for line in (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()]
    assert steps == list(range(1, 9))


def test_fp16_training_scales_the_loss_and_skips_overflowing_steps(tmp_path):
    """With precision fp16 (here on the CPU, where autocast supports it) the trainer uses a
    GradScaler: a step whose gradients overflow is skipped and the scale halves, the others
    train, and the scaler's state is checkpointed."""
    model = make_model()
    before = full_loss(model)
    first = [p.detach().clone() for p in model.parameters()]
    seen = []

    def overflow_once(net, batch, g):
        loss = loss_fn(net, batch, g)
        return loss * 1e38 if not seen else loss  # inf gradients on the first step only

    def after_step():
        if not seen:
            seen.append([p.detach().clone() for p in model.parameters()])

    cfg = config(tmp_path, precision="fp16", device="cpu", steps=60, ema_decay=None, grad_clip=1.0)
    assert cfg.autocast_dtype(torch.device("cpu")) == torch.float16
    train(model, overflow_once, next_batch, cfg, after_step=after_step)
    assert all(torch.equal(a, b) for a, b in zip(first, seen[0], strict=True))  # step 1 skipped
    assert full_loss(model) < 0.5 * before  # the rest trained
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert records[0]["loss_scale"] < 65536.0  # halved at the overflow (torch's initial scale is 2**16)
    state = load_checkpoint(tmp_path / "checkpoint.pt")
    assert state["scaler"]["scale"] == records[-1]["loss_scale"]


def test_bf16_and_fp32_training_have_no_scaler(tmp_path):
    cfg = config(tmp_path, precision="bf16", device="cpu", steps=5)
    assert cfg.autocast_dtype(torch.device("cpu")) == torch.bfloat16
    assert config(tmp_path, precision="fp32").autocast_dtype(torch.device("cpu")) == torch.float32
    train(make_model(), loss_fn, next_batch, cfg)
    assert load_checkpoint(tmp_path / "checkpoint.pt")["scaler"] is None
    assert "loss_scale" not in (tmp_path / "metrics.jsonl").read_text()


# ---- exact resume, preemption, the output folder -------------------------------------------


def make_dropout_model():
    """A model with dropout (torch's global CPU generator), every global generator seeded."""
    import random

    import numpy as np

    torch.manual_seed(0)
    random.seed(0)
    np.random.seed(0)
    return nn.Sequential(nn.Linear(4, 16), nn.Dropout(0.1), nn.Tanh(), nn.Linear(16, 1))


def global_draws_loss(net, batch, g):
    """The test loss, scaled by draws of Python's random and numpy's global generator: a
    resumed run that does not restore them takes other steps."""
    import random

    import numpy as np

    return loss_fn(net, batch, g) * (1 + 0.1 * random.random()) * (1 + 0.1 * float(np.random.rand()))


def noisy_sample(model, step):
    """A preview that draws from the global generators (as samplers without a seed do)."""
    import random

    import numpy as np

    torch.rand(100)
    random.random()
    np.random.rand(3)


def weights_equal(a: nn.Module, b: nn.Module) -> bool:
    pairs = zip(a.state_dict().values(), b.state_dict().values(), strict=True)
    return all(torch.equal(x, y) for x, y in pairs)


def test_a_resumed_run_with_dropout_ends_bit_identical_to_a_straight_one(tmp_path):
    """Dropout, Python's random and numpy draw from the global generators, and the sample
    grids (here at steps 10 and 20) draw from them too: the checkpoint restores them all, the
    samples leave them alone, and metrics.jsonl holds each step once after the resume."""
    cfg = dict(steps=20, log_every=1, sample_every=10, ckpt_every=10)
    straight = make_dropout_model()
    straight_ema = train(
        straight, global_draws_loss, next_batch, config(tmp_path / "a", **cfg), on_sample=noisy_sample
    )
    calls = []

    def crash_at_step_13():
        calls.append(1)
        if len(calls) == 13:
            raise RuntimeError("crash")  # after the checkpoint at 10, with records up to 12 written

    with pytest.raises(RuntimeError, match="crash"):
        train(
            make_dropout_model(),
            global_draws_loss,
            next_batch,
            config(tmp_path / "b", **cfg),
            on_sample=noisy_sample,
            after_step=crash_at_step_13,
        )
    metrics = tmp_path / "b" / "metrics.jsonl"
    assert [json.loads(line)["step"] for line in metrics.read_text().splitlines()] == list(range(1, 13))
    with open(metrics, "a") as f:
        f.write('{"step": 13, "lo')  # half a line, as a kill in the middle of a write leaves
    state = load_checkpoint(tmp_path / "b" / "checkpoint.pt")
    assert state["step"] == 10 and len(state["rng"]) == 1 and state["rng"][0]["numpy"] is not None

    resumed = make_dropout_model()  # fresh weights and freshly seeded generators
    resumed_ema = train(
        resumed,
        global_draws_loss,
        next_batch,
        config(tmp_path / "b", resume=True, **cfg),
        on_sample=noisy_sample,
    )
    assert weights_equal(straight, resumed) and weights_equal(straight_ema, resumed_ema)
    steps = [json.loads(line)["step"] for line in metrics.read_text().splitlines()]
    assert steps == list(range(1, 21))
    a = [json.loads(line)["loss"] for line in (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()]
    b = [json.loads(line)["loss"] for line in metrics.read_text().splitlines()]
    assert a == b


def in_main_thread():
    import threading

    if threading.current_thread() is not threading.main_thread():
        pytest.skip("signal handlers exist in the main thread only")


@pytest.mark.parametrize("name, status", [("SIGTERM", 143), ("SIGINT", 130), ("SIGUSR1", 138)])
def test_a_signal_stops_after_the_step_with_a_checkpoint_and_the_run_resumes_exactly(tmp_path, name, status):
    import os
    import signal

    from dlcv.cli import Interrupted

    in_main_thread()
    signum = getattr(signal, name)
    before = signal.getsignal(signum)
    cfg = dict(steps=30, ckpt_every=0, log_every=1)  # no periodic checkpoint: only the signal's
    straight = make_dropout_model()
    train(straight, global_draws_loss, next_batch, config(tmp_path / "a", **cfg))
    calls, exported = [], []

    def signal_at_step_7():
        calls.append(1)
        if len(calls) == 7:
            os.kill(os.getpid(), signum)  # as a scheduler would, in the middle of step 7

    with pytest.raises(Interrupted) as err:
        train(
            make_dropout_model(),
            global_draws_loss,
            next_batch,
            config(tmp_path / "b", **cfg),
            after_step=signal_at_step_7,
            export=lambda m, out, step: exported.append(step),
        )
    ckpt = tmp_path / "b" / "checkpoint.pt"
    assert err.value.exit_status == status
    assert str(err.value) == (
        f"{name} at step 7 of 30: checkpoint saved to {ckpt}; run the same command "
        "again with `resume` to continue"
    )
    assert err.value.command_line().endswith("again with --resume to continue")
    assert load_checkpoint(ckpt)["step"] == 7 and exported == [7] and len(calls) == 7
    assert signal.getsignal(signum) is before  # the handler of before is back
    assert not (tmp_path / "b" / ".train.lock").exists()

    resumed = make_dropout_model()
    train(resumed, global_draws_loss, next_batch, config(tmp_path / "b", resume=True, **cfg))
    assert weights_equal(straight, resumed)
    steps = [json.loads(line)["step"] for line in (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()]
    assert steps == list(range(1, 31))


def test_a_second_signal_stops_at_once_without_a_checkpoint(tmp_path):
    import os
    import signal

    in_main_thread()

    def two_signals():
        os.kill(os.getpid(), signal.SIGTERM)
        os.kill(os.getpid(), signal.SIGTERM)

    with pytest.raises(KeyboardInterrupt) as err:
        train(make_model(), loss_fn, next_batch, config(tmp_path, ckpt_every=0), after_step=two_signals)
    assert type(err.value) is KeyboardInterrupt and not (tmp_path / "checkpoint.pt").exists()


def test_a_signal_at_the_last_step_just_ends_the_run(tmp_path):
    import os
    import signal

    in_main_thread()
    calls = []

    def signal_at_the_end():
        calls.append(1)
        if len(calls) == 5:
            os.kill(os.getpid(), signal.SIGUSR1)

    train(make_model(), loss_fn, next_batch, config(tmp_path, steps=5), after_step=signal_at_the_end)
    assert load_checkpoint(tmp_path / "checkpoint.pt")["step"] == 5


@pytest.mark.parametrize(
    "name", ["checkpoint.pt", "metrics.jsonl", "model.safetensors", "unet.pt", "learned_embeds.safetensors"]
)
def test_a_fresh_run_refuses_another_runs_outputs_unless_told_to_overwrite(tmp_path, name):
    (tmp_path / name).write_bytes(b"another run's")
    with pytest.raises(UserError) as err:
        train(make_model(), loss_fn, next_batch, config(tmp_path, steps=4))
    message = str(err.value)
    assert str(tmp_path) in message and name in message and "`resume`" in message and "`overwrite`" in message
    assert "\n" not in message and (tmp_path / name).read_bytes() == b"another run's"
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]  # nothing written

    (tmp_path / "metrics.jsonl").write_text('{"step": 999, "loss": 1.0}\n')
    train(make_model(), loss_fn, next_batch, config(tmp_path, steps=4, overwrite=True))
    assert load_checkpoint(tmp_path / "checkpoint.pt")["step"] == 4
    steps = [json.loads(line)["step"] for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert steps == [4]  # the earlier run's records are gone


def test_a_second_run_on_a_folder_in_use_is_refused(tmp_path):
    from dlcv.training.run_dir import RunLock

    with RunLock(tmp_path):  # a run training there
        with pytest.raises(UserError, match="in use by another training run") as err:
            train(make_model(), loss_fn, next_batch, config(tmp_path, steps=2, overwrite=True))
        assert str(tmp_path) in str(err.value)
        assert [p.name for p in tmp_path.iterdir()] == [".train.lock"]  # nothing else written
    failing = []

    def fail(net, batch, g):
        failing.append(1)
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        train(make_model(), fail, next_batch, config(tmp_path, steps=2))
    assert not (tmp_path / ".train.lock").exists()  # released however the run ends


def test_a_start_removes_the_temporaries_of_a_crashed_run(tmp_path):
    import subprocess

    from dlcv.io.checkpoint import temporary_path

    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    stale = temporary_path(tmp_path / "checkpoint.pt", child.pid)
    stale.write_bytes(b"PK half a checkpoint")
    other = tmp_path / ".checkpoint.pt.bak"
    other.write_bytes(b"the user's")
    train(make_model(), loss_fn, next_batch, config(tmp_path, steps=2))
    assert not stale.exists() and other.read_bytes() == b"the user's"


def test_the_command_line_turns_an_interruption_into_one_line_and_its_exit_status(capsys):
    from dlcv.cli import Interrupted, run

    def stopped():
        raise Interrupted(
            "SIGTERM at step 3: checkpoint saved to out/checkpoint.pt; run the same command "
            "again with `resume` to continue",
            143,
        )

    with pytest.raises(SystemExit) as err:
        run(stopped)
    assert err.value.code == 143
    assert capsys.readouterr().err.splitlines() == [
        "interrupted: SIGTERM at step 3: checkpoint saved to out/checkpoint.pt; run the same command again "
        "with --resume to continue"
    ]
    assert issubclass(Interrupted, KeyboardInterrupt)  # no `except Exception` carries on after it


@pytest.mark.parametrize("name", ["metrics.jsonl", "checkpoint.pt", ".train.lock", "samples"])
def test_a_link_planted_in_the_output_folder_is_refused_before_training(tmp_path, name):
    """A link where a run writes (a file or a subfolder) would make it write elsewhere: one line,
    nothing written, the link's target untouched."""
    out, outside = tmp_path / "out", tmp_path / "outside"
    out.mkdir()
    outside.mkdir()
    (outside / "keep.txt").write_text("mine")
    (out / name).symlink_to(outside / "keep.txt" if "." in name else outside)
    with pytest.raises(UserError, match=rf"out/{name} is a symbolic link \(to .*outside.*\): outputs are"):
        train(make_model(), loss_fn, next_batch, config(out, steps=5, overwrite=True))
    assert sorted(p.name for p in out.iterdir()) == [name] and (outside / "keep.txt").read_text() == "mine"
    assert [p.name for p in outside.iterdir()] == ["keep.txt"]


def test_a_link_planted_during_the_run_is_not_followed(tmp_path):
    """The log is opened without following links, the checkpoint replaced by rename: a link
    planted while the run trains leads nowhere."""
    outside = tmp_path / "outside.txt"
    outside.write_text("mine")
    out = tmp_path / "out"

    def plant():
        if (out / "metrics.jsonl").exists() and not (out / "checkpoint.pt").is_symlink():
            (out / "checkpoint.pt").unlink(missing_ok=True)
            (out / "checkpoint.pt").symlink_to(outside)

    cfg = config(out, steps=12, ckpt_every=5, log_every=1)
    train(make_model(), loss_fn, next_batch, cfg, after_step=plant)
    assert outside.read_text() == "mine" and not (out / "checkpoint.pt").is_symlink()
    assert load_checkpoint(out / "checkpoint.pt")["step"] == 12


def test_a_full_disk_while_training_is_one_line_naming_the_file(tmp_path, monkeypatch):
    """The disk fills at the first checkpoint: one line naming it, no partial checkpoint, and the
    folder is free again (its lock gone) for a later run."""
    from dlcv.io import checkpoint
    from tests.disk import FullFile

    monkeypatch.setattr(checkpoint, "open", lambda p, mode: FullFile(p, room=100), raising=False)
    with pytest.raises(UserError, match=r"^cannot write .*out/checkpoint\.pt: no space left on the device"):
        train(make_model(), loss_fn, next_batch, config(tmp_path / "out", steps=12, ckpt_every=5))
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["metrics.jsonl"]


def test_a_full_disk_on_the_metrics_log_is_one_line(tmp_path, monkeypatch):
    import errno

    from dlcv.training import run_dir

    class Full:
        def __init__(self, *a, **k):
            pass

        def write(self, text):
            raise OSError(errno.EDQUOT, "Disk quota exceeded")

        flush = close = lambda self: None

    monkeypatch.setattr(run_dir.os, "fdopen", lambda fd, *a, **k: (run_dir.os.close(fd), Full())[1])
    with pytest.raises(UserError, match=r"^cannot write .*out/metrics\.jsonl: disk quota exceeded; free"):
        train(make_model(), loss_fn, next_batch, config(tmp_path / "out", steps=12))
    assert not (tmp_path / "out" / ".train.lock").exists()
