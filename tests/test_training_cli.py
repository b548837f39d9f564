"""``rankstack train sft|grpo`` end to end on a tiny real model folder (one step each)."""

import pytest

from rankstack.cli import main


@pytest.fixture(scope="module")
def tiny_dir(tiny_lm, tmp_path_factory):
    model, tok = tiny_lm
    d = tmp_path_factory.mktemp("tiny")
    model.save_pretrained(d)
    tok.save_pretrained(d)
    return d


def test_cli_train_sft_and_grpo(tiny_dir, tmp_path, capsys):
    common = ["--dataset", "dl19", "--model", str(tiny_dir), "--train-fraction", "0.1", "--n-pos", "1",
              "--n-hard", "1", "--n-random", "0", "--max-steps", "1", "--batch-size", "2", "--cpu"]
    assert main(["train", "sft", "--paradigm", "pointwise", "-o", str(tmp_path / "sft"), "--max-length", "256",
                 *common]) == 0
    out = capsys.readouterr().out
    assert "held out" in out and "loss per logged step" in out and (tmp_path / "sft" / "config.json").exists()
    assert main(["train", "grpo", "--paradigm", "pointwise", "--method", "prorank", "--reward", "prorank",
                 "--num-generations", "2", "--max-completion-length", "2", "-o", str(tmp_path / "grpo"),
                 *common]) == 0
    assert "reward_curve" in capsys.readouterr().out


def test_cli_train_errors(capsys, tmp_path):
    assert main(["train", "grpo", "--dataset", "dl19", "--reward", "nope", "-o", str(tmp_path / "x"),
                 "--model", "/nonexistent/model"]) == 2
    assert "unknown reward 'nope'" in capsys.readouterr().err
    assert main(["train", "sft", "-o", str(tmp_path / "y")]) == 2  # no data named
    assert "--queries is required" in capsys.readouterr().err
