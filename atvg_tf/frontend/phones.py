"""Speaker-independent audio features: English phones per 10 ms, windowed per video frame like the MFCC.

PocketSphinx's allphone search (its en-us acoustic model and phone language model, both inside the
`pocketsphinx` wheel) labels every 10 ms row of speech with one of 39 phones or silence. Its acoustic
model was trained on many speakers, so the labels carry what one GRID speaker cannot teach AT-net.

The decoder runs incrementally: audio goes in as fixed blocks, and a row is final once the decoder
has seen `lookahead_rows` rows after it (the partial best path no longer changes there). One-shot
extraction runs the same stream over the whole recording, so streaming and one-shot features are
identical. The utterance is restarted every `max_utterance_rows` so memory stays bounded.
Look-ahead of a video frame's phone window: 0.16 s (the window) + 0.3 s (the decoder) + up to one
0.1 s block, 0.56 s in all (the MFCC windows need 0.175 s).

Phone posteriors (`PhonePosteriorStream`, `posterior_windows`) say how likely each phone is in
every row instead of naming the best one: the same acoustic model searches the phones as words of
its phone language model, and the posteriors of the word lattice are summed per row. The lattice is
complete only at the end of an utterance, so the audio is decoded in utterances of
`UTTERANCE_ROWS` (2 s; 1 s utterances lost a sixth of the sync they bring); a frame's window is known
up to 2.16 s after its start. The utterances are cut at fixed places, so any way of cutting the
audio into blocks gives the same rows.

No TensorFlow here: the mobile demo uses this module as it is.
"""

from __future__ import annotations

import os
import re
import tempfile
import threading

import numpy as np

# Index 0 is silence: what the windows are padded with. Noise fillers map to it.
PHONES = ("SIL", "AA", "AE", "AH", "AO", "AW", "AY", "B", "CH", "D", "DH", "EH", "ER", "EY", "F", "G", "HH",
          "IH", "IY", "JH", "K", "L", "M", "N", "NG", "OW", "OY", "P", "R", "S", "SH", "T", "TH", "UH", "UW",
          "V", "W", "Y", "Z", "ZH")
NUM_PHONES = len(PHONES)
_PHONE_INDEX = {phone: index for index, phone in enumerate(PHONES)}

SAMPLE_RATE = 16000
ROW_SAMPLES = 160  # 10 ms, the MFCC hop
ROWS_PER_VIDEO_FRAME = 4  # at 25 fps
WINDOW_ROWS = 28  # 280 ms, the MFCC window
PADDING_ROWS = 12  # 0.12 s of silence in front, as the MFCC windows pad the waveform


class PhoneFeaturesUnavailable(ImportError):
    """pocketsphinx is not installed."""


# Posteriors: the lattice's acoustic scale (chosen on the dev clips: 20 gave sharper posteriors and
# less sync, 1-2 no more than 5) and the utterance length.
POSTERIOR_ACOUSTIC_SCALE = 5.0
UTTERANCE_ROWS = 200
# The phones as the words of the posterior search (SIL is the decoder's own filler).
_PHONE_WORDS = os.path.join(os.path.dirname(os.path.dirname(__file__)), "assets", "phone_words.dict")


def _pocketsphinx():
    try:
        import pocketsphinx
    except ImportError:
        raise PhoneFeaturesUnavailable(
            "this model uses phone features, which need pocketsphinx; install it with `pip install pocketsphinx==5.1.1`."
        ) from None
    return pocketsphinx


def _decoder(kind: str = "allphone"):
    """`allphone`: the best phone per row; `lattice`: the phones as words, for lattice posteriors."""
    pocketsphinx = _pocketsphinx()
    model = os.path.join(pocketsphinx.get_model_path(), "en-us")
    phone_lm = os.path.join(model, "en-us-phone.lm.bin")
    search = {"allphone": phone_lm} if kind == "allphone" else {
        "lm": phone_lm, "dict": _PHONE_WORDS, "wbeam": 1e-20, "bestpath": True, "ascale": POSTERIOR_ACOUSTIC_SCALE}
    return pocketsphinx.Decoder(hmm=os.path.join(model, "en-us"), lw=2.0, beam=1e-20, pbeam=1e-20, logfn=os.devnull, **search)


