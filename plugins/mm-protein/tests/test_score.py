"""mm score on a tiny random protein model: CSV shape, the scores against naive one-at-a-time
computations, forward counts, and one-line errors for bad mutations."""

import csv

import pytest
import torch

from mmcore.cli import main
from mmcore.model import MaskedModel
from mmcore.sampling import hidden_logits
from mmcore.testing import tiny_config
from mm_protein.alphabet import ID
from mm_protein.score import AMINO_ACIDS, Variant, parse_mutation, pseudo_log_likelihood, score_variants, window_of, window_starts

WT = "MKTAYIAKQRQISFVKSH"  # 18 residues, fits max_length 24
LONG = WT + "FSRQLEERLGLIEVQAPILSRVGDGTQDNLSG"  # 50 residues: scored in windows


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return MaskedModel(tiny_config("protein", "bert", tokenizer={"max_length": 24})).eval()


@pytest.fixture(scope="module")
def folder(model, tmp_path_factory):
    path = tmp_path_factory.mktemp("protein-model")
    model.save_pretrained(path)
    return str(path)


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def naive_masked_logp(model, sequence, pos):
    """log p(· | sequence with pos masked), one forward through the sampler's own path, no windows."""
    batch = model.tokenizer.collate([{"sequence": sequence}])
    tokens = model.tokenizer.tokenize(batch)
    hidden = torch.zeros_like(tokens.values, dtype=torch.bool)
    hidden[0, pos] = True
    logits, _, _ = hidden_logits(model, tokens, hidden)
    return logits[0, 0].log_softmax(-1)


def test_csv_columns_and_rows(folder, fasta, tmp_path):
    out = tmp_path / "m.csv"
    assert main(["score", folder, "--wildtype", WT, "--mutations", "K2R,a4v,T3S:Y5F", "-o", str(out)]) == 0
    rows = read_csv(out)
    assert list(rows[0]) == ["mutation", "wt_marginal", "masked_marginal"] and len(rows) == 3
    assert [r["mutation"] for r in rows] == ["K2R", "a4v", "T3S:Y5F"]
    records = fasta(f">wt\n{WT}\n>double\n{'MR' + WT[2:4] + 'F' + WT[5:]}\n>third\n{WT[:-1]}R\n")
    assert main(["score", folder, "--fasta", str(records), "-o", str(out)]) == 0
    rows = read_csv(out)
    assert list(rows[0]) == ["id", "pll"] and [r["id"] for r in rows] == ["wt", "double", "third"]
    assert main(["score", folder, "--fasta", str(records), "--wildtype", WT, "-o", str(out)]) == 0
    rows = read_csv(out)
    assert list(rows[0]) == ["id", "mutations", "pll", "wt_marginal", "masked_marginal"]
    assert [r["mutations"] for r in rows] == ["", "K2R:Y5F", "H18R"]
    assert float(rows[0]["wt_marginal"]) == 0.0 and float(rows[0]["masked_marginal"]) == 0.0


@pytest.mark.parametrize("wildtype", [WT, LONG], ids=["fits", "windows"])
def test_scores_match_naive_computation(model, wildtype):
    width = model.tokenizer.max_length
    starts = window_starts(len(wildtype), width)
    variants = [parse_mutation(m, wildtype) for m in ("K2R", "T3S:Y5F", f"{wildtype[-1]}{len(wildtype)}W")]
    sequences = [v.apply(wildtype) for v in variants]
    got = score_variants(model, wildtype, variants, ("wt_marginal", "masked_marginal", "pll"))

    def window(sequence, pos):  # the window the scorer reads pos in, and pos inside it
        s = window_of(pos, starts, width)
        return sequence[s : s + width], pos - s

    def masked(sequence, pos):
        return naive_masked_logp(model, *window(sequence, pos))

    for v, seq, row in zip(variants, sequences, got):
        mm = sum(float(masked(wildtype, p)[ID[mt]] - masked(wildtype, p)[ID[wt]]) for p, wt, mt in v.changes)
        assert row["masked_marginal"] == pytest.approx(mm, abs=1e-4)
        pll = sum(float(masked(seq, i)[ID[c]]) for i, c in enumerate(seq))
        assert row["pll"] == pytest.approx(pll, abs=1e-3)
    if len(wildtype) <= width:  # the unmasked wild type, all positions read from one forward
        with torch.no_grad():
            batch = model.tokenizer.collate([{"sequence": wildtype}])
            x = model.encoder(model.embedder(model.tokenizer.tokenize(batch)), batch.get("valid"))
            logp = model.head(x)[0].float().log_softmax(-1)
        wm = sum(float(logp[p, ID[mt]] - logp[p, ID[wt]]) for p, wt, mt in variants[1].changes)
        assert got[1]["wt_marginal"] == pytest.approx(wm, abs=1e-4)


