"""The encoder-decoder, its output layer and its loss."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from s2s.config import ModelConfig
from s2s.errors import S2SError
from s2s.model.decoder import build_decoder
from s2s.model.encoder import Encoder, EncoderOutput
from s2s.model.gemm import Linear
from s2s.model.initialization import initialize
from s2s.model.loss import smoothed_cross_entropy
from s2s.model.state import DecoderState, Memory
from s2s.subword import PAD_ID


class Seq2Seq(nn.Module):
    """Encoder, attentional decoder and output projection.

    With ``tie_embeddings`` the output projection shares its weight with the
    target embedding; the decoder's readout then has the embedding size, which
    acts as a bottleneck when ``emb < hidden``. With ``share_src_tgt_embeddings``
    (a joint vocabulary) the source embedding is the target embedding too.
    """

    def __init__(self, config: ModelConfig, src_vocab: int, tgt_vocab: int):
        super().__init__()
        self.config = config
        self.encoder = Encoder(src_vocab, config)
        self.decoder = build_decoder(tgt_vocab, self.encoder.output_dim, config)
        self.output = Linear(self.decoder.output_dim, tgt_vocab)
        if config.tie_embeddings:
            self.output.weight = self.decoder.embed.weight
        if config.share_src_tgt_embeddings:
            if src_vocab != tgt_vocab:
                raise S2SError(f"model.share_src_tgt_embeddings: the source vocabulary has {src_vocab} pieces and "
                               f"the target one {tgt_vocab}; train a joint one (spm.joint: true)")
            self.encoder.embed.weight = self.decoder.embed.weight
        initialize(self, self.output, config)

    def encode(self, src: torch.Tensor, src_lens: torch.Tensor) -> EncoderOutput:
        """(batch, src_len), (batch,) -> encoder output."""
        return self.encoder(src, src_lens)

    def token_losses(self, src: torch.Tensor, src_lens: torch.Tensor, tgt_in: torch.Tensor,
                     tgt_out: torch.Tensor, label_smoothing: float = 0.0) -> torch.Tensor:
        """Teacher-forced cross-entropy per target position (batch, tgt_len), 0 at padding.

        The rows are sorted longest target first and the target packed, so
        the decoder and the output layer compute real positions only (see
        :mod:`s2s.model.decoder`); the losses come back in the batch's order.
        """
        lengths = (tgt_out != PAD_ID).sum(dim=1)                      # (batch,) with EOS
        order = torch.argsort(lengths, descending=True, stable=True)
        src, src_lens, tgt_in, tgt_out = (t.index_select(0, order) for t in (src, src_lens, tgt_in, tgt_out))
        sorted_lengths = lengths.index_select(0, order).cpu()
        steps = pack_padded_sequence(tgt_in, sorted_lengths, batch_first=True)  # data: (positions,)
        targets = pack_padded_sequence(tgt_out, sorted_lengths, batch_first=True).data
        readout = self.decoder(steps, self.encode(src, src_lens))     # (positions, output_dim)
        losses = smoothed_cross_entropy(self.output(readout).float(), targets, label_smoothing)  # (positions,)
        padded, _ = pad_packed_sequence(PackedSequence(losses, steps.batch_sizes), batch_first=True,
                                        total_length=tgt_out.size(1))  # (batch, tgt_len), sorted
        return padded.index_select(0, torch.argsort(order))

    def start(self, encoded: EncoderOutput) -> tuple[Memory, DecoderState]:
        """Decoding memory and initial decoder state for a batch."""
        return self.decoder.memory(encoded), self.decoder.init_state(encoded)

    def step_log_probs(self, tokens: torch.Tensor, state: DecoderState, memory: Memory
                       ) -> tuple[torch.Tensor, DecoderState, torch.Tensor]:
        """Log-probabilities of the next token (batch, tgt_vocab), new state, attention (batch, src_len)
        (None for ``attention: none``)."""
        logits, state, weights = self.step_logits(tokens, state, memory)
        return torch.log_softmax(logits, dim=-1), state, weights

    def step_logits(self, tokens: torch.Tensor, state: DecoderState, memory: Memory
                    ) -> tuple[torch.Tensor, DecoderState, torch.Tensor]:
        """Like :meth:`step_log_probs`, with logits (batch, tgt_vocab) (enough for an argmax)."""
        readout, state, weights = self.decoder.step(tokens, state, memory)
        return self.output(readout).float(), state, weights

    def num_parameters(self) -> int:
        """Trainable parameters, tied weights counted once."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)
