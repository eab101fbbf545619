"""The fixtures advx offers plugin authors (advx.pytest_fixtures), used as an author would."""

import advx
from advx import testing

pytest_plugins = ["advx.pytest_fixtures"]


def test_the_fixtures_feed_the_contract_checks(advx_digits, advx_images, advx_train_context, advx_train_batch):
    model, data = advx_digits
    x, y = advx_images
    assert x.shape == (16, 1, 8, 8) and float(x.max()) <= 1.0 and len(y) == 16
    testing.check_attack(advx.create("attack", "fgsm", eps=0.1), model, x, y)
    out = testing.check_augmentation(advx.create("training_augmentation", "mixup"), advx_train_context,
                                     advx_train_batch)
    assert out.x.shape == advx_train_batch.x.shape
