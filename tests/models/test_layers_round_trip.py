"""Every `register_keras_serializable` class of atvg_tf survives get_config/from_config and a .keras file.

For each case: build the object, call it on a small random input, then
(a) `get_config()` -> `from_config(config)` -> the same weights -> the same outputs, and
(b) (layers) inside a small functional model, `model.save(x.keras)` -> `keras.saving.load_model`
    (safe mode) -> the same outputs.
`test_every_registered_class_has_a_round_trip_case` fails when a class is registered without a case.
"""

from __future__ import annotations

import copy
import dataclasses
import importlib
import json
import pathlib
import pkgutil
from collections.abc import Callable

import keras
import numpy as np
import pytest

import atvg_tf
from atvg_tf.models.conv_gru import ConvGRU2D
from atvg_tf.models.layers import AttentionBlend, HeadBlend, MeanOverTime, PerFrame, ReflectionPadding2D, TileOverTime, WindowNormalization
from atvg_tf.training.gan import VGNetGAN

RTOL, ATOL = 1e-5, 1e-6


def _random(*shape, low=-1.0, high=1.0, seed=0):
    return np.random.default_rng(seed).uniform(low, high, shape).astype("float32")


@dataclasses.dataclass
class Case:
    """A layer factory and what to call it with.

    inputs: positional input arrays; several are passed as one list (`layer([a, b])`).
    kwargs: tensor keyword arguments of `call` (e.g. `initial_state`).
    """

    make: Callable[[], keras.layers.Layer]
    inputs: list[np.ndarray]
    kwargs: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)

    def call(self, layer, inputs, kwargs):
        return layer(inputs[0] if len(inputs) == 1 else list(inputs), **kwargs)


def _per_frame_model():
    inner = keras.Input((6, 6, 3))
    x = keras.layers.Conv2D(4, 3, padding="same", name="conv")(inner)
    x = keras.layers.BatchNormalization(name="bn")(x)
    return keras.Model(inner, keras.layers.ReLU(name="relu")(x), name="inner")


SEQUENCE = _random(2, 3, 6, 6, 3, seed=1)  # [B, T, H, W, C]

CASES = {
    "ReflectionPadding2D": Case(lambda: ReflectionPadding2D(2, name="pad"), [_random(2, 5, 6, 3)]),
    "PerFrame-conv": Case(lambda: PerFrame(keras.layers.Conv2D(4, 3, padding="same"), name="per_frame"), [SEQUENCE]),
    "PerFrame-model": Case(lambda: PerFrame(_per_frame_model(), name="per_frame"), [SEQUENCE]),
    "PerFrame-dense": Case(lambda: PerFrame(keras.layers.Dense(5), name="per_frame"), [_random(2, 3, 7)]),
    "TileOverTime-vector": Case(lambda: TileOverTime(name="tile"), [_random(2, 4), _random(2, 3, 5, seed=1)]),
    "TileOverTime-image": Case(lambda: TileOverTime(name="tile"), [_random(2, 6, 6, 3), SEQUENCE]),
    "AttentionBlend": Case(
        lambda: AttentionBlend(name="blend"),
        [_random(2, 3, 4, 4, 3, seed=1), _random(2, 3, 4, 4, 3, seed=2), _random(2, 3, 4, 4, 1, low=0.0, seed=3)],
    ),
    "MeanOverTime": Case(lambda: MeanOverTime(name="mean"), [_random(2, 3, 5)]),
    "HeadBlend": Case(lambda: HeadBlend(0.3, name="head_blend"), [_random(2, 3, 6), _random(2, 3, 6, seed=2)]),
    "WindowNormalization": Case(lambda: WindowNormalization(epsilon=1e-2, name="cmvn"), [_random(2, 3, 28, 12)]),
    "ConvGRU2D": Case(lambda: ConvGRU2D(4, name="gru"), [SEQUENCE]),
    "ConvGRU2D-last-step-and-state": Case(
        lambda: ConvGRU2D(4, kernel_size=3, dilation_rate=1, return_sequences=False, return_state=True, name="gru"),
        [SEQUENCE],
    ),
    "ConvGRU2D-time_major_quirk": Case(lambda: ConvGRU2D(4, time_major_quirk=True, name="gru"), [SEQUENCE]),
    "ConvGRU2D-time_major_quirk-state": Case(
        lambda: ConvGRU2D(4, time_major_quirk=True, return_state=True, name="gru"), [SEQUENCE]
    ),
    "ConvGRU2D-unroll-state": Case(lambda: ConvGRU2D(4, unroll=True, return_state=True, name="gru"), [SEQUENCE]),
    "ConvGRU2D-initial_state": Case(
        lambda: ConvGRU2D(4, return_state=True, name="gru"), [SEQUENCE], {"initial_state": _random(2, 6, 6, 4, seed=4)}
    ),
    "ConvGRU2D-unroll-initial_state": Case(
        lambda: ConvGRU2D(4, unroll=True, name="gru"), [SEQUENCE], {"initial_state": _random(2, 6, 6, 4, seed=4)}
    ),
    "ConvGRU2D-initializers": Case(
        lambda: ConvGRU2D(
            4,
            kernel_initializer=keras.initializers.RandomNormal(0.0, 0.02, seed=1),
            recurrent_initializer=keras.initializers.Orthogonal(gain=0.5, seed=2),
            name="gru",
        ),
        [SEQUENCE],
    ),
}

