import torch

from s2s.averaging import average_states, cpu_state, keep_recent
from s2s.config import ModelConfig
from s2s.model import Seq2Seq


def test_average_states_is_the_elementwise_mean():
    first = {"w": torch.tensor([1.0, 2.0]), "n": torch.tensor([3])}
    second = {"w": torch.tensor([2.0, 4.0]), "n": torch.tensor([5])}
    averaged = average_states([first, second])
    assert torch.equal(averaged["w"], torch.tensor([1.5, 3.0])) and torch.equal(averaged["n"], torch.tensor([5]))


def test_cpu_state_is_a_copy_that_keeps_tied_weights_one_tensor():
    torch.manual_seed(0)
    model = Seq2Seq(ModelConfig(emb=8, hidden=12, tie_embeddings=True, share_src_tgt_embeddings=True), 30, 30)
    state = cpu_state(model)
    assert state["output.weight"] is state["decoder.embed.weight"] is state["encoder.embed.weight"]
    before = state["output.weight"].clone()
    with torch.no_grad():
        model.output.weight.add_(1.0)
    assert torch.equal(state["output.weight"], before)  # a copy, not a view of the live weights
    averaged = average_states([state, cpu_state(model)])
    model.load_state_dict(averaged)
    # atol: where before + 0.5 is near 0, the float32 sum differs from the float64 mean by an ulp
    assert torch.allclose(model.encoder.embed.weight, before + 0.5, atol=1e-6)


def test_keep_recent_keeps_the_last_k_in_order():
    recent = []
    for epoch in range(1, 6):
        recent = keep_recent(recent, {"epoch": epoch}, 3)
    assert [s["epoch"] for s in recent] == [3, 4, 5]
