"""Offline transcription: audio -> posteriors -> notes, and the files written from them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from livepitch.audio_file import check_samples, read_audio
from livepitch.decoder import decode_notes
from livepitch.errors import unwritable
from livepitch.midi_file import write_midi_file
from livepitch.notes import Note
from livepitch.notes_csv import write_notes_csv
from livepitch.offline import WindowModel, compute_posteriors
from livepitch.output_files import replaced_whole
from livepitch.posteriors import Posteriors
from livepitch.samples import mono_float32
from livepitch.settings import BendMode, TranscribeSettings


@dataclass(frozen=True)
class Transcription:
    """Posteriors of a recording and the notes decoded from them."""

    posteriors: Posteriors
    notes: list[Note]
    audio_samples: int = 0
    """The audio's length [samples at 22050 Hz] (the posteriors' frames reach a little past it)."""


def transcribe_audio(
    audio: npt.NDArray[np.float32], model: WindowModel, settings: TranscribeSettings
) -> Transcription:
    """Transcribe mono float32 audio at 22050 Hz (``downmix_to_mono`` and
    ``resample_to_model_rate`` convert other audio). ``TypeError`` for samples that are not
    floating point, ``ValueError`` for more than one channel, ``AudioInputError`` for NaN,
    infinite or absurd samples."""
    audio = mono_float32(audio, "transcribe_audio", "downmix_to_mono")
    check_samples(audio, "audio")
    posteriors = compute_posteriors(audio, model, settings.windowing)
    params = settings.decoder.decoder_params(estimate_bends=settings.midi.bends is not BendMode.NONE)
    return Transcription(
        posteriors=posteriors, notes=decode_notes(posteriors, params), audio_samples=len(audio)
    )


def transcribe_file(path: str | Path, model: WindowModel, settings: TranscribeSettings) -> Transcription:
    """Read, resample and transcribe the audio file at ``path``."""
    return transcribe_audio(read_audio(path), model, settings)


def write_transcription(
    transcription: Transcription,
    settings: TranscribeSettings,
    midi_path: Path | None,
    csv_path: Path | None = None,
    posteriors_path: Path | None = None,
) -> None:
    """Write whichever of the MIDI file, notes CSV and posteriors ``.npz`` are asked for."""
    if midi_path is not None:
        write_midi_file(
            midi_path,
            transcription.notes,
            settings.midi.bends,
            settings.midi.effective_bend_range_semitones,
        )
    if csv_path is not None:
        write_notes_csv(csv_path, transcription.notes)
    if posteriors_path is not None:
        try:
            with replaced_whole(posteriors_path) as written:
                transcription.posteriors.save_npz(str(written))
        except OSError as err:
            raise unwritable(posteriors_path, err) from err
