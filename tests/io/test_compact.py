import torch

from dlcv.io.compact import SCALE_SUFFIX, compact_state_dict, expand_state_dict


def test_compact_weights_round_trip_within_the_int8_step():
    g = torch.Generator().manual_seed(0)
    state = {
        "big.weight": torch.randn(300, 256, generator=g),  # 76,800 values: int8 + per-row scale
        "small.weight": torch.randn(8, 4, generator=g),  # fp16
        "basis": torch.randn(400, 256, generator=g),  # kept as fp16 though large
        "steps": torch.arange(3),  # integers unchanged
    }
    compact = compact_state_dict(state, keep=("basis",))
    assert compact["big.weight"].dtype == torch.int8
    assert compact["big.weight" + SCALE_SUFFIX].shape == (300, 1)
    assert compact["small.weight"].dtype == torch.float16 and compact["basis"].dtype == torch.float16
    assert "basis" + SCALE_SUFFIX not in compact and torch.equal(compact["steps"], state["steps"])
    back = expand_state_dict(compact)
    assert set(back) == set(state) and back["big.weight"].dtype == torch.float32
    step = state["big.weight"].abs().amax(dim=1, keepdim=True) / 127
    assert ((back["big.weight"] - state["big.weight"]).abs() <= 0.51 * step + 1e-3).all()
    assert not torch.equal(back["big.weight"], state["big.weight"])
    torch.testing.assert_close(back["basis"], state["basis"], atol=2e-3, rtol=1e-3)
    plain = {"w": torch.ones(2)}
    assert expand_state_dict(plain) is plain  # a state dict never compacted is left alone
