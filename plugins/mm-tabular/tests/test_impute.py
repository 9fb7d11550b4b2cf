"""`mm impute` end to end on real CSV and parquet files."""

import csv
import json
from types import SimpleNamespace

import pandas as pd
import pytest
import torch

from mmcore.cli import main
from mmcore.model import MaskedModel
from mmcore.testing import tiny_config

COLUMNS = ["age", "city", "score"]

CSV_TEXT = 'age,city,score\n31,Oslo,1.50\n45,,2.0\n,"Lima",3.25\n28,Oslo,NA\n052,Lima,0.5\n39,Kyiv,\n'


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, tokenizer_options):
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("model")
    config = tiny_config("tabular", "remask", tokenizer=tokenizer_options)
    MaskedModel(config).save_pretrained(folder)
    return folder


def _cells(path):
    with open(path, newline="") as f:
        return list(csv.reader(f))


def test_impute_fills_every_missing_cell_and_keeps_observed_text(model_dir, tmp_path, capsys, fit):
    src, out = tmp_path / "data.csv", tmp_path / "filled.csv"
    src.write_text(CSV_TEXT)
    assert main(["impute", str(model_dir), str(src), "-o", str(out)]) == 0
    assert "filled 4 missing cell(s) in 6 rows" in capsys.readouterr().out
    before, after = _cells(src), _cells(out)
    assert after[0] == before[0] and len(after) == len(before)
    tok = fit()
    for row_in, row_out in zip(before[1:], after[1:]):
        for j, (a, b) in enumerate(zip(row_in, row_out)):
            if a not in ("", "NA"):
                assert b == a  # observed cells byte-for-byte ("1.50", "052" stay as written)
            elif tok.kinds[j] == "numeric":
                float(b)
            else:
                assert b in tok.categories[j]
    assert after[5][0] == "052" and after[1][2] == "1.50"  # not re-formatted by a number parser
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".filled")]  # atomic: no temporary left


def test_impute_parquet_with_reordered_columns_and_unseen_category(model_dir, tmp_path, capsys):
    src, out = tmp_path / "data.parquet", tmp_path / "filled.parquet"
    pd.DataFrame({"score": [1.5, None, 2.0], "city": ["Oslo", "Paris", None], "age": [31.0, 40.0, None]}).to_parquet(src)
    assert main(["impute", str(model_dir), str(src), "-o", str(out)]) == 0
    assert "unseen in training" in capsys.readouterr().err
    frame = pd.read_parquet(out)
    assert list(frame.columns) == ["score", "city", "age"] and not frame.isna().any().any()
    assert frame["city"][1] == "Paris" and frame["score"][0] == 1.5  # unseen value kept as it was


def test_header_mismatch_names_file_and_columns(model_dir, tmp_path, capsys):
    src = tmp_path / "other.csv"
    src.write_text("age,town,score\n1,Oslo,2\n")
    assert main(["impute", str(model_dir), str(src), "-o", str(tmp_path / "f.csv")]) == 2
    err = capsys.readouterr().err
    assert "other.csv" in err and "missing ['city']" in err and "unexpected ['town']" in err
    assert not (tmp_path / "f.csv").exists()


def test_text_in_numeric_column_names_file_column_and_row(model_dir, tmp_path, capsys):
    src = tmp_path / "bad.csv"
    src.write_text("age,city,score\n31,Oslo,1\n45,Lima,lots\n")
    assert main(["impute", str(model_dir), str(src), "-o", str(tmp_path / "f.csv")]) == 2
    err = capsys.readouterr().err
    assert "bad.csv, row 2, column 'score': 'lots' is not a finite number" in err


def test_a_model_of_another_modality_is_refused(tmp_path, capsys, monkeypatch):
    import mmcore

    monkeypatch.setattr(mmcore, "from_pretrained", lambda name: SimpleNamespace(modality=SimpleNamespace(name="text")))
    assert main(["impute", "runs/text-mlm/model", str(tmp_path / "a.csv"), "-o", str(tmp_path / "b.csv")]) == 2
    assert capsys.readouterr().err == ("mm: error: mm impute: runs/text-mlm/model is a 'text' model; accepted: a tabular model\n")


def test_fitted_statistics_travel_in_config_json(model_dir, fit):
    config = json.loads((model_dir / "config.json").read_text())
    saved = config.get("config", config)["tokenizer"]
    tok = fit()
    assert saved["columns"] == COLUMNS and saved["mean"] == tok.mean and saved["categories"] == tok.categories
    restored = MaskedModel.from_pretrained(str(model_dir)).tokenizer
    assert restored.std == tok.std and restored.kinds == tok.kinds


