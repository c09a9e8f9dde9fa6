"""The encoder-decoder model: encoder, attention, decoder, and their assembly."""

from s2s.model.seq2seq import Seq2Seq

__all__ = ["Seq2Seq"]
