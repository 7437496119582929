"""The parts of a run (common.callbacks) on their own, with a stand-in run."""

import json
from types import SimpleNamespace

from PIL import Image

from common.callbacks import Dashboard


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def fake_run(tmp_path):
    lines = [{"step": s, "loss_D": 0.7, "loss_G": 1.0 + s, "d_real": 0.6, "d_fake": 0.4, "swd": 200.0 - s}
             for s in range(1, 5)]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(m) + "\n" for m in lines))
    return SimpleNamespace(dir=SimpleNamespace(path=tmp_path), framework="torch",
                           config=SimpleNamespace(data=SimpleNamespace(name="shapes")))


def drawings(dashboard, clock, epoch_seconds, epochs, tmp_path):
    """Runs `epochs` epochs of `epoch_seconds` each, then ends the run; the
    epochs after which losses.png was drawn (0: at the run's end)."""
    run, drawn = fake_run(tmp_path), []

    def draw(run):  # matplotlib's part is test_the_dashboard_shows_the_run's
        clock.now += 0.5  # what it takes, about
        drawn.append(epoch)

    dashboard.draw = draw
    for epoch in range(1, epochs + 1):
        dashboard.on_epoch_begin(run, epoch, 0)
        clock.now += epoch_seconds
        dashboard.on_epoch_end(run, epoch, None)
    epoch = 0
    dashboard.on_train_end(run, {})
    return drawn


def test_the_dashboard_shows_the_run(tmp_path):
    dashboard = Dashboard()
    dashboard.stale = True  # an epoch ended since the last drawing
    dashboard.on_train_end(fake_run(tmp_path), {})
    with Image.open(tmp_path / "losses.png") as img:
        assert img.size[0] > 100 and img.size[1] > 100
        assert len(set(img.convert("RGB").getdata())) > 16  # curves and text, not a blank canvas


def test_the_dashboard_is_drawn_after_every_epoch_of_a_long_run(tmp_path):
    clock = Clock()
    assert drawings(Dashboard(clock), clock, 30.0, 3, tmp_path) == [1, 2, 3]  # nothing left for the end


def test_short_epochs_draw_it_at_most_a_twentieth_of_the_time_and_always_at_the_end(tmp_path):
    clock = Clock()
    # 0.9 s epochs: 0.5 s of drawing is due once 10 s have passed since the last one
    assert drawings(Dashboard(clock), clock, 0.9, 25, tmp_path) == [12, 24, 0]
    clock = Clock()
    assert drawings(Dashboard(clock), clock, 0.2, 3, tmp_path) == [0]  # a tiny run: once, at its end
