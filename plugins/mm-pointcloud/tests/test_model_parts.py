import numpy as np
import torch

from mm_pointcloud import BlockMasking, PointGroupTokenizer, chamfer, make_shape, point_cloud_grid


def _batch(tok, n=2):
    rng = np.random.default_rng(0)
    return tok.collate([{"points": make_shape(s, 300, rng, 0.0)} for s in ("cone", "cube")[:n]])


def test_tokens_are_knn_groups_relative_to_fps_centres_and_detokenize_back():
    tok = PointGroupTokenizer(num_points=256, num_groups=16, group_size=8)
    batch = _batch(tok)
    tokens = tok.tokenize(batch)
    assert tokens.values.shape == (2, 16, 24) and tokens.positions.shape == (2, 16, 3)
    groups = tokens.values.view(2, 16, 8, 3)
    assert torch.allclose(groups[:, :, 0], torch.zeros(2, 16, 3))  # each centre is its own nearest point
    points = tok.detokenize(tokens.values, tokens)
    cloud = batch["points"]
    exact = torch.cdist(points, cloud, compute_mode="donot_use_mm_for_euclid_dist")
    assert exact.amin(-1).max() < 1e-5  # every detokenized point is a point of the cloud


def test_block_masking_hides_the_groups_nearest_one_seed():
    tok = PointGroupTokenizer(num_points=256, num_groups=16, group_size=8)
    tokens = tok.tokenize(_batch(tok))
    hidden = BlockMasking(ratio=0.5)(tokens, torch.Generator().manual_seed(0))
    assert (hidden.sum(1) == 8).all()
    for centres, h in zip(tokens.positions, hidden):
        d = torch.cdist(centres, centres)
        assert any(d[s][h].max() <= d[s][~h].min() for s in h.nonzero()[:, 0])


def test_chamfer_values():
    a = torch.tensor([[0.0, 0, 0], [1, 0, 0]])
    assert chamfer(a, a).item() == 0.0
    b = a + torch.tensor([0.0, 0.5, 0.0])
    assert chamfer(a, b).item() == torch.tensor(0.5).item()  # 0.25 each way, summed
    assert abs(chamfer(a, b, "l1").item() - 0.5) < 1e-6  # 0.5 each way, averaged


def test_picture_is_an_image():
    tok = PointGroupTokenizer(num_points=128, num_groups=8, group_size=16)
    pts = tok.detokenize(*(lambda t: (t.values, t))(tok.tokenize(_batch(tok, 1))))
    image = point_cloud_grid(pts, pts, pts + 0.1)
    assert image.size[0] > 100 and image.size[1] > 100


def test_features_are_max_and_mean_of_the_group_states():
    from mm_pointcloud import max_mean_pool

    states = torch.tensor([[[1.0, -2.0], [3.0, 0.0]]])
    assert torch.equal(max_mean_pool(states), torch.tensor([[3.0, 0.0, 2.0, -1.0]]))
    valid = torch.tensor([[True, False]])
    assert torch.equal(max_mean_pool(states, valid), torch.tensor([[1.0, -2.0, 1.0, -2.0]]))