# Decoders of finished streams, for the next stream: creating one loads the acoustic model, about a
# millisecond per video frame of a 3 s clip in `atvg prepare`.
_IDLE_DECODERS: dict[str, list] = {"allphone": [], "lattice": []}
_IDLE_LOCK = threading.Lock()


def _take_decoder(kind: str = "allphone"):
    with _IDLE_LOCK:
        decoder = _IDLE_DECODERS[kind].pop() if _IDLE_DECODERS[kind] else None
    if decoder is None:
        return _decoder(kind)
    decoder.reinit_feat()  # a new decoder's cepstral mean, so its rows equal a new decoder's
    return decoder


def _give_back(kind: str, decoder) -> None:
    with _IDLE_LOCK:
        _IDLE_DECODERS[kind].append(decoder)


class PhoneStream:
    """Waveform blocks -> the phone id of every 10 ms row, each returned once it is final.

    Args:
        lookahead_rows: rows the decoder must have seen after a row before it is final.
        block_samples: samples per decoder call (a multiple of 160); fixed so that results do not
            depend on how the caller cuts the audio.
        max_utterance_rows: the decoder utterance is restarted after this many rows.
    """

    def __init__(self, lookahead_rows: int = 30, block_samples: int = 1600, max_utterance_rows: int = 3000):
        if block_samples % ROW_SAMPLES:
            raise ValueError(f"block_samples must be a multiple of {ROW_SAMPLES}, got {block_samples}.")
        self.lookahead_rows = lookahead_rows
        self.block_samples = block_samples
        self.max_utterance_rows = max_utterance_rows
        self._decoder = _take_decoder()
        self._pending = np.zeros(0, np.int16)
        self._utterance_rows = 0  # rows fed to the current utterance
        self._utterance_final = 0  # rows of the current utterance already returned
        self._received = 0
        self._finished = False
        self._decoder.start_utt()

    def push(self, waveform: np.ndarray) -> np.ndarray:
        """Adds float samples in [-1, 1] at 16 kHz; returns the ids [n] (int32) of newly final rows."""
        if self._finished:
            raise ValueError("the stream is finished; start a new PhoneStream.")
        waveform = np.asarray(waveform, np.float32).reshape(-1)
        self._received += waveform.size
        pcm = (np.clip(waveform, -1.0, 1.0) * 32767.0).astype(np.int16)
        self._pending = np.concatenate([self._pending, pcm])
        out = []
        while self._pending.size >= self.block_samples:
            block, self._pending = self._pending[: self.block_samples], self._pending[self.block_samples:]
            out.append(self._feed(block))
        return np.concatenate(out) if out else np.zeros(0, np.int32)

    def finish(self) -> np.ndarray:
        """Ends the recording; returns the ids of the remaining rows (ceil(samples / 160) rows in all)."""
        if self._finished:
            raise ValueError("the stream is finished; start a new PhoneStream.")
        self._finished = True
        out = []
        if self._pending.size:
            self._decoder.process_raw(self._pending.tobytes(), no_search=False, full_utt=False)
            self._utterance_rows += -(-self._pending.size // ROW_SAMPLES)
            self._pending = np.zeros(0, np.int16)
        out.append(self._end_utterance())
        _give_back("allphone", self._decoder)
        self._decoder = None
        return np.concatenate(out)

    def _feed(self, block: np.ndarray) -> np.ndarray:
        self._decoder.process_raw(block.tobytes(), no_search=False, full_utt=False)
        self._utterance_rows += block.size // ROW_SAMPLES
        if self._utterance_rows >= self.max_utterance_rows:
            final = self._end_utterance()
            self._decoder.start_utt()
            return final
        return self._final_rows(self._utterance_rows - self.lookahead_rows)

    def _labels(self, end: int) -> np.ndarray:
        """Ids of the current utterance's rows [0, end) from the decoder's best path (SIL where none)."""
        ids = np.zeros(end, np.int32)
        for segment in self._decoder.seg() or ():  # None before the decoder has a hypothesis
            start, stop = max(segment.start_frame, 0), min(segment.end_frame + 1, end)
            if start < stop:
                ids[start:stop] = _PHONE_INDEX.get(segment.word, 0)
        return ids

    def _final_rows(self, upto: int) -> np.ndarray:
        if upto <= self._utterance_final:
            return np.zeros(0, np.int32)
        ids = self._labels(upto)[self._utterance_final: upto]
        self._utterance_final = upto
        return ids

    def _end_utterance(self) -> np.ndarray:
        self._decoder.end_utt()
        ids = self._final_rows(self._utterance_rows)
        self._utterance_rows = self._utterance_final = 0
        return ids


def phone_rows(waveform: np.ndarray) -> np.ndarray:
    """The phone id [rows] (int32) of every 10 ms row of a whole 16 kHz recording."""
    stream = PhoneStream()
    return np.concatenate([stream.push(waveform), stream.finish()])


class PhonePosteriorStream:
    """Waveform blocks -> phone posteriors [n, 40] per 10 ms row, a whole utterance at a time.

    Args:
        utterance_rows: rows per decoded utterance (the last one may be shorter).
    """

    def __init__(self, utterance_rows: int = UTTERANCE_ROWS):
        self.utterance_samples = utterance_rows * ROW_SAMPLES
        # Digital silence (exact zeros) decodes as phones; the least significant bit of fixed noise
        # makes it silence, the same in every utterance.
        self._dither = np.random.default_rng(0).integers(-1, 2, self.utterance_samples).astype(np.int32)
        self._decoder = _take_decoder("lattice")
        self._scratch = tempfile.TemporaryDirectory(prefix="atvg-lattice-")
        self._pending = np.zeros(0, np.int16)
        self._finished = False

    def push(self, waveform: np.ndarray) -> np.ndarray:
        """Adds float samples in [-1, 1] at 16 kHz; returns the posteriors [n, 40] of newly decoded rows."""
        if self._finished:
            raise ValueError("the stream is finished; start a new PhonePosteriorStream.")
        pcm = (np.clip(np.asarray(waveform, np.float32).reshape(-1), -1.0, 1.0) * 32767.0).astype(np.int16)
        self._pending = np.concatenate([self._pending, pcm])
        out = [np.zeros((0, NUM_PHONES), np.float32)]
        while self._pending.size >= self.utterance_samples:
            utterance, self._pending = self._pending[: self.utterance_samples], self._pending[self.utterance_samples:]
            out.append(self._decode(utterance))
        return np.concatenate(out)

    def finish(self) -> np.ndarray:
        """Ends the recording; returns the remaining rows (ceil(samples / 160) rows in all)."""
        if self._finished:
            raise ValueError("the stream is finished; start a new PhonePosteriorStream.")
        self._finished = True
        rows = self._decode(self._pending) if self._pending.size else np.zeros((0, NUM_PHONES), np.float32)
        _give_back("lattice", self._decoder)
        self._decoder = None
        self._scratch.cleanup()
        return rows

    def _decode(self, pcm: np.ndarray) -> np.ndarray:
        rows = -(-pcm.size // ROW_SAMPLES)
        pcm = np.clip(pcm.astype(np.int32) + self._dither[: pcm.size], -32768, 32767).astype(np.int16)
        self._decoder.start_utt()
        self._decoder.process_raw(pcm.tobytes(), no_search=False, full_utt=True)
        self._decoder.end_utt()
        posteriors = np.zeros((rows, NUM_PHONES))
        if self._decoder.hyp() is not None:
            self._decoder.get_prob()  # computes the lattice's posteriors
            lattice = self._decoder.get_lattice()
            if lattice is not None:
                path = os.path.join(self._scratch.name, "lattice.slf")
                lattice.write_htk(path)
                posteriors = _row_posteriors(path, rows)
        total = posteriors.sum(axis=1, keepdims=True)
        uncovered = total[:, 0] <= 0.0  # rows no word covers: silence
        posteriors[uncovered, 0] = 1.0
        total[uncovered] = 1.0
        return (posteriors / total).astype(np.float32)


def _row_posteriors(path: str, rows: int) -> np.ndarray:
    """Sums the link posteriors of an HTK lattice file per 10 ms row and phone: [rows, 40].

    A link from node S to node E carries S's word from S's time to E's; fillers and sentence marks count as silence.
    """
    with open(path) as handle:
        text = handle.read()
    nodes = _NODE.findall(text)
    number = np.array([int(i) for i, _, _ in nodes], np.int64)
    phone, row = (np.zeros(number.max(initial=-1) + 1, np.int64) for _ in range(2))
    phone[number] = [_PHONE_INDEX.get(word, 0) for _, _, word in nodes]
    row[number] = np.clip(np.round(np.array([float(t) for _, t, _ in nodes]) * 100), 0, rows)
    links = np.array(_LINK.findall(text), dtype=np.float64).reshape(-1, 3)
    start, end = links[:, 0].astype(np.int64), links[:, 1].astype(np.int64)
    # A difference array: + p where a link starts covering rows, - p where it stops.
    changes = np.zeros((rows + 1, NUM_PHONES))
    covered = row[end] > row[start]
    np.add.at(changes, (row[start][covered], phone[start][covered]), links[covered, 2])
    np.add.at(changes, (row[end][covered], phone[start][covered]), -links[covered, 2])
    return np.maximum(np.cumsum(changes, axis=0)[:rows], 0.0)


_NODE = re.compile(r"^I=(\d+)\s+t=([\d.]+)\s+W=(\S+)", re.MULTILINE)
_LINK = re.compile(r"^J=\d+\s+S=(\d+)\s+E=(\d+)\s+a=\S+\s+p=(\S+)", re.MULTILINE)


def phone_posterior_rows(waveform: np.ndarray) -> np.ndarray:
    """The phone posteriors [rows, 40] (float32, each row sums to 1) of every 10 ms row of a whole 16 kHz recording."""
    stream = PhonePosteriorStream()
    return np.concatenate([stream.push(waveform), stream.finish()])


def num_video_frames(num_samples: int) -> int:
    """Video frames at 25 fps that cover `num_samples` (at least one); as `audio.num_video_frames`."""
    return max(1, int(np.floor(num_samples / (ROW_SAMPLES * ROWS_PER_VIDEO_FRAME) + 0.5)))


def rows_to_windows(rows: np.ndarray, num_frames: int) -> np.ndarray:
    """Phone ids of 10 ms rows -> one 28-row window per video frame, [num_frames, 28] int32.

    Frame t gets rows [4t - 12, 4t + 16), as the MFCC windows do; rows outside the recording are silence.
    """
    return _frame(np.concatenate([np.zeros(PADDING_ROWS, np.int32), np.asarray(rows, np.int32)]), num_frames)


def posterior_rows_to_windows(rows: np.ndarray, num_frames: int) -> np.ndarray:
    """Posterior rows [R, 40] -> one 28-row window per video frame, [num_frames, 28, 40] float32 (as `rows_to_windows`)."""
    return _frame(np.concatenate([_silence_rows(PADDING_ROWS), np.asarray(rows, np.float32)]), num_frames)


def phone_windows(waveform: np.ndarray, num_frames: int | None = None) -> np.ndarray:
    """One-shot phone windows of a 16 kHz recording: [num_frames, 28] int32 phone ids.

    Args:
        waveform: 1-D float32 in [-1, 1].
        num_frames: video frames to produce; defaults to the frames that cover the audio.
    """
    waveform, num_frames = _checked(waveform, num_frames)
    return rows_to_windows(phone_rows(waveform), num_frames)


def posterior_windows(waveform: np.ndarray, num_frames: int | None = None) -> np.ndarray:
    """One-shot phone posterior windows of a 16 kHz recording: [num_frames, 28, 40] float32 (see `phone_windows`)."""
    waveform, num_frames = _checked(waveform, num_frames)
    return posterior_rows_to_windows(phone_posterior_rows(waveform), num_frames)


def _checked(waveform: np.ndarray, num_frames: int | None) -> tuple[np.ndarray, int]:
    waveform = np.asarray(waveform, np.float32).reshape(-1)
    if num_frames is None:
        num_frames = num_video_frames(waveform.size)
    if num_frames < 1:
        raise ValueError(f"num_frames must be at least 1, got {num_frames}.")
    return waveform, num_frames


def _silence_rows(count: int) -> np.ndarray:
    rows = np.zeros((count, NUM_PHONES), np.float32)
    rows[:, 0] = 1.0
    return rows


def one_hot(windows: np.ndarray) -> np.ndarray:
    """Phone ids [..., 28] -> the model input [..., 28, 40] float32."""
    return np.eye(NUM_PHONES, dtype=np.float32)[np.asarray(windows)]


class PhoneWindowStream:
    """Phone windows for audio that arrives block by block, equal to `phone_windows` of the whole.

    `push` returns the windows [n, 28] of the frames whose rows are all final (see the module
    docstring for the look-ahead); `finish` returns the rest. Memory is bounded whatever the length.

    Args:
        posteriors: windows of phone posteriors [n, 28, 40] (`posterior_windows`) instead of ids.
    """

    def __init__(self, posteriors: bool = False):
        self._phones = PhonePosteriorStream() if posteriors else PhoneStream()
        # padded rows from the first frame not yet emitted
        self._rows = _silence_rows(PADDING_ROWS) if posteriors else np.zeros(PADDING_ROWS, np.int32)
        self._received = 0
        self._emitted = 0

    @property
    def frames_emitted(self) -> int:
        return self._emitted

    def push(self, block: np.ndarray) -> np.ndarray:
        block = np.asarray(block, np.float32).reshape(-1)
        self._received += block.size
        self._rows = np.concatenate([self._rows, self._phones.push(block)])
        ready = (len(self._rows) - WINDOW_ROWS) // ROWS_PER_VIDEO_FRAME + 1 if len(self._rows) >= WINDOW_ROWS else 0
        return self._windows(ready)

    def finish(self) -> np.ndarray:
        self._rows = np.concatenate([self._rows, self._phones.finish()])
        remaining = num_video_frames(self._received) - self._emitted
        return self._windows(max(remaining, 0))

    def _windows(self, count: int) -> np.ndarray:
        if count <= 0:
            return np.zeros((0, WINDOW_ROWS, *self._rows.shape[1:]), self._rows.dtype)
        windows = _frame(self._rows, count)
        self._rows = self._rows[ROWS_PER_VIDEO_FRAME * count:]
        self._emitted += count
        return windows


def _frame(padded_rows: np.ndarray, count: int) -> np.ndarray:
    """Windows of `count` frames from rows (ids [R] or posteriors [R, 40]) that already carry the
    front padding (silence beyond the end): [count, 28] or [count, 28, 40]."""
    needed = ROWS_PER_VIDEO_FRAME * (count - 1) + WINDOW_ROWS
    rows = np.zeros(needed, np.int32) if padded_rows.ndim == 1 else _silence_rows(needed)
    rows[: min(needed, len(padded_rows))] = padded_rows[:needed]
    windows = np.lib.stride_tricks.sliding_window_view(rows, WINDOW_ROWS, axis=0)[::ROWS_PER_VIDEO_FRAME]
    return np.ascontiguousarray(windows if rows.ndim == 1 else windows.transpose(0, 2, 1))
