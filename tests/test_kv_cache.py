"""suite/kv_cache.py: the preallocated cache decodes exactly as transformers' dynamic cache, without copying."""

import pytest
import torch
from transformers import DynamicCache

from suite.kv_cache import PreallocatedLayer, preallocated_cache
from suite.models import TINY, load_model
from suite.rollout import left_pad


@pytest.fixture(scope="module")
def tiny():
    model, tokenizer = load_model(TINY)
    model.config._attn_implementation = "sdpa"
    return model.eval(), tokenizer


def test_update_writes_into_one_buffer_and_returns_views_of_it():
    layer = PreallocatedLayer()
    layer.headroom = 4
    k = torch.arange(2 * 1 * 3 * 2, dtype=torch.float32).reshape(2, 1, 3, 2)  # batch 2, 1 head, 3 positions, dim 2
    keys, values = layer.update(k, -k)
    assert keys.shape == (2, 1, 3, 2) and torch.equal(keys, k) and torch.equal(values, -k)
    buffer = layer._buffers[0]
    assert buffer.shape == (2, 1, 3 + 4, 2)  # room for 4 more positions
    for step in range(4):  # fills the headroom without a new buffer
        new = torch.full((2, 1, 1, 2), 100.0 + step)
        keys, values = layer.update(new, new)
        assert layer._buffers[0] is buffer and keys.data_ptr() == buffer.data_ptr()
    assert keys.shape[-2] == 7 and torch.equal(keys[:, :, :3], k) and torch.equal(keys[:, :, 3:, 0], torch.tensor(
        [[[100.0, 101.0, 102.0, 103.0]]] * 2))
    keys, _ = layer.update(torch.zeros(2, 1, 1, 2), torch.zeros(2, 1, 1, 2))  # full: a new, larger buffer
    assert layer._buffers[0] is not buffer and layer._buffers[0].shape[-2] == 8 + 4
    assert keys.shape[-2] == 8 and torch.equal(keys[:, :, :3], k) and layer.get_seq_length() == 8


def test_keys_replaced_by_another_method_are_moved_into_a_new_buffer():
    layer = PreallocatedLayer()
    k = torch.randn(2, 1, 3, 2)
    layer.update(k, k)
    layer.batch_repeat_interleave(2)  # the dynamic layer's own method: new tensors, 4 rows
    new = torch.randn(4, 1, 1, 2)
    keys, _ = layer.update(new, new)
    assert keys.shape == (4, 1, 4, 2) and keys.data_ptr() == layer._buffers[0].data_ptr()
    assert torch.equal(keys[:, :, :3], k.repeat_interleave(2, 0)) and torch.equal(keys[:, :, 3:], new)
    layer.crop(-2)  # a view of the same buffer, shorter: the next token overwrites the cropped positions
    keys, _ = layer.update(new, new)
    assert keys.shape[-2] == 3 and torch.equal(keys[:, :, 2:], new)


@pytest.mark.parametrize("headroom", [256, 3])  # 3: the buffer is outgrown several times while decoding
def test_greedy_decoding_is_token_identical_to_the_dynamic_cache(tiny, monkeypatch, headroom):
    model, tokenizer = tiny
    monkeypatch.setattr(PreallocatedLayer, "headroom", headroom)
    prompts = [[5, 6, 7, 8, 9, 10], [11, 12], [13, 14, 15]]  # left padding of different widths
    ids, attn = left_pad(prompts, tokenizer.pad_token_id)
    common = dict(input_ids=ids, attention_mask=attn, do_sample=False, max_new_tokens=12, min_new_tokens=12,
                  pad_token_id=tokenizer.pad_token_id)
    with torch.no_grad():
        dynamic = model.generate(**common, past_key_values=DynamicCache())
        ours = model.generate(**common, past_key_values=preallocated_cache())
        logits_dynamic = model(ids, attention_mask=attn, past_key_values=DynamicCache()).logits
        logits_ours = model(ids, attention_mask=attn, past_key_values=preallocated_cache()).logits
    assert torch.equal(dynamic, ours)
    assert torch.allclose(logits_dynamic, logits_ours, atol=1e-6)


def test_rows_leaving_the_batch_are_compacted_inside_the_buffer():
    layer = PreallocatedLayer()
    k = torch.arange(4 * 1 * 2 * 1, dtype=torch.float32).reshape(4, 1, 2, 1)  # rows 0..3
    layer.update(k, -k)
    buffer = layer._buffers[0]
    layer.batch_select_indices(torch.tensor([1, 3]))
    assert layer.keys.data_ptr() == buffer.data_ptr()  # same buffer, rows moved down
    assert torch.equal(layer.keys, k[[1, 3]]) and torch.equal(layer.values, -k[[1, 3]])
    new = torch.full((2, 1, 1, 1), 9.0)
    keys, values = layer.update(new, new)  # decoding goes on in the same buffer
    assert keys.data_ptr() == buffer.data_ptr() and torch.equal(keys[:, :, :2], k[[1, 3]])
    assert torch.equal(keys[:, :, 2:], new) and torch.equal(values[:, :, :2], -k[[1, 3]])
    layer.batch_select_indices(torch.tensor([1, 0]))  # another order: a new tensor, still right
    assert torch.equal(layer.keys[:, :, :2], k[[3, 1]])
