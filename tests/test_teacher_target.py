"""A target that owns its loss and its weights, from a plugin in the test tree (tests/teacher_target.py).

A student text model regresses a frozen teacher's features: the teacher is
a submodule (moved with the model), gets no gradient and no optimizer slot,
stays out of model.safetensors, and comes back from its own folder.
"""

import json

import pytest
import torch
import yaml
from safetensors.torch import load_file

import mmcore
from mmcore import plugins
from mmcore.config import load_recipe
from mmcore.errors import ConfigError
from mmcore.model import MaskedModel
from mmcore.executor import param_groups, train

SENTENCES = [
    "The cat sat on the mat.",
    "A dog ran across the garden and barked at the postman.",
    "Assignment statements bind names to values and modify attributes of mutable objects.",
    "Unbelievably, the unbreakable teapot broke.",
    "The quick brown fox jumps over the lazy dog near the river bank.",
]
TINY = {"dim": 32, "depth": 1, "heads": 2, "mlp_ratio": 2.0}


@pytest.fixture
def registry():
    import teacher_target

    plugins.reset_registry()
    reg = plugins.get_registry()
    reg.add_plugin(teacher_target, "teacher")
    yield reg
    plugins.reset_registry()


@pytest.fixture
def vocab():
    from mm_text.vocab import train_tokenizer

    return train_tokenizer(SENTENCES * 3, "wordpiece", 300, True).to_str()


def text_config(vocab, target):
    return {
        "modality": "text",
        "style": "bert",
        "tokenizer": {"tokenizer_json": vocab, "max_length": 32},
        "masking": {"name": "bert", "ratio": 0.3},
        "target": target,
        "encoder": dict(TINY, dim=48),
        "decoder": TINY,
    }


@pytest.fixture
def teacher(tmp_path, registry, vocab):
    torch.manual_seed(1)
    folder = tmp_path / "teacher"
    MaskedModel(dict(text_config(vocab, {"name": "ids"}), encoder=TINY)).save_pretrained(folder)
    return folder


def test_the_target_is_a_frozen_submodule_outside_the_optimizer_and_the_weights_file(teacher, vocab, tmp_path):
    model = MaskedModel(text_config(vocab, {"name": "teacher", "path": str(teacher)}))
    teacher_params = {id(p) for p in model.target.parameters()}
    assert teacher_params and not any(p.requires_grad for p in model.target.parameters())
    optimised = {id(p) for group in param_groups(model, 0.05) for p in group["params"]}
    assert not optimised & teacher_params
    assert model.head.proj.out_features == 32  # the head predicts the teacher's width, not the vocabulary
    model.to(torch.float64)  # what Accelerate's prepare does with a device, the module tree does with a dtype
    assert all(p.dtype == torch.float64 for p in model.target.parameters())
    model.to(torch.float32)
    assert not [k for k in model.state_dict() if k.startswith("target.")]
    model.train()
    assert not model.target.training  # a frozen teacher stays in eval mode


def test_a_student_trains_on_teacher_features_and_its_folder_restores_the_teacher(teacher, vocab, tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n\n".join(SENTENCES * 8))
    recipe = tmp_path / "student.yaml"
    recipe.write_text(
        yaml.safe_dump(
            {
                "name": "student",
                "output_dir": str(tmp_path / "run"),
                "model": text_config(vocab, {"name": "teacher", "path": str(teacher)}),
                "data": {"dataset": {"name": "files", "path": str(corpus), "test_fraction": 0.2}, "batch_size": 8},
                "train": {"steps": 12, "warmup_steps": 1, "base_lr": 0.05, "log_every": 1, "trackers": []},
            }
        )
    )
    losses = {}
    folder = train(load_recipe(recipe), on_step=lambda step, loss: losses.setdefault(step, loss))
    assert all(torch.isfinite(torch.tensor(v)) for v in losses.values())
    assert sum(list(losses.values())[-3:]) < sum(list(losses.values())[:3])  # it learns the teacher's features
    weights = load_file(folder / "model.safetensors")
    assert weights and not [k for k in weights if k.startswith("target.")]  # the teacher is not saved twice
    config = json.loads((folder / "config.json").read_text())
    assert config["target"] == {"name": "teacher", "path": str(teacher)}
    assert config["parts"]["target"]["name"] == "teacher"
    student = mmcore.from_pretrained(str(folder))
    original = load_file(teacher / "model.safetensors")
    for name, value in student.target.state_dict(keep_vars=False).items():
        assert torch.equal(value, original[name]), name  # frozen: the teacher never moved
    assert not (folder / "reconstruction.png").exists()  # features have no picture


def test_a_teacher_with_another_vocabulary_is_refused(teacher, tmp_path):
    from mm_text.vocab import train_tokenizer

    other = train_tokenizer(["completely different words here"] * 5, "wordpiece", 100, True).to_str()
    with pytest.raises(ConfigError, match="the teacher's vocabulary .* is not the student's"):
        MaskedModel(text_config(other, {"name": "teacher", "path": str(teacher)}))
