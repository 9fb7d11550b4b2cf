"""The reference probes: one linear probe and one k-NN, used by every benchmark.

Every plugin's benchmark reports these two numbers computed the same way, so
"I can't reproduce the probe" has one answer:

* `linear_probe`: features standardised with the *training* features'
  statistics (MAE's BatchNorm-without-affine head), then a multinomial
  logistic regression whose C is picked on a held-out slice of the training
  features only; the test set is touched once, for the final score.
* `knn_probe`: cosine similarity on L2-normalised features, top-k neighbours,
  similarity-weighted vote (temperature 0.07, as in InstDisc/DINO).

scikit-learn is imported inside the functions: mmcore does not need it to train.
"""

from __future__ import annotations

import numpy as np
import torch

C_GRID = (0.01, 0.1, 1.0, 10.0)


@torch.no_grad()
def extract_features(model, dataset, batch_size: int = 256, device=None) -> tuple[np.ndarray, np.ndarray]:
    """``model.features`` of every sample, in order: ([N, D] float32, [N] labels).

    Eval mode, no gradient, no masking; batches go through ``model.tokenizer.collate``
    exactly as in training, so the probe sees what the encoder was trained on.
    """
    device = torch.device(device) if device is not None else next(model.parameters()).device
    was_training = model.training
    model.eval()
    feats, labels = [], []
    try:
        for start in range(0, len(dataset), batch_size):
            samples = [dataset[i] for i in range(start, min(start + batch_size, len(dataset)))]
            batch = model.tokenizer.collate(samples)
            batch = {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}
            feats.append(model.features(batch).float().cpu().numpy())
            labels.extend(int(s["label"]) for s in samples)
    finally:
        model.train(was_training)
    if not feats:
        return np.zeros((0, 0), np.float32), np.zeros(0, np.int64)
    return np.concatenate(feats).astype(np.float32), np.asarray(labels)


def standardise(train_x: np.ndarray, *others: np.ndarray) -> list[np.ndarray]:
    """Scale every array by the *training* mean and std (BatchNorm without affine, frozen)."""
    mean = train_x.mean(0, keepdims=True)
    std = train_x.std(0, keepdims=True)
    std = np.where(std > 1e-6, std, 1.0)  # constant features stay constant (zero), never divide by ~0
    return [((x - mean) / std).astype(np.float32) for x in (train_x, *others)]


def _logistic(C: float, seed: int):
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=C, solver="lbfgs", max_iter=3000, random_state=seed)


def linear_probe(train_x, train_y, test_x, test_y, seed: int = 0, c_grid=C_GRID, val_fraction: float = 0.2) -> float:
    """Test accuracy of a multinomial logistic regression on standardised features.

    C is chosen on a stratified ``val_fraction`` slice of the training features
    (standardised with the remaining training part's statistics), then the model
    is refit on all training features; the test set is used only for the score.
    """
    from sklearn.model_selection import train_test_split

    train_x, test_x = np.asarray(train_x, np.float32), np.asarray(test_x, np.float32)
    train_y, test_y = np.asarray(train_y), np.asarray(test_y)
    best_c = c_grid[0]
    if len(c_grid) > 1:
        counts = np.unique(train_y, return_counts=True)[1]
        stratify = train_y if counts.min() >= 2 else None
        fit_x, val_x, fit_y, val_y = train_test_split(train_x, train_y, test_size=val_fraction, random_state=seed, stratify=stratify)
        fit_x, val_x = standardise(fit_x, val_x)
        scores = [_logistic(c, seed).fit(fit_x, fit_y).score(val_x, val_y) for c in c_grid]
        best_c = c_grid[int(np.argmax(scores))]  # ties go to the smallest C (strongest regularisation)
    train_x, test_x = standardise(train_x, test_x)
    return float(_logistic(best_c, seed).fit(train_x, train_y).score(test_x, test_y))


def knn_probe(train_x, train_y, test_x, test_y, k: int = 20, temperature: float = 0.07, chunk: int = 1024) -> float:
    """Test accuracy of a weighted k-NN vote under cosine similarity.

    Each of the k nearest training features votes for its label with weight
    exp(similarity / temperature); no parameters are fit, so it measures the
    geometry of the features as they are.
    """
    train_x = _unit(np.asarray(train_x, np.float32))
    test_x = _unit(np.asarray(test_x, np.float32))
    classes, train_idx = np.unique(np.asarray(train_y), return_inverse=True)
    test_y = np.asarray(test_y)
    k = min(k, len(train_x))
    correct = 0
    for start in range(0, len(test_x), chunk):
        sim = test_x[start : start + chunk] @ train_x.T  # [b, Ntrain]
        top = np.argpartition(-sim, k - 1, axis=1)[:, :k]  # [b, k]
        top_sim = np.take_along_axis(sim, top, axis=1)
        weight = np.exp((top_sim - 1.0) / temperature)  # shifted by the max possible sim: no overflow
        votes = np.zeros((len(top), len(classes)))
        np.add.at(votes, (np.arange(len(top))[:, None], train_idx[top]), weight)
        correct += int((classes[votes.argmax(1)] == test_y[start : start + chunk]).sum())
    return correct / max(len(test_x), 1)


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def probe_scores(train_x, train_y, test_x, test_y, k: int = 20, seed: int = 0) -> dict:
    """Both reference probes on one set of features: {"linear", "knn", "dim"}."""
    return {
        "linear": linear_probe(train_x, train_y, test_x, test_y, seed=seed),
        "knn": knn_probe(train_x, train_y, test_x, test_y, k=k),
        "dim": int(train_x.shape[1]),
    }


def probe_encoder(model, train_set, test_set, k: int = 20, seed: int = 0, batch_size: int = 256) -> dict:
    """Features of both splits from ``model``, then `probe_scores`, plus the seconds it took."""
    import time

    start = time.perf_counter()
    (tx, ty), (vx, vy) = (extract_features(model, s, batch_size=batch_size) for s in (train_set, test_set))
    return {**probe_scores(tx, ty, vx, vy, k=k, seed=seed), "seconds": time.perf_counter() - start}


def probe_table(rows: dict[str, dict], k: int = 20) -> str:
    """The rows of `probe_scores` as the plain-text table every benchmark prints."""
    lines = [f"{'features':<18} {'dim':>5} {'linear probe':>13} {f'{k}-NN':>8}"]
    lines += [f"{label:<18} {r['dim']:>5} {r['linear']:>13.1%} {r['knn']:>8.1%}" for label, r in rows.items()]
    return "\n".join(lines)
