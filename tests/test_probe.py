"""The reference probes: right on easy cases, chance on noise, no test-set leakage."""

import numpy as np
import pytest
import torch

from mmcore import probe


def blobs(n_per_class=60, classes=4, dim=16, spread=0.5, seed=0, shift=0.0, scale=1.0):
    rng = np.random.default_rng(seed)
    centres = np.random.default_rng(123).normal(size=(classes, dim)) * 3
    y = np.repeat(np.arange(classes), n_per_class)
    x = centres[y] + spread * rng.normal(size=(len(y), dim))
    return (x * scale + shift).astype(np.float32), y


def test_separable_blobs_are_solved():
    tx, ty = blobs(seed=0)
    vx, vy = blobs(seed=1)
    assert probe.linear_probe(tx, ty, vx, vy) > 0.95
    assert probe.knn_probe(tx, ty, vx, vy, k=10) > 0.95


def test_shuffled_labels_give_chance():
    tx, ty = blobs(seed=0, spread=0.5)
    vx, vy = blobs(seed=1)
    rng = np.random.default_rng(0)
    ty, vy = rng.permutation(ty), rng.permutation(vy)  # labels unrelated to features
    assert probe.linear_probe(tx, ty, vx, vy) < 0.45  # chance = 0.25 over 240 samples
    assert probe.knn_probe(tx, ty, vx, vy, k=10) < 0.45


def test_labels_need_not_be_0_to_k():
    tx, ty = blobs(seed=0)
    vx, vy = blobs(seed=1)
    names = np.array([7, -1, 42, 3])
    assert probe.knn_probe(tx, names[ty], vx, names[vy], k=5) > 0.95
    assert probe.linear_probe(tx, names[ty], vx, names[vy]) > 0.95


def test_standardise_uses_train_statistics_only():
    tx, _ = blobs(seed=0)
    vx, _ = blobs(seed=1, shift=5.0, scale=10.0)
    _, out = probe.standardise(tx, vx)
    np.testing.assert_allclose(out, (vx - tx.mean(0)) / tx.std(0), rtol=1e-4, atol=1e-4)
    const = np.ones((10, 3), np.float32)
    assert np.isfinite(probe.standardise(const, const)[1]).all()


def test_shifted_test_set_is_not_renormalised():
    # a per-set normaliser (test statistics) would undo this shift and still score ~1.0
    tx, ty = blobs(seed=0)
    vx, vy = blobs(seed=1)
    assert probe.linear_probe(tx, ty, vx + 50.0, vy) < 0.6


def test_c_is_chosen_without_the_test_set(monkeypatch):
    tx, ty = blobs(seed=0)
    vx, vy = blobs(seed=1, shift=1000.0)  # recognisable rows
    fitted, real = [], probe._logistic

    def spy(C, seed):
        model = real(C, seed)
        fit = model.fit
        model.fit = lambda x, y: (fitted.append(np.asarray(x)), fit(x, y))[1]
        return model

    monkeypatch.setattr(probe, "_logistic", spy)
    probe.linear_probe(tx, ty, vx, vy)
    assert len(fitted) == len(probe.C_GRID) + 1
    assert sum(len(x) for x in fitted[:-1]) == len(probe.C_GRID) * int(round(0.8 * len(tx)))
    assert len(fitted[-1]) == len(tx)  # refit on all training features
    # every fitted array is standardised training data: nowhere near the shifted test rows
    assert all(np.abs(x).max() < 100 for x in fitted)


def test_extract_features_on_toy(toy_registry):
    from toy import SignalTokenizer, Waves, toy_config

    from mmcore.model import MaskedModel

    torch.manual_seed(0)
    model = MaskedModel(toy_config()).train()
    data = Waves(num_train=40).build(SignalTokenizer(max_length=16), "train")
    x, y = probe.extract_features(model, data, batch_size=16)
    assert x.shape == (40, 32) and x.dtype == np.float32 and np.isfinite(x).all()
    assert y.tolist() == [s["label"] for s in data]
    assert model.training  # mode restored
    # same as one big batch: batching and padding do not change the features
    with torch.no_grad():
        model.eval()
        whole = model.features(model.tokenizer.collate(list(data))).numpy()
    np.testing.assert_allclose(x, whole, atol=1e-5)
    # deterministic: no mask is drawn
    x2, _ = probe.extract_features(model, data, batch_size=7)
    np.testing.assert_allclose(x, x2, atol=1e-5)


@pytest.mark.parametrize("k", [1, 500])
def test_knn_k_bounds(k):
    tx, ty = blobs(n_per_class=10, seed=0)
    vx, vy = blobs(n_per_class=5, seed=1)
    assert 0.0 <= probe.knn_probe(tx, ty, vx, vy, k=k) <= 1.0


def test_probe_scores_and_table_carry_both_probes():
    tx, ty = blobs(seed=0)
    vx, vy = blobs(seed=1)
    scores = probe.probe_scores(tx, ty, vx, vy, k=10)
    assert scores["dim"] == 16 and scores["linear"] > 0.95 and scores["knn"] > 0.95
    table = probe.probe_table({"blobs": scores}, k=10).splitlines()
    assert table[0].split() == ["features", "dim", "linear", "probe", "10-NN"]
    assert table[1].split()[:2] == ["blobs", "16"] and table[1].endswith("%")
