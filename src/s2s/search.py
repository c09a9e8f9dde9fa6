"""Decoding: batched greedy search and batched beam search.

Both decode a whole batch in one tensor (all sentences, and all beams of a
sentence); Python only loops over time steps, and over the hypotheses that
end at a step to file them away. The model is one :class:`Seq2Seq` or an
:class:`~s2s.model.ensemble.Ensemble` of several, whose memory and state are
reordered and joined by rows as one model's are. Greedy search keeps its batch full: the
next sentences take the rows of those that end (continuous batching).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from s2s.config import EvalConfig
from s2s.model import Seq2Seq
from s2s.model.ensemble import Ensemble
from s2s.model.state import DecoderState, Memory
from s2s.subword import BOS_ID, EOS_ID


@dataclass(frozen=True)
class LengthLimit:
    """Max output length = a * src_len + b (src_len without EOS)."""

    a: float = 1.5
    b: int = 10

    def of(self, src_lens: torch.Tensor) -> torch.Tensor:
        """(batch,) source lengths with EOS -> (batch,) max output tokens, EOS excluded."""
        return torch.floor((src_lens - 1).float() * self.a).long() + self.b

    @classmethod
    def from_eval(cls, config: EvalConfig) -> "LengthLimit":
        """The limit that ``eval.max_len_a`` and ``eval.max_len_b`` set."""
        return cls(config.max_len_a, config.max_len_b)


@dataclass
class Hypotheses:
    """Decoded token ids per sentence (EOS stripped) and their attention maps."""

    tokens: list[list[int]]
    attention: list[torch.Tensor]  # per sentence (out_len + 1, src_len), EOS row included; empty without attention


class EncodedQueue:
    """Sentences waiting to be decoded, in order, encoded ``batch_size`` at a time when first asked for.

    ``src`` (sentences, src_len) and ``src_lens`` (sentences,) with EOS.
    """

    def __init__(self, model: "Seq2Seq | Ensemble", src: torch.Tensor, src_lens: torch.Tensor, batch_size: int):
        self.model, self.src, self.src_lens, self.batch_size = model, src, src_lens, batch_size
        self.taken = 0          # sentences before it have been handed out
        self.encoded_from = 0   # the first sentence of the encoded chunk
        self.encoded: "tuple[Memory, DecoderState] | None" = None

    @property
    def remaining(self) -> int:
        return self.src.size(0) - self.taken

    def take(self, wanted: int) -> tuple[torch.Tensor, Memory, DecoderState]:
        """The next ``min(wanted, remaining)`` sentences: their indices (n,), memory and initial state."""
        first, device = self.taken, self.src.device
        memories, states = [], []
        while wanted > 0 and self.remaining > 0:
            if self.encoded is None or self.taken == self.encoded_from + self.encoded[0].mask.size(0):
                self._encode_next()
            memory, state = self.encoded
            offset = self.taken - self.encoded_from
            rows = torch.arange(offset, min(offset + wanted, memory.mask.size(0)), device=device)
            memories.append(memory.index_select(rows))
            states.append(state.index_select(rows))
            self.taken += rows.numel()
            wanted -= rows.numel()
        index = torch.arange(first, self.taken, device=device)
        if len(memories) == 1:
            return index, memories[0], states[0]
        return index, type(memories[0]).cat(memories), type(states[0]).cat(states)

    def _encode_next(self) -> None:
        start, stop = self.taken, min(self.taken + self.batch_size, self.src.size(0))
        lens = self.src_lens[start:stop]
        src = self.src[start:stop, :int(lens.max())]  # (chunk, its longest source)
        self.encoded = self.model.start(self.model.encode(src, lens))
        self.encoded_from = start


@torch.inference_mode()
def greedy(model: "Seq2Seq | Ensemble", src: torch.Tensor, src_lens: torch.Tensor, limit: LengthLimit,
           batch_size: "int | None" = None, refill: "int | None" = None) -> Hypotheses:
    """Greedy decoding of ``src`` (sentences, src_len), at most ``batch_size`` sentences at once (all when None).

    Continuous batching: a sentence leaves the running batch at its EOS, and
    once ``refill`` rows are free (default: an eighth of the batch) the next
    sentences, in the order given, take them. So every step runs a nearly
    full batch until the sentences run out, where a batch that waited for its
    longest sentence ran its last steps with a few rows at almost the cost of
    a full one (the output layer reads its whole weight at every step).
    Joining copies the running memory, so joining at every free row or two
    gained less (test 2016 at batch 64 on 2 CPU cores, against batch by
    batch: 12% less CPU time joining at every 2 free rows, 16% at 8, 13% at
    16). Sorting the sentences by length keeps the sources of the running
    ones, which the memory is padded to, alike. Each sentence's tokens are
    those it gets decoded alone.
    """
    total, device = src.size(0), src.device
    batch_size = total if batch_size is None else batch_size
    refill = max(1, batch_size // 8) if refill is None else refill
    max_out = limit.of(src_lens)                                  # (sentences,)
    out = torch.full((total, int(max_out.max()) + 1), EOS_ID, dtype=torch.long, device=device)
    attn = None                                   # (sentences, steps, src_len) once a step returns weights
    queue = EncodedQueue(model, src, src_lens, batch_size)
    sentence = torch.zeros(0, dtype=torch.long, device=device)    # (running,) the sentence of each row
    step = torch.zeros_like(sentence)                             # (running,) its next output position
    tokens = torch.zeros_like(sentence)                           # (running,) its previous output
    memory: "Memory | None" = None
    state: "DecoderState | None" = None
    while True:
        free = batch_size - sentence.numel()
        if queue.remaining and (free >= refill or sentence.numel() == 0):
            joining, new_memory, new_state = queue.take(free)
            sentence = torch.cat([sentence, joining])
            step = torch.cat([step, torch.zeros_like(joining)])
            tokens = torch.cat([tokens, torch.full_like(joining, BOS_ID)])
            memory = new_memory if memory is None else type(memory).cat([memory, new_memory])
            state = new_state if state is None else type(state).cat([state, new_state])
        if sentence.numel() == 0:
            break
        logits, state, weights = model.step_logits(tokens, state, memory)
        tokens = logits.max(dim=-1).indices                       # (running,) argmax, first of ties
        tokens = tokens.masked_fill(max_out.index_select(0, sentence) <= step, EOS_ID)
        out[sentence, step] = tokens
        if weights is not None:
            if attn is None:
                attn = torch.zeros(total, out.size(1), src.size(1), device=device)
            attn[sentence, step, :weights.size(1)] = weights.float()
        step = step + 1
        running = tokens != EOS_ID
        if not bool(running.all()):
            keep = running.nonzero().squeeze(1)
            sentence, step, tokens = sentence[keep], step[keep], tokens[keep]
            width = int(src_lens.index_select(0, sentence).max()) if keep.numel() else 0
            memory = memory.prefix(memory.mask.size(0), width).index_select(keep)
            state = state.index_select(keep)
    out = out.tolist()                                            # (sentences, steps)
    attn = None if attn is None else attn.cpu()
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


@torch.inference_mode()
def beam_search(model: "Seq2Seq | Ensemble", src: torch.Tensor, src_lens: torch.Tensor, limit: LengthLimit,
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
