"""The conformance suite fails broken modalities: each defect of `broken_modality` is caught by its
own check, the fully broken modality fails at least four distinct checks, and the same modality
without defects passes them all."""

import pytest
from broken_modality import DEFECTS, BrokenPlugin, broken_samples

from mmcore import plugins
from mmcore.testing import HostSyncGuard, modality_checks

CAUGHT_BY = {
    "host_sync": {"check_no_host_sync_mae", "check_no_host_sync_bert"},
    "front_padding": {"check_padding_at_end", "check_padding_invariance"},
    "no_positions": {"check_position_sensitivity"},
    "zero_detokenize": {"check_round_trip"},
    "hides_too_few": {"check_mask_count_random", "check_routing_random", "check_save_load_mae_identity"},
}


@pytest.fixture
def broken_registry():
    plugins.reset_registry()
    registry = plugins.get_registry()
    registry.add_plugin(BrokenPlugin(), "broken")
    yield registry
    plugins.reset_registry()


def failures(defects):
    failed = set()
    for check in modality_checks("broken", broken_samples(), {"defects": list(defects)}, styles=("mae", "bert"), round_trip="values"):
        try:
            check()
        except Exception:  # noqa: BLE001 - a check fails by any error (save/load refuses a bad mask with a ConfigError)
            failed.add(check.name)
    return failed


def test_the_modality_without_defects_passes_every_check(broken_registry):
    assert failures([]) == set()


@pytest.mark.parametrize("defect", DEFECTS)
def test_each_defect_fails_its_checks_only(broken_registry, defect):
    assert failures([defect]) == CAUGHT_BY[defect]


def test_the_fully_broken_modality_fails_at_least_four_distinct_checks(broken_registry):
    failed = failures(DEFECTS)
    assert (
        len(failed) >= 4 and {"check_no_host_sync_mae", "check_padding_at_end", "check_position_sensitivity", "check_round_trip"} <= failed
    )


@pytest.mark.parametrize(
    "sync",
    [
        lambda t: t.item(),
        lambda t: t.tolist(),
        lambda t: bool(t.any()),
        lambda t: int(t[0]),
        lambda t: t[t > 0],
        lambda t: t.nonzero(),
        lambda t: t.cpu(),
    ],
)
def test_the_host_sync_guard_catches_reads_from_the_device(sync):
    import torch

    t = torch.arange(3.0)
    with pytest.raises(AssertionError, match="host sync in the step"), HostSyncGuard():
        sync(t)
    with HostSyncGuard():  # shapes, masks kept as tensors and integer indexing wait for nothing
        (t.shape[0], torch.where(t > 0, t, 0.0), t.masked_fill(t > 1, 0.0), t[1:], t[torch.tensor([0, 2])])
