"""Decoding: batched greedy search and batched beam search.

Both decode a whole batch in one tensor (all sentences, and all beams of a
sentence); Python only loops over time steps, and over the hypotheses that
end at a step to file them away.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from s2s.model import Seq2Seq
from s2s.subword import BOS_ID, EOS_ID


@dataclass(frozen=True)
class LengthLimit:
    """Max output length = a * src_len + b (src_len without EOS)."""

    a: float = 1.5
    b: int = 10

    def of(self, src_lens: torch.Tensor) -> torch.Tensor:
        """(batch,) source lengths with EOS -> (batch,) max output tokens, EOS excluded."""
        return torch.floor((src_lens - 1).float() * self.a).long() + self.b


@dataclass
class Hypotheses:
    """Decoded token ids per sentence (EOS stripped) and their attention maps."""

    tokens: list[list[int]]
    attention: list[torch.Tensor]  # per sentence (out_len + 1, src_len), EOS row included; empty without attention


@torch.no_grad()
def greedy(model: Seq2Seq, src: torch.Tensor, src_lens: torch.Tensor, limit: LengthLimit) -> Hypotheses:
    """Greedy decoding of a batch ``src`` (batch, src_len); no Python loop over sentences.

    A sentence leaves the batch at its EOS, so the last steps of a batch cost
    only what its unfinished sentences cost.
    """
    encoded = model.encode(src, src_lens)
    memory, state = model.start(encoded)
    batch, device = src.size(0), src.device
    max_out = limit.of(src_lens)                      # (batch,)
    steps = int(max_out.max()) + 1
    out = torch.full((batch, steps), EOS_ID, dtype=torch.long, device=device)
    attn = None                                       # (batch, steps, src_len) once a step returns weights
    rows = torch.arange(batch, device=device)         # the batch row of each sentence still running
    tokens = torch.full((batch,), BOS_ID, dtype=torch.long, device=device)
    for t in range(steps):
        logits, state, weights = model.step_logits(tokens, state, memory)
        tokens = logits.max(dim=-1).indices           # (running,) argmax, first of ties
        tokens = tokens.masked_fill(max_out.index_select(0, rows) <= t, EOS_ID)
        out[rows, t] = tokens
        if weights is not None:
            if attn is None:
                attn = torch.zeros(batch, steps, src.size(1), device=device)
            attn[rows, t] = weights.float()
        running = tokens != EOS_ID
        if not bool(running.all()):
            if not bool(running.any()):
                break
            keep = running.nonzero().squeeze(1)
            rows, tokens = rows.index_select(0, keep), tokens.index_select(0, keep)
            memory, state = memory.index_select(keep), state.index_select(keep)
    out = out[:, :t + 1].tolist()                     # (batch, steps taken)
    attn = None if attn is None else attn[:, :t + 1].cpu()
    hyps, maps = [], []
    for row, seq in enumerate(out):
        length = seq.index(EOS_ID) if EOS_ID in seq else len(seq)
        hyps.append(seq[:length])
        maps.append(torch.empty(0) if attn is None else attn[row, :length + 1, :int(src_lens[row])])
    return Hypotheses(hyps, maps)


@dataclass
class Finished:
    """One complete hypothesis: tokens (EOS stripped), summed log-prob, length-penalised score."""

    tokens: list[int]
    log_prob: float
    score: float


def length_penalty(length: int, alpha: float) -> float:
    """GNMT length penalty ((5 + length) / 6) ** alpha; alpha = 0 leaves scores unnormalised."""
    return ((5.0 + length) / 6.0) ** alpha


@torch.no_grad()
def beam_search(model: Seq2Seq, src: torch.Tensor, src_lens: torch.Tensor, limit: LengthLimit,
                beam: int, alpha: float = 1.0, nbest: int = 1) -> list[list[Finished]]:
    """Batched beam search over ``src`` (batch, src_len); the ``nbest`` best hypotheses per sentence.

    Every step scores all beams of all unfinished sentences at once: one
    top-k over beam x vocabulary per sentence picks 2*beam candidates; those
    ending in EOS among the best ``beam`` are filed as finished, the best
    ``beam`` others go on. Hypotheses are ranked by log-prob / length_penalty.
    A sentence stops, and leaves the batch, when it has at least ``beam``
    finished hypotheses and its best live one, were it to end at the next
    step at no cost, would not outscore its best finished one; or when it
    reaches its max length (where EOS is forced). Stopping at ``beam``
    finished alone (fairseq's rule) ended sentences whose longer live
    hypotheses were still ahead under the length penalty.
    """
    batch, k, device = src.size(0), beam, src.device
    memory, state = model.start(model.encode(src, src_lens))
    expand = torch.arange(batch, device=device).repeat_interleave(k)
    beam_rows = torch.arange(k, device=device)                        # (k,) a sentence's rows, from its first
    memory, state = memory.index_select(expand), state.index_select(expand)
    max_out = limit.of(src_lens)                                      # (batch,)
    active = torch.arange(batch, device=device)                       # sentence of each row
    scores = torch.full((batch, k), float("-inf"), device=device)
    scores[:, 0] = 0.0                                                # (rows, k) summed log-probs
    tokens = torch.full((batch * k,), BOS_ID, dtype=torch.long, device=device)
    history = torch.zeros((batch, k, 0), dtype=torch.long, device=device)  # (rows, k, t)
    n_finished = torch.zeros(batch, dtype=torch.long, device=device)
    best_finished = torch.full((batch,), float("-inf"), device=device)  # best score of each sentence
    finished: list[list[Finished]] = [[] for _ in range(batch)]
    for t in range(int(max_out.max()) + 1):
        rows = active.numel()
        log_probs, state, _ = model.step_log_probs(tokens, state, memory)  # (rows*k, vocab)
        vocab = log_probs.size(-1)
        forced = (t >= max_out[active]).repeat_interleave(k)              # (rows*k,)
        if bool(forced.any()):
            only_eos = torch.full_like(log_probs, float("-inf"))
            only_eos[:, EOS_ID] = log_probs[:, EOS_ID]
            log_probs = torch.where(forced.unsqueeze(1), only_eos, log_probs)
        candidates = (scores.view(-1, 1) + log_probs).view(rows, k * vocab)
        top_scores, top_index = candidates.topk(min(2 * k, k * vocab), dim=1)  # (rows, 2k)
        from_beam, top_tokens = top_index // vocab, top_index % vocab
        is_eos = top_tokens == EOS_ID
        ending = is_eos[:, :k] & torch.isfinite(top_scores[:, :k])      # (rows, k)
        for row, rank in ending.nonzero().tolist():
            sentence = int(active[row])
            seq = history[row, from_beam[row, rank]].tolist()
            log_prob = float(top_scores[row, rank])
            finished[sentence].append(Finished(seq, log_prob, log_prob / length_penalty(len(seq) + 1, alpha)))
        n_finished.index_add_(0, active, ending.sum(dim=1))
        # every hypothesis ending at step t has t + 1 tokens with EOS
        step_best = top_scores[:, :k].masked_fill(~ending, float("-inf")).max(dim=1).values  # (rows,)
        step_best = step_best / length_penalty(t + 1, alpha)
        best_finished[active] = torch.maximum(best_finished[active], step_best)   # (rows,)
        go_on, order = top_scores.masked_fill(is_eos, float("-inf")).topk(k, dim=1)  # (rows, k) best first
        next_beam, next_tokens = from_beam.gather(1, order), top_tokens.gather(1, order)
        # the best live hypothesis ended at the next step (t + 2 tokens with EOS), its EOS costing nothing
        best_live = go_on[:, 0] / length_penalty(t + 2, alpha)              # (rows,)
        done = (n_finished[active] >= k) & (best_finished[active] >= best_live)
        keep = ~done & (t < max_out[active])                               # (rows,)
        if not bool(keep.any()):
            break
        kept = keep.nonzero().squeeze(1)                                  # (rows',)
        flat = (kept.unsqueeze(1) * k + next_beam[kept]).view(-1)         # (rows'*k,)
        state = state.index_select(flat)
        if len(kept) < rows:  # the k rows of a sentence share its memory: only leaving sentences change it
            memory = memory.index_select((kept.unsqueeze(1) * k + beam_rows).view(-1))
        history = torch.cat([history.view(rows * k, -1).index_select(0, flat).view(len(kept), k, -1),
                             next_tokens[kept].unsqueeze(2)], dim=2)
        scores, tokens, active = go_on[kept], next_tokens[kept].view(-1), active[kept]
    return [sorted(hyps, key=lambda h: -h.score)[:nbest] for hyps in finished]
