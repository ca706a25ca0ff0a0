import json

import torch

from onebit.nn import QuantLinear
from onebit.training.diagnostics import FlipTracker, MetricsLogger, latent_histograms, plot_run


def _model():
    m = torch.nn.Sequential(
        torch.nn.Linear(4, 4),  # float: not tracked
        QuantLinear(
            4,
            2,
            bias=False,
            input_quantizer="ste_sign",
            weight_quantizer="ste_sign",
            weight_constraint="weight_clip",
        ),
    )
    with torch.no_grad():
        m[1].weight.copy_(torch.tensor([[0.5, -0.5, 0.0, 0.1], [-0.2, 0.3, 0.9, -0.9]]))
    return m


def test_flip_ratio_hand_made():
    m = _model()
    ft = FlipTracker(m)
    assert [n for n, _ in ft.layers] == ["1"]
    with torch.no_grad():
        w = m[1].weight
        w[0, 0] = -0.1  # + -> -: flip
        w[0, 2] = -0.01  # 0 (sign +1) -> -: flip
        w[0, 3] = 0.7  # + -> +: no flip
        w[1, 0] = -0.9  # - -> -: no flip
        w[1, 1] = 0.0  # + -> 0 (+): no flip
        w[1, 3] = 0.0  # - -> 0 (+): flip
    r = ft.ratios()
    assert r["1"] == 3 / 8 and r["all"] == 3 / 8
    assert ft.ratios()["1"] == 0.0  # snapshot advanced


def test_histograms_count_every_weight():
    h = latent_histograms(_model(), bins=10)
    assert list(h) == ["1"] and sum(h["1"]["counts"]) == 8 and len(h["1"]["edges"]) == 11


def test_logger_and_plots(tmp_path):
    m = _model()
    log = MetricsLogger(str(tmp_path), tensorboard=True, csv=True)
    for e in range(3):
        rec = {
            "kind": "epoch",
            "epoch": e,
            "train_loss": 1.0 / (e + 1),
            "train_acc": 0.5,
            "test_loss": 1.0,
            "test_acc": 0.4 + e / 10,
            "lr": 1e-3,
            "flip_ratio": {"1": 0.1 / (e + 1), "all": 0.1 / (e + 1)},
            "histograms": latent_histograms(m),
        }
        log.log(rec, step=e, histograms=rec["histograms"])
    log.close()
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 3 and abs(json.loads(lines[2])["test_acc"] - 0.6) < 1e-9
    assert (tmp_path / "metrics.csv").exists() and list((tmp_path / "tb").iterdir())
    written = plot_run(str(tmp_path))
    assert {p.split("/")[-1] for p in written} == {"curves.png", "flips.png", "histograms.png"}