def test_remasked_passes_are_seeded_and_fill_the_same_cells(model_dir, tmp_path):
    from mm_tabular import read_table
    from mm_tabular.impute import choose_passes, impute_table

    src = tmp_path / "data.csv"
    src.write_text(CSV_TEXT)
    model, table = MaskedModel.from_pretrained(model_dir), read_table(src)
    once, _ = impute_table(model, table, passes=1)
    a, _ = impute_table(model, table, passes=8)
    b, _ = impute_table(model, table, passes=8)
    assert a.rows == b.rows  # repeatable
    assert [[c is None for c in r] for r in once.rows] == [[c is None for c in r] for r in a.rows]
    assert choose_passes([[1, 2, None, 4, 5]] * 2) > 1 and choose_passes([[1, None]] * 2) == 1
    from mm_tabular import RemaskMasking

    assert choose_passes([[1, 2, None, 4, 5]] * 2, RemaskMasking(ratio=0.5, min_ratio=0.1)) == 1  # trained on near-full rows


def test_header_only_table_is_refused(model_dir, tmp_path, capsys):
    src, out = tmp_path / "data.csv", tmp_path / "f.csv"
    src.write_text("age,city,score\n")
    assert main(["impute", str(model_dir), str(src), "-o", str(out)]) == 2
    assert "data.csv has no rows (only a header)" in capsys.readouterr().err and not out.exists()


def test_a_column_entirely_empty_is_filled_from_the_others(model_dir, tmp_path, capsys):
    for name, write in [
        ("data.csv", lambda p: p.write_text("age,city,score\n31,Oslo,\n45,Lima,\n")),
        ("data.parquet", lambda p: pd.DataFrame({"age": [31, 45], "city": ["Oslo", "Lima"], "score": [None, None]}).to_parquet(p)),
    ]:
        src, out = tmp_path / name, tmp_path / f"filled-{name}"
        write(src)
        assert main(["impute", str(model_dir), str(src), "-o", str(out)]) == 0
        filled = pd.read_csv(out) if name.endswith(".csv") else pd.read_parquet(out)
        assert filled["score"].notna().all() and filled["score"].dtype.kind == "f"


def test_infinite_cell_is_refused_and_output_not_written(model_dir, tmp_path, capsys):
    src, out = tmp_path / "data.csv", tmp_path / "f.csv"
    src.write_text("age,city,score\n31,Oslo,1\n45,Lima,inf\n")
    out.write_text("kept")
    assert main(["impute", str(model_dir), str(src), "-o", str(out)]) == 2
    assert "data.csv, row 2, column 'score': 'inf' is not a finite number" in capsys.readouterr().err
    assert out.read_text() == "kept"  # nothing already on disk is lost


TINY_FIT = [
    "--set",
    "train.steps=4",
    "--set",
    "train.warmup_steps=1",
    "--set",
    "model.encoder.dim=16",
    "--set",
    "model.encoder.depth=1",
    "--set",
    "model.encoder.heads=2",
    "--set",
    "model.decoder.dim=16",
    "--set",
    "model.decoder.depth=1",
    "--set",
    "model.decoder.heads=2",
]


def test_impute_fit_trains_on_the_table_itself_then_fills_it(tmp_path, capsys):
    src, out, run = tmp_path / "data.csv", tmp_path / "filled.csv", tmp_path / "run"
    src.write_text(CSV_TEXT)
    assert main(["impute", "--fit", str(src), "-o", str(out), "--run-dir", str(run), *TINY_FIT]) == 0
    assert "filled 4 missing cell(s) in 6 rows" in capsys.readouterr().out
    saved = json.loads((run / "model" / "config.json").read_text())
    assert saved["tokenizer"]["columns"] == COLUMNS  # fitted on data.csv
    before, after = _cells(src), _cells(out)
    assert all(b == a for r_in, r_out in zip(before[1:], after[1:]) for a, b in zip(r_in, r_out) if a not in ("", "NA"))
    assert all(b not in ("", "NA") for row in after[1:] for b in row)
    assert main(["impute", "--fit", str(src), "-o", str(out), "--run-dir", str(run), *TINY_FIT]) == 0  # again: moved aside
    assert (run / ".previous").is_dir()


@pytest.mark.parametrize(
    "text,says",
    [
        ("age,city\n31,Oslo\n", "has 1 data row(s); mm impute --fit learns from the table itself and needs at least 2 rows"),
        ("age,city\n31,\n40,\n", "column 'city' has no observed value"),
    ],
)
def test_impute_fit_refuses_tables_it_cannot_learn_from(tmp_path, capsys, text, says):
    src = tmp_path / "data.csv"
    src.write_text(text)
    assert main(["impute", "--fit", str(src), "-o", str(tmp_path / "out.csv"), "--run-dir", str(tmp_path / "run"), *TINY_FIT]) != 0
    assert says in capsys.readouterr().err and not (tmp_path / "out.csv").exists()


@pytest.mark.parametrize(
    "args,says",
    [
        (["--fit", "a.csv", "b.csv"], "mm impute --fit takes the table alone"),
        (["only.csv"], "mm impute takes a model and a table"),
        (["model", "a.csv", "--set", "train.steps=3"], "--set and --run-dir go with --fit"),
    ],
)
def test_impute_argument_shapes_are_one_line_errors(tmp_path, capsys, args, says):
    assert main(["impute", *args, "-o", str(tmp_path / "out.csv")]) != 0
    assert says in capsys.readouterr().err
