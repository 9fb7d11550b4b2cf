import pytest
import torch
import torch.nn.functional as F

from mm_image import BlockMasking, RandomMasking, SimMIMMasking
from mmcore.errors import ConfigError

POLICIES = [RandomMasking(), BlockMasking(), SimMIMMasking(mask_patch_size=8)]


def gen(seed):
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("policy", POLICIES, ids=lambda p: type(p).__name__)
@pytest.mark.parametrize("grid", [(8, 8), (6, 10), (14, 14)])
def test_exact_count_and_determinism(policy, grid, tokens_of):
    _, tokens = tokens_of(*grid, batch=16)
    n = tokens.num_tokens
    hidden = policy(tokens, gen(0))
    assert hidden.shape == (16, n) and hidden.dtype == torch.bool
    assert (hidden.sum(1) == policy.num_hidden(n)).all()
    assert policy.num_hidden(n) == round(policy.ratio * n)
    assert torch.equal(hidden, policy(tokens, gen(0)))
    assert not torch.equal(hidden, policy(tokens, gen(1)))
    assert not torch.equal(hidden[0], hidden[1])  # samples differ within a batch


def _neighbour_hidden_rate(hidden, gh, gw):
    """Among 4-neighbours of hidden patches, the fraction that are hidden too."""
    m = hidden.view(-1, 1, gh, gw).float()
    kernel = torch.tensor([[0.0, 1, 0], [1, 0, 1], [0, 1, 0]]).view(1, 1, 3, 3)
    hidden_nb = F.conv2d(m, kernel, padding=1)
    all_nb = F.conv2d(torch.ones_like(m), kernel, padding=1)
    return ((hidden_nb * m).sum() / (all_nb * m).sum()).item()


def test_block_masks_are_clustered(tokens_of):
    _, tokens = tokens_of(14, 14, batch=32)
    block = _neighbour_hidden_rate(BlockMasking(ratio=0.4)(tokens, gen(0)), 14, 14)
    rand = _neighbour_hidden_rate(RandomMasking(ratio=0.4)(tokens, gen(0)), 14, 14)
    assert rand < 0.5 and block > 0.8


def test_simmim_hides_whole_cells(tokens_of):
    _, tokens = tokens_of(8, 12, patch=4, batch=8)
    policy = SimMIMMasking(ratio=0.5, mask_patch_size=8)  # 2x2 patches per cell; 48 of 96 = 12 whole cells
    cells = policy(tokens, gen(0)).view(8, 4, 2, 6, 2).permute(0, 1, 3, 2, 4).reshape(8, 24, 4)
    assert ((cells.sum(-1) == 0) | (cells.sum(-1) == 4)).all()
    assert (cells.all(-1).sum(1) == 12).all()


def test_policy_errors(tokens_of):
    _, tokens = tokens_of(8, 8, patch=4)
    with pytest.raises(ConfigError, match="mask_patch_size 6 is not a multiple of model.tokenizer.patch_size 4"):
        SimMIMMasking(mask_patch_size=6)(tokens)
    with pytest.raises(ConfigError, match="ratio 1.5"):
        RandomMasking(ratio=1.5)
    with pytest.raises(ConfigError, match="min_area"):
        BlockMasking(min_area=0.5, max_area=0.1)


def test_ratio_zero_hides_nothing(tokens_of):
    _, tokens = tokens_of(4, 4)
    for policy in (RandomMasking(ratio=0.0), BlockMasking(ratio=0.0), SimMIMMasking(ratio=0.0, mask_patch_size=4)):
        assert not policy(tokens, gen(0)).any()
