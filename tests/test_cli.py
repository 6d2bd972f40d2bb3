"""The command line's conventions: help for every flag, one metavar per concept, errors by kind."""

import argparse

import pytest

from atvg_tf import cli
from atvg_tf.errors import InputError

# One name per concept across the commands.
METAVARS = {"--model": "MODEL_DIR", "--calibration": "PREPARED_DIR", "--avatar": "PHOTO", "--image": "PHOTO", "--audio": "SPEECH"}


def _subparsers() -> dict[str, argparse.ArgumentParser]:
    parser = cli.build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def test_every_flag_has_help_and_the_same_metavar():
    for name, parser in _subparsers().items():
        for action in parser._actions:
            if isinstance(action, argparse._HelpAction) or action.help == argparse.SUPPRESS:
                continue
            assert action.help, f"atvg {name}: {action.option_strings or action.dest} has no help"
            for flag in action.option_strings:
                if flag in METAVARS:
                    assert action.metavar == METAVARS[flag], (name, flag, action.metavar)
            if action.dest == "prepared" or (name == "prepare" and action.dest == "output"):
                assert action.metavar == "PREPARED_DIR", (name, action.dest)


def test_long_commands_have_quiet_and_output():
    for name in ("prepare", "train", "evaluate", "generate", "export"):
        flags = {flag for action in _subparsers()[name]._actions for flag in action.option_strings}
        assert {"--quiet", "--output"} <= flags, name


def test_old_flag_names_still_parse():
    args = cli.build_parser().parse_args(["evaluate", "clip.mp4", "--report", "r.json"])
    assert args.output == "r.json"
    args = cli.build_parser().parse_args(["export", "--output", "x", "--version", "3"])
    assert args.serving_version == 3
    args = cli.build_parser().parse_args(["export", "--output", "x"])
    assert args.serving_version == 1 and args.calibration is None and args.format == "saved_model"


def _run_with_handler(monkeypatch, capsys, error: BaseException, *flags: str):
    def handler(args):
        raise error

    original = cli.build_parser

    def parser_with_handler():
        parser = original()
        parser.set_defaults(handler=handler, command="generate")
        return parser

    monkeypatch.setattr(cli, "build_parser", parser_with_handler)
    monkeypatch.setattr("atvg_tf._native.import_quietly", lambda verbose=False: None)
    code = cli.main([*flags])
    return code, capsys.readouterr().err


def test_user_errors_are_one_line_with_exit_code_2(monkeypatch, capsys):
    code, err = _run_with_handler(monkeypatch, capsys, InputError("--output must end in .mp4, got x.avi."))
    assert code == 2 and err.strip() == "atvg generate: error: --output must end in .mp4, got x.avi."
    code, err = _run_with_handler(monkeypatch, capsys, FileNotFoundError(2, "No such file or directory", "face.jpg"))
    assert code == 2 and len(err.strip().splitlines()) == 1 and "face.jpg" in err


def test_bugs_show_a_traceback(monkeypatch, capsys):
    # A ValueError from inside a library (e.g. a Keras shape error) is a bug, not a user mistake.
    code, err = _run_with_handler(monkeypatch, capsys, ValueError("Input 0 of layer dense is incompatible"))
    assert code == 1 and "Traceback (most recent call last)" in err and "internal error" in err.splitlines()[-1]


def test_ctrl_c_while_a_native_module_loads_is_an_interruption_not_a_bug(monkeypatch, capsys):
    """Ctrl-C inside a C extension's import surfaces as `ImportError: initialization failed` chained
    to the KeyboardInterrupt (seen with LiteRT's wrapper): one line and exit 130, as any Ctrl-C."""
    try:
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt as interrupt:
            raise ImportError("initialization failed") from interrupt
    except ImportError as error:
        chained = error
    code, err = _run_with_handler(monkeypatch, capsys, chained)
    assert code == 130 and err.strip() == "atvg generate: interrupted; no output was written."


def test_verbose_shows_the_traceback_of_user_errors(monkeypatch, capsys):
    code, err = _run_with_handler(monkeypatch, capsys, InputError("bad option"), "--verbose")
    assert code == 2 and "Traceback (most recent call last)" in err and err.strip().endswith("atvg generate: error: bad option")


@pytest.mark.parametrize("argv", [["export", "--format", "onnx", "--output", "x"], ["generate", "--image", "a.jpg"]])
def test_argument_errors_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv)
    assert exit_info.value.code == 2


@pytest.mark.parametrize("index", ["-1", "-5"])
def test_a_negative_face_index_is_refused_before_any_work(index, shared_data, tmp_path, capsys):
    """-5 was an IndexError traceback and -1 silently picked the smallest face (issue 11 item 13)."""
    import os

    import numpy as np

    from atvg_tf.frontend.face.landmarks import create_landmark_detector

    output = tmp_path / "out.mp4"
    code = cli.main(["generate", "--image", os.path.join(shared_data, "atvgnet", "image", "Elektra.jpg"),
                     "--audio", os.path.join(shared_data, "atvgnet", "audio", "audio_sample.wav"), "-o", str(output),
                     "--face-index", index])
    error = capsys.readouterr().err.strip()
    assert code == 2 and error == f"atvg generate: error: --face-index must be 0 (the largest face) or more, got {index}."
    assert not os.listdir(tmp_path)
    with create_landmark_detector("mediapipe") as detector, pytest.raises(InputError, match="face index must be 0"):
        detector.largest_face(np.zeros((64, 64, 3), np.uint8), face_index=int(index))
