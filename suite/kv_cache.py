"""A KV cache for decoding on the CPU: transformers' dynamic cache without its copy per token.

transformers' :class:`~transformers.DynamicLayer` appends each new token's keys and values with ``torch.cat``, which
copies the whole cache at every generated token: for SmolLM2-135M (30 layers, 3 KV heads of 64) that is 46 kB per
row and position, e.g. 0.9 GB read and written per token for 64 rows at 300 positions: 38 % of such a decoding
step on 2 Xeon cores, which takes 258 ms with it and 186 ms with this cache (results/bench/decode_step.md). :class:`PreallocatedLayer` writes new keys and values into a
buffer with room for ``headroom`` more positions and hands attention a view of its filled part, so a token costs
only its own keys and values. The view is strided (the buffer's spare positions lie between rows): SDPA reads it in
place, eager attention copies it (use SDPA with this cache).

Rows that leave a batch (``batch_select_indices`` with increasing indices, as the rollout engine drops ended rows)
are compacted inside the buffer. Everything else is the dynamic layer's, and a method that replaces the keys and
values with new tensors (``crop``, ``batch_repeat_interleave``, offloading) stays correct: the next ``update`` sees
that they are no longer a view of its buffer and moves them into a new one.
"""

from __future__ import annotations

import torch
from transformers.cache_utils import DynamicCache, DynamicLayer

HEADROOM = 256  # spare positions per (re)allocation; a longer generation reallocates once per HEADROOM tokens


class PreallocatedLayer(DynamicLayer):
    """A dynamic cache layer whose keys and values are views of a buffer with spare positions."""

    headroom = HEADROOM

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        filled, new = self.get_seq_length(), key_states.shape[-2]
        buffers = getattr(self, "_buffers", None)
        if buffers is None or not self._is_view_of(buffers, filled, key_states) or filled + new > buffers[0].shape[-2]:
            buffers = self._buffers = self._allocate(key_states, value_states, filled + new + self.headroom)
            if filled:
                buffers[0][:, :, :filled].copy_(self.keys)
                buffers[1][:, :, :filled].copy_(self.values)
        keys, values = buffers
        keys[:, :, filled:filled + new].copy_(key_states)
        values[:, :, filled:filled + new].copy_(value_states)
        self.keys, self.values = keys[:, :, :filled + new], values[:, :, :filled + new]
        return self.keys, self.values

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        """Keep only the rows ``indices`` (increasing, as when ended rows leave a batch) by moving each kept row
        down to its new place inside the buffer: one copy of the moved rows' filled positions, no new buffer.
        Other orders, or keys that are not a view of the buffer, take the dynamic layer's way (a new tensor)."""
        rows = indices.tolist()
        buffers = getattr(self, "_buffers", None)
        filled = self.get_seq_length()
        if (buffers is None or filled == 0 or not self._is_view_of(buffers, filled, self.keys)
                or any(b <= a for a, b in zip(rows, rows[1:]))):
            return super().batch_select_indices(indices)
        for new, old in enumerate(rows):  # new <= old: a row's source is never overwritten before it is read
            if new != old:
                for buffer in buffers:
                    buffer[new, :, :filled].copy_(buffer[old, :, :filled])
        self._buffers = buffers = tuple(buffer[:len(rows)] for buffer in buffers)
        self.keys, self.values = (buffer[:, :, :filled] for buffer in buffers)

    def _is_view_of(self, buffers, filled: int, key_states: torch.Tensor) -> bool:
        """Whether the current keys are the first ``filled`` positions of ``buffers`` (else they were replaced)."""
        if filled == 0:
            return buffers[0].shape[:2] == key_states.shape[:2] and buffers[0].dtype == key_states.dtype
        return (self.keys.data_ptr() == buffers[0].data_ptr() and self.values.data_ptr() == buffers[1].data_ptr()
                and self.keys.shape[:2] == buffers[0].shape[:2] and self.keys.stride() == buffers[0].stride())

    @staticmethod
    def _allocate(key_states: torch.Tensor, value_states: torch.Tensor, positions: int):
        batch, heads = key_states.shape[:2]
        return (key_states.new_empty(batch, heads, positions, key_states.shape[-1]),
                value_states.new_empty(batch, value_states.shape[1], positions, value_states.shape[-1]))


def preallocated_cache() -> DynamicCache:
    """An empty cache whose layers are :class:`PreallocatedLayer` (created as the model's layers first write)."""
    cache = DynamicCache()
    cache.layer_class_to_replicate = PreallocatedLayer
    return cache