# Every class registered with `register_keras_serializable` under atvg_tf/ (grep for it), and its cases.
ROUND_TRIPPED = {
    ReflectionPadding2D: ["ReflectionPadding2D"],
    PerFrame: ["PerFrame-conv", "PerFrame-model", "PerFrame-dense"],
    TileOverTime: ["TileOverTime-vector", "TileOverTime-image"],
    AttentionBlend: ["AttentionBlend"],
    MeanOverTime: ["MeanOverTime"],
    HeadBlend: ["HeadBlend"],
    WindowNormalization: ["WindowNormalization"],
    ConvGRU2D: [name for name in CASES if name.startswith("ConvGRU2D")],
    VGNetGAN: ["test_vgnet_gan_round_trips"],
}


def _json(config):
    """A config as the .keras file stores it (tuples become lists)."""
    return json.loads(json.dumps(config))


def _numpy(outputs):
    return [np.asarray(x) for x in keras.tree.flatten(outputs)]


def _assert_same(actual, expected):
    actual, expected = _numpy(actual), _numpy(expected)
    assert len(actual) == len(expected)
    for a, e in zip(actual, expected):
        assert a.shape == e.shape
        assert np.isfinite(e).all()
        np.testing.assert_allclose(a, e, rtol=RTOL, atol=ATOL)


def _built(case):
    layer = case.make()
    outputs = case.call(layer, case.inputs, case.kwargs)
    assert layer.built and layer.weights is not None
    return layer, outputs


@pytest.mark.parametrize("name", list(CASES))
def test_layer_round_trips_through_its_config(name):
    case = CASES[name]
    layer, expected = _built(case)
    config = layer.get_config()
    restored = type(layer).from_config(copy.deepcopy(config))  # keras' Wrapper.from_config pops "layer"
    assert type(restored) is type(layer)
    case.call(restored, case.inputs, case.kwargs)  # builds it
    restored.set_weights(layer.get_weights())
    assert restored.get_config() == config
    _assert_same(case.call(restored, case.inputs, case.kwargs), expected)


@pytest.mark.parametrize("name", list(CASES))
def test_layer_round_trips_through_a_keras_file(name, tmp_path):
    case = CASES[name]
    inputs = [keras.Input(x.shape[1:], name=f"input_{i}") for i, x in enumerate(case.inputs)]
    kwargs = {key: keras.Input(x.shape[1:], name=key) for key, x in case.kwargs.items()}
    layer = case.make()
    model = keras.Model([*inputs, *kwargs.values()], case.call(layer, inputs, kwargs))
    arrays = [*case.inputs, *case.kwargs.values()]
    expected = model(arrays)
    _assert_same(expected, case.call(layer, case.inputs, case.kwargs))  # the model is the layer
    model.save(tmp_path / "x.keras")
    loaded = keras.saving.load_model(tmp_path / "x.keras")  # safe_mode=True
    assert type(loaded.get_layer(layer.name)) is type(layer)
    assert _json(loaded.get_layer(layer.name).get_config()) == _json(layer.get_config())
    _assert_same(loaded(arrays), expected)


def _tiny_gan():
    image = keras.Input((4, 4, 3), name="identity_frame")
    generator = keras.Model(image, {"frames": keras.layers.Conv2D(3, 3, padding="same", name="g")(image)}, name="generator")
    frames = keras.Input((4, 4, 3), name="frames")
    discriminator = keras.Model(frames, keras.layers.Dense(1, name="d")(keras.layers.Flatten()(frames)), name="disc")
    return VGNetGAN(generator, discriminator, pixel_weight=3.0, attention_beta=0.25, mouth_weight=7.0, mouth_pixel_weight=2.0)


def test_vgnet_gan_round_trips(tmp_path):
    image = _random(2, 4, 4, 3)
    gan = _tiny_gan()
    gan.compile()
    expected = gan(image)

    config = gan.get_config()
    restored = VGNetGAN.from_config(copy.deepcopy(config))
    restored.set_weights(gan.get_weights())
    assert (restored.pixel_weight, restored.attention_beta, restored.mouth_weight, restored.mouth_pixel_weight) == (
        3.0, 0.25, 7.0, 2.0
    )
    _assert_same(restored(image), expected)

    gan.save(tmp_path / "gan.keras")
    loaded = keras.saving.load_model(tmp_path / "gan.keras")
    assert type(loaded) is VGNetGAN and loaded.mouth_pixel_weight == 2.0
    _assert_same(loaded(image), expected)
    _assert_same(loaded.discriminator(image), gan.discriminator(image))


def _atvg_modules():
    """atvg_tf's modules whose source registers a class, plus every module of atvg_tf.models."""
    root = pathlib.Path(atvg_tf.__file__).parent
    names = {
        ".".join(("atvg_tf", *path.relative_to(root).with_suffix("").parts)).removesuffix(".__init__")
        for path in root.rglob("*.py")
        if "register_keras_serializable" in path.read_text(encoding="utf-8")
    }
    models = importlib.import_module("atvg_tf.models")
    names |= {info.name for info in pkgutil.walk_packages(models.__path__, "atvg_tf.models.")}
    return sorted(names)


def test_every_registered_class_has_a_round_trip_case():
    for module in _atvg_modules():
        importlib.import_module(module)
    registered = {
        obj
        for key, obj in keras.saving.get_custom_objects().items()
        if key.startswith(f"{atvg_tf.__name__}>") or getattr(obj, "__module__", "").startswith("atvg_tf.")
    }
    assert registered, "found no registered atvg_tf class"
    missing = sorted(f"{cls.__module__}.{cls.__qualname__}" for cls in registered - set(ROUND_TRIPPED))
    assert not missing, f"registered without a case in {__name__}.ROUND_TRIPPED / CASES: {missing}"
    # Every case is listed under the class it builds.
    assert {n for cls, names in ROUND_TRIPPED.items() if cls is not VGNetGAN for n in names} == set(CASES)
    for cls, names in ROUND_TRIPPED.items():
        assert all(type(CASES[n].make()) is cls for n in names if n in CASES), cls
