"""Assertions shared by several test files."""


def assert_weights_moved(model, initial: str = "tiny-llama") -> None:
    """The run changed the policy: some weight differs from the model it started from (a resume test whose
    runs never move the weights would pass whatever resume did)."""
    import torch

    from suite.models import load_model

    start, _ = load_model(initial)
    before = start.state_dict()
    moved = [name for name, p in model.state_dict().items() if not torch.equal(p.detach().cpu(), before[name])]
    assert moved, f"no weight moved from {initial}: every advantage or gradient was 0"
    assert all(torch.isfinite(p).all() for p in model.state_dict().values())
