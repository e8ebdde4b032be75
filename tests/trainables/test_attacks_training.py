"""adversarial_training_batch: the batch it builds, and that training on it buys robustness."""

from __future__ import annotations

import pytest
import torch

from tests.trainables.attacks_models import accuracy, digits, mlp, train, trained_digits_mlp
from trainables.attacks import adversarial_training_batch, pgd
from trainables.errors import ConfigError


@pytest.mark.parametrize("frac", [1.0, 0.5, 0.3, 0.05, 0.01])
def test_replaces_round_frac_n_samples_and_keeps_the_rest(frac):
    model = trained_digits_mlp()
    x, y = digits()[2][:50], digits()[3][:50]
    model.train()
    out = adversarial_training_batch(model, x, y, norm="linf", eps=0.1, steps=3, frac=frac,
                                     seed=0)
    assert model.training and all(m.training for m in model.modules())
    model.eval()
    n_adv = round(frac * len(x))  # 0.05 * 50 = 2.5 -> 2 and 0.01 * 50 -> 0 (round half even)
    assert out is not x and out.shape == x.shape
    assert torch.equal(out[n_adv:], x[n_adv:])
    changed = (out[:n_adv] != x[:n_adv]).flatten(1).any(1)
    assert changed.all()  # random start plus steps move every attacked sample
    assert ((out[:n_adv] - x[:n_adv]).abs() <= 0.1 + 1e-6).all()
    again = adversarial_training_batch(model, x, y, norm="linf", eps=0.1, steps=3, frac=frac,
                                       seed=0)
    assert torch.equal(out, again)


@pytest.mark.parametrize("frac", [0.0, 1.5, -0.1])
def test_frac_outside_unit_interval_is_rejected(frac):
    model = trained_digits_mlp()
    x, y = digits()[2][:8], digits()[3][:8]
    with pytest.raises(ConfigError, match=r"frac must be in \(0, 1\]"):
        adversarial_training_batch(model, x, y, norm="linf", eps=0.1, steps=3, frac=frac)


def test_adversarial_training_raises_robust_accuracy():
    torch.set_num_threads(1)
    x_train, y_train, x_test, y_test = digits()
    eps = 0.15

    def adversarial(model, xb, yb, seed):
        return adversarial_training_batch(model, xb, yb, norm="linf", eps=eps, steps=5, frac=1.0,
                                          seed=seed)

    plain = train(mlp(seed=2), x_train, y_train, epochs=8, seed=2)
    robust = train(mlp(seed=2), x_train, y_train, epochs=8, seed=2, batch_hook=adversarial)
    attacked = {name: accuracy(m, pgd(m, x_test, y_test, norm="linf", eps=eps, steps=20, seed=0),
                               y_test)
                for name, m in (("plain", plain), ("robust", robust))}
    assert attacked["robust"] > attacked["plain"] + 0.2, attacked  # about +35 points seen
    assert accuracy(robust, x_test, y_test) > 0.8  # still a working classifier
