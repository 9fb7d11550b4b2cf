import pytest


@pytest.fixture
def fasta(tmp_path):
    """Write a FASTA file from text and return its path."""

    def write(text: str, name: str = "in.fa"):
        path = tmp_path / name
        path.write_text(text)
        return path

    return write
