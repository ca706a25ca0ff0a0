import os

import pytest
import torch
from conftest import need_data, tiny_cfg

from onebit.training.checkpoint import load_model
from onebit.training.loop import build_optimizer, train
from onebit.training.schedule import LRSchedule


def test_cli_train_eval_summary_on_mnist(tmp_path, capsys):
    need_data("mnist")
    from onebit import summary_for
    from onebit.cli import main

    rc = main(
        [
            "train",
            "--set",
            "model.name=binarynet_mlp",
            "data.name=mnist",
            "model.kwargs.hidden=64",
            "model.kwargs.num_hidden=2",
            "data.train_subset=2000",
            "data.test_subset=500",
            "data.batch_size=100",
            "train.progress=false",
            "diagnostics.tensorboard=false",
            "--train.epochs",
            "2",
            "--out-dir",
            str(tmp_path),
        ]
    )
    out = capsys.readouterr().out
    assert rc == 0 and "test top-1" in out and "curves.png" in out
    run = tmp_path / "run"
    for f in ("last.pt", "best.pt", "metrics.jsonl", "curves.png", "flips.png", "histograms.png"):
        assert (run / f).exists(), f
    model, meta = load_model(str(run / "last.pt"))
    assert meta["model_name"] == "binarynet_mlp" and meta["input_size"] == (1, 28, 28)
    s = summary_for(str(run / "last.pt"), print_table=False)
    assert s.total_params_binary > 0
    rc = main(["eval", str(run / "best.pt"), "--subset", "500"])
    out = capsys.readouterr().out
    assert rc == 0 and "top-1" in out and "top-5" in out and "500 images" in out


def test_cli_clean_errors(tmp_path, capsys):
    from onebit.cli import main

    rc = main(
        [
            "train",
            "--set",
            "model.name=tiny_mlp",
            "data.name=cifar10",
            f"data.data_dir={tmp_path}",
            f"data.cache_dir={tmp_path}/c",
            "data.download=false",
            f"train.out_dir={tmp_path}",
        ]
    )
    err = capsys.readouterr().err
    assert rc == 2 and "cifar10-jpg.zip" in err and len(err.strip().splitlines()) == 1
    rc = main(["eval", str(tmp_path / "missing.pt")])
    assert rc == 2 and "checkpoint not found" in capsys.readouterr().err
    rc = main(
        ["train", "--set", "model.name=no_such_net", "data.name=synthetic", f"train.out_dir={tmp_path}"]
    )
    assert rc == 2 and "no_such_net" in capsys.readouterr().err


def test_bop_sgd_step_schedule_bipolar_gradclip(tmp_path):
    cfg = tiny_cfg(
        tmp_path,
        **{
            "optim.name": '"bop"',
            "optim.rest": '"sgd"',
            "optim.lr": "0.05",
            "optim.bop_threshold": "1e-6",
            "optim.bop_gamma": "1e-3",
            "optim.grad_clip": "1.0",
            "optim.bipolar": "5e-7",
            "schedule.name": '"step"',
            "schedule.milestones": "[1]",
        },
    )
    res = train(cfg, quiet=True)
    w = res["model"][3].weight
    assert set(w.unique().tolist()) <= {-1.0, 1.0}  # Bop keeps binary weights at +-1
    assert res["metrics"]["test_acc"] > 0.5


def test_weight_decay_stays_off_binary_weights_and_clip_applies(tmp_path):
    from onebit.training.tiny import tiny_mlp

    m = tiny_mlp()
    o = tiny_cfg(tmp_path, **{"optim.weight_decay": "1e-4", "optim.name": '"sgd"'})["optim"]
    opt = build_optimizer(m, o)
    by_name = {g["name"]: g for g in opt.param_groups}
    assert by_name["binary"]["weight_decay"] == 0.0 and by_name["float"]["weight_decay"] == 1e-4
    res = train(tiny_cfg(tmp_path, **{"optim.lr": "0.5", "optim.name": '"sgd"'}), quiet=True)
    assert float(res["model"][3].weight.abs().max()) <= 1.0  # weight clipping ran after every step


def _lrs(cfg, spe=10, epochs=10, metrics=None):
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=1.0)
    s = LRSchedule(opt, cfg, spe, epochs)
    out = []
    for step in range(spe * epochs):
        out.append(s.apply(step))
        if (step + 1) % spe == 0 and metrics is not None:
            s.epoch_end(metrics[step // spe])
    return out


def test_schedules():
    base = {
        "warmup_epochs": 0.0,
        "milestones": [],
        "gamma": 0.1,
        "factor": 0.5,
        "patience": 1,
        "threshold": 1e-3,
        "min_lr": 0.0,
        "factors": [],
    }
    cos = _lrs({**base, "name": "cosine", "warmup_epochs": 1.0})
    assert cos[0] == pytest.approx(0.1) and cos[9] == pytest.approx(1.0) and cos[-1] < 0.01
    assert all(a >= b for a, b in zip(cos[10:], cos[11:], strict=False))
    st = _lrs({**base, "name": "step", "milestones": [3, 6], "factors": [0.5, 0.2]})
    assert st[29] == 1.0 and st[30] == 0.5 and st[60] == pytest.approx(0.1)
    # plateau: halves after `patience` + 1 epochs without improvement
    pl = _lrs({**base, "name": "plateau"}, metrics=[1.0, 0.5, 0.5, 0.5, 0.5, 0.4, 0.4, 0.4, 0.4, 0.4])
    assert pl[0] == 1.0 and pl[39] == 1.0 and pl[40] == 0.5


def test_distillation_from_checkpoint_teacher_with_cached_logits(tmp_path):
    teacher = train(tiny_cfg(tmp_path / "t", **{"train.epochs": "1"}), quiet=True)
    cfg = tiny_cfg(
        tmp_path / "s",
        **{
            "distill.teacher": f'"{teacher["checkpoint"]}"',
            "distill.soft_only_epochs": "1",
            "distill.cache_logits": "true",
            "data.augment": "false",
        },
    )
    res = train(cfg, quiet=True)
    assert res["metrics"]["test_acc"] > 0.5


def test_ddp_info_defaults():
    from onebit.training.distributed import setup

    info = setup("cpu")
    assert (info.rank, info.world, info.is_main, info.enabled) == (0, 1, True, False)
    assert not os.environ.get("WORLD_SIZE")


def test_cosine_by_time_budget():
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=1.0)
    cfg = {"name": "cosine", "warmup_epochs": 0.0, "min_lr": 0.0, "by_time": True}
    s = LRSchedule(opt, cfg, 10, 10)
    assert s.apply(5) == pytest.approx(s.apply(5, time_frac=0.0))
    assert s.apply(5, time_frac=0.5) == pytest.approx(0.5)  # half the budget used: half-way down
    assert s.apply(5, time_frac=1.0) == pytest.approx(0.0)