def count_rows(model, monkeypatch):
    """Rows of each forward through the encoder (each `forward_bert` call is one batched forward)."""
    calls, forward = [], model.forward_bert

    def counted(tokens, *args, **kwargs):
        calls.append(tokens.values.shape[0])
        return forward(tokens, *args, **kwargs)

    monkeypatch.setattr(model, "forward_bert", counted)
    return calls


def test_forward_counts_of_a_full_scan(model, monkeypatch):
    scan = [Variant(f"{w}{i + 1}{a}", ((i, w, a),)) for i, w in enumerate(WT) for a in AMINO_ACIDS if a != w]
    assert len(scan) == 19 * len(WT)
    calls = count_rows(model, monkeypatch)
    rows = score_variants(model, WT, scan, ("wt_marginal",))
    assert len(rows) == len(scan) and calls == [1]  # one forward of one row for every mutation of the wild type
    calls.clear()
    score_variants(model, WT, scan, ("masked_marginal",), batch_size=8)
    assert calls == [8, 8, 2]  # one row per mutated position, in batches
    calls.clear()
    pseudo_log_likelihood(model, WT, batch_size=32)
    assert calls == [len(WT)]  # one row per position
    calls.clear()
    score_variants(model, LONG, [parse_mutation(f"K2R:{LONG[-1]}50A", LONG)], ("wt_marginal",))
    assert calls == [2]  # a sequence longer than max_length: one row per window it needs


def test_windows_cover_every_position():
    for length, width in ((50, 24), (24, 24), (300, 128), (129, 128)):
        starts = window_starts(length, width)
        assert starts[0] == 0 and starts[-1] == max(0, length - width)
        assert all(s <= p < s + width for p in range(length) for s in [window_of(p, starts, width)])


@pytest.mark.parametrize(
    "mutation, message",
    [
        ("A2V", "mutation 'A2V': the wild type holds 'K' at position 2, not 'A'; accepted: the wild-type residue first (K2V)"),
        ("K40R", "mutation 'K40R': position 40 is outside the wild type of 18 residues; accepted: positions 1-18"),
        ("K2J", "mutation 'K2J': 'J' is not an amino acid; accepted: A C D E F G H I K L M N P Q R S T V W Y"),
        ("K2R:Q40L", "mutation 'K2R:Q40L': position 40 is outside the wild type of 18 residues"),
        ("K2", "mutation 'K2': 'K2' is not a substitution; accepted: WT letter, 1-based position, MT letter (A23V)"),
        ("K2R:K2A", "mutation 'K2R:K2A': position 2 is mutated twice"),
    ],
)
def test_bad_mutations_are_one_line_errors(folder, capsys, mutation, message):
    assert main(["score", folder, "--wildtype", WT, "--mutations", f"K2R,{mutation}"]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1 and message in captured.err


def test_bad_invocations(folder, fasta, capsys):
    assert main(["score", folder, "--mutations", "K2R"]) == 2
    assert "need --wildtype" in capsys.readouterr().err
    assert main(["score", folder, "--wildtype", WT, "--mutations", "K2R", "--scores", "plll"]) == 2
    assert "'plll' is unknown; accepted: wt-marginal, masked-marginal, pll" in capsys.readouterr().err
    assert main(["score", folder, "--wildtype", WT, "--fasta", str(fasta(">short\nMKT\n"))]) == 2
    assert "record 'short' has 3 residues, the wild type 18" in capsys.readouterr().err
    assert main(["score", folder, "--wildtype", "MKJT", "--mutations", "K2R"]) == 2
    assert "--wildtype: holds 'J', not an amino acid" in capsys.readouterr().err
