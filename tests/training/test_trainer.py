import json
import subprocess
import sys

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
        model, loss_fn, next_batch, config(tmp_path),
        export=lambda m, out, step: exported.append(out), on_sample=lambda m, step: samples.append(step),
    )  # fmt: skip
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
        train(make_model(), loss_fn, next_batch, config(tmp_path / "b", steps=20),
              after_step=crash_after_the_first_checkpoint)  # fmt: skip
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


def test_time_budget_shortens_the_run(tmp_path):
    def slow_loss(net, batch, g):
        import time

        time.sleep(0.02)
        return loss_fn(net, batch, g)

    train(make_model(), slow_loss, next_batch, config(tmp_path, steps=10_000, time_budget=0.6))
    step = load_checkpoint(tmp_path / "checkpoint.pt")["step"]
    assert 10 <= step < 100


def test_a_time_budget_without_steps_decides_the_length_alone(tmp_path):
    def slow_loss(net, batch, g):
        import time

        time.sleep(0.02)
        return loss_fn(net, batch, g)

    train(make_model(), slow_loss, next_batch, config(tmp_path, steps=None, time_budget=0.6))
    step = load_checkpoint(tmp_path / "checkpoint.pt")["step"]
    assert 10 <= step < 100
    with pytest.raises(UserError, match="time budget"):
        train(make_model(), loss_fn, next_batch, config(tmp_path / "none", steps=None))


def test_time_budget_replans_after_a_slow_start_and_the_cosine_follows(tmp_path):
    """The first steps are 10x slower than the rest: the run must still use its whole budget
    (a plan fixed from the first steps would stop after about 20 steps) and end its cosine."""
    import time

    calls = []

    def uneven_loss(net, batch, g):
        calls.append(1)
        time.sleep(0.05 if len(calls) <= 12 else 0.005)
        return loss_fn(net, batch, g)

    began = time.perf_counter()
    train(make_model(), uneven_loss, next_batch, config(tmp_path, steps=10_000, time_budget=1.5, lr=0.1))
    elapsed = time.perf_counter() - began
    step = load_checkpoint(tmp_path / "checkpoint.pt")["step"]
    assert step > 60 and 1.2 < elapsed < 3.0
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
    calls = []
    train(model, loss_fn, next_batch, config(tmp_path, steps=5, ema_decay=None),
          params=model[0].parameters(), after_step=lambda: calls.append(1))  # fmt: skip
    assert torch.equal(model[2].weight, frozen) and len(calls) == 5


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


def test_data_parallel_with_torchrun_on_two_cpu_processes(tmp_path):
    script = tmp_path / "ddp_train.py"
    script.write_text(DDP_SCRIPT)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(script), str(tmp_path)]  # fmt: skip
    result = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=240,
                            env={**__import__("os").environ, "OMP_NUM_THREADS": "1"})  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    r0 = torch.load(tmp_path / "rank0.pt", weights_only=True)
    r1 = torch.load(tmp_path / "rank1.pt", weights_only=True)
    assert all(torch.equal(r0[k], r1[k]) for k in r0)  # replicas stay identical
    state = load_checkpoint(tmp_path / "checkpoint.pt")
    assert state["step"] == 6 and state["world_size"] == 2
    record = json.loads((tmp_path / "metrics.jsonl").read_text().splitlines()[-1])
    assert record["step"] == 6


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
    assert config(tmp_path, precision="bf16", mixed_precision=False).autocast_dtype(torch.device("cpu")) \
        == torch.float32  # fmt: skip
    train(make_model(), loss_fn, next_batch, cfg)
    assert load_checkpoint(tmp_path / "checkpoint.pt")["scaler"] is None
    assert "loss_scale" not in (tmp_path / "metrics.jsonl").read_text()
