import pytest
import torch
from torch import nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from conftest import DECODERS
from s2s.config import ModelConfig
from s2s.model.decoder import build_decoder, cell_step
from s2s.model.state import DecoderState, Memory
from s2s.model.encoder import Encoder


@pytest.mark.parametrize("cell_type", [nn.GRUCell, nn.LSTMCell])
def test_cell_step_matches_torch_cells(cell_type):
    torch.manual_seed(0)
    cell = cell_type(5, 7)
    x, h, c = torch.randn(3, 5), torch.randn(3, 7), torch.randn(3, 7)
    gates = nn.functional.linear(x, cell.weight_ih, cell.bias_ih)
    if cell_type is nn.LSTMCell:
        expected = cell(x, (h, c))
        got = cell_step(cell, gates, (h, c))
        assert torch.allclose(got[0], expected[0], atol=1e-6) and torch.allclose(got[1], expected[1], atol=1e-6)
    else:
        assert torch.allclose(cell_step(cell, gates, (h, None))[0], cell(x, h), atol=1e-6)


def teacher_forced(decoder, tgt_in, lengths, encoded):
    """The decoder's packed teacher-forced output, padded back to (batch, tgt_len, dim)."""
    steps = pack_padded_sequence(tgt_in, torch.tensor(lengths), batch_first=True)
    readout = decoder(steps, encoded)
    return pad_packed_sequence(PackedSequence(readout, steps.batch_sizes), batch_first=True)[0]


@pytest.mark.parametrize("cell", ["gru", "lstm"])
@pytest.mark.parametrize("variant", DECODERS)
@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("inference", [False, True])
def test_step_by_step_equals_teacher_forcing(cell, variant, layers, inference):
    """Each sentence decoded alone, step by step, gives what teacher forcing of the packed batch
    (the longer target with the shorter source, so late steps attend over a shorter prefix of the
    source) gives at its real positions; in inference mode too, where decoding's products run on
    oneDNN (s2s.model.gemm) and the first layer's input gates are one product."""
    torch.manual_seed(0)
    config = ModelConfig(cell=cell, **DECODERS[variant], emb=8, hidden=12, dec_layers=layers, dropout=0.0)
    encoder, decoder = Encoder(20, config).eval(), build_decoder(20, 12, config).eval()
    src, src_lens = torch.tensor([[7, 3, 0, 0], [4, 5, 6, 3]]), torch.tensor([2, 4])
    tgt_in, lengths = torch.tensor([[2, 7, 8, 9], [2, 10, 0, 0]]), [4, 2]
    readout = teacher_forced(decoder, tgt_in, lengths, encoder(src, src_lens))
    assert readout.shape == (2, 4, 8)
    for row, length in enumerate(lengths):
        with torch.inference_mode(inference):
            encoded = encoder(src[row:row + 1, :src_lens[row]], src_lens[row:row + 1])
            memory, state = decoder.memory(encoded), decoder.init_state(encoded)
            for t in range(length):
                out, state, weights = decoder.step(tgt_in[row:row + 1, t], state, memory)
                assert torch.allclose(out, readout[row:row + 1, t], atol=1e-5), (row, t)
                assert (weights is None) == (variant == "none")


@pytest.mark.parametrize("cell", ["gru", "lstm"])
@pytest.mark.parametrize("variant", DECODERS)
@torch.no_grad()
def test_rows_joined_from_batches_of_other_source_lengths_step_as_they_did(cell, variant):
    """Memory.cat pads a shorter source with positions attention ignores, and DecoderState.cat
    keeps every row's state: a step over the joined rows gives each row what its own batch gave."""
    torch.manual_seed(0)
    config = ModelConfig(cell=cell, **DECODERS[variant], emb=8, hidden=12, dropout=0.0)
    encoder, decoder = Encoder(20, config).eval(), build_decoder(20, 12, config).eval()
    batches = [(torch.tensor([[7, 3]]), torch.tensor([2])),
               (torch.tensor([[4, 5, 6, 3], [8, 9, 3, 0]]), torch.tensor([4, 3]))]
    tokens = [torch.tensor([2]), torch.tensor([11, 12])]
    alone, memories, states = [], [], []
    for (src, src_lens), previous in zip(batches, tokens):
        encoded = encoder(src, src_lens)
        memory, state = decoder.memory(encoded), decoder.init_state(encoded)
        memories.append(memory)
        states.append(state)
        alone.append(decoder.step(previous, state, memory))
    memory = Memory.cat(memories)
    assert memory.mask.shape[0] == 3 and memory.mask[0].sum() == memories[0].mask.size(1)
    out, state, weights = decoder.step(torch.cat(tokens), DecoderState.cat(states), memory)
    assert torch.allclose(out, torch.cat([a[0] for a in alone]), atol=1e-6)
    assert torch.allclose(state.layers[0][0], torch.cat([a[1].layers[0][0] for a in alone]), atol=1e-6)
    if weights is not None:
        width = memories[0].mask.size(1)
        assert torch.allclose(weights[:1, :width], alone[0][2], atol=1e-6)
        assert weights[:1, width:].eq(0).all()


def test_dot_score_uses_no_key_projection():
    config = ModelConfig(attention="luong", attention_score="dot", emb=8, hidden=12)
    decoder = build_decoder(20, 12, config)
    general = build_decoder(20, 12, ModelConfig(attention="luong", emb=8, hidden=12))
    assert sum(p.numel() for p in general.parameters()) - sum(p.numel() for p in decoder.parameters()) == 144


def test_input_feeding_follows_luong_and_joey_nmt():
    """s_t = GRU([e; a_{t-1}], s_{t-1}) with a_0 = 0, c_t attends from s_t, a_t = tanh(W_c [s_t; c_t]):
    written out with torch's own GRU cell and softmax."""
    torch.manual_seed(0)
    config = ModelConfig(attention="luong", attention_score="additive", input_feeding=True, emb=8, hidden=12,
                         dropout=0.0, tie_embeddings=False)
    encoder, decoder = Encoder(20, config).eval(), build_decoder(20, 12, config).eval()
    encoded = encoder(torch.tensor([[4, 5, 6, 3]]), torch.tensor([4]))
    tgt_in = torch.tensor([[2, 7, 8]])
    vectors = teacher_forced(decoder, tgt_in, [3], encoded)
    memory, state = decoder.memory(encoded), decoder.init_state(encoded)
    gru = nn.GRUCell(8 + 12, 12)
    gru.load_state_dict(decoder.cells[0].state_dict())
    att = decoder.attention
    s = torch.tanh(decoder.bridge.hidden(encoded.final))           # (1, 12)
    a = torch.zeros(1, 12)
    keys = att.key_proj(encoded.states)                            # (1, 4, 12)
    for t in range(3):
        s = gru(torch.cat([decoder.embed(tgt_in[:, t]), a], dim=-1), s)
        weights = torch.softmax(att.energy(torch.tanh(keys + att.query_proj(s).unsqueeze(1))).squeeze(2), dim=-1)
        context = (weights.unsqueeze(2) * encoded.states).sum(dim=1)
        a = torch.tanh(decoder.combine(torch.cat([s, context], dim=-1)))
        _, state, step_weights = decoder.step(tgt_in[:, t], state, memory)
        assert torch.allclose(weights, step_weights, atol=1e-6)
        assert torch.allclose(a, vectors[:, t], atol=1e-6)
